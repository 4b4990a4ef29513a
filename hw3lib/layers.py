"""Layers with ``forward(x)`` and ``backward(dout) -> dx``.

Parameters live in ``layer.params`` and their gradients in ``layer.grads``, both keyed
``"W"`` and ``"b"``, in PyTorch's layouts (``Conv2D``'s ``params["W"]`` ``(F, C, kh, kw)``,
``Dense``'s ``(out, in)``) so that weights can be exchanged with a PyTorch ``state_dict``.
``backward`` returns the gradient of whatever scalar loss ``dout`` came from; no layer
rescales it.
"""
import numpy as np

from . import winograd
from .checks import integer
from .im2col import (check_window, conv_output_size, fold_windows, pair, padded_rows, stack_rows,
                     unstack_product, width_windows)

CACHE_BYTES = 256 << 10  # a block of windows this size stays in a core's L2 cache across output rows
MIN_COLUMNS = 256  # but no narrower product blocks: below this BLAS overheads cost more than misses
# (than 512: 10-24% faster at batch 128 and over, where OpenBLAS ran a 16-filter product at
# about 190 GFLOP/s 320-384 columns wide and about 120 at 512)
WINDOW_KEEP_BYTES = 16 << 20  # im2col keeps its windows up to this size in all for backward,
WINDOW_BAND_BYTES = 2 << 20  # and builds larger ones this much at a time, in one buffer that
# stays in the cache (training at 3x128x128, batch 32, on an Intel Xeon: the first convolution's
# forward pass 0.77 of its time, epochs 0.92-0.98; bands of 1 MiB the same, of 512 KiB 0.97-0.99;
# keeping only up to 8 MiB: 1x32x32 at batch 512, 9 MB of windows, 1.02)
ALGORITHMS = ("auto", "im2col", "winograd")
# "auto" takes Winograd for kernels of 3-5 where the channel counts' harmonic mean 2 C F / (C + F)
# is at least this: its transforms cost in proportion to C + F, the multiplications it saves to
# C F. Measured on one 5x5 layer, forward and backward, batch 32, inputs 14-128, Winograd's time
# over im2col's: (64, 128) 0.43-0.55, (32, 64) 0.56-0.73, (24, 24) 0.96-1.11, (16, 32)
# 0.77-0.96, (16, 16) 1.65-2.23, (6, 16) 0.97-1.49; 3x3: (32, 64) 0.69, (16, 32) 0.90-1.32;
# 2x2 kernels gain too little (64 -> 128: 0.85-1.74).
WINOGRAD_MIN_CHANNELS = 40
POOL_BLOCK_BYTES = 1 << 20  # MaxPool2D's backward runs in blocks of output rows reading this much
# input (training epochs at 3x128x128, batch 32, on an Intel Xeon: 0.96-0.97 of their time in
# one block; blocks of 2 MiB 0.97, 512 KiB 0.98, 256 KiB 1.00)
TILE_BLOCK_BYTES = 4 << 20  # Winograd runs in blocks of tile rows whose products take about this
# (at (64, 128) channels, 32x32, batch 32: 1 tile row a block 14-26% faster than all at once)
KEEP_BYTES = 32 << 20  # and keeps its transformed input up to this size in all for backward
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # the floats that layers compute in


def float_dtype(dtype):
    """``dtype`` as a NumPy dtype; ValueError unless it is float32 or float64."""
    try:
        if np.dtype(dtype) in DTYPES:
            return np.dtype(dtype)
    except TypeError:  # no dtype at all
        pass
    raise ValueError(f"dtype must be float32 or float64 (the weights' precision), got {dtype!r}")


class Layer:
    """Base class: a layer without parameters.

    Subclasses compute in ``_forward(x)`` and ``_backward(dout)``; :meth:`forward` and
    :meth:`backward` check the arrays first (their dtypes and shapes only, no pass over them),
    so that a wrong one is refused in one line naming the layer, not deep inside NumPy, and
    answer an empty batch (N = 0) themselves: an empty output, empty or no input gradient
    (``needs_input_grad``), zero parameter gradients.

    ``forward`` keeps its input (and some layers their output) for ``backward``, not a copy:
    do not modify it in place before ``backward``, whose gradients would be silently wrong.
    """

    input_axes = None  # forward's input axes, a name for any size, an int for that size; None: any
    # True where max-pooling and this layer commute, outputs and gradients (ties included), so
    # that a model may pool first (hw3lib.model.run_order): elementwise, non-decreasing, and
    # tie-preserving (equal outputs only from equal inputs, or from inputs whose gradient is 0)
    commutes_with_max_pool = False

    def __init__(self):
        self.params, self.grads = {}, {}
        self.last_out_shape = None  # the shape of the last output, which backward's gradient has

    def forward(self, x):
        """``x`` (a float array of :attr:`input_axes`) -> the layer's output."""
        self._check_float(x, "forward", "input")
        axes = self.input_axes or ("N", "...")  # any shape, but a batch axis
        if x.ndim == 0 or self.input_axes is not None and (x.ndim != len(axes) or any(
                size != axis for size, axis in zip(x.shape, axes) if isinstance(axis, int))):
            raise ValueError(f"{self!r} expects input ({', '.join(map(str, axes))}), "
                             f"got shape {x.shape}")
        self.last_in_shape = x.shape
        if len(x) == 0:  # an empty batch: nothing to compute, here for every layer
            dtype = np.result_type(x, *self.params.values())
            out = np.zeros((0, *self.output_shape(x.shape[1:])), dtype)
        else:
            out = self._forward(x)
        self.last_out_shape, self.last_out_dtype = out.shape, out.dtype
        return out

    def backward(self, dout):
        """``dout`` (a float array of the last output's shape, taken in its dtype) -> the input
        gradient ``dx``, of the last input's shape (None where a layer skips it); fills
        :attr:`grads`."""
        if self.last_out_shape is None:
            raise ValueError(f"{self!r}.backward called before forward: run forward on the batch first")
        self._check_float(dout, "backward", "gradient")
        if dout.shape != self.last_out_shape:
            raise ValueError(f"{self!r}.backward expects a gradient of shape {self.last_out_shape}, "
                             f"the shape of its last output; got {dout.shape}")
        # in the output's dtype, as PyTorch casts it (no copy where it has it): a float32 gradient
        # of a float64 layer would turn part of its backward pass, and its bias gradient, float32
        dout = dout.astype(self.last_out_dtype, copy=False)
        if len(dout) == 0:
            self.grads = {key: np.zeros_like(p) for key, p in self.params.items()}
            skip = not getattr(self, "needs_input_grad", True)
            return None if skip else np.zeros(self.last_in_shape, dout.dtype)
        return self._backward(dout)

    def _check_float(self, a, method, what):
        """Refuse an ``a`` that is not a float32 or float64 NumPy array: integers fail in the
        in-place steps or turn silently into float64."""
        if not (isinstance(a, np.ndarray) and a.dtype in DTYPES):
            got = f"dtype {a.dtype}" if isinstance(a, np.ndarray) else f"a {type(a).__name__}"
            raise ValueError(f"{self!r}.{method} expects the {what} as a float32 or float64 NumPy "
                             f"array, got {got}; convert it with np.asarray(..., dtype=np.float32)")

    def output_shape(self, input_shape):
        """Shape of one sample's output for one sample's input shape, e.g. ``(C, H, W)``."""
        return tuple(input_shape)

    def __repr__(self):
        return f"{type(self).__name__}()"


def _even_block(count, most):
    """The size of the blocks that cut ``count`` items into as few blocks of at most ``most``
    as possible, as even as that allows: 28 items, at most 27 a block -> 14 (14 + 14, not
    27 + 1)."""
    return -(-count // -(-count // most))


def _uniform(rng, bound, shape, dtype):
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Conv2D(Layer):
    """2-D convolution as matrix products, over im2col columns or, in wide layers, Winograd's
    tiles: ``(N, C, H, W) -> (N, F, OH, OW)``.

    The input is laid out image row by image row with the batch innermost
    (:func:`~hw3lib.im2col.padded_rows`, ``(Hp, C, Wp, N)``) and its width windows are copied
    once (:func:`~hw3lib.im2col.width_windows`); the im2col matrix of each output row is then a
    contiguous block of them (:func:`~hw3lib.im2col.stack_rows`), so the forward pass, the
    weight gradient and the input gradient are each one stacked product over the output rows,
    ``(F, kh C kw) @ (kh C kw, OW N)`` and its transposes, as wide as the batch. The input
    gradient goes back through :func:`~hw3lib.im2col.unstack_product` (no zeros multiplied)
    and :func:`~hw3lib.im2col.fold_windows`. The output is a view whose memory is laid out
    ``(OH, F, OW, N)``, the layout the next layers, the next ``Conv2D`` and the backward pass
    read without copying; with the batch innermost, every copy and every elementwise step runs
    over contiguous runs of ``N`` numbers or more, however narrow the images.

    The products run in blocks of output columns sized for the cache (:meth:`_column_blocks`).
    The windows (``kw`` copies of the input) are built block by block and kept for the
    backward pass when they take at most ``WINDOW_KEEP_BYTES`` in all. Larger ones are built a
    band of output rows at a time (:meth:`_row_bands`), into one buffer of about
    ``WINDOW_BAND_BYTES`` that stays in the cache, right before the products that read them,
    and rebuilt so in the backward pass: one more copy, but they are never written out to
    memory and read back (at 3x128x128, batch 32, conv1's take 30 MB; at batch 128, 122 MB).

    ``algorithm="winograd"`` computes the same convolution with Winograd's F(4x4, r x r)
    (:mod:`~hw3lib.winograd`; stride 1, square kernels of 2-5): fewer multiplications for
    more passes over memory, in blocks of tile rows (:meth:`_tile_blocks`), its transformed
    input kept for backward up to ``KEEP_BYTES``. ``"auto"`` (the default) takes it for
    kernels of 3-5 where the channel counts' harmonic mean is at least
    ``WINOGRAD_MIN_CHANNELS``, else im2col. Its transforms add and subtract across tiles, so an
    infinite or NaN input, weight or gradient makes NaN of every output (or input gradient)
    of the 4x4 tiles that read it, where im2col and PyTorch give inf or NaN only where it is
    read; and its float32 rounding errors are 6-10x im2col's (32 -> 64 channels: 5e-6 of the
    largest output, against 7e-7).

    Initialised like PyTorch's default, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for ``W`` and ``b``.
    ``needs_input_grad = False`` makes ``backward`` skip ``dx`` (for a network's first layer).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 rng=None, dtype=np.float32, algorithm="auto"):
        super().__init__()
        self.in_channels = integer("in_channels", in_channels, 1, "the input's channels")
        self.out_channels = integer("out_channels", out_channels, 1, "the output's channels")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride, self.padding = pair(stride, "stride"), pair(padding, "padding")
        dtype = float_dtype(dtype)
        check_window(self.kernel_size, self.stride, self.padding)
        rng = np.random.default_rng(rng)
        kh, kw = self.kernel_size
        bound = 1.0 / np.sqrt(self.in_channels * kh * kw)
        self.params["W"] = _uniform(rng, bound, (self.out_channels, self.in_channels, kh, kw), dtype)
        self.params["b"] = _uniform(rng, bound, (self.out_channels,), dtype)
        self.needs_input_grad = True
        self.algorithm = self._choose(algorithm)
        self.input_axes = ("N", self.in_channels, "H", "W")

    def _choose(self, algorithm):
        """``"im2col"`` or ``"winograd"``: ``algorithm`` checked against this layer's geometry,
        ``"auto"`` resolved (see the class docstring)."""
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        kh, kw = self.kernel_size
        fits = kh == kw and kh in winograd.KERNELS and self.stride == (1, 1)
        if algorithm == "winograd" and not fits:
            raise ValueError(f"algorithm='winograd' needs stride 1 and a square kernel of "
                             f"{winograd.KERNELS.start}-{winograd.KERNELS.stop - 1}, got kernel "
                             f"{self.kernel_size}, stride {self.stride}; use 'im2col'")
        if algorithm == "auto":
            c, f = self.in_channels, self.out_channels
            wide = 2 * c * f >= WINOGRAD_MIN_CHANNELS * (c + f) and kh >= 3
            return "winograd" if fits and wide else "im2col"
        return algorithm

    def output_shape(self, input_shape):
        c, h, w = input_shape
        if c != self.in_channels:
            raise ValueError(f"{self!r} expects {self.in_channels} input channels, got {c}: the "
                             f"input (or the layer before it) gives {c}. Fix: Conv2D({c}, "
                             f"{self.out_channels}, ...), or check the input_shape")
        return (self.out_channels, *conv_output_size((h, w), self.kernel_size, self.stride, self.padding))

    def _kernel_rows(self):
        """``W`` in the row order of :func:`~hw3lib.im2col.stack_rows`: ``(F, kh, C * kw)``."""
        f, c, kh, kw = self.params["W"].shape
        return self.params["W"].transpose(0, 2, 1, 3).reshape(f, kh, c * kw)

    def _column_blocks(self, n, ow):
        """The output columns as slices whose windows ``S[oh]`` (``kh * C * kw`` rows, ``N``
        columns per output column) fit in ``CACHE_BYTES``: the products run block by block,
        so that each image row, read by ``kh`` output rows in turn, is still in cache for the
        next (at 3x128x128, batch 32, conv1's products run 2-3x faster than in one block);
        but blocks are at least ``MIN_COLUMNS`` wide, which matters for wide layers, whose
        products are compute-bound."""
        rows = self.params["W"][0].size  # kh * C * kw
        most = max(CACHE_BYTES // (rows * n * self.params["W"].itemsize), -(-MIN_COLUMNS // n), 1)
        per = _even_block(ow, most)
        return [slice(i, min(ow, i + per)) for i in range(0, ow, per)]

    def _row_bands(self, oh, n, most_bytes):
        """For each column block (:attr:`blocks`), its ``oh`` output rows in bands whose
        windows take at most ``most_bytes`` (but at least one output row), as even as
        the fewest bands allow: a list per block of ``(image rows read, output rows)`` slice
        pairs; and the numbers in the largest band's windows."""
        (kh, kw), sh = self.kernel_size, self.stride[0]
        bands, largest = [], 0
        for columns in self.blocks:
            row = self.in_channels * kw * (columns.stop - columns.start) * n  # numbers per image row
            most = (most_bytes // (row * self.rows.itemsize) - kh) // sh + 1
            per = _even_block(oh, max(most, 1))
            outs = [slice(o, min(o + per, oh)) for o in range(0, oh, per)]
            bands.append([(slice(r.start * sh, (r.stop - 1) * sh + kh), r) for r in outs])
            largest = max(largest, ((per - 1) * sh + kh) * row)
        return bands, largest

    def _band_windows(self, rows_in, columns, buffer):
        """The windows ``(rows, C * kw, columns * N)`` of the padded rows ``rows_in`` for the
        output columns ``columns``, written into ``buffer`` (None: a new array)."""
        (_, kw), (_, sw) = self.kernel_size, self.stride
        return width_windows(self.rows[rows_in], kw, sw, columns, buffer)

    def _tile_blocks(self, out_hw, n):
        """Blocks of output tile rows (``m = winograd.TILE`` high) as ``(padded rows read,
        output rows written)`` slices, each block's products ``(t*t, max(F, C), tiles)``
        within ``TILE_BLOCK_BYTES`` (but at least one tile row), as even as the fewest blocks
        allow."""
        (oh, _), (th, tw) = out_hw, winograd.tile_grid(out_hw)
        m, t = winograd.TILE, self._tile_size()
        itemsize = self.params["W"].itemsize
        row_bytes = t * t * max(self.in_channels, self.out_channels) * tw * n * itemsize
        per = _even_block(th, max(TILE_BLOCK_BYTES // row_bytes, 1))
        return [(slice(m * a, m * min(a + per, th) + t - m), slice(m * a, min(m * (a + per), oh)))
                for a in range(0, th, per)]

    def _tile_size(self):
        """``t = m + r - 1``: the side of Winograd's input tiles."""
        return winograd.TILE + self.kernel_size[0] - 1

    def _forward(self, x):
        n, _, h, w = x.shape
        out_hw = conv_output_size((h, w), self.kernel_size, self.stride, self.padding)
        self.x_shape = x.shape
        self.rows = padded_rows(x, self.padding)  # (Hp, C, Wp, N)
        if self.algorithm == "winograd":
            out = self._winograd_forward(out_hw, n)
        else:
            out = self._im2col_forward(out_hw, n)
        out += self.params["b"][:, None]
        return out.reshape(out_hw[0], self.out_channels, out_hw[1], n).transpose(3, 1, 0, 2)

    def _im2col_forward(self, out_hw, n):
        """The output ``(OH, F, OW * N)`` without bias, as products over the windows, block by
        block and band by band (see the class docstring)."""
        (oh, ow), (kh, kw), sh = out_hw, self.kernel_size, self.stride[0]
        hp, c = self.rows.shape[:2]
        self.blocks = self._column_blocks(n, ow)
        keep = hp * c * kw * ow * n * self.rows.itemsize <= WINDOW_KEEP_BYTES  # one band a block
        self.bands, self.largest_band = self._row_bands(oh, n, WINDOW_KEEP_BYTES if keep
                                                        else WINDOW_BAND_BYTES)
        buffer = None if keep else np.empty(self.largest_band, dtype=self.rows.dtype)
        W = self._kernel_rows().reshape(self.out_channels, -1)
        out = np.empty((oh, self.out_channels, ow * n), dtype=np.result_type(W, self.rows))
        self.X = []  # the blocks' windows, when kept for backward
        for columns, bands in zip(self.blocks, self.bands):
            block = out[..., columns.start * n : columns.stop * n]  # (OH, F, columns*N)
            for rows_in, rows_out in bands:
                X = self._band_windows(rows_in, columns, buffer)
                np.matmul(W, stack_rows(X, kh, sh), out=block[rows_out])
                if keep:
                    self.X.append(X)
        return out

    def _winograd_forward(self, out_hw, n):
        """The output ``(OH, F, OW * N)`` without bias, as Winograd products (one stacked
        product ``U @ V`` per block of tile rows, :meth:`_tile_blocks`)."""
        r, f = self.kernel_size[0], self.out_channels
        U = winograd.kernel_transform(self.params["W"])  # (t*t, F, C)
        out = np.empty((out_hw[0], f, out_hw[1] * n), dtype=np.result_type(U, self.rows))
        self.blocks, self.V = self._tile_blocks(out_hw, n), []
        tiles = np.prod(winograd.tile_grid(out_hw)) * n
        keep = self._tile_size() ** 2 * self.in_channels * tiles * self.rows.itemsize <= KEEP_BYTES
        for rows_in, rows_out in self.blocks:
            V = winograd.input_transform(self.rows[rows_in], r)  # (t*t, C, tiles)
            winograd.output_transform(U @ V, r, out[rows_out], n)
            if keep:
                self.V.append(V)
        return out

    def _backward(self, dout):
        n, f, oh, ow = dout.shape
        (ph, pw), (h, w) = self.padding, self.x_shape[2:]
        # G (OH, F, OW*N): a free view when dout has the memory layout of our own output
        G = np.ascontiguousarray(dout.transpose(2, 1, 3, 0)).reshape(oh, f, ow * n)
        # db as a product with ones: about 3x faster than G.sum(axis=(0, 2)), a strided reduction
        self.grads["b"] = np.matmul(G, np.ones(G.shape[2], dtype=G.dtype)).sum(axis=0)
        if self.algorithm == "winograd":
            self.grads["W"], drows = self._winograd_backward(G, n)
        else:
            self.grads["W"], drows = self._im2col_backward(G, n)
        if drows is None:
            return None
        return drows[ph : ph + h, :, pw : pw + w].transpose(3, 1, 0, 2)

    def _im2col_backward(self, G, n):
        """``(dW (F, C, kh, kw), drows)`` from ``G (OH, F, OW * N)``: ``drows`` the gradient of
        the padded rows ``(Hp, C, Wp, N)``, None unless ``needs_input_grad``."""
        (kh, kw), (sh, sw), f = self.kernel_size, self.stride, self.out_channels
        drows = np.zeros_like(self.rows, dtype=G.dtype) if self.needs_input_grad else None
        dW_T, W = 0, self._kernel_rows()  # (kh*C*kw, F), (F, kh, C*kw)
        products = np.empty((len(G), W[0].size, f), dtype=np.result_type(self.rows, G))
        buffer = None if self.X else np.empty(self.largest_band, dtype=self.rows.dtype)
        kept = iter(self.X)
        for columns, bands in zip(self.blocks, self.bands):
            Gb = G[..., columns.start * n : columns.stop * n]  # (OH, F, columns*N)
            for rows_in, rows_out in bands:
                X = next(kept) if self.X else self._band_windows(rows_in, columns, buffer)
                # dW.T = sum over output rows of S[oh] @ G[oh].T: with OpenBLAS about twice the
                # speed of G[oh] @ S[oh].T, whose long, skinny transposed operand suits it less
                Gt = Gb[rows_out].transpose(0, 2, 1)
                np.matmul(stack_rows(X, kh, sh), Gt, out=products[rows_out])
            dW_T = dW_T + products.sum(axis=0)
            if drows is not None:
                dX = unstack_product(W, Gb, len(self.rows), sh)  # (Hp, C*kw, columns*N)
                fold_windows(dX, drows, kw, sw, columns)
        dW = dW_T.T.reshape(f, kh, self.in_channels, kw).transpose(0, 2, 1, 3).copy()
        return dW, drows

    def _winograd_backward(self, G, n):
        """:meth:`_im2col_backward` for the Winograd products: each step's adjoint in turn,
        ``drows`` as far as the tiles reach (:func:`~hw3lib.winograd.tiled_shape`)."""
        r = self.kernel_size[0]
        U, dU = winograd.kernel_transform(self.params["W"]), 0  # (t*t, F, C)
        drows = None
        if self.needs_input_grad:
            drows = np.zeros(winograd.tiled_shape(self.rows.shape, r), dtype=G.dtype)
        for k, (rows_in, rows_out) in enumerate(self.blocks):
            V = self.V[k] if self.V else winograd.input_transform(self.rows[rows_in], r)
            dM = winograd.output_transform_adjoint(G[rows_out], r, n)  # (t*t, F, tiles)
            dU = dU + dM @ V.transpose(0, 2, 1)
            if drows is not None:
                dV = U.transpose(0, 2, 1) @ dM  # (t*t, C, tiles)
                winograd.input_transform_adjoint(dV, r, drows[rows_in])
        return winograd.kernel_transform_adjoint(dU, r), drows

    def __repr__(self):
        algorithm = ", algorithm='winograd'" if self.algorithm == "winograd" else ""
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}{algorithm})")


class _Pool2D(Layer):
    """Shared window bookkeeping of the pooling layers (stride defaults to the kernel size).

    A pooling window is visited as ``kh * kw`` strided slices of the input, one per offset
    ``(i, j)`` inside the window, each of the output's shape ``(N, C, OH, OW)``. Outputs and
    gradients keep the input's memory layout (``order="K"``), e.g. the ``(H, C, W, N)`` of a
    ``Conv2D`` output, so that every elementwise step runs through memory in one order.
    """

    input_axes = ("N", "C", "H", "W")

    def __init__(self, kernel_size=2, stride=None):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        check_window(self.kernel_size, self.stride)

    def output_shape(self, input_shape):
        c, h, w = input_shape
        return (c, *conv_output_size((h, w), self.kernel_size, self.stride))

    def _slices(self, x_shape):
        """The index of ``x (N, C, H, W)`` that each window offset ``(i, j)`` reads."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        oh, ow = conv_output_size(x_shape[2:], (kh, kw), (sh, sw))
        return [(slice(None), slice(None), slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw))
                for i in range(kh) for j in range(kw)]

    def _pool(self, x, combine):
        """Combine each window of ``x (N, C, H, W)`` by the ufunc ``combine`` (``np.maximum``,
        ``np.add``) -> ``(N, C, OH, OW)``, separably: first over the window's rows, whole image
        rows at a time, then over its columns; ``kh + kw - 2`` operations, the first ones on
        long contiguous runs (about twice the speed of ``kh * kw - 1`` on strided slices)."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        oh, ow = conv_output_size(x.shape[2:], (kh, kw), (sh, sw))
        rows = x[:, :, : sh * oh : sh].copy(order="K")  # (N, C, OH, W)
        for i in range(1, kh):
            combine(rows, x[:, :, i : i + sh * oh : sh], out=rows)
        out = rows[..., : sw * ow : sw].copy(order="K")
        for j in range(1, kw):
            combine(out, rows[..., j : j + sw * ow : sw], out=out)
        return out

    def _gradient_buffer(self, dtype):
        """``(dx, disjoint)``: an array for the input gradient in the input's layout, and whether
        the windows are disjoint, so that each window offset's gradient can be written into its
        strided slice (``out=``, ~3x faster than a strided ``+=``). Where the windows also
        cover the input exactly (stride = kernel, sizes divisible), every pixel is written
        once and ``dx`` needs no zero fill."""
        disjoint = all(s >= k for s, k in zip(self.stride, self.kernel_size))
        covers = self.stride == self.kernel_size and all(
            size % k == 0 for size, k in zip(self.x.shape[2:], self.kernel_size))
        return (np.empty_like if covers else np.zeros_like)(self.x, dtype=dtype), disjoint

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


def _layout_of(ref, a):
    """``a`` (of ``ref``'s shape) with ``ref``'s memory layout: ``a`` itself when it has it,
    else a copy."""
    if a.strides == ref.strides and a.dtype == ref.dtype:
        return a
    out = np.empty_like(ref, dtype=a.dtype)
    out[...] = a
    return out


class MaxPool2D(_Pool2D):
    """Max over each window: ``(N, C, H, W) -> (N, C, OH, OW)``; the gradient goes to the
    first maximum of each window, as in PyTorch. A window holding NaN gives NaN, as in
    PyTorch, but its gradient goes nowhere (PyTorch's goes to the window's last NaN): finding
    the NaNs would cost the backward pass more work on every window, and training stops on the
    NaN loss anyway. The gradient is routed by products with bool masks, so an infinite or NaN
    ``dout`` gives NaN (``inf * 0``) to the window's other inputs too, where PyTorch gives 0:
    ``np.where`` would make the backward pass 2-3.5x slower, even a check of ``dout`` for
    non-finite values 5-11% (float32, batch 32, 6x124x124 and 16x28x28 inputs); such a gradient
    comes only from a diverged run, whose weights then stop being finite either way."""

    def _forward(self, x):
        self.x, self.out = x, self._pool(x, np.maximum)
        return self.out

    def _backward(self, dout):
        """In blocks of output rows (:meth:`_row_blocks`), so that a block's output, gradient
        and masks stay in the cache across the window's offsets."""
        dout = _layout_of(self.out, dout)
        dx, disjoint = self._gradient_buffer(dout.dtype)
        for rows, x_rows in self._row_blocks():
            x, dx_rows = self.x[:, :, x_rows], dx[:, :, x_rows]
            out, d = self.out[:, :, rows], dout[:, :, rows]
            free = np.ones_like(out, dtype=bool)  # windows whose maximum has no gradient yet
            for index in self._slices(x.shape):
                hit = x[index] == out
                hit &= free
                free ^= hit
                if disjoint:  # a product with a bool mask (see the class docstring)
                    np.multiply(d, hit, out=dx_rows[index])
                else:  # overlapping windows: add, also across blocks
                    dx_rows[index] += d * hit
        return dx

    def _row_blocks(self):
        """``(output rows, input rows)`` slices: the output rows in blocks whose input rows take
        about ``POOL_BLOCK_BYTES`` (at least one row), as even as the fewest blocks allow."""
        (kh, _), (sh, _) = self.kernel_size, self.stride
        oh, row_bytes = self.out.shape[2], max(self.x[:, :, 0].nbytes * sh, 1)  # 1: no channels
        per = _even_block(oh, max(POOL_BLOCK_BYTES // row_bytes, 1))
        return [(slice(i, min(oh, i + per)), slice(i * sh, (min(oh, i + per) - 1) * sh + kh))
                for i in range(0, oh, per)]


class AvgPool2D(_Pool2D):
    """Mean over each window: ``(N, C, H, W) -> (N, C, OH, OW)``."""

    def _forward(self, x):
        out = self._pool(x, np.add)
        out /= self.kernel_size[0] * self.kernel_size[1]
        self.x, self.out = x, out
        return out

    def _backward(self, dout):
        share = _layout_of(self.out, dout) / (self.kernel_size[0] * self.kernel_size[1])
        dx, disjoint = self._gradient_buffer(share.dtype)
        for index in self._slices(self.x.shape):
            if disjoint:
                dx[index] = share
            else:
                dx[index] += share
        return dx


class ReLU(Layer):
    """``max(x, 0)`` elementwise, any shape. It commutes with max-pooling (a model pools first,
    on a quarter of the numbers): edit ``_forward`` into anything but a non-decreasing function
    that is flat only where its gradient is 0 (SiLU is not), and set that to False.

    The backward pass multiplies ``dout`` by the mask ``out > 0``, 7-11x faster than ``np.where``
    (float32, batch 32, 6x124x124 and 16x28x28), so where the input was not positive an infinite
    or NaN ``dout`` gives NaN (``inf * 0``), where PyTorch gives 0; and a NaN input passes no
    gradient, where PyTorch's passes ``dout``. Only a diverged run has such numbers, and its
    weights then stop being finite either way."""

    commutes_with_max_pool = True

    def _forward(self, x):
        self.out = np.maximum(x, 0)  # the mask is left to backward: evaluation never needs it
        return self.out

    def _backward(self, dout):
        return dout * (self.out > 0)  # a product with a bool mask (see the class docstring)


class Tanh(Layer):
    """``tanh(x)`` elementwise, any shape."""

    def _forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def _backward(self, dout):
        return dout * (1 - self.out * self.out)


class Flatten(Layer):
    """``(N, C, H, W) -> (N, C * H * W)``; the gradient goes back in the input's memory layout
    (e.g. a ``Conv2D`` output's), which the layers before it read fastest."""

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def _forward(self, x):
        self.x = x
        return x.reshape(x.shape[0], -1)

    def _backward(self, dout):
        return _layout_of(self.x, dout.reshape(self.x.shape))


class Dense(Layer):
    """Fully connected: ``(N, in) -> (N, out)``, ``y = x @ W.T + b`` with ``W (out, in)``.

    Initialised like PyTorch's ``nn.Linear``, ``U(-1/sqrt(in), 1/sqrt(in))``.
    """

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = integer("in_features", in_features, 1, "the input's width")
        self.out_features = integer("out_features", out_features, 1, "the output's width")
        dtype = float_dtype(dtype)
        rng = np.random.default_rng(rng)
        bound = 1.0 / np.sqrt(self.in_features)
        self.params["W"] = _uniform(rng, bound, (self.out_features, self.in_features), dtype)
        self.params["b"] = _uniform(rng, bound, (self.out_features,), dtype)
        self.input_axes = ("N", self.in_features)

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            got = int(np.prod(input_shape))
            raise ValueError(f"{self!r} expects {self.in_features} input features, got "
                             f"{input_shape}: the layers before it give {got}. Fix: "
                             f"Dense({got}, {self.out_features})")
        return (self.out_features,)

    def _forward(self, x):
        self.x = x
        # (W @ x.T).T, not x @ W.T: the same product, which OpenBLAS runs about 1.7x as fast
        return (self.params["W"] @ x.T).T + self.params["b"]

    def _backward(self, dout):
        self.grads["W"] = dout.T @ self.x
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"]

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features})"
