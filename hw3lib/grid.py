"""The benchmark grid: hw3lib against PyTorch as the work grows (``python -m hw3lib bench --grid``).

Each :class:`~hw3lib.workloads.Point` is one workload: training (forward, loss, backward,
Adam) over ``images`` random images, or evaluation (forward passes only, batches of
``batch``), of a LeNet5 with the point's input, convolution widths and dtype. For every point
a *worker process* is started per engine, each building its own data and model (the same
weights; :func:`hw3lib.workloads.make_run`), and driven over a pipe: one warm-up run, then
timed runs, the engines alternated round by round (the first engine of a round alternates
too), so that the machine's slow and fast moments hit them alike. The ``rounds`` are spread
over ``PROCESSES`` such sessions, one after another, each with fresh workers: a process's speed
is its own, steady within it but not always from one process to the next, so one worker's
median would be one draw of it. The largest such spread, PyTorch's at 3x128x128 (2.97-4.14 s a
run over 8 processes), was glibc's malloc giving freed memory back to the system and
page-faulting it in again (up to 14,000 times a step); the workers run with
``STEADY_MALLOC``, which keeps it (:func:`worker_environment`). Each worker limits its BLAS
(and PyTorch) threads before its first run and, with more than one thread, sleeps ``PAUSE``
seconds before each timed run so that the other engines' spinning threads have gone idle.

The engines (``ENGINES``): ``"hw3lib"`` uses threads as training does (``fit(threads=...)``:
one BLAS thread, and above one thread each batch split over threads where that pays,
:mod:`hw3lib.parallel`); ``"hw3lib-blas"``, measured beside it only with more than one thread,
is one model on BLAS's threads; ``"torch"`` is PyTorch on its intra-op threads.

Per point it reports the median seconds of each engine, their ratios to PyTorch, GFLOP/s of the matrix
products (:func:`hw3lib.workloads.epoch_flops`), the memory the runs add to each worker (peak
resident memory after the data and model are built, ``VmHWM`` reset through
``/proc/self/clear_refs``, minus the resident memory at that moment), and flags a point as
unstable when an engine's slowest run over its fastest exceeds ``UNSTABLE`` (1.5).
"""
import multiprocessing
import signal
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from .checks import integer
from .parallel import blas_environment, child_environment
from .workloads import Point, epoch_flops, make_run

PAUSE = 0.5  # seconds of sleep before each timed run with more than one thread
UNSTABLE = 1.5  # max/min of an engine's runs above which a point is flagged
# fresh workers per engine and point, the rounds spread over them: a process's speed is its own
PROCESSES = 3
# glibc's malloc in every worker keeps freed memory for reuse (the largest threshold it takes,
# 32 MiB, and no trimming under 256 MiB) instead of its default, which adapts as a process runs:
# PyTorch at 3x128x128 then took 2.97-4.14 s a run, by the process, as a step page-faulted
# 0-14,000 times; with these 2.95-3.07 s, no faults (hw3lib ~2.0 s either way, 0-800 faults)
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}
ENGINES = ("hw3lib", "hw3lib-blas", "torch")  # in the table's order
SHORT = {"hw3lib": "hw3lib", "hw3lib-blas": "blas", "torch": "torch"}  # in column titles
TITLE = "task  input     batch widths   dtype"  # the titles above Point.label()


COURSE = Point()  # LeNet-5 on 1x32x32, batch 32: the course's workload


def default_grid(eval_batch):
    """The benchmark grid: batch 8-512 at 1x32x32; input 32-128 at 3 channels; wide
    convolutions; evaluation; float64 once; the memory point 3x128x128 batch 128."""
    three = replace(COURSE, channels=3)
    return ([replace(COURSE, batch=b) for b in (8, 32, 128, 512)]
            + [replace(three, size=s) for s in (32, 64, 128)]
            + [replace(three, widths=w) for w in ((32, 64), (64, 128))]
            + [replace(COURSE, task="eval", batch=eval_batch),
               replace(three, task="eval", batch=eval_batch, widths=(32, 64))]
            + [replace(COURSE, dtype="float64"), replace(three, size=128, batch=128)])


def engines_for(threads, torch=True):
    """The engines a grid run at ``threads`` measures: hw3lib on BLAS's threads only beside
    hw3lib's own use of them (above one thread), PyTorch when ``torch``."""
    return tuple(e for e in ENGINES if (threads > 1 or e != "hw3lib-blas") and (torch or e != "torch"))


def two_thread_grid():
    """The grid's two-thread points: the course's workload and 3x128x128, batch 32."""
    return [COURSE, replace(COURSE, channels=3, size=128)]


def _memory_kb(field):
    """``field`` of ``/proc/self/status`` in KiB; NaN where there is no /proc (macOS, Windows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return float("nan")
    return 0


def _worker(conn, engine, point, threads):
    """Worker process: build ``point`` for ``engine``, then answer ``"run"`` with the seconds
    of one run and ``"stop"`` with the MB the runs added to the resident memory; where the
    point does not fit in memory, answer ``("MemoryError", message)`` and stop. It ignores
    Ctrl-C (started so by :func:`_start`: the terminal sends it to the whole process group),
    which the parent answers by terminating it, and stops quietly where the parent is gone."""
    try:
        _serve(conn, engine, point, threads)
    except MemoryError as err:
        conn.send(("MemoryError", str(err)))
    except (EOFError, BrokenPipeError):  # the parent went away (interrupted): nothing to answer
        pass
    conn.close()


def _serve(conn, engine, point, threads):
    from threadpoolctl import threadpool_limits

    threadpool_limits(1 if engine == "hw3lib" else threads)  # hw3lib's threads split batches
    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
    run = make_run(engine, point, threads)
    try:  # from here, VmHWM is the peak of the runs alone (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = _memory_kb("VmRSS")
    conn.send("ready")
    while conn.recv() == "run":
        if threads > 1:
            time.sleep(PAUSE)
        start = time.perf_counter()
        run()
        conn.send(time.perf_counter() - start)
    conn.send((_memory_kb("VmHWM") - base) / 1024)


def _answer(conn, engine, point):
    """The worker's next answer; a ValueError naming the point where it ran out of memory."""
    answer = conn.recv()
    if isinstance(answer, tuple) and answer[:1] == ("MemoryError",):
        raise ValueError(f"the {engine} worker for {' '.join(point.label().split())}, "
                         f"{point.images} images, does not fit in memory ({answer[1]}): give "
                         f"fewer images (--images)")
    return answer


def worker_environment(threads):
    """The environment a worker starts with, read as its libraries load: ``threads`` BLAS
    threads, and glibc's malloc keeping freed memory (``STEADY_MALLOC``)."""
    return {**blas_environment(threads), **STEADY_MALLOC}


@contextmanager
def _sigint_ignored():
    """A context in which this process ignores Ctrl-C, and so do the processes it starts (exec
    keeps an ignored signal, and Python then sets no handler of its own): a worker's Ctrl-C,
    sent by the terminal to the whole process group, would end it with a KeyboardInterrupt's
    traceback, where the parent alone should stop (it terminates its workers, SIGTERM). One
    sent meanwhile, while a process starts, is lost. In the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if handler is None else handler)


def _start(engine, point, threads):
    """A worker process for ``engine`` (spawned, so that its memory is its own), started with
    :func:`worker_environment`."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    with child_environment(worker_environment(threads)), _sigint_ignored():
        process = context.Process(target=_worker, args=(child, engine, point, threads), daemon=True)
        process.start()
    child.close()
    try:
        _answer(parent, engine, point)  # "ready"
    except EOFError:
        process.join()
        raise RuntimeError(f"the {engine} worker process failed to start (exit code "
                           f"{process.exitcode}); its error is printed above") from None
    return process, parent


def unstable(times):
    """Whether runs ``times`` (seconds) vary too much to trust: slowest / fastest > UNSTABLE."""
    return max(times) / min(times) > UNSTABLE


def spread(rounds, processes):
    """``rounds`` as even counts over at most ``processes`` workers: ``spread(7, 3) == [3, 2, 2]``."""
    workers = min(rounds, processes)
    return [rounds // workers + (k < rounds % workers) for k in range(workers)]


def _session(point, engines, rounds, threads):
    """One worker per engine: a warm-up, then ``rounds`` timed runs, the engines alternated
    round by round; ``{engine: (times, mb)}``."""
    workers = {engine: _start(engine, point, threads) for engine in engines}
    times, finished = {engine: [] for engine in engines}, False
    try:
        for round_ in range(rounds + 1):
            order = engines if round_ % 2 == 0 else engines[::-1]
            for engine in order:
                workers[engine][1].send("run")
                seconds = _answer(workers[engine][1], engine, point)
                if round_ > 0:
                    times[engine].append(seconds)
        mb = {}
        for engine, (process, conn) in workers.items():
            conn.send("stop")
            mb[engine] = _answer(conn, engine, point)
        finished = True
    finally:
        for process, conn in workers.values():
            process.join(timeout=30 if finished else 0)  # the others wait for a "run" otherwise
            if process.is_alive():
                process.terminate()
    return {engine: (times[engine], mb[engine]) for engine in engines}


def measure_point(point, engines=None, rounds=5, threads=1, processes=PROCESSES):
    """Time ``point`` in each engine (default :func:`engines_for` ``threads``): ``rounds``
    interleaved runs, spread over ``processes`` fresh workers per engine (:func:`spread`), one
    after another, each after its own warm-up. Returns a dict with the point, ``threads``, the
    work of one run ``gflop`` (of the matrix products), and per engine its ``times``,
    ``median``, ``gflops`` (GFLOP/s) and ``mb`` (the most any of its workers added). A
    ValueError names ``rounds``, ``processes``, ``threads`` or ``engines`` where one is not
    a count >= 1 or a sequence of names of ``ENGINES``."""
    rounds, processes = integer("rounds", rounds), integer("processes", processes)
    threads = integer("threads", threads)
    engines = engines or engines_for(threads)
    if isinstance(engines, str) or not set(engines) <= set(ENGINES):
        raise ValueError(f"engines must be a sequence of names of {ENGINES}, got {engines!r}")
    images_bytes = point.images * point.channels * point.size ** 2 * np.dtype(point.dtype).itemsize
    if images_bytes > np.iinfo(np.intp).max:  # numpy's "Maximum allowed dimension exceeded"
        raise ValueError(f"the point {' '.join(point.label().split())}, {point.images} images, "
                         f"does not fit in memory (its images alone would take "
                         f"{images_bytes / 2**60:.3g} EiB, more than any array can hold): give "
                         f"fewer images (--images)")
    times, mb = {engine: [] for engine in engines}, {engine: [] for engine in engines}
    for count in spread(rounds, processes):
        for engine, (runs, added) in _session(point, engines, count, threads).items():
            times[engine] += runs
            mb[engine].append(added)
    flops = epoch_flops(point.model(), point.images, training=point.task == "train")
    result = {"point": point, "threads": threads, "gflop": flops / 1e9}
    for engine in engines:
        median = statistics.median(times[engine])
        result[engine] = {"times": times[engine], "median": median, "gflops": flops / median / 1e9,
                          "mb": max(mb[engine])}  # NaN without /proc
    return result


def run_grid(points, engines=None, rounds=5, threads=1, progress=None, processes=PROCESSES):
    """:func:`measure_point` for every point, in order; ``progress(result)`` after each."""
    results = []
    for point in points:
        results.append(measure_point(point, engines, rounds, threads, processes))
        if progress:
            progress(results[-1])
    return results


def _ratios(engines):
    """``(engine, column title)`` of each ratio to PyTorch in the table: every other engine's."""
    if "torch" not in engines:
        return []
    return [(e, "ratio" if e == "hw3lib" else f"{SHORT[e]} ratio") for e in engines if e != "torch"]


def format_row(result):
    """One line of the grid's table for one :func:`measure_point` result."""
    point, engines = result["point"], [e for e in ENGINES if e in result]
    line = f"{point.label():<{len(TITLE)}} {point.images:>6}"
    for engine in engines:
        line += f" {result[engine]['median']:9.3f}"
    for engine, title in _ratios(engines):
        line += f" {result[engine]['median'] / result['torch']['median']:{max(6, len(title))}.2f}"
    for engine in engines:
        line += f" {result[engine]['gflops']:{len(SHORT[engine]) + 5}.1f}"
    for engine in engines:
        line += f" {result[engine]['mb']:{max(7, len(SHORT[engine]) + 3)}.0f}"
    shaky = [e for e in engines if unstable(result[e]["times"])]
    if shaky:
        spread = ", ".join(f"{e} max/min {max(result[e]['times']) / min(result[e]['times']):.1f}"
                           for e in shaky)
        line += f"  UNSTABLE ({spread})"
    return line


def header(engines):
    """The column titles of :func:`format_row`."""
    line = f"{TITLE} {'images':>6}"
    line += "".join(f" {SHORT[e] + ' s':>9}" for e in engines)
    line += "".join(f" {title:>6}" for _, title in _ratios(engines))
    line += "".join(f" {SHORT[e] + ' GF/s'}" for e in engines)
    line += "".join(f" {SHORT[e] + ' MB':>7}" for e in engines)
    return line


def growth(results, engine=None):
    """Ratios between consecutive input sizes among the training points that differ only in
    size (3 channels, batch 32, widths (6, 16)): ``[(size, next size, ratio), ...]`` of
    ``engine``'s median time, or, with ``engine=None``, of the work itself (the GFLOP of the
    matrix products, the same for every engine)."""
    base = replace(COURSE, channels=3)
    series = sorted((r["point"].size, r["gflop"] if engine is None else r[engine]["median"])
                    for r in results
                    if replace(r["point"], size=base.size, images=base.images) == base)
    return [(a, b, vb / va) for (a, va), (b, vb) in zip(series, series[1:])]
