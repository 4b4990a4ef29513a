"""2-D convolution, the layer :class:`Conv2D`: matrix products over im2col columns
(:mod:`hw3lib.im2col`) or, in wide layers, over Winograd's tiles (:mod:`hw3lib.winograd`), in
blocks cut to the sizes below.
"""
import functools

import numpy as np
from threadpoolctl import threadpool_info

from . import winograd
from .checks import integer
from .im2col import (check_window, conv_output_size, fold_windows, kernel_columns, pair,
                     padded_rows, stack_rows, stride_phases, unstack_product, width_windows)
from .layers import Layer, even_block, float_dtype, uniform_weights

CACHE_BYTES = 256 << 10  # a block of windows this size stays in a core's L2 cache across output rows
MIN_COLUMNS = 256  # but no narrower product blocks: below this BLAS overheads cost more than misses
# (than 512: 10-24% faster at batch 128 and over, where OpenBLAS ran a 16-filter product at
# about 190 GFLOP/s 320-384 columns wide and about 120 at 512)
WINDOW_KEEP_BYTES = 16 << 20  # im2col keeps windows up to this size in all for a weight gradient
# from windows (WEIGHT_GRADIENT below),
WINDOW_BAND_BYTES = 2 << 20  # and builds larger ones this much at a time, in one buffer that
# stays in the cache (training at 3x128x128, batch 32, on an Intel Xeon: the first convolution's
# forward pass 0.77 of its time, epochs 0.92-0.98; bands of 1 MiB the same, of 512 KiB 0.97-0.99;
# keeping only up to 8 MiB: 1x32x32 at batch 512, 9 MB of windows, 1.02)
WEIGHT_GRADIENTS = ("auto", "views", "windows")
WEIGHT_GRADIENT = "auto"  # im2col's weight gradient from views of the input or from its windows;
# "auto" takes views where OpenBLAS runs these kernels, which multiply matrices of up to 100^3
# multiply-adds without packing them: on the faster AVX-512 EPYC, training at 3x128x128, batch
# 32, 0.91 of the time, 3x32x32 0.98; with OpenBLAS's Haswell kernels views took 1.2-1.3 times
# the windows' time (the products' small results, 6 x 15 for LeNet's first convolution, packed)
SMALL_MATRIX_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")
ALGORITHMS = ("auto", "im2col", "winograd")
# "auto" takes Winograd for kernels of 3-5 where the channel counts' harmonic mean 2 C F / (C + F)
# is at least this: its transforms cost in proportion to C + F, the multiplications it saves to
# C F. Measured on one 5x5 layer, forward and backward, batch 32, inputs 14-128, Winograd's time
# over im2col's: (64, 128) 0.43-0.55, (32, 64) 0.56-0.73, (24, 24) 0.96-1.11, (16, 32)
# 0.77-0.96, (16, 16) 1.65-2.23, (6, 16) 0.97-1.49; 3x3: (32, 64) 0.69, (16, 32) 0.90-1.32;
# 2x2 kernels gain too little (64 -> 128: 0.85-1.74).
WINOGRAD_MIN_CHANNELS = 40
TILE_BLOCK_BYTES = 4 << 20  # Winograd runs in blocks of tile rows whose products take about this
# (at (64, 128) channels, 32x32, batch 32: 1 tile row a block 14-26% faster than all at once)
KEEP_BYTES = 32 << 20  # and keeps its transformed input up to this size in all for backward


def weight_gradient_from_views():
    """Whether im2col's weight gradient reads views of the input (True) or its windows:
    ``WEIGHT_GRADIENT``, with ``"auto"`` resolved by the BLAS that NumPy computes with (views
    where it is OpenBLAS running one of ``SMALL_MATRIX_KERNELS``)."""
    if WEIGHT_GRADIENT not in WEIGHT_GRADIENTS:
        raise ValueError(f"hw3lib.conv.WEIGHT_GRADIENT must be one of {WEIGHT_GRADIENTS}, got "
                         f"{WEIGHT_GRADIENT!r}")
    return WEIGHT_GRADIENT == "views" or WEIGHT_GRADIENT == "auto" and _blas_has_small_kernels()


@functools.lru_cache(maxsize=1)
def _blas_has_small_kernels():
    """Whether NumPy computes with OpenBLAS (the BLAS its build names) and the OpenBLAS loaded
    runs one of ``SMALL_MATRIX_KERNELS`` (chosen once, when it loads; threadpoolctl reports
    it). Another library's OpenBLAS beside a NumPy on MKL does not count."""
    if "openblas" not in _numpy_blas_name().lower():
        return False
    return any(lib["internal_api"] == "openblas"
               and str(lib.get("architecture")).lower() in SMALL_MATRIX_KERNELS
               for lib in threadpool_info() if lib["user_api"] == "blas")


def _numpy_blas_name():
    """The BLAS that NumPy was built with, as its build configuration names it
    (``"scipy-openblas"`` in NumPy's wheels), or ``""`` where it does not say."""
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return str(blas.get("name", ""))


class Conv2D(Layer):
    """2-D convolution as matrix products, over im2col columns or, in wide layers, Winograd's
    tiles: ``(N, C, H, W) -> (N, F, OH, OW)``, ``C = in_channels``, ``F = out_channels``;
    ``kernel_size``, ``stride`` and ``padding`` (zeros on each side) are each an int or an
    ``(h, w)`` pair; ``W (F, C, kh, kw)`` and ``b (F,)`` are drawn by
    ``np.random.default_rng(rng)`` (a seed, a Generator or None) in ``dtype``, float32 or
    float64.

    The input is laid out image row by image row with the batch innermost
    (:func:`~hw3lib.im2col.padded_rows`, ``(Hp, C, Wp, N)``) and its width windows are copied
    once (:func:`~hw3lib.im2col.width_windows`); the im2col matrix of each output row is then a
    contiguous block of them (:func:`~hw3lib.im2col.stack_rows`), so the forward pass and the
    weight gradient are each one stacked product over the output rows, ``(F, kh C kw) @ (kh C
    kw, OW N)`` and ``(kh C kw, OW N) @ (OW N, F)``, as wide as the batch. Where the BLAS
    multiplies small matrices without packing them (:func:`weight_gradient_from_views`), the
    weight gradient reads the input in place instead: what each kernel column reads is a view
    of the rows (:func:`~hw3lib.im2col.kernel_columns`; with a stride along the width, of one
    copy of them dealt into stride phases), ``kw`` products ``G[oh] @ V[j, oh].T`` with no
    windows. The input gradient goes back through :func:`~hw3lib.im2col.unstack_product` (no
    zeros multiplied) and :func:`~hw3lib.im2col.fold_windows`. The output is a view whose
    memory is laid out ``(OH, F, OW, N)``, the layout the next layers, the next ``Conv2D`` and
    the backward pass read without copying; with the batch innermost, every copy and every
    elementwise step runs over contiguous runs of ``N`` numbers or more, however narrow the
    images.

    The products run in blocks of output columns sized for the cache (:meth:`_column_blocks`).
    The windows (``kw`` copies of the input) are built block by block and, where the weight
    gradient reads them, kept for the backward pass when they take at most
    ``WINDOW_KEEP_BYTES`` in all. Others are built a band of output rows at a time
    (:meth:`_row_bands`), into one buffer of about ``WINDOW_BAND_BYTES`` that stays in the
    cache, right before the products that read them (and rebuilt so for a weight gradient
    from windows): never written out to memory and read back (at 3x128x128, batch 32, conv1's
    take 30 MB; at batch 128, 122 MB).

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
        shape = (self.out_channels, self.in_channels, kh, kw)
        self.params["W"] = uniform_weights(rng, bound, shape, dtype)
        self.params["b"] = uniform_weights(rng, bound, (self.out_channels,), dtype)
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
        try:
            size = conv_output_size((h, w), self.kernel_size, self.stride, self.padding)
        except ValueError as err:  # which of a network's convolutions
            raise ValueError(f"{self!r}: {err}") from None
        return (self.out_channels, *size)

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
        per = even_block(ow, most)
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
            per = even_block(oh, max(most, 1))
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
        per = even_block(th, max(TILE_BLOCK_BYTES // row_bytes, 1))
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
        self.blocks, self.views = self._column_blocks(n, ow), weight_gradient_from_views()
        keep = not self.views and hp * c * kw * ow * n * self.rows.itemsize <= WINDOW_KEEP_BYTES
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
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        drows = np.zeros_like(self.rows, dtype=G.dtype) if self.needs_input_grad else None
        W, dW = self._kernel_rows(), 0  # (F, kh, C*kw)
        block_gradient = self._view_products(G) if self.views else self._window_products(G)
        for columns, bands in zip(self.blocks, self.bands):
            Gb = G[..., columns.start * n : columns.stop * n]  # (OH, F, columns*N)
            dW = dW + block_gradient(Gb, columns, bands)
            if drows is not None:
                dX = unstack_product(W, Gb, len(self.rows), sh)  # (Hp, C*kw, columns*N)
                fold_windows(dX, drows, kw, sw, columns)
        return np.ascontiguousarray(dW), drows

    def _view_products(self, G):
        """A function ``(Gb, columns, bands) ->`` the weight gradient ``(F, C, kh, kw)`` of one
        column block, ``Gb (OH, F, columns * N)``, from views of the input
        (:func:`~hw3lib.im2col.kernel_columns`): ``dW[..., j] = sum over output rows of
        Gb[oh] @ V[j, oh].T``, ``V`` read in place."""
        (kh, kw), f, c = self.kernel_size, self.out_channels, self.in_channels
        dW = np.empty((kw, f, kh * c), dtype=np.result_type(self.rows, G))
        phases = stride_phases(self.rows, self.stride[1])

        def block_products(Gb, columns, bands):
            for js, V in kernel_columns(phases, self.rows.shape[2], self.kernel_size,
                                        self.stride, columns):
                dW[js] = np.matmul(Gb, V.transpose(0, 1, 3, 2)).sum(axis=1)
            return dW.reshape(kw, f, kh, c).transpose(1, 3, 2, 0)
        return block_products

    def _window_products(self, G):
        """A function ``(Gb, columns, bands) ->`` the weight gradient ``(F, C, kh, kw)`` of one
        column block from its windows, kept or rebuilt band by band in one buffer:
        ``dW.T = sum over output rows of S[oh] @ Gb[oh].T``, with OpenBLAS about twice the speed
        of ``Gb[oh] @ S[oh].T``, whose long, skinny transposed operand suits it less."""
        (kh, kw), sh, f, c = self.kernel_size, self.stride[0], self.out_channels, self.in_channels
        products = np.empty((len(G), kh * c * kw, f), dtype=np.result_type(self.rows, G))
        buffer = None if self.X else np.empty(self.largest_band, dtype=self.rows.dtype)
        kept = iter(self.X)

        def block_products(Gb, columns, bands):
            for rows_in, rows_out in bands:
                X = next(kept) if self.X else self._band_windows(rows_in, columns, buffer)
                np.matmul(stack_rows(X, kh, sh), Gb[rows_out].transpose(0, 2, 1),
                          out=products[rows_out])
            return products.sum(axis=0).T.reshape(f, kh, c, kw).transpose(0, 2, 1, 3)
        return block_products

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
