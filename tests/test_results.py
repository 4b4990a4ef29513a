"""hw3lib.runs, hw3lib.results and hw3lib.stamp: cached runs (reuse, retrain, resume), tables,
selections, feature maps, the stamp."""
import json
import os
import re
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from threadpoolctl import threadpool_info, threadpool_limits

import hw3lib.download
import hw3lib.results as results
from hw3lib import runs as runs_module
from hw3lib import stamp as stamp_module
from hw3lib.data import frame_runs, normalize
from hw3lib.metrics import bootstrap_interval
from hw3lib.layers import Dense, Flatten
from hw3lib.model import LeNet5, Sequential
from hw3lib.checkpoint import load_checkpoint, save_checkpoint
from hw3lib.config import TrainConfig
from hw3lib.engine import blas_description, engine_stamp
from hw3lib.train import fit
from hw3lib.evaluation import evaluate
from hw3lib.images import DataError
from datasets import name_at_random, write_videos

CONFIG = TrainConfig(epochs=2, batch_size=8, lr=0.002)


def fake_root(tmp_path, per_class=(10, 4), size=(32, 32)):
    """A dataset folder of LA PNGs of ``size`` (height, width), classes A, B, C; class k
    brightens the k-th third of the rows."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fruits"
    for split, n in zip(("train", "test"), per_class):
        for k, name in enumerate("ABC"):
            folder = root / f"Data_{split}" / name
            folder.mkdir(parents=True)
            for i in range(n):
                grey = rng.integers(0, 150, size, dtype=np.uint8)
                grey[k * 10:(k + 1) * 10] += 100
                pixels = np.stack([grey, np.full_like(grey, 255)], -1)
                Image.fromarray(pixels, "LA").save(folder / f"{i}.png")
    return root


@pytest.fixture
def root(tmp_path):
    return fake_root(tmp_path)


@pytest.fixture
def count_fits(monkeypatch):
    """Counts the calls of fit inside hw3lib.runs (and records their resume argument)."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs.get("resume"))
        return fit(*args, **kwargs)

    monkeypatch.setattr(runs_module, "fit", counted)
    return calls


def assert_same_run(a, b):
    assert a.best_epoch == b.best_epoch
    for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc"):
        assert a.history[key] == b.history[key], key
    pa, pb = a.model.get_params(), b.model.get_params()
    assert pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.std, b.std)


def test_the_training_api_is_exported_by_the_package():
    import hw3lib
    from hw3lib import checkpoint, config, train, trained

    for module, name in ((config, "TrainConfig"), (train, "fit"), (trained, "evaluate"),
                         (checkpoint, "load_checkpoint"), (checkpoint, "save_checkpoint")):
        assert getattr(hw3lib, name) is getattr(module, name) and name in hw3lib.__all__


def test_checkpoint_path_is_named_by_the_settings_and_creates_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    path = runs_module.checkpoint_path(CONFIG, folder)
    assert folder.is_dir() and path.parent == folder and path.suffix == ".npz"
    assert path == runs_module.checkpoint_path(TrainConfig(epochs=2, batch_size=8, lr=0.002), folder)
    others = {runs_module.checkpoint_path(replace(CONFIG, **change), folder)
              for change in ({"seed": 1}, {"hflip": False}, {"epochs": 3}, {"lr": 0.001})}
    assert len(others) == 4 and path not in others
    assert runs_module.RUNS_DIR == runs_module.REPO_ROOT / "runs" / "notebooks"
    monkeypatch.setattr(runs_module, "RUNS_DIR", tmp_path / "runs")  # the default folder, not the checkout's
    assert runs_module.checkpoint_path(TrainConfig()).parent.parent == tmp_path / "runs"


def test_relative_paths_for_printing(tmp_path):
    assert runs_module.relative(runs_module.REPO_ROOT / "runs" / "a.npz") == "runs/a.npz"
    assert runs_module.relative(tmp_path / "b.npz") == "b.npz"


def test_load_or_train_trains_once_then_reuses_the_checkpoint(root, tmp_path, count_fits):
    path = runs_module.checkpoint_path(CONFIG, tmp_path / "cache")
    first = runs_module.load_or_train(CONFIG, path, root=root)
    assert count_fits == [None] and path.is_file()
    assert load_checkpoint(path).data_sha256 == runs_module.dataset_sha256(root)
    again = runs_module.load_or_train(CONFIG, path, root=root)
    assert count_fits == [None]  # loaded, not trained
    assert_same_run(first, again)
    data = CONFIG.load_data(root)  # the loaded run, untested, counts its test split too
    assert again.evaluate(data.X_test, data.y_test) == first.evaluate(data.X_test, data.y_test)
    assert again.test_evaluations == first.test_evaluations == load_checkpoint(path).test_evaluations == 1


def test_data_given_without_root_is_filed_under_its_own_folder(root, tmp_path, monkeypatch, count_fits):
    monkeypatch.setenv("HW3_DATA", str(root))
    monkeypatch.setattr(runs_module, "RUNS_DIR", tmp_path / "runs")
    other = fake_root(tmp_path / "other", size=(36, 28))
    result = runs_module.load_or_train(CONFIG, data=CONFIG.load_data(other))
    assert result.checkpoint_path.parent == runs_module.run_folder(other) != runs_module.run_folder(root)
    assert load_checkpoint(result.checkpoint_path).data_sha256 == runs_module.dataset_sha256(other)
    runs_module.load_or_train(CONFIG)  # $HW3_DATA's data: not the other folder's run
    assert len(count_fits) == 2
    with pytest.raises(ValueError, match="given data loaded from .* and root .*: give one"):
        runs_module.load_or_train(CONFIG, data=CONFIG.load_data(other), root=root)


@pytest.fixture
def count_reads(monkeypatch):
    """Counts the hashes and reads of the data inside hw3lib.runs, its known_data forgotten."""
    calls = {"hashes": 0, "reads": 0}

    def hashed(root):
        calls["hashes"] += 1
        return hw3lib.download.dataset_sha256(root)

    def read(self, *args, **kwargs):
        calls["reads"] += 1
        return read_images(self, *args, **kwargs)

    read_images = TrainConfig.read_images
    monkeypatch.setattr(runs_module, "_KNOWN", {})
    monkeypatch.setattr(runs_module, "dataset_sha256", hashed)
    monkeypatch.setattr(TrainConfig, "read_images", read)
    return calls


def test_known_data_is_read_and_hashed_once_until_a_file_is_written_though_its_size_and_time_stay(
        tmp_path, count_reads):
    """A sweep's worker read and hashed every file of the data for each of its runs."""
    root = tmp_path / "data"
    for split in ("train", "test"):
        for name in "ABC":
            (root / f"Data_{split}" / name).mkdir(parents=True)
            for i in range(4):  # uncompressed: a PNG of 32x32 grey pixels takes as many bytes whatever they are
                Image.new("L", (32, 32), 40 * i + ord(name)).save(root / f"Data_{split}" / name / f"{i}.png",
                                                                  compress_level=0)
    data, sha = runs_module.known_data(CONFIG, root)
    assert sha == hw3lib.download.dataset_sha256(root) and not data.X_train.flags.writeable
    assert runs_module.known_data(replace(CONFIG, lr=0.01), root) == (data, sha)  # another run's setting
    assert count_reads == {"hashes": 1, "reads": 1}
    other, same = runs_module.known_data(replace(CONFIG, seed=1), root)  # another split: split, not read
    assert same == sha and other.loaded_with["seed"] == 1 and not other.X_train.flags.writeable
    assert count_reads == {"hashes": 1, "reads": 1}
    image = root / "Data_train" / "A" / "0.png"  # written again, of the same size and modification time
    before = image.stat()
    Image.new("L", (32, 32), 255).save(image, compress_level=0)
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert image.stat().st_size == before.st_size and image.stat().st_mtime_ns == before.st_mtime_ns
    changed, new_sha = runs_module.known_data(replace(CONFIG, seed=1), root)
    assert count_reads == {"hashes": 2, "reads": 2}
    assert new_sha == hw3lib.download.dataset_sha256(root) != sha and changed.X_train.max() > other.X_train.max()


def test_known_data_too_large_to_keep_its_images_still_keeps_its_dataset(tmp_path, count_reads, monkeypatch):
    """Above KEEP_IMAGES_BYTES the decoded images are let go once split, and every run after,
    a sweep's over the learning rate with one seed, read and decoded every file again, though
    the Dataset of its setting was kept."""
    monkeypatch.setattr(runs_module, "KEEP_IMAGES_BYTES", 0)
    root = write_videos(tmp_path / "data", frames=12, test_frames=2)
    data, sha = runs_module.known_data(CONFIG, root)
    assert runs_module.known_data(replace(CONFIG, lr=0.01), root) == (data, sha)
    assert count_reads == {"hashes": 1, "reads": 1} and "images" not in runs_module._KNOWN
    other, _ = runs_module.known_data(replace(CONFIG, seed=1), root)  # another split: read again
    assert count_reads["reads"] == 2 and other.loaded_with["seed"] == 1


def test_known_data_that_failed_to_load_leaves_the_data_loaded_before_to_be_read_again(root, count_reads):
    """A load that failed (images with transparent pixels in mode L, as a sweep over mode meets
    them) left the earlier data setting recorded without its Dataset: the next run of that
    setting failed with KeyError: 'data' instead of training."""
    image = root / "Data_train" / "A" / "0.png"
    pixels = np.array(Image.open(image))
    pixels[0, 0, 1] = 0  # one transparent pixel
    Image.fromarray(pixels, "LA").save(image)
    la = replace(CONFIG, mode="LA")
    data, sha = runs_module.known_data(la, root)
    with pytest.raises(DataError, match="transparent pixels"):
        runs_module.known_data(replace(CONFIG, mode="L"), root)
    again, same = runs_module.known_data(la, root)
    assert same == sha and again.loaded_with == data.loaded_with and count_reads == {"hashes": 1, "reads": 3}
    assert all(np.array_equal(getattr(again, k), getattr(data, k)) for k in ("X_train", "X_val", "X_test"))


def test_a_known_sha256_given_with_the_data_is_not_computed_again(root, tmp_path, count_reads):
    data, sha = runs_module.known_data(CONFIG, root)
    result = runs_module.load_or_train(CONFIG, tmp_path / "run.npz", data=data, data_sha256=sha)
    assert count_reads == {"hashes": 1, "reads": 1}
    assert load_checkpoint(result.checkpoint_path).data_sha256 == sha
    with pytest.raises(ValueError, match="given data_sha256 without data: give the data it is the SHA-256 of"):
        runs_module.load_or_train(CONFIG, tmp_path / "run.npz", data_sha256=sha, root=root)


@pytest.mark.parametrize("change", [dict(seed=1), dict(split="random"), dict(val_fraction=0.5),
                                    dict(image_size=16), dict(mode="RGB")])
def test_data_loaded_otherwise_than_the_config_is_refused_before_training(root, tmp_path, change):
    """Notebook 05's config cell run with new settings but the data of the old ones (its load
    failed, say): the run was trained on that data and cached as the new settings' run."""
    path, name = tmp_path / "run.npz", next(iter(change))
    match = rf"data was loaded with {name}=.*, the config says {name}=.*config.load_data\(root\)"
    with pytest.raises(ValueError, match=match):
        runs_module.load_or_train(replace(CONFIG, **change), path, data=CONFIG.load_data(root))
    assert not path.exists()


def test_load_or_train_reads_the_data_files_for_their_sha256_once(root, tmp_path, monkeypatch):
    monkeypatch.setattr(runs_module, "RUNS_DIR", tmp_path / "runs")
    calls = []
    monkeypatch.setattr(runs_module, "dataset_sha256",
                        lambda r=None: calls.append(r) or hw3lib.download.dataset_sha256(r))
    runs_module.load_or_train(CONFIG, root=root)  # trains
    runs_module.load_or_train(CONFIG, root=root)  # loads
    assert calls == [root, root]


def test_load_or_train_builds_the_model_for_the_datas_image_size(tmp_path):
    root = fake_root(tmp_path, size=(36, 28))
    result = runs_module.load_or_train(CONFIG, tmp_path / "run.npz", root=root)
    assert result.model.input_shape == (1, 36, 28) and len(result.history["epoch"]) == 2


def test_load_or_train_refuses_a_config_or_data_of_another_kind_before_any_work(tmp_path):
    """They failed on a missing attribute (config.load_data, data.root)."""
    data = (np.zeros((2, 1, 32, 32), np.float32), np.zeros(2, int))
    for args, kwargs, match in (((CONFIG.to_dict(),), {}, r"takes a TrainConfig as config, got a dict"),
                                ((CONFIG,), {"data": data}, r"takes a Dataset as data, got a tuple")):
        with pytest.raises(ValueError, match=r"load_or_train\(config, path, data=...\) " + match):
            runs_module.load_or_train(*args, tmp_path / "run.npz", **kwargs)
    assert not (tmp_path / "run.npz").exists()


def test_load_or_train_is_bit_deterministic(root, tmp_path):
    a = runs_module.load_or_train(CONFIG, tmp_path / "a.npz", root=root)
    b = runs_module.load_or_train(CONFIG, tmp_path / "b.npz", root=root)
    assert_same_run(a, b)


def test_a_run_another_process_trains_is_waited_for_and_loaded_not_trained_twice(
        root, tmp_path, count_fits, monkeypatch, capsys):
    """Two notebooks (or a notebook beside make report) asking for one run at once both trained
    it into the same file, the later failing at its end. Threads here: the lock is the
    operating system's on an open file, which two threads of one process contend for too."""
    monkeypatch.setattr(runs_module, "TURN_POLL", 0.01)
    path, training, go_on, results = tmp_path / "run.npz", threading.Event(), threading.Event(), {}

    def first_epoch(history):
        training.set()
        assert go_on.wait(30)

    def ask(name, **kwargs):
        results[name] = runs_module.load_or_train(CONFIG, path, root=root, **kwargs)

    first = threading.Thread(target=ask, args=("first",), kwargs=dict(on_epoch=first_epoch))
    first.start()
    assert training.wait(30)
    second = threading.Thread(target=ask, args=("second",))
    second.start()
    out, deadline = "", time.monotonic() + 30
    while "waiting:" not in out and time.monotonic() < deadline:  # until the second waits (a
        out += capsys.readouterr().out  # fixed sleep let a slow second thread find the run done)
        time.sleep(0.01)
    go_on.set()
    first.join(60)
    second.join(60)
    assert count_fits == [None]  # trained once
    assert_same_run(results["first"], results["second"])
    assert out + capsys.readouterr().out == (f"waiting: process {os.getpid()} (this one: the lock was taken "
                                       "twice, or by another thread) is training run.npz; its run is "
                                       "loaded when it ends\n")


def test_where_no_lock_can_be_made_a_run_is_still_trained_and_a_finished_one_loaded(
        root, tmp_path, count_fits, monkeypatch):
    """A read-only folder of finished runs (a teacher's copy) loads them as before the lock."""
    def unlockable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(runs_module, "claimed", unlockable)
    first = runs_module.load_or_train(CONFIG, tmp_path / "run.npz", root=root)
    assert_same_run(first, runs_module.load_or_train(CONFIG, tmp_path / "run.npz", root=root))
    assert count_fits == [None]


def test_other_settings_other_data_or_a_corrupt_file_train_afresh(root, tmp_path, count_fits):
    path = tmp_path / "run.npz"
    runs_module.load_or_train(CONFIG, path, root=root)
    other = replace(CONFIG, lr=0.001)
    retrained = runs_module.load_or_train(other, path, root=root)  # same file, other settings
    assert len(count_fits) == 2 and load_checkpoint(path).config == other
    assert_same_run(retrained, runs_module.load_or_train(other, tmp_path / "fresh.npz", root=root))

    png = next((root / "Data_test" / "A").glob("*.png"))  # the data changes: its SHA-256 too
    Image.fromarray(np.zeros((32, 32), np.uint8), "L").save(png)  # opaque black
    runs_module.load_or_train(other, path, root=root)
    assert len(count_fits) == 4 and load_checkpoint(path).data_sha256 == runs_module.dataset_sha256(root)

    path.write_bytes(b"not a checkpoint")
    runs_module.load_or_train(other, path, root=root)
    assert len(count_fits) == 5 and load_checkpoint(path).config == other


def test_another_run_whose_test_split_was_evaluated_is_never_overwritten(root, tmp_path):
    path = tmp_path / "run.npz"
    tested = runs_module.load_or_train(CONFIG, path, root=root)
    data = CONFIG.load_data(root)
    tested.test(data.X_test, data.y_test)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"run.npz holds another run whose test split was evaluated "
                                         r"1 time\(s\); training a fresh one there would lose that record"):
        runs_module.load_or_train(replace(CONFIG, lr=0.001), path, root=root)
    with pytest.raises(ValueError, match="training a fresh one there would lose that record"):
        fit(CONFIG.build_model(3), CONFIG.load_data(root), CONFIG, checkpoint_path=path, progress=False)
    assert path.read_bytes() == before
    assert runs_module.load_or_train(CONFIG, path, root=root).test_evaluations == 1  # its own: loaded


def test_a_run_of_another_engine_is_trained_afresh_finished_or_cut_short(root, tmp_path, count_fits):
    path = tmp_path / "run.npz"
    runs_module.load_or_train(CONFIG, path, root=root)
    assert load_checkpoint(path).engine == engine_stamp()
    for epochs in (CONFIG.epochs, 1):  # a finished run, then one cut short after its first epoch
        ckpt = load_checkpoint(path)
        ckpt.engine, ckpt.epoch, ckpt.best_epoch = "hw3lib 000000000000, numpy 1.0", epochs, 1
        ckpt.history = {key: column[:epochs] for key, column in ckpt.history.items()}
        save_checkpoint(path, ckpt)
        runs_module.load_or_train(CONFIG, path, root=root)
        assert count_fits[-1] is None and load_checkpoint(path).engine == engine_stamp()
    assert len(count_fits) == 3


def test_the_notebooks_runs_are_kept_apart_by_data_and_engine(root, tmp_path, monkeypatch):
    monkeypatch.setattr(runs_module, "RUNS_DIR", tmp_path / "runs")  # nothing made in the checkout
    folder = runs_module.run_folder(root)
    assert folder.parent == runs_module.RUNS_DIR and folder == runs_module.run_folder(root)
    assert runs_module.checkpoint_path(CONFIG, root=root).parent == folder
    assert runs_module.run_folder(fake_root(tmp_path / "other", size=(36, 28))) != folder
    monkeypatch.setattr(runs_module, "engine_stamp", lambda: "hw3lib 000000000000, numpy 1.0")
    assert runs_module.run_folder(root) != folder
    notebook = json.loads((runs_module.REPO_ROOT / "notebooks" / "06_results.ipynb").read_text())
    assert any("RUNS = run_folder()" in "".join(cell["source"]) for cell in notebook["cells"])


def test_a_run_cut_short_is_resumed_bit_exactly(root, tmp_path, count_fits):
    data, path = CONFIG.load_data(root), tmp_path / "cut.npz"

    def interrupt(stats):
        if stats["epoch"] == 2:
            raise KeyboardInterrupt

    cut = fit(CONFIG.build_model(3), data, CONFIG, on_batch=interrupt, checkpoint_path=path,
              data_sha256=runs_module.dataset_sha256(root), progress=False)
    assert cut.stopped == "interrupted" and load_checkpoint(path).epoch == 1
    resumed = runs_module.load_or_train(CONFIG, path, root=root)
    assert len(count_fits) == 1 and count_fits[0] is not None  # fit was given the checkpoint
    assert_same_run(resumed, runs_module.load_or_train(CONFIG, tmp_path / "whole.npz", root=root))


def test_a_stopped_training_raises_keyboard_interrupt_and_keeps_its_epochs(root, tmp_path):
    done = []  # the stop flag is set once the first epoch is done
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt, match=r"run.npz was stopped after 1 epoch\(s\); run again"):
        runs_module.load_or_train(CONFIG, path, root=root, on_epoch=done.append, stop=lambda: bool(done))
    assert load_checkpoint(path).epoch == 1


def test_probabilities_and_feature_maps_use_the_training_statistics(root, tmp_path):
    result = runs_module.load_or_train(CONFIG, tmp_path / "run.npz", root=root)
    data = CONFIG.load_data(root)
    X = normalize(data.X_test, result.mean, result.std)
    probs = result.predict(data.X_test, batch_size=5)  # several batches
    # batches of 5 against one of all: float32 products of other shapes round apart by ~1e-6
    np.testing.assert_allclose(probs, result.model.forward(X), rtol=1e-5)
    maps = results.feature_maps(result, data.X_test[:2])
    conv, relu = result.model.layers[:2]
    np.testing.assert_array_equal(maps, relu.forward(conv.forward(X[:2])))
    assert maps.shape == (2, 6, 28, 28)
    everything = results.feature_maps(result, data.X_test[:2], layers=len(result.model.layers))
    np.testing.assert_array_equal(everything, result.model.logits(X[:2]))
    with pytest.raises(ValueError, match="layers must lie in 1..12"):
        results.feature_maps(result, data.X_test, layers=0)
    # 8-bit pixels were normalised as if in [0, 1], giving maps without an error; grey images
    # (N, H, W) and a layers of another type failed inside numpy or Python's comparisons
    with pytest.raises(ValueError, match=r"X must hold raw images as floats in \[0, 1\], got uint8"):
        results.feature_maps(result, (data.X_test[:2] * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"got \(2, 32, 32\): .*Fix: X\[:, None\]"):
        results.feature_maps(result, data.X_test[:2, 0])
    for layers in ("2", 1.5):
        with pytest.raises(ValueError, match=rf"layers must lie in 1..12, an integer, got {layers!r}"):
            results.feature_maps(result, data.X_test[:2], layers=layers)
    # the model where the run goes, the run where a model goes: each failed on an attribute
    with pytest.raises(ValueError, match=r"feature_maps takes a run, the FitResult .*got a LeNet5"):
        results.feature_maps(result.model, data.X_test[:2])
    with pytest.raises(ValueError, match=r"summary_table takes a model .*got a FitResult: pass result.model"):
        results.summary_table(result)
    with pytest.raises(ValueError, match=r"evaluate takes a model .*got a FitResult: evaluate a run "
                                         r"with result.evaluate\(X, y\) on raw images"):
        evaluate(result, X, data.y_test)


def test_quoted_figures_names_each_figure_the_text_must_change():
    losses = [0.5, 0.1]
    assert results.quoted_figures({"kept epoch": ("23", 23), "mean": ("0.991", "0.991"),
                                   "loss 2": ("0.1", lambda: losses[1])}) == (
        "The 3 figures of the text checked here are this run's.")
    assert results.quoted_figures({"loss 4": ("0.02", lambda: losses[3])}) == (
        "The text quotes figures this run does not give; rewrite what it says about: loss 4 0.02 "
        "(this run: none in this run)")
    assert results.quoted_figures({"kept epoch": ("23", 18), "mean": ("0.991", "0.991"),
                                   "rate": ("0.002", "0.001")}) == (
        "The text quotes figures this run does not give; rewrite what it says about: kept epoch 23 "
        "(this run: 18); rate 0.002 (this run: 0.001)")


def test_the_facts_notebook_06_words_are_computed_from_the_run():
    """Its text said "six 5x5 filters", "six 28x28 maps", "pooled down to 5x5", "pears taken for
    lychees" and "166 frames cut into 10 runs" unchecked, stale in silence for another mode, size,
    network or dataset."""
    assert results.maps_text(LeNet5()) == "6 filters 5x5, 6 maps 28x28, pooled down to 5x5"
    assert results.maps_text(LeNet5(in_channels=3, input_size=40, conv_channels=(8, 16), kernel_size=3)) == (
        "8 filters 3x3, 8 maps 38x38, pooled down to 8x8")
    cm = np.array([[5, 0, 0], [2, 5, 0], [0, 14, 3]])
    assert results.errors_text(cm, ["Carambula", "Lychee", "Pear"]) == "Pear as Lychee 14, Lychee as Carambula 2"
    assert results.errors_text(np.diag([3, 4]), "AB") == "none"
    assert results.runs_text(np.repeat([0, 1, 2], 166)) == "166 per class, 10 runs each, 30 in all"
    assert results.runs_text(np.repeat([0, 1, 2], [160, 166, 5])) == (
        "160/166/5 per class, 10/10/5 runs each, 25 in all")


def test_misclassified_and_one_per_class_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.2, 0.7, 0.1]])
    y = np.array([0, 2, 2, 0])  # predicted 0, 1, 2, 1: samples 1 and 3 are wrong
    np.testing.assert_array_equal(results.misclassified(y, probs), [1, 3])
    np.testing.assert_array_equal(results.misclassified(y, probs, limit=1), [1])
    np.testing.assert_array_equal(results.one_per_class([2, 0, 2, 1, 0], 3), [1, 3, 0])
    with pytest.raises(ValueError, match="no sample of class"):
        results.one_per_class([0, 0, 2], 3)
    with pytest.raises(ValueError, match=r"probs must be \(N, K\)"):
        results.misclassified(y, probs[:3])


@pytest.mark.parametrize("call, said", [
    (lambda: results.misclassified([0, 1], np.eye(2), limit=2.5), "limit must be an integer >= 0"),
    (lambda: results.misclassified([0, 1], np.eye(2), limit=-1), "limit must be an integer >= 0"),
    (lambda: results.one_per_class([0, 1, 2], "3"), "num_classes must be an integer >= 1"),
    (lambda: results.one_per_class(np.eye(3), 3), r"one-hot labels\? Fix: y.argmax\(axis=1\)"),
    (lambda: results.comparison_table({"a": object()}), r"\(FitResult, Dataset\), e.g."),
    (lambda: results.comparison_table([]), r"\(FitResult, Dataset\), e.g."),
    (lambda: results.quoted_figures([("acc", "0.956")]), r"figures must map each figure's name to"),
    (lambda: results.quoted_figures({"acc": "0.956"}), r"figures must map each figure's name to"),
    (lambda: results.maps_text(np.eye(3)), r"maps_text takes a model \(a Sequential"),
    (lambda: results.maps_text(Sequential([Flatten(), Dense(4, 2)], (1, 2, 2))), "with a Conv2D and, after it, a Flatten"),
    (lambda: results.errors_text(np.eye(2), "ABC"), r"\(K, K\) confusion matrix of the K = 3 classes"),
    (lambda: results.runs_text(np.eye(3)), r"y must be labels \(N,\)"),
])
def test_results_helpers_refuse_arguments_of_another_form(call, said):
    """A float limit failed inside a slice and a negative one was taken as a slice from the
    end; a string num_classes failed in range(); one-hot labels were said to miss a class; a
    run without its data, or a figure without its two forms, failed to unpack."""
    with pytest.raises(ValueError, match=said):
        call()


def test_history_table_refuses_what_is_no_history():
    """A FitResult failed on subscripting."""
    from types import SimpleNamespace
    with pytest.raises(ValueError, match=r"history must be a run's history, got a SimpleNamespace: "
                                         r"pass its .history"):
        results.history_table(SimpleNamespace(history={"epoch": []}))


def test_history_table_rounds_accuracy_to_3_and_loss_to_4_decimals():
    history = dict(epoch=[1, 2], train_loss=[0.58874, 0.00016], train_acc=[0.85234, 1.0],
                   val_loss=[0.57136, 0.00024], val_acc=[0.85261, 0.99773], seconds=[3.1, 2.9])
    assert str(results.history_table(history)).splitlines() == [
        "epoch  train loss  train acc  val loss  val acc",
        "    1      0.5887      0.852    0.5714    0.853",
        "    2      0.0002      1.000    0.0002    0.998",
    ]


def test_comparison_table_puts_each_run_beside_the_original(root, tmp_path):
    data = CONFIG.load_data(root)
    other = replace(CONFIG, lr=0.001, split="random")
    data_b = other.load_data(root)
    runs = {"a": (runs_module.load_or_train(CONFIG, tmp_path / "a.npz", data=data, root=root), data),
            "b": (runs_module.load_or_train(other, tmp_path / "b.npz", root=root), data_b)}
    lines = str(results.comparison_table(runs)).splitlines()
    assert lines[0].split() == ["split", "acc", "original", "acc", "a", "acc", "b", "loss",
                                "original", "loss", "a", "loss", "b"]
    for line, split in zip(lines[1:], ("train", "val", "test")):
        (loss_a, acc_a), (loss_b, acc_b) = (run.evaluate(getattr(d, f"X_{split}"), getattr(d, f"y_{split}"))
                                            for run, d in runs.values())  # each on its own split
        acc, loss = results.ORIGINAL[split]
        assert line.split() == [split, f"{acc:g}", f"{acc_a:.3f}", f"{acc_b:.3f}", f"{loss:g}",
                                f"{loss_a:.1e}", f"{loss_b:.1e}"]
    assert [line.split()[1] for line in lines[1:]] == ["0.995", "0.943", "0.956"]
    assert [line.split()[4] for line in lines[1:]] == ["0.009", "0.0065", "1.066"]
    assert [run.test_evaluations for run, _ in runs.values()] == [1, 1]  # test looked at once each
    results.comparison_table(runs)
    assert [run.test_evaluations for run, _ in runs.values()] == [1, 1]


def test_test_over_seeds_tests_each_run_once_with_a_bootstrap_interval(root, tmp_path, monkeypatch):
    configs = {"one": replace(CONFIG, epochs=1), "two": replace(CONFIG, epochs=2)}
    asked = []
    monkeypatch.setattr(results, "bootstrap_interval",
                        lambda correct, **kw: asked.append(kw) or bootstrap_interval(correct, **kw))
    runs, table = results.test_over_seeds(configs, [3, 5], root=root, folder=tmp_path)
    # runs of neighbouring test frames resampled, not single images (near-copies of each other)
    y_test = CONFIG.load_data(root).y_test
    assert len(asked) == 2 and all(np.array_equal(kw.get("blocks"), frame_runs(y_test)) for kw in asked)
    for (label, config), row in zip(configs.items(), table.rows):
        records = [runs[label][seed][1] for seed in (3, 5)]
        acc = np.array([r.accuracy for r in records])
        data = replace(config, seed=3).load_data(root)
        for seed in (3, 5):
            result, record = runs[label][seed]
            assert result.test_evaluations == 1 and load_checkpoint(result.checkpoint_path).test_evaluations == 1
            assert (record.loss, record.accuracy) == pytest.approx(result.evaluate(data.X_test, data.y_test))
        low, high = map(float, row[4].split("-"))
        assert row[:4] == (label, "3,5", acc.mean(), acc.std(ddof=1)) and low <= acc.mean() <= high
        assert row[5:7] == (acc.min(), acc.max())
    lines = str(results.per_seed_table(runs)).splitlines()
    assert lines[0].split() == ["setting", "seed", "val", "acc", "(kept", "epoch)", "test", "acc", "test", "evaluations"]
    assert [line.split() for line in lines[1:]] == [
        [label, str(seed), f"{result.best_row['val_acc']:.3f}", f"{record.accuracy:.3f}", "1"]
        for label in configs for seed, (result, record) in runs[label].items()]
    again, _ = results.test_over_seeds(configs, [3, 5], root=root, folder=tmp_path)
    assert again["one"][3][0].test_evaluations == 1  # reloaded with its record: not evaluated again
    _, single = results.test_over_seeds({"one": configs["one"]}, [3], root=root, folder=tmp_path)
    assert single.rows[0][3] is None  # no spread over a single seed


def test_test_over_seeds_and_per_seed_table_refuse_arguments_of_another_form_before_any_work(tmp_path):
    """No configs failed with an UnboundLocalError, a TrainConfig for configs and a FitResult
    for runs with an AttributeError ('items'), seeds=3 with 'int' object is not iterable, and
    an untested run in per_seed_table with 'NoneType' object has no attribute 'accuracy'."""
    for configs in ({}, CONFIG, {"one": CONFIG.to_dict()}):
        with pytest.raises(ValueError, match=r"configs must map each setting's label to its TrainConfig"):
            results.test_over_seeds(configs, [0], folder=tmp_path)
    with pytest.raises(ValueError, match=r"seeds must be the seeds to train, e.g. range\(3\), got 3"):
        results.test_over_seeds({"one": CONFIG}, 3, folder=tmp_path)
    assert not any(tmp_path.iterdir())
    run = object.__new__(results.FitResult)  # a run, untested: no record beside it
    for runs in ({"one": {0: (run, None)}}, {"one": run}, [run]):
        with pytest.raises(ValueError, match=r"runs must be test_over_seeds's runs, label -> \{seed: "
                                             r"\(FitResult, TestRecord\)\}.*result.test\(data.X_test"):
            results.per_seed_table(runs)


def test_test_over_seeds_warns_that_its_interval_is_too_narrow_where_test_files_are_out_of_frame_order(tmp_path):
    """Test frames named at random: the interval resampled "runs" of unrelated frames, as narrow
    as single images', and said nothing."""
    config = replace(CONFIG, epochs=1)
    in_order = write_videos(tmp_path / "in_order", frames=40, test_frames=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results.test_over_seeds({"one": config}, [0], root=in_order, folder=tmp_path / "a")
    shuffled = name_at_random(write_videos(tmp_path / "shuffled", frames=40, test_frames=100), split="test")
    with pytest.warns(UserWarning) as caught:
        results.test_over_seeds({"one": config}, [0], root=shuffled, folder=tmp_path / "b")
    message = str(caught[0].message)
    assert message.startswith("consecutive files of class A (and of B) sit ") and "in the test folder" in message
    assert "the 95% intervals" in message and "come out too narrow" in message
    assert "Fix: name each class's files so that they sort video by video" in message


def test_summary_table_lists_every_layer_and_the_total():
    model = LeNet5()
    lines = str(results.summary_table(model)).splitlines()
    assert lines[0].split() == ["layer", "output", "shape", "parameters"]
    assert lines[1].split() == ["Input", "1x32x32", "0"]
    assert lines[2].endswith("6x28x28              156")
    assert lines[-1].split() == ["total", "61111"] and len(lines) == 2 + len(model.layers) + 1


def test_weights_sha256_names_the_weights_bit_for_bit():
    a, b = LeNet5(seed=0), LeNet5(seed=0)
    assert stamp_module.weights_sha256(a) == stamp_module.weights_sha256(b)
    b.get_params()["b5"][0] = np.nextafter(b.get_params()["b5"][0], np.float32(1))
    assert stamp_module.weights_sha256(a) != stamp_module.weights_sha256(b)


def test_stamp_table_rows(root, tmp_path):
    result = runs_module.load_or_train(CONFIG, tmp_path / "run.npz", root=root)
    full = dict(stamp_module.stamp_table(result, CONFIG, data_root=root).rows)
    assert full["Dataset SHA-256"] == runs_module.dataset_sha256(root)
    assert full["hw3lib"].startswith("0.1.0, commit ") and full["Seed"] == "0"
    assert "Python, NumPy" in full and "Notebooks" not in full and "Built" not in full
    assert full["Optimizer"] == "Adam with bias correction (AdamGD, as torch.optim.Adam)"
    assert full["Its settings"] == "learning rate 0.002, betas 0.9/0.999, eps 1e-08"
    for changes, words in ((dict(bias_correction=False), ("the report's AdamGD (no bias correction)",
                                                          "learning rate 0.002, betas 0.9/0.999, eps 1e-08")),
                           (dict(optimizer="sgd", momentum=0.9), ("SGD", "learning rate 0.002, momentum 0.9"))):
        assert stamp_module._optimizer(replace(CONFIG, **changes)) == words
    assert full["Schedule"] == "2 epochs, batch 8, validation 0.3 (blocked split)"
    assert full["Classes"] == "3: A, B, C" and full["Model"] == "LeNet-5"
    assert full["Images"] == "32x32, mode L, flips on" and full["Threads"].startswith("1 BLAS thread")
    with threadpool_limits(limits=1, user_api="blas"):  # the default a process starts with here
        assert "kernels, 1 thread by default" in blas_description(threads=True)
    assert full["Weights SHA-256"] == stamp_module.weights_sha256(result.model)
    own = dict(stamp_module.stamp_table(result, CONFIG, environment=False).rows)
    assert list(own) == ["Seed", "Optimizer", "Its settings", "Schedule", "Classes", "Images", "Model",
                         "BLAS", "Threads", "Weights SHA-256"]
    for table in (stamp_module.stamp_table(result, CONFIG, data_root=root),
                  stamp_module.stamp_table(result, replace(CONFIG, bias_correction=False), data_root=root)):
        assert max(map(len, str(table).splitlines())) <= 84  # prints at full size (a SHA-256 row's width)
    assert str(tmp_path) not in str(stamp_module.stamp_table(result, CONFIG, data_root=root))
    env = dict(stamp_module.stamp_table(data_root=root).rows)
    assert list(env) == ["hw3lib", "Python, NumPy", "Platform", "Dataset SHA-256"]
    for call in (lambda: stamp_module.stamp_table(result), lambda: stamp_module.stamp_table(environment=False)):
        with pytest.raises(ValueError, match="needs a result together with its config"):
            call()


def test_the_stamp_names_the_input_and_the_model_of_a_run_other_than_the_defaults(tmp_path):
    """The stamp said "mode L, flips on" of a run's images: not their size, nor its classes, nor
    a model other than LeNet-5's, which the report's introduction names from it."""
    config = replace(CONFIG, epochs=1, mode="RGB", image_size=40,
                     model={"conv_channels": (4, 8), "kernel_size": 3, "pooling": "avg"})
    result = runs_module.load_or_train(config, tmp_path / "run.npz", root=fake_root(tmp_path))
    rows = dict(stamp_module.stamp_table(result, config, environment=False).rows)
    assert rows["Classes"] == "3: A, B, C" and rows["Images"] == "40x40, mode RGB, flips on"
    assert rows["Model"] == ("LeNet-5 but conv_channels 4/8 (LeNet-5: 6/16), kernel_size 3x3 "
                             "(LeNet-5: 5x5), pooling avg (LeNet-5: max)")


def test_the_notebooks_run_under_the_blas_kernels_of_their_stored_outputs():
    """OpenBLAS picks its kernels by CPU and they add in different orders, which notebook 06's
    stored outputs show after 24 epochs: the kernels they were made with (its stamp names them)
    must be the ones here, as the Makefile pins them for ``make test`` and ``make report``."""
    notebook = json.loads((runs_module.REPO_ROOT / "notebooks" / "06_results.ipynb").read_text())
    stamp = next("".join(output.get("text", "")) for cell in notebook["cells"]
                 if "report:stamp" in cell.get("metadata", {}).get("tags", [])
                 for output in cell.get("outputs", []))
    library, stored = re.search(r"BLAS +(\w+) [\d.]+, (\w+) kernels", stamp).groups()
    here = [lib for lib in threadpool_info() if lib["internal_api"] == library]
    if not here:
        pytest.skip(f"the stored outputs were made with {library}, which this NumPy does not use")
    cpuinfo = Path("/proc/cpuinfo")
    if stored == "Haswell" and not (cpuinfo.is_file() and re.search(r"\bavx2\b", cpuinfo.read_text())):
        pytest.skip("the stored outputs were made with OpenBLAS's Haswell (AVX2) kernels, which "
                    "this CPU cannot run")
    assert here[0]["architecture"] == stored, (
        f"NumPy's {library} runs its {here[0]['architecture']} kernels here, but the notebooks' "
        f"stored outputs were made with its {stored} kernels, which add in another order: run the "
        f"tests with `make test`, which pins them, or set OPENBLAS_CORETYPE={stored}")


@pytest.mark.parametrize("body, said", [
    (b"PK\x03\x04 cut short", "which is truncated or corrupt (BadZipFile: "),
    (b"\x80\x04K\x01.", "which holds a pickled object"),
])
def test_a_run_trained_over_an_unusable_file_says_so_not_that_there_was_none(
        root, tmp_path, capsys, body, said):
    """Not "no run of these settings on this data yet" while a file there is written over."""
    path = tmp_path / "run.npz"
    path.write_bytes(body)
    runs_module.load_or_train(CONFIG, path, root=root, progress=True)
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"training run.npz afresh, writing over the file there, {said}"), line
    assert load_checkpoint(path).epoch == CONFIG.epochs


def test_notebook_05_shows_the_model_it_trains_on_images_of_another_size(tmp_path, monkeypatch,
                                                                         capsys):
    """On one's own images ($HW3_DATA) of another size than 32x32, notebook 05's model table
    (and the parameter count its text checks) showed a model for 32x32 images, not the one
    load_or_train builds for the data."""
    monkeypatch.setenv("HW3_DATA", str(fake_root(tmp_path, size=(36, 28))))
    notebook = json.loads((runs_module.REPO_ROOT / "notebooks" / "05_training.ipynb").read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    upto = next(i for i, source in enumerate(cells) if "summary_table(model)" in source)
    namespace = {}
    for source in cells[:upto + 1]:
        exec("\n".join(line for line in source.splitlines() if not line.startswith("%")), namespace)
    data = namespace["data"]
    built = namespace["config"].build_model(len(data.classes), data.image_size)
    assert namespace["model"].input_shape == built.input_shape == (1, 36, 28)
    assert re.search(r"^Input +1x36x28 ", capsys.readouterr().out, re.M)


def test_a_notebook_run_trained_afresh_says_why(root, tmp_path, monkeypatch, capsys):
    """Edit a layer and notebook 05 trains again: the line above its progress bar says why."""
    monkeypatch.setattr(runs_module, "RUNS_DIR", tmp_path / "runs")
    first = runs_module.load_or_train(CONFIG, root=root, progress=True)
    assert capsys.readouterr().out.startswith(
        f"training {first.checkpoint_path.name}: no run of these settings on this data yet")
    runs_module.load_or_train(CONFIG, root=root, progress=True)  # loaded: nothing said
    assert capsys.readouterr().out == ""
    path = tmp_path / "run.npz"
    runs_module.load_or_train(CONFIG, path, root=root)
    runs_module.load_or_train(replace(CONFIG, lr=0.001), path, root=root, progress=True)
    assert capsys.readouterr().out.startswith("training run.npz afresh: it held a run of other settings\n")
    edited = engine_stamp().replace("hw3lib ", "hw3lib 0", 1)
    monkeypatch.setattr(runs_module, "engine_stamp", lambda: edited)
    runs_module.load_or_train(CONFIG, root=root, progress=True)
    said = capsys.readouterr().out.splitlines()[0]
    assert said.endswith(" holds this run, trained with other training code (hw3lib's modules "
                         "that training runs differ)")


@pytest.mark.parametrize("seeds, text", [(range(5), "0-4"), (range(3), "0-2"), ([3, 4], "3-4"),
                                         ([0, 3], "0, 3"), ([4, 3], "4, 3"), ([2], "2"), ([], "")])
def test_seeds_text_writes_a_run_of_seeds_as_notebook_06_does(seeds, text):
    """Notebook 06's text says "seeds 0-4" and "seeds 0-2"; its check quotes them so."""
    assert results.seeds_text(seeds) == text


def test_seeds_text_refuses_what_is_no_seed():
    with pytest.raises(ValueError, match="a seed must be an integer >= 0, got -1"):
        results.seeds_text([0, -1])
