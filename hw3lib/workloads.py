"""The workloads that ``bench``, its grid and the ladder time, built in one place.

A :class:`Point` is one workload: training (forward, loss, backward, Adam) over ``images``
random images, or evaluation (forward passes only, batches of ``batch``), of a LeNet5 with the
point's input, convolution widths and dtype. :func:`make_run` builds it for an engine, hw3lib
(:func:`hw3lib_trainer`) or PyTorch (:func:`torch_trainer`, the same model and weights), as a
function of no arguments to time; :func:`epoch_flops` counts the work of its matrix products;
:func:`interleaved_medians` times such functions in one process, interleaved.
"""
import statistics
import time
from dataclasses import dataclass

import numpy as np

from .checks import integer
from .config import TrainConfig
from .losses import CrossEntropyLoss
from .model import LeNet5
from .oracle import torch_lenet5
from .parallel import SplitBatch

TRAIN_SIZE, EVAL_SIZE, BATCH = 1029, 441, 32  # the 70/30 split of the 1470 fruit images


@dataclass(frozen=True)
class Point:
    """One workload: ``task`` ``"train"`` or ``"eval"`` of a LeNet5 on ``images`` random
    ``(channels, size, size)`` images of ``dtype`` in batches of ``batch``, with convolution
    widths ``widths``."""

    task: str = "train"
    channels: int = 1
    size: int = 32
    batch: int = BATCH
    widths: tuple = (6, 16)
    dtype: str = "float32"
    images: int = 1024

    def label(self):
        """The point as one fixed-width line: task, input, batch, widths and dtype."""
        image = f"{self.channels}x{self.size}x{self.size}"
        return (f"{self.task:<5} {image:<9} b{self.batch:<3} {'(%d,%d)' % self.widths:<8} "
                f"{self.dtype.replace('float', 'f')}")

    def model(self):
        """A fresh :class:`LeNet5` of the point's input, widths and dtype, seed 0."""
        return LeNet5(in_channels=self.channels, input_size=self.size, conv_channels=self.widths,
                      seed=0, dtype=np.dtype(self.dtype))

    def data(self):
        """Random images ``(images, C, size, size)`` of the point's dtype, uniform in [0, 1) and
        drawn in that dtype, and labels ``(images,)`` in 0-2; seed 0 for training, 1 for
        evaluation."""
        rng = np.random.default_rng(0 if self.task == "train" else 1)
        X = rng.random((self.images, self.channels, self.size, self.size), dtype=self.dtype)
        return X, rng.integers(0, 3, self.images)


def hw3lib_trainer(model, X, y, batch=BATCH, threads=1):
    """A function of no arguments running one epoch of the report's loop with
    :class:`~hw3lib.config.TrainConfig`'s default ``AdamGD`` (bias-corrected, as
    ``torch.optim.Adam`` is and the report's formula was not) for ``model`` over
    ``X (N, C, H, W)``, ``y (N,)`` in batches of ``batch``, each split over up to ``threads``
    threads where that pays (:class:`hw3lib.parallel.SplitBatch`; BLAS's threads are the
    caller's to set)."""
    cost, optimizer = CrossEntropyLoss(), TrainConfig().build_optimizer(model.get_params())
    net = SplitBatch(model, threads)

    def run():
        for i in range(0, len(X), batch):
            y_pred = net.forward(X[i:i + batch])
            cost.get(y_pred, y[i:i + batch])
            grads = net.backward(y_pred, y[i:i + batch])
            net.set_params(optimizer.update_params(grads, net.spread))
    return run


def torch_trainer(model, X, y, batch=BATCH):
    """The same epoch for the PyTorch twin of ``model`` (same initial weights,
    ``torch.optim.Adam`` with ``TrainConfig()``'s ``lr``, ``beta1``, ``beta2`` and ``eps``)
    over ``X (N, C, H, W)`` and int64 labels ``y (N,)``, shared with PyTorch as tensors."""
    import torch

    config = TrainConfig()
    net, Xt, yt = torch_lenet5(model), torch.from_numpy(X), torch.from_numpy(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                                 eps=config.eps)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        for i in range(0, len(X), batch):
            optimizer.zero_grad()
            loss_fn(net(Xt[i:i + batch]), yt[i:i + batch]).backward()
            optimizer.step()
    return run


def make_run(engine, point, threads=1):
    """A function of no arguments running ``point`` once in ``engine`` (one of
    :data:`hw3lib.grid.ENGINES`) with ``threads`` threads; data, model and optimizer are built
    here, outside the timing. BLAS's threads are the caller's to set."""
    X, y = point.data()
    model, b = point.model(), point.batch
    split = threads if engine == "hw3lib" else 1
    if point.task == "train":
        if engine == "torch":
            return torch_trainer(model, X, y, b)
        return hw3lib_trainer(model, X, y, b, threads=split)
    if engine != "torch":
        net = SplitBatch(model, split)

        def evaluate():
            for i in range(0, len(X), b):
                net.forward(X[i:i + b])
        return evaluate

    import torch

    net, Xt = torch_lenet5(model), torch.from_numpy(X)

    def evaluate():
        with torch.no_grad():
            for i in range(0, len(X), b):
                torch.softmax(net(Xt[i:i + b]), dim=1)
    return evaluate


def epoch_flops(model, n_images=TRAIN_SIZE, training=True):
    """Floating-point operations of the matrix products in one training epoch of ``model``
    over ``n_images`` (with ``training=False``: in its forward passes), ``n_images`` times
    :meth:`hw3lib.model.Sequential.flops`.

    For LeNet5 on 4x32x32 images that is 3.78 GFLOP per 1029 images (2.33 GFLOP for 1
    channel); counting the first layer's input gradient too, which neither hw3lib nor
    PyTorch computes, gives 4.75 GFLOP. Elementwise work (bias, activations, pooling, loss,
    Adam) is not counted.
    """
    return model.flops(training) * n_images


def interleaved_medians(runs, repeats, warmup=1):
    """Time each function of ``runs`` (name -> callable) ``repeats`` times, interleaved;
    return name -> median seconds. A ValueError names ``repeats`` or ``warmup`` unless they
    are integers, at least 1 and 0."""
    repeats, warmup = integer("repeats", repeats), integer("warmup", warmup, least=0)
    times = {name: [] for name in runs}
    for rep in range(warmup + repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if rep >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
