"""The benchmark grid (``bench --grid``) on tiny points: its workers, rows, flags and growth
lines (structure only; speed is measured by the command, never here)."""
import importlib.util
import math
import multiprocessing
import threading
from dataclasses import replace

import pytest

from hw3lib import cores, grid
from hw3lib.bench import main

HAS_TORCH = importlib.util.find_spec("torch") is not None
ENGINES = grid.engines_for(1, HAS_TORCH)
TINY = replace(grid.COURSE, channels=3, size=16, images=4, batch=2, widths=(2, 3))


def test_default_grid_covers_the_issue_workloads():
    points = grid.default_grid(eval_batch=256)
    train = [p for p in points if p.task == "train"]
    assert {p.batch for p in train if p.channels == 1} == {8, 32, 128, 512}
    assert {p.size for p in train if p.channels == 3} == {32, 64, 128}
    assert {p.widths for p in points} == {(6, 16), (32, 64), (64, 128)}
    assert {p.dtype for p in points} == {"float32", "float64"}
    evaluation = {(p.widths, p.batch) for p in points if p.task == "eval"}
    assert evaluation == {((6, 16), 256), ((32, 64), 256)}
    assert replace(grid.COURSE, channels=3, size=128, batch=128) in points
    assert grid.two_thread_grid() == [grid.COURSE, replace(grid.COURSE, channels=3, size=128)]


def test_engines_add_hw3lib_on_blas_threads_beside_its_own_split_above_one_thread():
    assert grid.engines_for(1) == ("hw3lib", "torch")
    assert grid.engines_for(2) == ("hw3lib", "hw3lib-blas", "torch")
    assert grid.engines_for(2, torch=False) == ("hw3lib", "hw3lib-blas")


def test_measure_point_at_two_threads_runs_three_engines_and_prints_two_ratios():
    engines = grid.engines_for(2, HAS_TORCH)
    result = grid.measure_point(TINY, engines, rounds=1, threads=2)
    assert result["threads"] == 2 and all(result[e]["median"] > 0 for e in engines)
    row, titles = grid.format_row(result), grid.header(engines)
    assert ("blas ratio" in titles) == HAS_TORCH and "blas GF/s" in titles and "blas MB" in titles
    assert len(row.split("  UNSTABLE")[0]) == len(titles)  # columns right-aligned under titles


def test_unstable_flags_a_spread_above_one_and_a_half():
    assert not grid.unstable([1.0, 1.2, 1.5])
    assert grid.unstable([1.0, 1.2, 1.51])


@pytest.mark.parametrize("task", ["train", "eval"])
def test_measure_point_runs_each_engine_in_its_worker(task):
    result = grid.measure_point(replace(TINY, task=task), ENGINES, rounds=2)
    assert result["point"].task == task and result["threads"] == 1
    for engine in ENGINES:
        r = result[engine]
        assert len(r["times"]) == 2 and r["median"] > 0 and r["gflops"] > 0 and r["mb"] >= 0
        assert r["gflops"] == pytest.approx(result["gflop"] / r["median"])
    row = grid.format_row(result).split()
    assert row[:3] == [task, "3x16x16", "b2"] and row[5] == "4"  # task, input, batch, ..., images
    columns = 6 + 3 * len(ENGINES) + HAS_TORCH  # then seconds, ratio, GF/s, MB
    assert len(row) == columns or row[columns] == "UNSTABLE"
    assert len(grid.format_row(result).split("  UNSTABLE")[0]) == len(grid.header(ENGINES))


def test_spread_shares_the_rounds_out_evenly_over_at_most_the_processes():
    assert grid.spread(7, 3) == [3, 2, 2] and grid.spread(6, 3) == [2, 2, 2]
    assert grid.spread(2, 3) == [1, 1] and grid.spread(5, 1) == [5]


def test_measure_point_spreads_the_rounds_over_fresh_workers(monkeypatch):
    """A process's speed is its own: the rounds run in several sessions of new workers."""
    sessions, session = [], grid._session
    monkeypatch.setattr(grid, "_session", lambda point, engines, rounds, threads: (
        sessions.append(rounds) or session(point, engines, rounds, threads)))
    result = grid.measure_point(TINY, ENGINES, rounds=3, processes=2)
    assert sessions == [2, 1] and all(len(result[e]["times"]) == 3 for e in ENGINES)


def test_workers_start_with_their_blas_threads_and_a_malloc_that_keeps_freed_memory():
    env = grid.worker_environment(2)
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "2"
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(32 * 2**20)  # glibc's largest; a larger one is ignored
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(256 * 2**20)


def test_format_row_marks_unstable_engines_only():
    fake = {"point": TINY, "threads": 1,
            "hw3lib": {"times": [1.0, 2.0], "median": 1.5, "gflops": 1.0, "mb": 3.0},
            "torch": {"times": [1.0, 1.1], "median": 1.05, "gflops": 1.0, "mb": 3.0}}
    row = grid.format_row(fake)
    assert "UNSTABLE (hw3lib max/min 2.0)" in row and "torch max" not in row
    assert " 1.43 " in row  # the ratio hw3lib / torch
    fake["hw3lib"]["times"] = [1.0, 1.4]
    assert "UNSTABLE" not in grid.format_row(fake)


def test_growth_pairs_consecutive_input_sizes():
    results = [{"point": replace(grid.COURSE, channels=3, size=s, images=8), "gflop": w,
                "hw3lib": {"median": t}}
               for s, t, w in ((64, 3.0, 10.0), (32, 1.0, 2.0), (128, 12.0, 50.0))]
    results.append({"point": grid.COURSE, "gflop": 1.0, "hw3lib": {"median": 100.0}})  # not in it
    assert grid.growth(results, "hw3lib") == [(32, 64, 3.0), (64, 128, 4.0)]
    assert grid.growth(results) == [(32, 64, 5.0), (64, 128, 5.0)]  # the work's own growth


def test_bench_grid_command_prints_every_point_and_the_growth(monkeypatch, capsys):
    points = [replace(grid.COURSE, channels=3, size=s) for s in (32, 64)]
    monkeypatch.setattr(grid, "default_grid", lambda eval_batch: points)
    main(["--grid", "--rounds", "1", "--images", "2"])
    out = capsys.readouterr().out
    assert "medians of 1 interleaved rounds, spread over 1 fresh worker(s)" in out and "cores" in out
    assert "train 3x32x32" in out and "train 3x64x64" in out
    assert "hw3lib time growth with input size (3 channels, batch 32): 32->64: x" in out
    # LeNet's work grows faster than the pixels: 5.7 times from 32x32 to 64x64 (see README)
    assert "work (GFLOP) growth with input size (3 channels, batch 32): 32->64: x5.7" in out


def test_bench_grid_says_when_images_are_fewer_than_a_points_batch(monkeypatch, capsys):
    """`--images 64` ran the b128 and b512 rows as one batch of 64, under their own names."""
    points = [grid.COURSE, replace(grid.COURSE, batch=2), replace(grid.COURSE, batch=128)]
    monkeypatch.setattr(grid, "default_grid", lambda eval_batch: points)
    main(["--grid", "--rounds", "1", "--images", "2"])
    out = " ".join(capsys.readouterr().out.split())
    assert ("note: --images 2 is fewer than the batch of some points (b32, b128): each of those "
            "runs its 2 images as one batch, so its row measures batch 2, not the one it names") in out
    monkeypatch.setattr(grid, "default_grid", lambda eval_batch: points[1:2])
    main(["--grid", "--rounds", "1", "--images", "2"])
    assert "note: --images" not in capsys.readouterr().out


@pytest.mark.parametrize("threads", [1, 2])
def test_bench_grid_legend_defines_every_ratio_and_says_what_gf_s_counts(monkeypatch, capsys, threads):
    monkeypatch.setattr(grid, "default_grid", lambda eval_batch: [grid.COURSE])
    monkeypatch.setattr(grid, "two_thread_grid", lambda: [grid.COURSE])
    monkeypatch.setattr(cores, "usable_cores", lambda: 1)
    main(["--grid", "--rounds", "1", "--images", "2", "--threads", str(threads)])
    out = capsys.readouterr().out
    legend = out.splitlines()[2]
    # more threads than cores is said: the figures then measure the cores shared
    assert (f"note: --threads 2 on the 1 core(s) this process may use: the threads of each engine "
            "share them, so it runs no faster than with --threads 1: its figures measure the cores "
            "shared") in out if threads == 2 else "note: --threads" not in out
    for _, title in grid._ratios(grid.engines_for(threads, HAS_TORCH)):
        assert f"{title} = " in legend
    # the Winograd layers' GF/s count a direct convolution's work, and can pass the peak
    assert "direct convolutions" in legend and "Winograd" in legend


@pytest.mark.parametrize("settings, message", [
    ({"rounds": 0}, "rounds must be an integer >= 1, got 0"),
    ({"processes": 0}, "processes must be an integer >= 1, got 0"),
    ({"threads": 0}, "threads must be an integer >= 1, got 0"),
    ({"engines": "hw3lib"}, "engines must be a sequence of names of"),
    ({"engines": ("pytorch",)}, "engines must be a sequence of names of"),
])
def test_measure_point_refuses_bad_settings_naming_them_before_starting_workers(settings, message):
    """Not 'no median for empty data', a failed worker, or a silent run of each letter as an
    engine (a str) or of an unknown engine as hw3lib."""
    with pytest.raises(ValueError, match=message):
        grid.measure_point(replace(grid.COURSE, images=2), **settings)


def test_a_point_that_does_not_fit_in_memory_is_an_error_naming_it_and_images(capfd):
    """`bench --grid --images 100000000`: a one-line error (ValueError), not the worker's
    MemoryError traceback and a RuntimeError's."""
    point = replace(grid.COURSE, images=10**12)  # 3.6 PiB of images: past any address space
    with pytest.raises(ValueError, match=r"the hw3lib worker for train 1x32x32 b32 \(6,16\) f32, "
                                         r"1000000000000 images, does not fit in memory \(.*\): "
                                         r"give fewer images \(--images\)"):
        grid.measure_point(point, engines=("hw3lib",), rounds=1)
    assert "Traceback" not in capfd.readouterr().err  # the worker's, on the inherited stderr


@pytest.mark.parametrize("threads", [1, 2])
def test_the_legend_defines_only_the_columns_the_table_has(threads):
    from hw3lib.bench import grid_legend

    alone = grid_legend(grid.engines_for(threads, torch=False))  # PyTorch missing: no ratio column
    assert "ratio" not in alone and ("blas = hw3lib on BLAS's threads alone" in alone) == (threads > 1)
    assert "GF/s = " in alone and "MB = " in alone and "UNSTABLE = " in alone


def test_without_proc_as_on_macos_and_windows_a_worker_answers_nan_megabytes(monkeypatch):
    def no_proc(path, *args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", path)

    monkeypatch.setattr(grid, "open", no_proc, raising=False)
    parent, child = multiprocessing.Pipe()
    threading.Thread(target=grid._serve, args=(child, "hw3lib", TINY, 1), daemon=True).start()
    answers = []
    for ask in (None, "run", "stop"):
        if ask:
            parent.send(ask)
        if not parent.poll(30):  # the worker failed: it answers nothing
            break
        answers.append(parent.recv())
    assert len(answers) == 3 and answers[0] == "ready" and math.isnan(answers[2])
    monkeypatch.setattr(grid, "_session", lambda point, engines, rounds, threads: {
        engine: ([1.0] * rounds, float("nan")) for engine in engines})
    result = grid.measure_point(TINY, ["hw3lib"], rounds=3, processes=2)
    assert math.isnan(result["hw3lib"]["mb"]) and grid.format_row(result).split()[-1] == "nan"


def test_a_ctrl_c_sent_to_the_workers_too_leaves_them_quiet_and_the_parent_stops_them(capfd):
    """The terminal sends Ctrl-C to the whole process group: each worker printed a
    KeyboardInterrupt's traceback (or, the parent gone, an EOFError's) below 'error: interrupted'.
    A worker ignores it, still answers, and stops quietly when its parent goes away."""
    import os
    import signal
    import time

    process, conn = grid._start("hw3lib", TINY, 1)
    try:
        os.kill(process.pid, signal.SIGINT)
        time.sleep(0.5)
        conn.send("run")
        assert conn.poll(30) and isinstance(conn.recv(), float)
    finally:
        conn.close()  # as a parent that was interrupted: the worker finds its pipe closed
        process.join(30)
    assert process.exitcode == 0
    assert "Traceback" not in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # this process's is restored


def test_images_past_any_array_are_refused_naming_images_before_starting_workers(monkeypatch):
    """`bench --grid --images 99999999999999999999`: the worker's ValueError traceback ('Maximum
    allowed dimension exceeded') and a RuntimeError's, as no MemoryError came."""
    monkeypatch.setattr(grid, "_session", lambda *args: pytest.fail("started workers"))
    point = replace(grid.COURSE, images=10**20)
    with pytest.raises(ValueError, match=r"the point train 1x32x32 b32 \(6,16\) f32, "
                                         r"100000000000000000000 images, does not fit in memory "
                                         r"\(.*\): give fewer images \(--images\)"):
        grid.measure_point(point, engines=("hw3lib",), rounds=1)
