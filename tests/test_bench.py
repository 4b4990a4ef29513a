"""The benchmark's functions on tiny inputs (a smoke test, not a timing test), its FLOP count,
and that training allocates nothing per batch that grows from one epoch to the next."""
import importlib.util
import os
import subprocess
import sys
import tracemalloc
from types import SimpleNamespace

import pytest

from hw3lib import LeNet5, bench
from hw3lib.bench import epoch_comparison, hw3lib_epoch, main, measure, report, training_rss
from hw3lib.workloads import epoch_flops, interleaved_medians

HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_epoch_flops_counts_three_products_per_layer_and_two_for_the_first():
    conv1 = 2 * 6 * (4 * 5 * 5) * (28 * 28)  # one product: 2 F C kh kw OH OW
    conv2 = 2 * 16 * (6 * 5 * 5) * (10 * 10)
    dense = 2 * (400 * 120 + 120 * 84 + 84 * 3)
    model = LeNet5(in_channels=4)
    assert epoch_flops(model, 1) == 2 * conv1 + 3 * conv2 + 3 * dense
    assert epoch_flops(model) == 1029 * (2 * conv1 + 3 * conv2 + 3 * dense)  # 3.78 GFLOP
    model.layers[0].needs_input_grad = True  # the count, 4.75 GFLOP
    assert round(epoch_flops(model) / 1e9, 2) == 4.75


def test_interleaved_medians_alternates_the_runs_and_skips_the_warmup():
    calls = []
    medians = interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                  repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert set(medians) == {"a", "b"} and all(t >= 0 for t in medians.values())


@pytest.mark.parametrize("use_torch", [False, pytest.param(True, marks=pytest.mark.skipif(
    not HAS_TORCH, reason="PyTorch is not installed"))])
def test_measure_and_report_on_tiny_inputs(use_torch):
    results = measure(repeats=1, channels=(1,), train_size=40, eval_size=20, naive_images=1,
                      rss_epochs=2, use_torch=use_torch)
    train, evaluation = results["rows"]
    assert (train["task"], evaluation["task"]) == ("train", "eval")
    assert train["hw3lib"] > 0 and train["naive"] > 0 and train["flops"] > 0
    assert results["peak"] > 0 and len(results["rss"][1]) == 3
    assert ("torch" in train and "torch2" in evaluation) == use_torch
    text = report(results)
    assert "training epoch (40 images, batch 32)" in text
    assert "evaluation (forward over 20 images" in text
    assert "1x32x32" in text and "peak resident memory" in text
    assert ("torch 2 threads s (noisy)" in text) == use_torch
    assert ("PyTorch is not installed" in text) != use_torch


def test_the_help_says_that_pytorch_runs_on_two_threads_too_and_each_default(capsys):
    """As measure does (its rows' "torch2"); the help once said "single-threaded"."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    text = " ".join(out.split())
    assert "single-threaded" not in text and "on one thread (PyTorch on two as well)" in text
    helps = {block.split()[0]: " ".join(block.split()) for block in out.split("\n  --")[1:]}
    for option, default in (("repeats", 7), ("rounds", 5), ("threads", 1), ("images", 1024),
                            ("batch", 32), ("steps", 20), ("widths", "6,16")):
        assert f"(default {default})" in helps[option] or f"(default {default};" in helps[option], option


def test_main_refuses_zero_repeats_naming_the_option():
    with pytest.raises(ValueError, match="argument --repeats: must be an integer >= 1, got '0'"):
        main(["--repeats", "0"])


def test_training_memory_does_not_grow_across_epochs():
    run = hw3lib_epoch(4, n=70)  # batches of 32, 32 and 6 images
    run()  # the first epoch creates the layers' caches
    tracemalloc.start()
    try:
        run()  # every cache is now a traced allocation
        current, peak = [], []
        for _ in range(3):
            tracemalloc.reset_peak()
            run()
            now, high = tracemalloc.get_traced_memory()
            current.append(now)
            peak.append(high)
    finally:
        tracemalloc.stop()
    assert max(current) - min(current) < 64 * 1024, current
    assert max(peak) - min(peak) < 64 * 1024, peak


def test_epoch_comparison_lists_every_engine_against_hw3lib():
    table = epoch_comparison(channels=1, repeats=1, naive_images=1, n=64)
    names = [row[0] for row in table.rows]
    assert names[:2] == ["naive loops (convolutions only)", "hw3lib (im2col)"]
    assert ("PyTorch CPU" in names) == HAS_TORCH
    assert dict((r[0], r[2]) for r in table.rows)["hw3lib (im2col)"] == 1.0
    assert all(r[1] > 0 for r in table.rows)
    assert str(table).splitlines()[2].endswith(" 1x")  # ratios to 3 significant digits


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
def test_epoch_comparison_runs_both_engines_on_one_thread_whatever_the_caller_set(monkeypatch):
    """It left the threads to its caller, whose single_thread() could not limit a PyTorch not
    imported yet: in a fresh process PyTorch then ran on all the cores."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = {}

    def spy(name, make):
        def made(*args):
            run = make(*args)

            def timed():
                seen.setdefault(name, set()).add(
                    (torch.get_num_threads(), max(p["num_threads"] for p in threadpool_info())))
                run()
            return timed
        monkeypatch.setattr(bench, name, made)
    spy("hw3lib_epoch", bench.hw3lib_epoch)
    spy("torch_epoch", bench.torch_epoch)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(2):
            epoch_comparison(channels=1, repeats=1, naive_images=1, n=64)
        assert torch.get_num_threads() == 2  # the caller's setting, restored
    finally:
        torch.set_num_threads(before)
    assert seen == {"hw3lib_epoch": {(1, 1)}, "torch_epoch": {(1, 1)}}, seen


@pytest.fixture
def broken_torch(monkeypatch):
    """PyTorch installed but failing to import (a broken install: a missing shared library)."""
    import importlib.abc
    import importlib.machinery
    import sys

    class Loader(importlib.abc.Loader):
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            raise ImportError("libtorch_cpu.so: cannot open shared object file")

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            return importlib.machinery.ModuleSpec(name, Loader()) if name == "torch" else None

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])


def test_a_pytorch_that_does_not_import_leaves_hw3lib_alone_saying_why(broken_torch):
    """As without PyTorch (README: the hw3lib figures alone), not an ImportError's traceback."""
    results = measure(repeats=1, channels=(1,), train_size=40, eval_size=20, naive_images=1,
                      rss_epochs=1, use_torch=True)
    assert not results["torch"] and "torch" not in results["rows"][0]
    text = report(results)
    assert ("PyTorch does not import (ImportError: libtorch_cpu.so: cannot open shared object "
            "file): hw3lib alone") in text


def test_bench_grid_with_a_pytorch_that_does_not_import_measures_hw3lib_alone(
        broken_torch, monkeypatch, capsys):
    from hw3lib import grid

    monkeypatch.setattr(grid, "default_grid", lambda eval_batch: [grid.COURSE])
    main(["--grid", "--rounds", "1", "--images", "2"])
    out = capsys.readouterr().out
    assert "PyTorch does not import (ImportError: libtorch_cpu.so" in out
    assert "torch s" not in out and "train 1x32x32" in out


@pytest.mark.parametrize("repeats", [0, -1])
def test_zero_repeats_are_refused_naming_repeats_not_an_empty_median(repeats):
    """time_ladder and epoch_comparison (notebook 03) said 'no median for empty data'."""
    from hw3lib.ladder import lenet_conv_shapes, time_ladder

    with pytest.raises(ValueError, match=f"repeats must be an integer >= 1, got {repeats}"):
        time_ladder(lenet_conv_shapes(1)[:1], batch=2, naive_batch=1, repeats=repeats)
    with pytest.raises(ValueError, match=f"repeats must be an integer >= 1, got {repeats}"):
        epoch_comparison(repeats=repeats, n=32)
    with pytest.raises(ValueError, match="warmup must be an integer >= 0, got -1"):
        interleaved_medians({"a": lambda: None}, 1, warmup=-1)


@pytest.mark.parametrize("naive_images", [0, 1.5])
def test_naive_images_are_refused_by_their_own_name_before_anything_runs(monkeypatch, naive_images):
    """epoch_comparison (notebook 03) named time_ladder's batch; measure failed after minutes."""
    import hw3lib.bench as bench

    monkeypatch.setattr(bench, "training_rss", lambda *args: pytest.fail("measured memory first"))
    with pytest.raises(ValueError, match=f"naive_images must be an integer >= 1 \\(the images the "
                                         f"loops are timed on\\), got {naive_images}"):
        epoch_comparison(naive_images=naive_images, repeats=1, n=32)
    with pytest.raises(ValueError, match="naive_images must be an integer >= 1"):
        measure(naive_images=naive_images)


def test_grid_images_zero_is_refused_not_read_as_the_default_1024(monkeypatch):
    from hw3lib import grid

    monkeypatch.setattr(grid, "run_grid", lambda points, *args, **kwargs: pytest.fail(
        f"ran the grid with {points[0].images} images"))
    with pytest.raises(ValueError, match="argument --images: must be an integer >= 1, got '0'"):
        main(["--grid", "--images", "0"])


def test_peak_memory_is_in_mb_on_macos_where_ru_maxrss_counts_bytes(monkeypatch):
    usage = SimpleNamespace(ru_maxrss=300 * 2**20)
    monkeypatch.setattr(bench, "resource", SimpleNamespace(RUSAGE_SELF=0, getrusage=lambda who: usage))
    monkeypatch.setattr(sys, "platform", "darwin")
    assert training_rss(1, epochs=0, n=8) == [300]


def test_without_the_resource_module_as_on_windows_the_benchmark_runs_and_says_memory_is_not_measured():
    code = ("import sys; sys.modules['resource'] = None\n"
            "from hw3lib.bench import measure, report\n"
            "print(report(measure(repeats=1, channels=(1,), train_size=8, eval_size=8, naive_images=1, "
            "use_torch=False)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "1x32x32: not measured (Python's resource module does not exist on Windows)" in out


@pytest.mark.parametrize("use_torch", [False, True])
def test_the_report_says_what_each_ratio_divides_and_which_way_is_faster(use_torch):
    """The table's two 'ratio' columns, 'of peak' and 'x hw3lib' were not defined anywhere in
    the output (the grid's legend defines its ratio)."""
    row = {"task": "train", "channels": 1, "hw3lib": 0.05, "flops": 2.33e9, "naive": 50.0}
    results = {"repeats": 1, "train_size": 1029, "eval_size": 441, "torch": use_torch,
               "peak": 100.0, "rss": {}, "rows": [row, {"task": "eval", "channels": 1, "hw3lib": 0.01}]}
    if use_torch:
        for r in results["rows"]:
            r.update(torch=0.1, torch2=0.08)
    text = report(results)
    assert ("ratio = hw3lib s / the torch s before it (below 1: hw3lib is faster)" in text) == use_torch
    assert "of peak = GFLOP/s / the peak above" in text and "x hw3lib = naive loops s / hw3lib s" in text


def test_the_report_names_the_blas_kernels_and_cores_beside_the_processor():
    """README says the kernels (SkylakeX or Haswell, twice the peak or half) are named in each
    table; the bench's named the processor alone."""
    from hw3lib.engine import blas_description

    results = {"repeats": 1, "train_size": 8, "eval_size": 8, "torch": False, "peak": 100.0,
               "rss": {}, "rows": []}
    machine = report(results).splitlines()[1]
    assert machine.startswith(f"{bench.cpu_name()}, {os.cpu_count()} cores; numpy ")
    assert machine.endswith(f"; {blas_description()}")
