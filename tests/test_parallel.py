"""hw3lib.parallel: batches split over threads, against one model on one thread (float64),
the rule that keeps small batches whole, BLAS's threads, NumPy's error settings in the
threads, training with ``fit(threads=...)`` and ``train --threads``."""
import os
import threading
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import hw3lib.cores as cores
import hw3lib.optim as optim
import hw3lib.parallel as parallel
from hw3lib.checkpoint import load_checkpoint
from hw3lib.layers import Flatten
from hw3lib.model import LeNet5, Sequential
from hw3lib.optim import SGD
from hw3lib.parallel import BLAS_VARIABLES, SplitBatch, check_threads, child_blas_threads
from hw3lib.train import fit
from test_cli import QUICK, digits_root
from test_train import params_of, run_cli, tiny_config, tiny_data, without_seconds


def model64(**kwargs):
    return LeNet5(in_channels=2, input_size=16, conv_channels=(3, 5), kernel_size=3,
                  hidden=(10, 8), seed=0, dtype=np.float64, **kwargs)


def batch(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, 16, 16)), rng.integers(0, 3, n)


@pytest.fixture
def always_split(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PART_FLOPS", 1)


def blas_threads():
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_a_replica_shares_the_weights_and_keeps_its_own_gradients():
    model = model64()
    twin = model.replica()
    assert all(twin.get_params()[k] is p for k, p in model.get_params().items())
    X, y = batch(4)
    grads = {k: g.copy() for k, g in model.backward(model.forward(X), y).items()}
    twin.backward(twin.forward(X[:2]), y[:2])
    for k, g in model._named(lambda layer: layer.grads, prefix="d").items():
        assert np.array_equal(g, grads[k]), f"the replica's pass changed the model's {k}"
    model.get_params()["W1"][...] = 0
    assert not twin.get_params()["W1"].any()


@pytest.mark.parametrize("n,threads,sizes", [(7, 3, [2, 3, 2]), (2, 4, [1, 1]), (9, 2, [4, 5]),
                                             (5, 1, [5])])
def test_parts_are_consecutive_and_as_even_as_can_be(always_split, n, threads, sizes):
    parts = SplitBatch(model64(), threads).parts(n)
    assert [p.stop - p.start for p in parts] == sizes
    assert parts[0].start == 0 and all(a.stop == b.start for a, b in zip(parts, parts[1:]))


def test_small_batches_stay_whole_and_large_ones_split_only_as_far_as_they_pay(monkeypatch):
    split = SplitBatch(model64(), 4)
    monkeypatch.setattr(parallel, "MIN_PART_FLOPS", 10 * split.step_flops)  # 10 images' work
    assert [len(split.parts(n)) for n in (1, 19, 20, 29, 30, 40, 100)] == [1, 1, 2, 2, 3, 4, 4]


@pytest.mark.parametrize("n,threads", [(7, 3), (6, 2), (3, 4)])
def test_split_passes_equal_one_model_on_the_whole_batch(always_split, n, threads):
    X, y = batch(n)
    model = model64()
    probs = model.forward(X)
    grads = {k: g.copy() for k, g in model.backward(probs, y).items()}
    with SplitBatch(model64(), threads) as split:
        split_probs = split.forward(X)
        split_grads = split.backward(split_probs, y)
    np.testing.assert_allclose(split_probs, probs, rtol=1e-12, atol=1e-14)
    assert split_grads.keys() == grads.keys()
    for k in grads:
        np.testing.assert_allclose(split_grads[k], grads[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_a_batch_of_one_part_runs_on_the_model_itself_bit_for_bit():
    X, y = batch(5)
    model = model64()
    probs = model.forward(X)
    grads = {k: g.copy() for k, g in model.backward(probs, y).items()}
    with SplitBatch(model64(), 2) as split:  # tiny work: no split
        assert split.forward(X).tobytes() == probs.tobytes()
        assert all(g.tobytes() == grads[k].tobytes() for k, g in split.backward(probs, y).items())


def test_a_split_run_is_the_same_bit_for_bit_every_time(always_split):
    X, y = batch(9)
    runs = []
    for _ in range(2):
        with SplitBatch(model64(), 3) as split:
            runs.append({k: g.copy() for k, g in split.backward(split.forward(X), y).items()})
    assert all(runs[0][k].tobytes() == runs[1][k].tobytes() for k in runs[0])


def test_blas_runs_one_thread_inside_and_gets_its_threads_back_after():
    with threadpool_limits(2, user_api="blas"):  # not the one thread the Makefile sets
        assert blas_threads() == {2}
        with SplitBatch(model64(), 2) as split:
            assert blas_threads() == {1}
        assert blas_threads() == {2}
        assert split.pool._shutdown
        with SplitBatch(model64(), 1):  # one thread: BLAS is left as it was
            assert blas_threads() == {2}


class Overflowing:
    """A stand-in model whose forward pass overflows, warning unless NumPy is told not to."""

    def flops(self, training=True):
        return 1

    def replica(self):
        return Overflowing()

    def forward(self, X):
        return X * 1e308 * 10


def test_threads_take_this_threads_numpy_error_settings(always_split):
    X = np.ones(6)
    with SplitBatch(Overflowing(), 2) as split:
        with pytest.warns(RuntimeWarning, match="overflow"):
            split.forward(X)
        with np.errstate(over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning in the second thread would raise here too
            assert np.isinf(split.forward(X)).all()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_bad_thread_counts_are_refused_naming_the_value(bad):
    with pytest.raises(ValueError, match=f"threads must be an integer >= 1, got {bad!r}"):
        check_threads(bad)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        fit(tiny_config().build_model(3), tiny_data(), tiny_config(), threads=bad, progress=False)


def test_fit_on_threads_learns_as_on_one_and_repeats_itself(always_split):
    data, config = tiny_data(), tiny_config(epochs=4, lr=0.02)
    blas = blas_threads()
    one = fit(config.build_model(3), data, config, progress=False)
    runs = [fit(config.build_model(3), data, config, progress=False, threads=3) for _ in range(2)]
    assert without_seconds(runs[0].history) == without_seconds(runs[1].history)
    first, again = params_of(runs[0].model), params_of(runs[1].model)
    assert all(first[k].tobytes() == again[k].tobytes() for k in first)
    for k in ("train_loss", "val_loss"):  # float32: the same run up to rounding
        np.testing.assert_allclose(runs[0].history[k], one.history[k], rtol=1e-4)
    assert blas_threads() == blas  # fit gave BLAS its threads back and stopped its own
    assert not any(t.name.startswith("hw3lib-split") for t in threading.enumerate())


def test_train_command_takes_threads_and_refuses_bad_counts(tmp_path, capsys, always_split, monkeypatch):
    root = digits_root(tmp_path / "digits", classes=3)
    monkeypatch.setattr(cores, "usable_cores", lambda: 2)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--threads", "2",
                                "--out", tmp_path / "run")
    assert code in (0, 3), err
    assert "up to 2 threads" in stdout.splitlines()[1] and "note:" not in stdout
    monkeypatch.setattr(cores, "usable_cores", lambda: 1)  # more threads than cores: said, not refused
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--threads", "2",
                                "--out", tmp_path / "run1")
    assert code in (0, 3) and stdout.splitlines()[2] == (
        "note: --threads 2 on the 1 core(s) this process may use: the threads share them, so it "
        "runs no faster than with --threads 1")
    for bad in ("0", "two"):
        code, stdout, err = run_cli(capsys, "--data", root, "--threads", bad, "--out", tmp_path / "r")
        assert code == 2 and len(err.splitlines()) == 1
        assert f"--threads: must be an integer >= 1, got '{bad}'" in err


def test_an_interrupt_on_threads_stops_them_and_a_resume_on_threads_is_bit_exact(always_split,
                                                                                 tmp_path):
    data, config = tiny_data(), tiny_config(epochs=3)
    full_path, cut_path = tmp_path / "full.npz", tmp_path / "cut.npz"
    fit(config.build_model(3), data, config, checkpoint_path=full_path, progress=False, threads=2)

    def interrupt(stats):
        if (stats["epoch"], stats["batch"]) == (2, 3):
            raise KeyboardInterrupt

    cut = fit(config.build_model(3), data, config, on_batch=interrupt, checkpoint_path=cut_path,
              progress=False, threads=2)
    assert cut.stopped == "interrupted" and cut.history["epoch"] == [1]
    assert not any(t.name.startswith("hw3lib-split") for t in threading.enumerate())
    fit(config.build_model(3), data, config, resume=cut_path, checkpoint_path=cut_path,
        progress=False, threads=2)
    full, again = load_checkpoint(full_path), load_checkpoint(cut_path)
    assert all(full.params[k].tobytes() == again.params[k].tobytes() for k in full.params)


def test_the_course_lenet_stays_on_one_thread_and_3x128x128_splits():
    """The rule as the README states it, with the real MIN_PART_FLOPS."""
    assert len(SplitBatch(LeNet5(), 2).parts(32)) == 1
    assert len(SplitBatch(LeNet5(), 2).parts(256)) == 1  # its evaluation batches too
    assert len(SplitBatch(LeNet5(in_channels=3, input_size=128), 2).parts(32)) == 2
    assert len(SplitBatch(LeNet5(in_channels=3, input_size=64), 2).parts(32)) == 1  # break-even


def test_spread_cuts_large_contiguous_arrays_one_piece_per_thread(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PIECE", 4)
    arrays = {"two": np.zeros(10), "three": np.zeros((13, 1)), "small": np.zeros(7),
              "strided": np.zeros((4, 5)).T}
    done, lock = [], threading.Lock()

    def work(key, part):
        with lock:
            done.append((key, part, threading.current_thread().name))
    with SplitBatch(model64(), 3) as split:
        split.spread(work, arrays)
    parts = {key: sorted((p.start, p.stop) if p else None for k, p, _ in done if k == key)
             for key in arrays}
    assert parts == {"two": [(0, 5), (5, 10)], "three": [(0, 4), (4, 9), (9, 13)],
                     "small": [None], "strided": [None]}
    main = threading.current_thread().name  # the first pieces and whole arrays here, the rest in the pool
    assert {name == main for k, p, name in done} == {True, False}
    assert all((name == main) == (p is None or p.start == 0) for k, p, name in done)


def test_each_thread_does_its_share_in_cache_sized_pieces(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PIECE", 4)
    monkeypatch.setattr(optim, "PIECE", 2)
    done, lock = [], threading.Lock()

    def work(key, part):
        with lock:
            done.append((part.start, part.stop, threading.current_thread().name))
    with SplitBatch(model64(), 2) as split:
        split.spread(work, {"W": np.zeros(10)})
    assert sorted(p[:2] for p in done) == [(0, 2), (2, 4), (4, 5), (5, 7), (7, 9), (9, 10)]
    first = {name for start, stop, name in done if stop <= 5}
    second = {name for start, stop, name in done if start >= 5}
    assert len(first) == len(second) == 1 and first != second


def test_one_thread_does_every_piece_itself_in_order(monkeypatch):
    monkeypatch.setattr(optim, "PIECE", 4)
    done = []
    SplitBatch(model64(), 1).spread(lambda key, part: done.append((key, part, threading.current_thread())),
                                    {"W": np.zeros(10), "b": np.zeros(3)})
    assert [(key, part) for key, part, _ in done] == [
        ("W", slice(0, 4)), ("W", slice(4, 8)), ("W", slice(8, 10)), ("b", None)]
    assert {thread for _, _, thread in done} == {threading.current_thread()}


def test_a_model_without_parameters_trains_on_threads_as_on_one(always_split):
    """Its optimizer's step spread no arrays, and the split's side-by-side run of no calls
    failed with an IndexError."""
    model = Sequential([Flatten()], input_shape=(3,))
    X, y = np.random.default_rng(0).random((4, 3)), np.array([0, 1, 2, 0])
    with SplitBatch(model, 2) as net:
        grads = net.backward(net.forward(X), y)
        assert grads == {} and SGD(0.1, params=model.get_params()).update_params(grads, net.spread) == {}


def test_gradients_combined_and_updated_in_pieces_are_the_same_bit_for_bit(always_split,
                                                                           monkeypatch):
    data, config = tiny_data(), tiny_config(epochs=2)
    runs = []
    for min_piece in (10**9, 1):  # every parameter whole, then in pieces over the threads
        monkeypatch.setattr(parallel, "MIN_PIECE", min_piece)
        runs.append(params_of(fit(config.build_model(3), data, config, progress=False,
                                  threads=3).model))
    assert all(runs[0][k].tobytes() == runs[1][k].tobytes() for k in runs[0])


def test_child_blas_threads_sets_the_variables_meanwhile_and_restores_them(monkeypatch):
    """What the sweep's and the grid's worker processes read when their BLAS loads."""
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with pytest.raises(RuntimeError):
        with child_blas_threads(2):
            assert [os.environ[name] for name in BLAS_VARIABLES] == ["2", "2", "2"]
            raise RuntimeError  # a process that failed to start
    assert os.environ["OPENBLAS_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ


@pytest.mark.parametrize("labels", [5, 3], ids=["one too many", "one too few"])
def test_labels_of_another_batch_size_are_refused_as_on_one_thread(always_split, labels):
    """A label too many was dropped by the parts' slices and the parts' gradients weighed by
    their share of 5 images, not 4: gradients 0.8 times the right ones, silently (one thread
    refuses); one too few was refused naming a part's sizes, '2 predictions but 1 labels'."""
    X, y = batch(4)
    with SplitBatch(model64(), 2) as split:
        probs = split.forward(X)
        with pytest.raises(ValueError, match=f"4 predictions and {labels} labels for the last "
                                             "forward's batch of 4 images"):
            split.backward(probs, np.resize(y, labels))
        assert set(split.backward(probs, y)) == {"d" + k for k in model64().get_params()}


def test_backward_before_forward_is_refused_clearly():
    X, y = batch(4)
    with SplitBatch(model64(), 2) as split, pytest.raises(ValueError, match="before forward"):
        split.backward(np.full((4, 3), 1 / 3), y)
