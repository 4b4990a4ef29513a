"""Winograd's minimal filtering F(2x2, r x r): a stride-1 convolution with fewer multiplications.

For one ``t x t`` input tile ``d`` (``t = r + 1``) and one ``r x r`` kernel ``g``, the 2x2
outputs of their correlation are ``AT (U * V) AT.T`` with ``U = G g G.T`` and
``V = BT d BT.T`` (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
2016). Summed over input channels, the elementwise product ``U * V`` becomes ``t * t``
matrix products ``(F, C) @ (C, tiles)``: a 5x5 kernel costs 36 multiplications per 2x2
outputs instead of 100. The transforms are extra passes over memory (``V`` holds ``t * t / 4``
numbers per input channel and output position, 9 for a 5x5 kernel), so this pays only when
the products dominate, in wide layers (:class:`~hw3lib.layers.Conv2D` decides).

The 2-D transforms are the Kronecker squares of the 1-D ones (:func:`transforms`), applied to
all tiles at once as one matrix product. Layouts are ``Conv2D``'s: padded rows
``(Hp, C, Wp, N)`` in (:func:`~hw3lib.im2col.padded_rows`), outputs ``(OH, F, OW * N)``, and
the tiles' columns ordered ``(th, tw, n)``. Every step is linear; the backward pass runs
each one's adjoint (the ``*_adjoint`` functions).
"""
import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

POINTS = (0, 1, -1, 2, -2)  # the interpolation points besides infinity: kernels up to 5x5
KERNELS = range(2, len(POINTS) + 1)  # the kernel sizes r it builds transforms for


@functools.lru_cache(maxsize=None)
def transforms_1d(r):
    """``(AT (2, t), G (t, r), BT (t, t))`` in float64, ``t = r + 1``, such that
    ``AT @ ((G @ g) * (BT @ d)) == np.correlate(d, g, "valid")`` for every ``d (t,)`` and
    ``g (r,)``. ``AT`` and ``G`` are written down from ``r`` of :data:`POINTS` and infinity
    (Toom-Cook); ``BT`` is solved from that identity, which is checked."""
    if r not in KERNELS:
        raise ValueError(f"Winograd transforms are built for kernels of {KERNELS.start}-"
                         f"{KERNELS.stop - 1}, got {r}")
    t, p = r + 1, np.array(POINTS[:r], dtype=np.float64)
    AT, G = np.zeros((2, t)), np.zeros((t, r))
    AT[:, :r] = p ** np.arange(2)[:, None]  # the output polynomial at the points ...
    AT[1, r] = 1  # ... and its leading coefficient (the point at infinity)
    scale = np.array([np.prod(pj - np.delete(p, j)) for j, pj in enumerate(p)])
    G[:r] = p[:, None] ** np.arange(r) / scale[:, None]  # the kernel polynomial, Lagrange-scaled
    G[r, r - 1] = 1
    # sum over j of AT[i, j] G[j, k] BT[j, l] must be 1 where l == i + k, else 0
    E = (AT[:, None, :] * G.T[None, :, :]).reshape(2 * r, t)
    target = np.zeros((2, r, t))
    for i in range(2):
        target[i, np.arange(r), i + np.arange(r)] = 1
    BT = np.linalg.lstsq(E, target.reshape(2 * r, t), rcond=None)[0]
    assert np.allclose(E @ BT, target.reshape(2 * r, t), rtol=0, atol=1e-12)
    return AT, G, BT


@functools.lru_cache(maxsize=None)
def transforms(r, dtype):
    """The 2-D transforms ``(KA (4, t*t), KB (t*t, t*t), KG (t*t, r*r))`` in ``dtype``:
    ``KB @ d.reshape(t*t, -1)`` is ``BT d BT.T`` of every tile ``d`` at once (row-major
    flattening), ``KA`` and ``KG`` likewise. Read-only: they are shared."""
    AT, G, BT = transforms_1d(r)
    out = tuple(np.kron(M, M).astype(dtype) for M in (AT, BT, G))
    for M in out:
        M.flags.writeable = False
    return out


def tile_grid(out_hw):
    """``(TH, TW)``: the 2x2 tiles that cover an output of ``out_hw = (OH, OW)`` (the last tile
    row or column half outside an odd output)."""
    return tuple(-(-size // 2) for size in out_hw)


def _output_size(rows_shape, r):
    return rows_shape[0] - r + 1, rows_shape[2] - r + 1


def _tiles(rows, r):
    """The input tiles of padded rows ``(Hp, C, Wp, N)``, as a view ``(t, t, C, TH, TW, N)``
    of ``rows`` zero-extended by a row and a column where the output is odd."""
    t, (th, tw) = r + 1, tile_grid(_output_size(rows.shape, r))
    hp, c, wp, n = rows.shape
    if (2 * th + r - 1, 2 * tw + r - 1) != (hp, wp):
        extended = np.zeros((2 * th + r - 1, c, 2 * tw + r - 1, n), dtype=rows.dtype)
        extended[:hp, :, :wp] = rows
        rows = extended
    s0, s1, s2, s3 = rows.strides
    return as_strided(rows, (t, t, c, th, tw, n), (s0, s2, s1, 2 * s0, 2 * s2, s3), writeable=False)


def input_transform(rows, r):
    """``V (t*t, C, TH * TW * N)``: ``BT d BT.T`` of every input tile ``d`` of the padded rows
    ``(Hp, C, Wp, N)``; tile ``(th, tw)`` is ``rows[2 th : 2 th + t, :, 2 tw : 2 tw + t]``."""
    t, c = r + 1, rows.shape[1]
    D = np.ascontiguousarray(_tiles(rows, r)).reshape(t * t, -1)
    return (transforms(r, rows.dtype)[1] @ D).reshape(t * t, c, -1)


def input_transform_adjoint(dV, rows_shape, r):
    """The adjoint of :func:`input_transform`: ``dV (t*t, C, TH * TW * N)`` -> the gradient
    of the padded rows, ``(Hp, C, Wp, N)`` (overlapping tiles summed, ``t * t`` strided
    additions)."""
    t, (th, tw) = r + 1, tile_grid(_output_size(rows_shape, r))
    hp, c, wp, n = rows_shape
    dD = (transforms(r, dV.dtype)[1].T @ dV.reshape(t * t, -1)).reshape(t, t, c, th, tw, n)
    drows = np.zeros((2 * th + r - 1, c, 2 * tw + r - 1, n), dtype=dV.dtype)
    for i in range(t):
        for j in range(t):
            drows[i : i + 2 * th : 2, :, j : j + 2 * tw : 2] += dD[i, j].transpose(1, 0, 2, 3)
    return drows[:hp, :, :wp]


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
    Y = (transforms(r, M.dtype)[0] @ M.reshape(len(M), -1)).reshape(2, 2, f, th, tw, n)
    rows = out.reshape(oh, f, ow, n)
    for i in range(2):  # output rows i, i + 2, ... and columns j, j + 2, ... of the tiles
        for j in range(2):
            tiles = Y[i, j, :, : (oh - i + 1) // 2, : (ow - j + 1) // 2]
            rows[i::2, :, j::2] = tiles.transpose(1, 0, 2, 3)
    return out


def output_transform_adjoint(G, r, n):
    """The adjoint of :func:`output_transform`: ``G (OH, F, OW * N)`` ->
    ``dM (t*t, F, TH * TW * N)``."""
    oh, f, _ = G.shape
    ow = G.shape[2] // n
    th, tw = tile_grid((oh, ow))
    dY = np.zeros((2, 2, f, th, tw, n), dtype=G.dtype)  # zero where tiles pass an odd output
    rows = G.reshape(oh, f, ow, n)
    for i in range(2):
        for j in range(2):
            tiles = dY[i, j, :, : (oh - i + 1) // 2, : (ow - j + 1) // 2]
            tiles[...] = rows[i::2, :, j::2].transpose(1, 0, 2, 3)
    return (transforms(r, G.dtype)[0].T @ dY.reshape(4, -1)).reshape(-1, f, th * tw * n)
