"""Several cores for one model: each batch split over threads, one replica of the model each.

NumPy lets go of Python's lock (the GIL) inside its ufuncs and matrix products, so replicas of
a model that share its parameter arrays (:meth:`hw3lib.model.Sequential.replica`) can run the
passes over parts of a batch side by side, each thread calling BLAS with one thread of its
own. The gradient of the batch-mean loss is the parts' gradients, each weighted by its share
of the batch. The steps over the parameters themselves, combining those gradients and the
optimizer's update, are elementwise: large parameters are cut into one piece per thread
(:meth:`SplitBatch.spread`), which at 3x128x128 takes Adam's update of the first dense layer's
1.6 million weights from 7 ms to 3 ms a step on two cores.

Only large batches gain: between its NumPy calls each thread needs the lock back, and with
small arrays the threads spend their time waiting for it. Measured on two cores (AMD EPYC,
training epochs, interleaved; docs/performance.md, "Two cores"): at 3x128x128, batch 32,
splitting over two threads took 0.60 of one thread's time and two BLAS threads 0.93 of it;
at the course's 1x32x32, batch 32, splitting took 1.8 times one thread's time. So a batch is
split only into parts that each do at least ``MIN_PART_FLOPS`` of a training step's matrix
products (:meth:`hw3lib.model.Sequential.flops`): over fewer threads than offered when it is
smaller, and not at all (one thread) below twice that.
"""
import contextvars
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from .checks import integer
from .optim import piece, pieces

# Measured on two cores, training (work of a batch, GFLOP of products: split over two threads
# against one thread's time): 1x32x32 b32 (0.07) 1.5-1.9x slower, b128 (0.29) 1.15x slower;
# 3x64x64 b32 (0.58) even; convolution widths (32, 64) (1.3) 0.90, (64, 128) (4.5) 0.82;
# 1x32x32 b512 (1.2) 0.72; 3x128x128 b32 (2.7) 0.60-0.68.
MIN_PART_FLOPS = 0.5e9
# Elementwise steps over the parameters (combining the parts' gradients, the optimizer's
# update) are split over the threads only in pieces of at least this many elements. Adam on
# two threads against one, measured on two cores: 2^15 elements 4x slower, 2^17 2x slower,
# 2^18 0.78, 2^19 0.46, 2^20 0.45 of one thread's time.
MIN_PIECE = 1 << 17
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def child_environment(variables):
    """A context in which the processes started get the environment ``variables`` (name ->
    value) from their start, for what libraries read when they load: set meanwhile and
    restored after (this process's libraries, loaded already, keep what they read)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def blas_environment(threads):
    """The environment variables that give a process ``threads`` BLAS threads as BLAS loads."""
    return {name: str(threads) for name in BLAS_VARIABLES}


def child_blas_threads(threads):
    """:func:`child_environment` in which the processes started get ``threads`` BLAS threads."""
    return child_environment(blas_environment(threads))


def one_blas_thread():
    """A context in which BLAS uses one thread: on a shared 2-core machine two threads on
    LeNet-5's small matrices stall at random (and runs on other thread counts differ in rounding)."""
    return threadpool_limits(limits=1, user_api="blas")


def check_threads(threads):
    """``threads`` as an int >= 1, or a ValueError that says what was wrong."""
    return integer("threads", threads)


class SplitBatch:
    """The passes of ``model`` (a :class:`hw3lib.LeNet5`) with each batch split over up to
    ``threads`` threads, for the training loop: ``forward(X (N, C, H, W)) -> (N, K)``
    probabilities, then ``backward(y_pred, y)`` -> the gradients of the batch-mean loss, keyed
    like ``model.backward``'s; ``check_input``, ``get_params`` and ``set_params`` are
    ``model``'s own. Pass :meth:`spread` to the optimizer (``optimizer.update_params(grads,
    net.spread)``) and its update of the large parameters is split over the threads too.

    The parts are consecutive slices of the batch (:meth:`parts`) and their results are
    joined in that order, so a run is the same, bit for bit, every time with the same
    ``threads``; against one thread the gradients differ in rounding only. A batch of one
    part runs on ``model`` itself, exactly as without the split. Use it as a context manager:
    inside, BLAS runs one thread per call (when ``threads > 1``), and on leaving, the threads
    stop."""

    def __init__(self, model, threads=1):
        self.model, self.threads = model, check_threads(threads)
        self.step_flops = model.flops()  # of one image's training step
        self.replicas = [model] + [model.replica() for _ in range(self.threads - 1)]
        self.pool = (ThreadPoolExecutor(self.threads - 1, thread_name_prefix="hw3lib-split")
                     if self.threads > 1 else None)
        self._blas, self._parts = None, None

    def __enter__(self):
        if self.threads > 1:
            self._blas = threadpool_limits(limits=1, user_api="blas")
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Stop the threads and give BLAS its threads back."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None

    def parts(self, n):
        """The slices of a batch of ``n`` images: as many as threads, but each with at least
        ``MIN_PART_FLOPS`` of work, at least one, their sizes differing by at most one."""
        return _even_slices(n, min(self.threads, n, int(n * self.step_flops // MIN_PART_FLOPS)))

    def spread(self, work, arrays):
        """Call ``work(key, part)`` for every key of ``arrays`` (a dict of arrays), over the
        threads: a C-contiguous array is cut into consecutive pieces of its flattened elements
        (``part`` a slice), one per thread, each of at least ``MIN_PIECE`` elements; a smaller
        one goes to this thread. Each thread's share is then done in the cache-sized
        :func:`~hw3lib.optim.pieces` of its elements. The ``spread`` of
        :meth:`hw3lib.optim.Optimizer.update_params`."""
        jobs = [[] for _ in range(self.threads)]
        for key, a in arrays.items():
            k = min(self.threads, a.size // MIN_PIECE) if a.flags.c_contiguous else 1
            if k <= 1:
                jobs[0].append((key, None))
                continue
            for job, part in zip(jobs, _even_slices(a.size, k)):
                job.append((key, part))

        def run(job):
            for key, part in job:
                for sub in pieces(arrays[key], part):  # each cut again to stay in the cache
                    work(key, sub)
        self._side_by_side([partial(run, job) for job in jobs if job])

    def _side_by_side(self, calls):
        """The results of ``calls`` (functions of no arguments), the first run on this thread,
        the others in the pool (with this thread's NumPy error settings); none for no calls."""
        if not calls:
            return []
        later = [self.pool.submit(contextvars.copy_context().run, call) for call in calls[1:]]
        return [calls[0]()] + [future.result() for future in later]

    def _run(self, method, *arrays):
        """``method`` of each replica on its part of ``arrays``, side by side."""
        return self._side_by_side([partial(getattr(replica, method), *[a[part] for a in arrays])
                                   for replica, part in zip(self.replicas, self._parts)])

    def forward(self, X):
        """Probabilities ``(N, K)`` of ``X (N, C, H, W)``, each part on its own replica."""
        self._parts = self.parts(len(X))
        if len(self._parts) == 1:
            return self.model.forward(X)
        return np.concatenate(self._run("forward", X))

    def backward(self, y_pred, y):
        """Gradients of the batch-mean loss over the batch of the last :meth:`forward`, from its
        probabilities ``y_pred (N, K)`` and labels ``y (N,)``, keyed as ``model.backward``'s."""
        if self._parts is None:
            raise ValueError("SplitBatch.backward called before forward: run forward on the batch "
                             "first, then backward on its output")
        if len(self._parts) == 1:
            return self.model.backward(y_pred, y)
        y, n = np.asarray(y), self._parts[-1].stop
        if len(y_pred) != n or y.ndim == 0 or len(y) != n:  # else the parts' slices would drop
            # the extra labels and weigh the parts' gradients by the wrong shares, silently
            raise ValueError(f"{len(y_pred)} predictions and {y.shape[0] if y.ndim else 'no'} "
                             f"labels for the last forward's batch of {n} images: pass its "
                             "output and the labels of the same images")
        grads = self._run("backward", y_pred, y)
        shares = [(part.stop - part.start) / len(y) for part in self._parts]
        total = {key: np.empty(g.shape, g.dtype) for key, g in grads[0].items()}

        def combine(key, part):
            out = piece(total[key], part)
            np.multiply(piece(grads[0][key], part), shares[0], out=out)
            for g, share in zip(grads[1:], shares[1:]):
                out += piece(g[key], part) * share
        self.spread(combine, total)
        return total

    def check_input(self, X):
        self.model.check_input(X)

    def get_params(self):
        return self.model.get_params()

    def set_params(self, params):
        self.model.set_params(params)


def _even_slices(n, k):
    """``max(k, 1)`` consecutive slices covering ``range(n)``, their sizes differing by at most one."""
    if k <= 1:
        return [slice(0, n)]
    bounds = np.linspace(0, n, k + 1).round().astype(int).tolist()
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
