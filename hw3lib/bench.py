"""Benchmark: LeNet5 in hw3lib against PyTorch CPU in interleaved runs, on one thread (PyTorch on two as well).

``python -m hw3lib bench`` measures, in one run, for 1- and 4-channel 32x32 input:

- a training epoch (1029 random images, batch 32, float32: forward, loss, backward, Adam) and
  an evaluation (forward over 441 images, in batches of ``hw3lib.evaluation.EVAL_BATCH``): the
  median seconds of hw3lib and of PyTorch at one thread and their ratio, with PyTorch at two
  threads beside them (noisy on a shared machine);
- the GFLOP/s of hw3lib's training epoch (:func:`hw3lib.workloads.epoch_flops`) and its fraction of the
  machine's float32 matrix-product peak at one thread (:func:`matmul_peak`);
- the peak resident memory (RSS) of the process training hw3lib's model, measured before
  PyTorch is imported, after each of a few epochs, so that growth would show
  (:func:`training_rss`);
- the naive nested loops (:func:`hw3lib.conv2d_naive` and its backward) on the two
  convolutions, timed on a few images and extrapolated to one epoch (:func:`naive_epoch`).

``python -m hw3lib bench --grid`` measures instead the grid of growing workloads of
:mod:`hw3lib.grid` (batch 8-512, input 32-128, wide convolutions, evaluation, float64, peak
memory), each engine in its own worker processes (several fresh ones per point: a
process's speed is its own); ``--threads 2`` its two-thread points.
``python -m hw3lib bench --profile 3x128x128`` prints instead where one training step spends its
time, layer by layer (:mod:`hw3lib.profiler`).

Each repetition runs the implementations back to back, so that the machine's slow and fast
moments hit them alike; medians are reported. PyTorch is optional: without it the hw3lib
figures are printed alone.
"""
import argparse
import importlib.util
import os
import sys
import textwrap
import time
from dataclasses import replace

import numpy as np

from . import grid, profiler
from .checks import integer
from .cli import Parser, int_at_least, parse_given
from .cores import more_than_cores
from .engine import blas_description
from .ladder import lenet_conv_shapes, single_thread, time_ladder
from .model import KERNEL_ADVICE
from .oracle import torch_available
from .phrasing import phrase_settings
from .tables import Table
from .evaluation import EVAL_BATCH
from .workloads import (BATCH, EVAL_SIZE, TRAIN_SIZE, Point, epoch_flops, interleaved_medians,
                        make_run)

try:
    import resource
except ImportError:  # Windows: the memory is not measured
    resource = None

CHANNELS = (1, 4)
COLUMNS = 80  # the width of a terminal that --profile's output fits


def bench_point(task, channels, n):
    """The benchmark's workload: LeNet5 on ``n`` random ``(channels, 32, 32)`` float32 images,
    ``task`` ``"train"`` in batches of ``BATCH`` or ``"eval"`` in batches of ``EVAL_BATCH``."""
    return Point(task, channels, batch=BATCH if task == "train" else EVAL_BATCH, images=n)


def hw3lib_epoch(channels, n=TRAIN_SIZE):
    """A function running one training epoch of a hw3lib LeNet5 (the report's loop with
    TrainConfig's default AdamGD, :func:`hw3lib.workloads.hw3lib_trainer`)."""
    return make_run("hw3lib", bench_point("train", channels, n))


def torch_epoch(channels, n=TRAIN_SIZE):
    """The same epoch in PyTorch (same model, initial weights, data and optimizer)."""
    return make_run("torch", bench_point("train", channels, n))


def with_torch_threads(run, n):
    """``run`` with PyTorch on ``n`` threads, back to one afterwards."""
    import torch

    def wrapped():
        torch.set_num_threads(n)
        try:
            run()
        finally:
            torch.set_num_threads(1)
    return wrapped


def matmul_peak(size=1024, repeats=5):
    """The best float32 matrix-product rate, GFLOP/s, of ``(size, size) @ (size, size)``
    over ``repeats + 1`` tries (the first one included) on the current BLAS threads."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def naive_epoch(channels, naive_images=2, n=TRAIN_SIZE):
    """Seconds per epoch of ``n`` images that the naive loops (:func:`~hw3lib.conv2d_naive` and
    :func:`~hw3lib.conv2d_naive_backward`) would take on LeNet5's two convolutions: the ladder's
    naive rung (:func:`~hw3lib.ladder.time_ladder`) on ``naive_images`` images, scaled linearly
    (the loops do the same work per image)."""
    naive_images = integer("naive_images", naive_images, what="the images the loops are timed on")
    rows = time_ladder(lenet_conv_shapes(channels), rungs=["naive loops"], batch=naive_images,
                       naive_batch=naive_images, repeats=1)
    return sum(row["per_image"] for row in rows) * n


def training_rss(channels, epochs=5, n=TRAIN_SIZE):
    """Peak resident memory (MB, ``resource.getrusage``) of this process while it builds
    hw3lib's data and model and trains ``epochs`` epochs: ``[built, after epoch 1, ...]``;
    None on Windows, which lacks ``resource``.
    Values that stop rising after the first epochs (the allocator settles within a few)
    mean that nothing allocated per batch grows.

    The figure is the process's high-water mark, so call this before importing PyTorch (and
    anything large), or it reports their memory instead.
    """
    if resource is None:
        return None
    per_mb = 2**20 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / per_mb

    run = hw3lib_epoch(channels, n)
    peaks = [peak_mb()]
    for _ in range(epochs):
        run()
        peaks.append(peak_mb())
    return peaks


def cpu_name():
    """The processor's model name (``lscpu``'s "Model name"), or the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


NO_TORCH = "PyTorch is not installed"


def import_torch():
    """``(torch, None)``, or ``(None, why)`` where PyTorch is missing or installed but does not
    import (a broken install): the benchmark then measures hw3lib alone, saying why."""
    try:
        import torch
    except ImportError as err:
        if importlib.util.find_spec("torch") is None:
            return None, NO_TORCH
        return None, f"PyTorch does not import ({type(err).__name__}: {err})"
    return torch, None


def measure(repeats=7, channels=CHANNELS, train_size=TRAIN_SIZE, eval_size=EVAL_SIZE,
            naive_images=2, rss_epochs=5, use_torch=True):
    """Everything :func:`main` prints, as a dict (see :func:`report`). BLAS should already be
    limited to one thread. Runs in an order that keeps the measurements apart: memory first,
    before PyTorch is imported; PyTorch on two threads last, as its second thread can keep
    spinning after a run and slow whatever runs next."""
    integer("naive_images", naive_images, what="the images the loops are timed on")  # before any run
    results = {"repeats": repeats, "train_size": train_size, "eval_size": eval_size,
               "torch": use_torch, "rows": [],
               "rss": {c: training_rss(c, rss_epochs, train_size) for c in channels}}
    if use_torch:
        torch, why = import_torch()
        use_torch = results["torch"] = torch is not None
        if not use_torch:
            results["torch_problem"] = why
    if use_torch:
        torch.set_num_threads(1)
        results["torch_version"] = f", torch {torch.__version__}"
    results["peak"] = matmul_peak()
    two_threads = {}
    for c in channels:
        for task, size in (("train", train_size), ("eval", eval_size)):
            point = bench_point(task, c, size)
            runs = {"hw3lib": make_run("hw3lib", point)}
            if use_torch:
                runs["torch"] = make_run("torch", point)
                two_threads[task, c] = with_torch_threads(make_run("torch", point), 2)
            row = {"task": task, "channels": c, **interleaved_medians(runs, repeats)}
            if task == "train":
                row["flops"] = epoch_flops(point.model(), train_size)
                row["naive"] = naive_epoch(c, naive_images, train_size)
            results["rows"].append(row)
    if two_threads:
        medians = interleaved_medians(two_threads, repeats)
        for row in results["rows"]:
            row["torch2"] = medians[row["task"], row["channels"]]
    return results


def epoch_comparison(channels=1, repeats=5, naive_images=2, n=TRAIN_SIZE):
    """One training epoch of LeNet5 (``n`` random images, batch 32) by the naive loops
    (convolutions only, extrapolated), hw3lib and PyTorch CPU when installed, as a
    :class:`~hw3lib.tables.Table` of seconds per epoch and each one's time over hw3lib's (3
    significant digits: "820x"), each on one thread, BLAS's and PyTorch's
    (:func:`hw3lib.ladder.single_thread`, which sets PyTorch's threads once it is imported)."""
    runs = {"hw3lib (im2col)": hw3lib_epoch(channels, n)}
    if torch_available():  # imports PyTorch, so that single_thread below limits it too
        runs["PyTorch CPU"] = torch_epoch(channels, n)
    with single_thread():
        seconds = {"naive loops (convolutions only)": naive_epoch(channels, naive_images, n),
                   **interleaved_medians(runs, repeats)}
    ours = seconds["hw3lib (im2col)"]
    return Table(["engine", "s/epoch", "x hw3lib"],
                 [(name, s, s / ours) for name, s in seconds.items()], digits=2,
                 formats={"x hw3lib": "{:.3g}x"})


def report(results):
    """The printed table of :func:`measure`'s ``results``."""
    torch_on, peak = results["torch"], results["peak"]
    lines = [f"LeNet5, float32, random 32x32 images; medians of {results['repeats']} interleaved "
             f"runs, 1 thread unless marked",
             f"{cpu_name()}, {os.cpu_count()} cores; numpy {np.__version__}"
             f"{results.get('torch_version', '')}; {blas_description()}",
             f"float32 matrix-product peak {peak:.0f} GFLOP/s (1024^3 sgemm, 1 thread)"]
    if not torch_on:
        lines.append(f"{results.get('torch_problem', NO_TORCH)}: hw3lib alone (pip install "
                     "torch==2.13.0 to compare)")
    lines.append("; ".join(
        ["s = seconds, lower is faster"]
        + (["ratio = hw3lib s / the torch s before it (below 1: hw3lib is faster)"] if torch_on else [])
        + ["GFLOP/s = hw3lib's GFLOP (matrix products) per second", "of peak = GFLOP/s / the "
           "peak above", "x hw3lib = naive loops s / hw3lib s"]))
    tasks = {"train": f"training epoch ({results['train_size']} images, batch {BATCH})",
             "eval": f"evaluation (forward over {results['eval_size']} images, batch {EVAL_BATCH})"}
    for task, title in tasks.items():
        lines += ["", title]
        head = f"  {'input':<8} {'hw3lib s':>9}"
        if torch_on:
            head += f" {'torch s':>8} {'ratio':>6} {'torch 2 threads s (noisy)':>26} {'ratio':>6}"
        if task == "train":
            head += f" {'GFLOP':>6} {'GFLOP/s':>8} {'of peak':>8} {'naive loops s':>14} {'x hw3lib':>9}"
        lines.append(head)
        for row in results["rows"]:
            if row["task"] != task:
                continue
            line = f"  {row['channels']}x32x32  {row['hw3lib']:9.3f}"
            if torch_on:
                line += (f" {row['torch']:8.3f} {row['hw3lib'] / row['torch']:6.2f}"
                         f" {row['torch2']:26.3f} {row['hw3lib'] / row['torch2']:6.2f}")
            if task == "train":
                rate = row["flops"] / row["hw3lib"] / 1e9
                line += (f" {row['flops'] / 1e9:6.2f} {rate:8.1f} {rate / peak:8.0%}"
                         f" {row['naive']:14.0f} {row['naive'] / row['hw3lib']:9.0f}")
            lines.append(line)
    lines += ["", "naive loops: conv2d_naive and its backward on the two convolutions only, "
              "timed on a few images and scaled to the epoch",
              "", "peak resident memory (RSS, MB) of this process training hw3lib, before PyTorch "
              "is imported (a high-water mark: each line includes the ones above):"]
    for c, peaks in results["rss"].items():
        if peaks is None:
            lines.append(f"  {c}x32x32: not measured (Python's resource module does not exist on Windows)")
            continue
        after = ", ".join(f"{p:.0f}" for p in peaks[1:])
        lines.append(f"  {c}x32x32: {peaks[0]:.0f} with data and model built; after each epoch: {after}")
    return "\n".join(lines)


def grid_main(args, use_torch):
    """``bench --grid``: the workloads of :mod:`hw3lib.grid`, printed point by point."""
    points = grid.default_grid(EVAL_BATCH) if args.threads == 1 else grid.two_thread_grid()
    if args.images:
        points = [replace(p, images=args.images) for p in points]
    versions, why = f"numpy {np.__version__}", NO_TORCH
    if use_torch:
        torch, why = import_torch()
        use_torch = torch is not None
    if use_torch:
        versions += f", torch {torch.__version__}"
    engines = grid.engines_for(args.threads, use_torch)
    workers = len(grid.spread(args.rounds, args.processes))
    print(f"LeNet5 on random images; {args.threads} thread(s) per engine, each engine in worker "
          f"processes of its own; medians of {args.rounds} interleaved rounds, spread over "
          f"{workers} fresh worker(s) per engine and point, each after one warm-up, its malloc "
          f"keeping freed memory (hw3lib.grid.STEADY_MALLOC)\n"
          f"{cpu_name()}, {os.cpu_count()} cores; {versions}; {blas_description()}\n"
          f"{grid_legend(engines)}\n")
    if not use_torch:
        print(f"{why}: hw3lib alone (pip install torch==2.13.0 to compare)\n")
    batches = sorted({p.batch for p in points if p.batch > p.images})
    if batches:  # the row would name a batch that never ran
        print(f"note: --images {args.images} is fewer than the batch of some points "
              f"({', '.join(f'b{b}' for b in batches)}): each of those runs its {args.images} "
              f"images as one batch, so its row measures batch {args.images}, not the one it names\n")
    oversubscribed = more_than_cores("--threads", args.threads, "threads of each engine")
    if oversubscribed:
        print(f"{oversubscribed}: its figures measure the cores shared\n")
    print(grid.header(engines), flush=True)
    results = grid.run_grid(points, engines, args.rounds, args.threads,
                            progress=lambda r: print(grid.format_row(r), flush=True),
                            processes=args.processes)
    for engine in (None, *engines):
        steps = ", ".join(f"{a}->{b}: x{g:.1f}" for a, b, g in grid.growth(results, engine))
        if steps:
            what = "work (GFLOP)" if engine is None else f"{engine} time"
            print(f"{what} growth with input size (3 channels, batch 32): {steps}")


def grid_legend(engines):
    """The grid table's line of definitions, of the columns that ``engines`` give it."""
    torch, blas = "torch" in engines, "hw3lib-blas" in engines
    return "; ".join(
        (["ratio = hw3lib / PyTorch"] if torch else [])
        + ["GF/s = 2 x the multiply-adds of direct convolutions and dense layers, per second (a "
           "Winograd layer does fewer, so its GF/s can pass the machine's peak)",
           "MB = peak memory the runs add to a worker (the most of an engine's workers; nan off "
           "Linux, which alone has /proc)",
           f"UNSTABLE = an engine's slowest run > {grid.UNSTABLE} x its fastest"]
        + (["hw3lib splits each batch over its threads where that pays, each on one BLAS thread",
            "blas = hw3lib on BLAS's threads alone" + (", blas ratio = blas / PyTorch" if torch else "")]
           if blas else []))


def parse_input(text):
    """``"CxSxS"`` (e.g. ``"3x128x128"``) -> ``(C, S)``; a ValueError naming the form otherwise."""
    parts = text.lower().split("x")
    numbers = [int(p) for p in parts if p.isascii() and p.isdigit()]  # "²".isdigit() too
    why = ("" if len(parts) != 3 or len(numbers) != 3 else
           ": the channels and the size must be at least 1" if min(numbers) < 1 else
           f": {numbers[1]} high but {numbers[2]} wide, not square" if numbers[1] != numbers[2] else None)
    if why is not None:
        raise ValueError(f"--profile takes the input as CxSxS, channels and a square size "
                         f"(e.g. 3x128x128), got {text!r}{why}")
    return numbers[0], numbers[1]


def _profile_phrased(message, channels):
    """``message`` with an input size it advises, ``TrainConfig(image_size=S)``, as the
    ``--profile CxSxS`` that gives it, and without advice of a smaller kernel (no option here)."""
    def option(name, value):
        height, _, width = value.partition("x")
        return name == "image_size" and f"--profile {channels}x{height}x{width or height}" or None
    return phrase_settings(message.replace(KERNEL_ADVICE, ""), option)


def profile_main(args):
    """``bench --profile``: where one training step of a LeNet5 spends its time, one thread."""
    from threadpoolctl import threadpool_limits

    channels, size = parse_input(args.profile)
    point = Point(channels=channels, size=size, batch=args.batch, widths=args.widths,
                       images=4 * args.batch)
    too_big = (f"--profile {args.profile} with --batch {args.batch} and --widths "
               f"{','.join(map(str, args.widths))} does not fit in memory")
    first, second = args.widths
    least = {"its images": point.images * channels * size**2 * 4,  # float32
             "its convolutions' weights": (first * channels + second * first) * 25 * 8}  # float64 drawn
    for what, nbytes in least.items():  # numpy would say "Maximum allowed dimension exceeded"
        if nbytes > np.iinfo(np.intp).max:  # or fail on an int past int64 (a TypeError)
            raise ValueError(f"{too_big} ({what} alone would take {nbytes / 2**60:.3g} EiB, more "
                             f"than any array can hold); give a smaller --batch, --widths or input")
    try:
        model, (X, y) = point.model(), point.data()
        threadpool_limits(1)
        result = profiler.profile_training(model, X, y, args.batch, args.steps)
    except ValueError as err:  # the model's check of the input size, named as --profile gives it
        raise ValueError(_profile_phrased(str(err), channels)) from None
    except MemoryError as err:
        raise ValueError(f"{too_big} ({err}); give a smaller --batch, --widths or input") from None
    step, rest = result["step"], "the rest (below)"
    title = "layer, in forward order"
    labels = [profiler.layer_label(layer) for layer, _, _ in result["layers"]]
    width = max(len(name) for name in [*labels, rest, title])
    heads = ("forward ms", "backward ms", "total ms", "of the step")

    def ms(seconds):
        return "-" if seconds is None else f"{seconds * 1e3:.3f}"

    def row(name, cells):
        """A line of the table, each cell right-aligned under its heading (9 wide at least: 99999.999 ms)."""
        return f"{name:<{width}}" + "".join(f"  {cell:>{max(len(head), 9)}}" for cell, head in zip(cells, heads))

    def line(name, seconds, forward="", backward=""):
        """A part's row: ``forward`` and ``backward`` (formatted) where the part has both, its
        ``seconds`` in all and their share of the step."""
        return row(name, (forward, backward, ms(seconds), f"{seconds / step:.0%}"))
    print(textwrap.fill(f"Where a training step spends its time: LeNet5 on {channels}x{size}x{size} "
                        f"random images, batch {args.batch}, conv widths {args.widths}, float32, "
                        f"1 thread; medians of {args.steps} steps after {profiler.WARMUP} warm-up "
                        f"steps, each part timed inside the training loop", COLUMNS))
    print(textwrap.fill(f"{cpu_name()}; numpy {np.__version__}; {blas_description()}", COLUMNS) + "\n")
    print(row(title, heads))
    for label, (_, forward, backward) in zip(labels, result["layers"]):
        print(line(label, (forward or 0) + (backward or 0), ms(forward), ms(backward)))
    parts = sum((f or 0) + (b or 0) for _, f, b in result["layers"]) + result["update"]
    flops = model.flops() * args.batch
    print(line("AdamGD's update", result["update"]))
    print(line(rest, step - parts))
    print(line("the whole step", step))
    print(f"\nthe whole step: {flops / 1e9:.3f} GFLOP of products, {flops / step / 1e9:.1f} GFLOP/s\n"
          f"the rest: softmax, loss, batch slices, timers")


def _widths(text):
    """``"6,16"`` -> ``(6, 16)``, for ``--widths``."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 2 or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"takes two positive channel counts like 6,16, got {text!r}")
    return widths


def main(argv=None):
    """``python -m hw3lib bench``: time one training epoch of hw3lib against PyTorch and print
    the report; with ``--grid`` the grid of growing workloads (:func:`grid_main`), with
    ``--profile`` one training step layer by layer (:func:`profile_main`)."""
    parser = Parser(prog="python -m hw3lib bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int_at_least(1), metavar="N", default=7,
                        help="timed runs per implementation (default %(default)s)")
    parser.add_argument("--grid", action="store_true",
                        help="measure the grid of growing workloads (hw3lib.grid) instead")
    parser.add_argument("--rounds", type=int_at_least(1), metavar="N", default=5,
                        help="--grid: timed rounds per point (default %(default)s)")
    parser.add_argument("--processes", type=int_at_least(1), metavar="N", default=grid.PROCESSES,
                        help="--grid: fresh worker processes per engine and point that the rounds "
                             "are spread over (default %(default)s): a process's speed is its own")
    parser.add_argument("--threads", type=int_at_least(1), metavar="N", default=1,
                        help="--grid: threads per engine (default %(default)s; above 1: the "
                             "two-thread points only)")
    parser.add_argument("--images", type=int_at_least(1), metavar="N",
                        help="--grid: images per point (default 1024)")
    parser.add_argument("--profile", nargs="?", const="3x128x128", metavar="CxSxS",
                        help="time each layer of one training step instead, inside the training "
                             "loop, for input CxSxS (default 3x128x128)")
    parser.add_argument("--batch", type=int_at_least(1), metavar="B", default=BATCH,
                        help="--profile: batch size (default %(default)s)")
    parser.add_argument("--widths", type=_widths, default=(6, 16), metavar="F1,F2",
                        help="--profile: the two convolutions' output channels (default 6,16)")
    parser.add_argument("--steps", type=int_at_least(1), metavar="N", default=20,
                        help="--profile: timed steps (default %(default)s)")
    owners = (("the benchmark", ("repeats",)), ("--grid", ("rounds", "processes", "threads", "images")),
              ("--profile", ("batch", "widths", "steps")))
    args, given = parse_given(parser, argv, [name for _, names in owners for name in names])
    if args.profile is not None and args.grid:
        raise ValueError("--profile and --grid are two different measurements: give one of them")
    mode = "--profile" if args.profile is not None else "--grid" if args.grid else "the benchmark"
    for owner, names in owners:
        ignored = [name for name in names if name in given]
        if ignored and owner != mode:  # silently ignored otherwise
            raise ValueError(f"--{ignored[0]} applies to {owner}, not to {mode}: leave it out")
    if args.profile is not None:  # "--profile=" too: parse_input refuses it
        return profile_main(args)
    use_torch = importlib.util.find_spec("torch") is not None
    if args.grid:
        return grid_main(args, use_torch)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # BLAS; measure() sets PyTorch's threads after the memory figures
    print(report(measure(args.repeats, use_torch=use_torch)))
