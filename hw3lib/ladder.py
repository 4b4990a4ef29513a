"""The performance ladder of one convolution layer (notebooks 02 and 03).

Each *rung* computes a convolution layer's forward and backward pass,
``x (N, C, H, W), W (F, C, kh, kw), b (F,), dout (N, F, OH, OW) -> (out, dx, dW, db)``,
by a different method:

- ``"naive loops"``: :func:`hw3lib.conv2d_naive` and :func:`hw3lib.conv2d_naive_backward`
  (as the layer :class:`NaiveConv2D`);
- ``"fancy index + np.add.at"``: the textbook im2col, a gather by index arrays, and its
  col2im by ``np.add.at`` (:func:`im2col_fancy`, :func:`col2im_add_at`), kept as the
  "before" rung;
- ``"hw3lib Conv2D"``: the library's :class:`hw3lib.Conv2D` layer (im2col columns without index
  arrays, folded back without ``np.add.at``);
- ``"PyTorch CPU"``: ``torch.nn.functional.conv2d`` and autograd, when PyTorch is installed.

:func:`time_ladder` times the rungs in interleaved runs on one thread
(:func:`hw3lib.workloads.interleaved_medians`, ``time.perf_counter``) and reports medians,
speed-ups against the naive rung and each rung's largest error against the naive result.
"""
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .checks import integer
from .im2col import col2im, conv2d_naive, conv2d_naive_backward, conv_output_size, im2col, pair
from .conv import Conv2D
from .oracle import torch_available
from .workloads import TRAIN_SIZE, interleaved_medians


def im2col_indices(x_shape, kernel_h, kernel_w, stride=1, padding=0):
    """Index arrays ``(k, i, j)``, ``k (C * kh * kw, 1)`` and ``i, j (C * kh * kw, OH * OW)``,
    which broadcast together: row ``r`` and column ``(oh, ow)`` of one image's im2col matrix is
    ``x_padded[n, k[r, 0], i[r, p], j[r, p]]`` with ``p = oh * OW + ow``."""
    _, c, h, w = x_shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = conv_output_size((h, w), (kernel_h, kernel_w), (sh, sw), (ph, pw))
    # row r = (channel, di, dj) in (c, i, j) order; column p = (oh, ow)
    k = np.repeat(np.arange(c), kernel_h * kernel_w)[:, None]
    di = np.tile(np.repeat(np.arange(kernel_h), kernel_w), c)[:, None]
    dj = np.tile(np.arange(kernel_w), c * kernel_h)[:, None]
    top = (sh * np.repeat(np.arange(oh), ow))[None, :]
    left = (sw * np.tile(np.arange(ow), oh))[None, :]
    return k, di + top, dj + left


def im2col_fancy(x, kernel_h, kernel_w, stride=1, padding=0):
    """im2col by one fancy-index gather: ``x (N, C, H, W)`` -> ``(C * kh * kw, N * OH * OW)``,
    the same matrix as :func:`hw3lib.im2col`."""
    ph, pw = pair(padding, "padding")
    k, i, j = im2col_indices(x.shape, kernel_h, kernel_w, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = xp[:, k, i, j]  # (N, C*kh*kw, OH*OW)
    return cols.transpose(1, 0, 2).reshape(k.shape[0], -1)


def col2im_add_at(cols, x_shape, kernel_h, kernel_w, stride=1, padding=0):
    """col2im by ``np.add.at``: fold ``cols (C * kh * kw, N * OH * OW)`` into ``x_shape``
    ``(N, C, H, W)``, summing overlaps; the same result as :func:`hw3lib.col2im`.

    ``xp[:, k, i, j] += ...`` would be wrong: with repeated indices a buffered ``+=`` keeps
    only one of the additions. ``np.add.at`` applies every one, unbuffered.
    """
    n, c, h, w = x_shape
    ph, pw = pair(padding, "padding")
    k, i, j = im2col_indices(x_shape, kernel_h, kernel_w, stride, padding)
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    np.add.at(xp, (slice(None), k, i, j), cols.reshape(k.shape[0], n, -1).transpose(1, 0, 2))
    return xp[:, :, ph : ph + h, pw : pw + w]


@dataclass(frozen=True)
class ConvShape:
    """One convolution layer's geometry: ``in_channels x size x size`` input, ``out_channels``
    filters of ``kernel x kernel``."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    size: int
    stride: int = 1
    padding: int = 0

    def __post_init__(self):
        for name in ("in_channels", "out_channels", "kernel", "size", "stride", "padding"):
            integer(f"ConvShape {self.name!r}: {name}", getattr(self, name),
                    least=0 if name == "padding" else 1)


def lenet_conv_shapes(in_channels=1):
    """LeNet-5's two convolutions: conv1 ``C -> 6``, 5x5 on 32x32; conv2 ``6 -> 16``, 5x5 on
    14x14."""
    return [ConvShape(f"conv1 ({in_channels}x32x32)", in_channels, 6, 5, 32),
            ConvShape("conv2 (6x14x14)", 6, 16, 5, 14)]


def conv_problem(shape, batch, dtype=np.float32, seed=0):
    """Random ``(x, W, b, dout)`` for ``shape`` (a :class:`ConvShape`) and ``batch`` images."""
    rng = np.random.default_rng(seed)
    oh, ow = conv_output_size(shape.size, shape.kernel, shape.stride, shape.padding)
    f, c, k = shape.out_channels, shape.in_channels, shape.kernel
    arrays = (rng.standard_normal((batch, c, shape.size, shape.size)),
              rng.standard_normal((f, c, k, k)),
              rng.standard_normal(f),
              rng.standard_normal((batch, f, oh, ow)))
    return tuple(a.astype(dtype) for a in arrays)


class NaiveConv2D:
    """The naive loops as a layer with ``forward``, ``backward``, ``params`` and ``grads``
    (for :func:`hw3lib.gradcheck_layer`): kernels ``W (F, C, kh, kw)``, bias ``b (F,)``."""

    def __init__(self, W, b, stride=1, padding=0):
        self.params, self.grads = {"W": W, "b": b}, {}
        self.stride, self.padding = stride, padding

    def forward(self, x):
        """``x (N, C, H, W) -> (N, F, OH, OW)``."""
        self.x = x
        return conv2d_naive(x, self.params["W"], self.params["b"], self.stride, self.padding)

    def backward(self, dout):
        """``dout (N, F, OH, OW) -> dx (N, C, H, W)``; fills ``grads["W"]``, ``grads["b"]``."""
        dx, self.grads["W"], self.grads["b"] = conv2d_naive_backward(
            dout, self.x, self.params["W"], self.stride, self.padding)
        return dx


def _layer_run(layer, x, dout):
    def run():
        out = layer.forward(x)
        dx = layer.backward(dout)
        return out, dx, layer.grads["W"], layer.grads["b"]
    return run


def naive_rung(x, W, b, dout, stride, padding):
    """A rung (:func:`available_rungs`): the naive loops, :class:`NaiveConv2D`."""
    return _layer_run(NaiveConv2D(W, b, stride, padding), x, dout)


def fancy_rung(x, W, b, dout, stride, padding):
    """A rung (:func:`available_rungs`): im2col by fancy indexing (:func:`im2col_fancy`), one
    matrix product, col2im by ``np.add.at`` (:func:`col2im_add_at`)."""
    f, kh, kw = W.shape[0], W.shape[2], W.shape[3]
    n, oh, ow = dout.shape[0], dout.shape[2], dout.shape[3]
    W_mat = W.reshape(f, -1)

    def run():
        cols = im2col_fancy(x, kh, kw, stride, padding)
        out = (W_mat @ cols + b[:, None]).reshape(f, n, oh, ow).transpose(1, 0, 2, 3)
        dout_mat = dout.transpose(1, 0, 2, 3).reshape(f, -1)
        dW = (dout_mat @ cols.T).reshape(W.shape)
        dx = col2im_add_at(W_mat.T @ dout_mat, x.shape, kh, kw, stride, padding)
        return out, dx, dW, dout_mat.sum(axis=1)
    return run


def hw3lib_rung(x, W, b, dout, stride, padding):
    """A rung (:func:`available_rungs`): :class:`hw3lib.Conv2D`."""
    layer = Conv2D(W.shape[1], W.shape[0], W.shape[2:], stride, padding, dtype=W.dtype)
    layer.params["W"][...], layer.params["b"][...] = W, b
    return _layer_run(layer, x, dout)


def torch_rung(x, W, b, dout, stride, padding):
    """A rung (:func:`available_rungs`): PyTorch's ``conv2d`` and autograd, on CPU."""
    import torch

    xt, Wt, bt, dt = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, W, b, dout))

    def run():
        leaves = [t.detach().requires_grad_() for t in (xt, Wt, bt)]
        out = torch.nn.functional.conv2d(*leaves, stride=stride, padding=padding)
        out.backward(dt)
        return out.detach().numpy(), *(t.grad.numpy() for t in leaves)
    return run


ADD_AT, SLICES = "np.add.at", "strided slices (hw3lib.col2im)"  # the folds time_col2im times


@dataclass(frozen=True)
class Col2imTimes:
    """:func:`time_col2im`'s result: the shapes of the columns folded and of the image batch
    they fold into, their dtype's name, and the median seconds of each fold, ``seconds``
    (:data:`ADD_AT` and :data:`SLICES`); ``str()`` prints them with the ratio."""

    cols_shape: tuple
    x_shape: tuple
    dtype: str
    seconds: dict

    @property
    def ratio(self):
        """How many times longer ``np.add.at`` takes than ``hw3lib.col2im``."""
        return self.seconds[ADD_AT] / self.seconds[SLICES]

    def __str__(self):
        return "\n".join([f"col2im of cols {self.cols_shape} into x {self.x_shape}, {self.dtype}:",
                          *(f"  {name:<32} {1e3 * s:7.2f} ms" for name, s in self.seconds.items()),
                          f"  ratio {self.ratio:.1f}x"])


def time_col2im(shape, batch=32, repeats=7, dtype=np.float32, seed=0):
    """Time the col2im of the columns of ``batch`` random images of ``shape`` (a
    :class:`ConvShape`) by ``np.add.at`` (:func:`col2im_add_at`) and by :func:`hw3lib.col2im`,
    on one thread, each the median of ``repeats`` interleaved runs; a :class:`Col2imTimes`."""
    x = conv_problem(shape, batch, dtype, seed)[0]
    geometry = (shape.kernel, shape.kernel, shape.stride, shape.padding)
    cols = im2col(x, *geometry)
    with single_thread():
        seconds = interleaved_medians({ADD_AT: lambda: col2im_add_at(cols, x.shape, *geometry),
                                       SLICES: lambda: col2im(cols, x.shape, *geometry)}, repeats)
    return Col2imTimes(cols.shape, x.shape, np.dtype(dtype).name, seconds)


def available_rungs():
    """Rung name -> rung factory; PyTorch's only when it is installed.

    A rung takes ``(x (N, C, H, W), W (F, C, kh, kw), b (F,), dout (N, F, OH, OW), stride,
    padding)`` and returns a function of no arguments returning ``(out (N, F, OH, OW),
    dx (N, C, H, W), dW (F, C, kh, kw), db (F,))``. Setup (building a layer, converting to
    tensors) stays outside the timing."""
    rungs = {"naive loops": naive_rung, "fancy index + np.add.at": fancy_rung,
             "hw3lib Conv2D": hw3lib_rung}
    if torch_available():
        rungs["PyTorch CPU"] = torch_rung
    return rungs


@contextmanager
def single_thread():
    """One BLAS thread (threadpoolctl) and, when PyTorch is already imported, one torch thread."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    with threadpool_limits(1):
        if torch:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(before)


def max_relative_error(results, reference):
    """Largest ``max|a - r| / max|r|`` over the tensors of ``results`` against ``reference``."""
    return max(float(np.max(np.abs(np.asarray(a, np.float64) - r)) / max(np.max(np.abs(r)), 1e-300))
               for a, r in zip(results, reference))


def time_ladder(shapes, rungs=None, batch=32, naive_batch=2, repeats=5, dtype=np.float32, seed=0):
    """Time each rung's forward + backward on each :class:`ConvShape`, one thread, in one run.

    The naive rung runs on the first ``naive_batch`` images (it is slow, and linear in the
    batch), the others on ``batch`` images; times are compared per image. Each rung's error is
    :func:`max_relative_error` of its ``(out, dx, dW, db)`` against the naive loops on the
    ``naive_batch`` images. Returns one dict per (shape, rung) with ``shape``, ``rung``,
    ``images``, ``seconds`` (median per call), ``per_image``, ``epoch`` (``per_image *
    TRAIN_SIZE``), ``speedup`` (naive per image / this per image) and ``error``.
    """
    if isinstance(rungs, str):
        raise ValueError(f"rungs is a list of rung names, e.g. ['naive loops', 'hw3lib Conv2D'], "
                         f"got the string {rungs!r}")
    bad = [shape for shape in shapes if not isinstance(shape, ConvShape)]
    if isinstance(shapes, str) or bad:
        raise ValueError(f"shapes is a list of ConvShape (e.g. lenet_conv_shapes(1)), got "
                         f"{shapes if isinstance(shapes, str) else bad[0]!r}")
    batch, naive_batch = integer("batch", batch), integer("naive_batch", naive_batch)
    all_rungs = available_rungs()
    names = list(all_rungs) if rungs is None else list(rungs)
    unknown = [name for name in names if name not in all_rungs]
    if unknown:
        raise ValueError(f"unknown or unavailable rungs {unknown}; available: {list(all_rungs)}")
    if "naive loops" not in names:
        raise ValueError("the rungs must include 'naive loops', the reference of the errors "
                         "and speed-ups")
    if not 1 <= naive_batch <= batch:
        raise ValueError(f"need 1 <= naive_batch <= batch, got naive_batch={naive_batch}, "
                         f"batch={batch}")
    rows = []
    with single_thread():
        for shape in shapes:
            x, W, b, dout = conv_problem(shape, batch, dtype, seed)
            small = (x[:naive_batch], W, b, dout[:naive_batch], shape.stride, shape.padding)
            full = (x, W, b, dout, shape.stride, shape.padding)
            reference = [np.asarray(a, np.float64) for a in naive_rung(*small)()]
            errors = {name: 0.0 if name == "naive loops" else
                      max_relative_error(all_rungs[name](*small)(), reference) for name in names}
            images = {name: naive_batch if name == "naive loops" else batch for name in names}
            runs = {name: all_rungs[name](*(small if name == "naive loops" else full))
                    for name in names}
            medians = interleaved_medians(runs, repeats)
            naive_per_image = medians["naive loops"] / naive_batch
            for name in names:
                per_image = medians[name] / images[name]
                rows.append(dict(shape=shape.name, rung=name, images=images[name],
                                 seconds=medians[name], per_image=per_image,
                                 epoch=per_image * TRAIN_SIZE, speedup=naive_per_image / per_image,
                                 error=errors[name]))
    return rows


def format_ladder(rows):
    """The rows of :func:`time_ladder` as a fixed-width text table, its columns two spaces
    apart or more (a header of several words, "max rel err", stays one column's)."""
    lines = [f"{'layer':<17} {'rung':<24} {'images':>6} {'ms/image':>10} {'s/epoch':>9} "
             f"{'speed-up':>9}  {'max rel err':>11}"]
    for r in rows:
        lines.append(f"{r['shape']:<17} {r['rung']:<24} {r['images']:>6} "
                     f"{1e3 * r['per_image']:>10.3f} {r['epoch']:>9.2f} {r['speedup']:>8.0f}x  "
                     f"{r['error']:>11.1e}")
    return "\n".join(lines)


def epoch_totals(rows, shapes):
    """Rung -> seconds per training epoch summed over the layers named in ``shapes``."""
    totals = {}
    for r in rows:
        if r["shape"] in shapes:
            totals[r["rung"]] = totals.get(r["rung"], 0.0) + r["epoch"]
    return totals


def format_epoch_totals(rows, channels=(1, 4)):
    """For each input channel count in ``channels``, one line: LeNet-5's two convolutions
    (:func:`lenet_conv_shapes`), forward and backward, over one training epoch of
    :data:`~hw3lib.workloads.TRAIN_SIZE` images, by the naive loops (minutes) and by
    ``hw3lib Conv2D`` (seconds), and how many times slower the loops are. ``rows`` come from
    :func:`time_ladder` run on those shapes with both rungs."""
    rungs, lines = ("naive loops", "hw3lib Conv2D"), []
    for c in channels:
        names = [shape.name for shape in lenet_conv_shapes(c)]
        missing = [f"{name} by {rung}" for name in names for rung in rungs
                   if not any((r["shape"], r["rung"]) == (name, rung) for r in rows)]
        if missing:
            raise ValueError(f"the rows hold no time for {', '.join(missing)}: time them with "
                             f"time_ladder(lenet_conv_shapes({c}), rungs={list(rungs)})")
        totals = epoch_totals(rows, names)
        naive, fast = totals["naive loops"], totals["hw3lib Conv2D"]
        lines.append(f"{c}-channel input, conv1 + conv2, one epoch ({TRAIN_SIZE} images): "
                     f"loops {naive / 60:.1f} min, im2col {fast:.2f} s, {naive / fast:.0f}x")
    return "\n".join(lines)
