"""Winograd's minimal filtering F(4x4, r x r): a stride-1 convolution with fewer multiplications.

For one ``t x t`` input tile ``d`` (``t = m + r - 1``, ``m = TILE = 4``) and one ``r x r``
kernel ``g``, the ``m x m`` outputs of their correlation are ``AT (U * V) AT.T`` with
``U = G g G.T`` and ``V = BT d BT.T`` (Lavin and Gray, "Fast Algorithms for Convolutional
Neural Networks", 2016). Summed over input channels, the elementwise product ``U * V``
becomes ``t * t`` matrix products ``(F, C) @ (C, tiles)``: a 5x5 kernel costs 64
multiplications per 4x4 outputs instead of 400. The transforms are extra passes over memory
(``V`` holds ``t * t / m^2`` numbers per input channel and output position, 4 for a 5x5
kernel), so this pays only when the products dominate, in wide layers
(:class:`~hw3lib.conv.Conv2D` decides). With the points 0, 1, -1, 2, -2, 1/2, -1/2 its
float32 outputs and gradients differ from the exact ones by up to 2e-5 of the largest value
(measured 2e-6 to 1.6e-5 over 16-512 input channels and kernels 2-5), im2col's by under
1e-6 (tests/test_winograd.py checks both).

The 2-D transforms are the Kronecker squares of the 1-D ones (:func:`transforms`), applied to
all tiles at once as one matrix product. Layouts are ``Conv2D``'s: padded rows
``(Hp, C, Wp, N)`` in (:func:`~hw3lib.im2col.padded_rows`), outputs ``(OH, F, OW * N)``, and
the tiles' columns ordered ``(th, tw, n)``. Every step is linear; the backward pass runs
each one's adjoint (the ``*_adjoint`` functions).
"""
import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

TILE = 4  # m: each tile gives m x m outputs
POINTS = (0, 1, -1, 2, -2, 0.5, -0.5)  # the interpolation points besides infinity
KERNELS = range(2, len(POINTS) + 3 - TILE)  # the kernel sizes r they suffice for: t - 1 points


@functools.lru_cache(maxsize=None)
def transforms_1d(r, m=TILE):
    """``(AT (m, t), G (t, r), BT (t, t))`` in float64, ``t = m + r - 1``, such that
    ``AT @ ((G @ g) * (BT @ d)) == np.correlate(d, g, "valid")`` for every ``d (t,)`` and
    ``g (r,)``. ``AT`` and ``G`` are written down from ``t - 1`` of :data:`POINTS` and
    infinity (Toom-Cook); ``BT`` is solved from that identity, which is checked."""
    t = m + r - 1
    if r < 2 or t - 1 > len(POINTS):
        raise ValueError(f"Winograd transforms with {m}x{m} tiles are built for kernels of "
                         f"2-{len(POINTS) + 2 - m}, got {r}")
    p = np.array(POINTS[: t - 1], dtype=np.float64)
    AT, G = np.zeros((m, t)), np.zeros((t, r))
    AT[:, : t - 1] = p ** np.arange(m)[:, None]  # the output polynomial at the points ...
    AT[m - 1, t - 1] = 1  # ... and its leading coefficient (the point at infinity)
    scale = np.array([np.prod(pj - np.delete(p, j)) for j, pj in enumerate(p)])
    G[: t - 1] = p[:, None] ** np.arange(r) / scale[:, None]  # the kernel, Lagrange-scaled
    G[t - 1, r - 1] = 1
    # sum over j of AT[i, j] G[j, k] BT[j, l] must be 1 where l == i + k, else 0
    E = (AT[:, None, :] * G.T[None, :, :]).reshape(m * r, t)
    target = np.zeros((m, r, t))
    for i in range(m):
        target[i, np.arange(r), i + np.arange(r)] = 1
    BT = np.linalg.lstsq(E, target.reshape(m * r, t), rcond=None)[0]
    # zero the solver's rounding noise (up to 1e-15) where the solution is 0: the 2-D
    # transform squares it (down to 1e-37 in float32), its products with gradients are then
    # subnormal numbers, which Intel CPUs compute many times slower (the input transform's
    # adjoint ran 3.5 times slower in training at (64, 128) channels)
    BT[np.abs(BT) < 1e-12] = 0
    assert np.allclose(E @ BT, target.reshape(m * r, t), rtol=0, atol=1e-9)
    return AT, G, BT


@functools.lru_cache(maxsize=None)
def transforms(r, dtype):
    """The 2-D transforms ``(KA (m*m, t*t), KB (t*t, t*t), KG (t*t, r*r))`` in ``dtype``
    (``m = TILE``):
    ``KB @ d.reshape(t*t, -1)`` is ``BT d BT.T`` of every tile ``d`` at once (row-major
    flattening), ``KA`` and ``KG`` likewise. Read-only: they are shared."""
    AT, G, BT = transforms_1d(r)
    out = tuple(np.kron(M, M).astype(dtype) for M in (AT, BT, G))
    for M in out:
        M.flags.writeable = False
    return out


def tile_grid(out_hw):
    """``(TH, TW)``: the tiles that cover an output of ``out_hw = (OH, OW)`` (the last tile
    row or column partly outside it where ``TILE`` does not divide its size)."""
    return tuple(-(-size // TILE) for size in out_hw)


def _output_size(rows_shape, r):
    return rows_shape[0] - r + 1, rows_shape[2] - r + 1


def tiled_shape(rows_shape, r):
    """``(m TH + r - 1, C, m TW + r - 1, N)``: the padded rows ``(Hp, C, Wp, N)`` as far as
    their tiles reach, past the edge where the last tiles pass the output's."""
    (th, tw), (_, c, _, n) = tile_grid(_output_size(rows_shape, r)), rows_shape
    return TILE * th + r - 1, c, TILE * tw + r - 1, n


def _tiles(rows, r):
    """The input tiles of padded rows ``(Hp, C, Wp, N)``, as a view ``(t, t, C, TH, TW, N)``
    of ``rows`` zero-extended to :func:`tiled_shape`."""
    m, (th, tw) = TILE, tile_grid(_output_size(rows.shape, r))
    t, (hp, c, wp, n), tiled = m + r - 1, rows.shape, tiled_shape(rows.shape, r)
    if tiled != rows.shape:
        extended = np.zeros(tiled, dtype=rows.dtype)
        extended[:hp, :, :wp] = rows
        rows = extended
    s0, s1, s2, s3 = rows.strides
    return as_strided(rows, (t, t, c, th, tw, n), (s0, s2, s1, m * s0, m * s2, s3),
                      writeable=False)


def input_transform(rows, r):
    """``V (t*t, C, TH * TW * N)``: ``BT d BT.T`` of every input tile ``d`` of the padded rows
    ``(Hp, C, Wp, N)``; tile ``(th, tw)`` is ``rows[m th : m th + t, :, m tw : m tw + t]``."""
    t, c = TILE + r - 1, rows.shape[1]
    D = np.ascontiguousarray(_tiles(rows, r)).reshape(t * t, -1)
    return (transforms(r, rows.dtype)[1] @ D).reshape(t * t, c, -1)


def input_transform_adjoint(dV, r, drows):
    """The adjoint of :func:`input_transform`: adds the gradient of the padded rows that
    ``dV (t*t, C, TH * TW * N)`` gives to ``drows``, of :func:`tiled_shape`
    ``(m TH + r - 1, C, m TW + r - 1, N)`` (overlapping tiles summed); returns ``drows``."""
    m, t, (hp, c, wp, n) = TILE, TILE + r - 1, drows.shape
    th, tw = (hp - t) // m + 1, (wp - t) // m + 1
    dD = (transforms(r, dV.dtype)[1].T @ dV.reshape(t * t, -1)).reshape(t, t, c, th, tw, n)
    # over the width, in two passes: the tiles' first m columns (j < m) are one whole block of
    # m columns each, their last r - 1 (j >= m) overlap the next tile's, one block further on
    cols = np.empty((t, th, c, tw + 1, m, n), dtype=dD.dtype)
    cols[:, :, :, tw] = 0
    cols[:, :, :, :tw] = dD[:, :m].transpose(0, 3, 2, 4, 1, 5)
    cols[:, :, :, 1:, : t - m] += dD[:, m:].transpose(0, 3, 2, 4, 1, 5)
    cols = cols.reshape(t, th, c, (tw + 1) * m, n)[:, :, :, :wp]
    for i in range(t):  # over the height: tile row i adds to image rows i, i + m, ...
        drows[i : i + m * th : m] += cols[i]
    return drows


def kernel_transform(W):
    """``U (t*t, F, C)``: ``G g G.T`` of every kernel ``g`` of ``W (F, C, r, r)``."""
    f, c, r, _ = W.shape
    KG = transforms(r, W.dtype)[2]
    return (KG @ W.transpose(2, 3, 0, 1).reshape(r * r, f * c)).reshape(-1, f, c)


def kernel_transform_adjoint(dU, r):
    """The adjoint of :func:`kernel_transform`: ``dU (t*t, F, C)`` -> ``dW (F, C, r, r)``."""
    _, f, c = dU.shape
    KG = transforms(r, dU.dtype)[2]
    dW = (KG.T @ dU.reshape(len(KG), -1)).reshape(r, r, f, c)
    return np.ascontiguousarray(dW.transpose(2, 3, 0, 1))


def output_transform(M, r, out, n):
    """``AT m AT.T`` of every tile ``m`` of ``M (t*t, F, TH * TW * N)``, cropped to and written
    into ``out (OH, F, OW * N)`` (contiguous); returns ``out``."""
    oh, f, _ = out.shape
    ow = out.shape[2] // n
    th, tw = tile_grid((oh, ow))
    m = TILE
    Y = (transforms(r, M.dtype)[0] @ M.reshape(len(M), -1)).reshape(m, m, f, th, tw, n)
    rows = out.reshape(oh, f, ow, n)
    for i in range(m):  # output rows i, i + m, ... and columns j, j + m, ... of the tiles
        for j in range(m):
            tiles = Y[i, j, :, : -(-(oh - i) // m), : -(-(ow - j) // m)]
            rows[i::m, :, j::m] = tiles.transpose(1, 0, 2, 3)
    return out


def output_transform_adjoint(G, r, n):
    """The adjoint of :func:`output_transform`: ``G (OH, F, OW * N)`` ->
    ``dM (t*t, F, TH * TW * N)``."""
    oh, f, _ = G.shape
    ow = G.shape[2] // n
    th, tw = tile_grid((oh, ow))
    m = TILE
    dY = np.zeros((m, m, f, th, tw, n), dtype=G.dtype)  # zero where tiles pass the output
    rows = G.reshape(oh, f, ow, n)
    for i in range(m):
        for j in range(m):
            tiles = dY[i, j, :, : -(-(oh - i) // m), : -(-(ow - j) // m)]
            tiles[...] = rows[i::m, :, j::m].transpose(1, 0, 2, 3)
    return (transforms(r, G.dtype)[0].T @ dY.reshape(m * m, -1)).reshape(-1, f, th * tw * n)
