"""Convolution as a matrix product: im2col, its adjoint col2im, and the naive loop reference.

Layout conventions (PyTorch's): images ``x`` are ``(N, C, H, W)``, kernels ``W`` are
``(F, C, kh, kw)``. ``im2col`` turns every receptive field into one *column* of a matrix
``cols`` of shape ``(C * kh * kw, N * OH * OW)``; the row order is ``(c, i, j)``, so that
``W.reshape(F, -1) @ cols`` is the convolution, and the column order is ``(n, oh, ow)``.

``unfold_rows`` builds that matrix one kernel row at a time, as strided views of the
input's width windows; ``Conv2D`` multiplies those views directly, so the full matrix,
``kh`` times larger, exists only when ``im2col`` is asked for it.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pair(value, name="value"):
    """Return ``(a, b)`` for an int or a pair of ints, checking both are positive ints."""
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if not all(isinstance(v, (int, np.integer)) for v in (a, b)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(a), int(b)


def check_window(kernel, stride=1, padding=0):
    """Check a window's geometry: kernel and stride at least 1, padding at least 0."""
    (kh, kw), (sh, sw) = pair(kernel, "kernel_size"), pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"kernel and stride must be >= 1 and padding >= 0, got "
                         f"kernel {(kh, kw)}, stride {(sh, sw)}, padding {(ph, pw)}")


def conv_output_size(size, kernel, stride=1, padding=0):
    """Output ``(OH, OW)`` of a convolution or pooling window over ``size=(H, W)``.

    Raises ``ValueError`` when the window does not fit the padded input.
    """
    check_window(kernel, stride, padding)
    (h, w), (kh, kw) = pair(size, "input size"), pair(kernel, "kernel_size")
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"a {kh}x{kw} kernel does not fit a {h}x{w} input with padding "
                         f"{(ph, pw)}: use a smaller kernel, more padding or a larger input")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _check_image(x):
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got shape {x.shape}")


def unfold_rows(x, kernel_h, kernel_w, stride=1, padding=0):
    """The im2col matrix of each kernel row: ``x (N, C, H, W)`` -> ``rows (N, kh, C * kw, OH * OW)``.

    ``rows[n, i]`` holds, for every output pixel ``(oh, ow)`` of image ``n``, the ``kw`` inputs
    of each channel that kernel row ``i`` meets, in ``(c, j)`` order: stacking ``rows[n, :]``
    gives image ``n``'s columns of :func:`im2col`. Only the width windows ``(N, C, kw, H, OW)``
    are copied (``kw`` times ``x``); for a vertical stride of 1 each kernel row is a strided
    view of them, so the ``kh`` times larger im2col matrix is never built.
    """
    _check_image(x)
    n, c, h, w = x.shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = conv_output_size((h, w), (kernel_h, kernel_w), (sh, sw), (ph, pw))
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(x, kernel_w, axis=3)[:, :, :, : sw * ow : sw]  # (N, C, Hp, OW, kw)
    windows = np.ascontiguousarray(windows.transpose(0, 1, 4, 2, 3))  # (N, C, kw, Hp, OW)
    # kernel row i reads image rows i, i + sh, ..., a window of the rows axis
    rows = sliding_window_view(windows, sh * (oh - 1) + 1, axis=3)[:, :, :, :kernel_h, :, ::sh]
    rows = rows.transpose(0, 3, 1, 2, 5, 4)  # (N, kh, C, kw, OH, OW)
    return rows.reshape(n, kernel_h, c * kernel_w, oh * ow)  # a view when sh == 1


def spread_rows(rows, padded_h, stride_h=1):
    """Put each kernel row's block back on the image rows it was read from:
    ``rows (N, kh, K, OH, OW)`` -> ``(N, kh, K, padded_h, OW)``, zero elsewhere.

    Summed over the kernel rows (axis 1), this is the adjoint of the row views of
    :func:`unfold_rows`. Each block is a strided copy, about 3x faster in NumPy than the
    strided ``+=`` that summing in place would need.
    """
    n, kh, k, oh, ow = rows.shape
    out = np.zeros((n, kh, k, padded_h, ow), dtype=rows.dtype)
    for i in range(kh):
        out[:, i, :, i : i + stride_h * oh : stride_h] = rows[:, i]
    return out


def fold_width(windows, x_shape, kernel_w, stride=1, padding=0):
    """The adjoint of the width windows of :func:`unfold_rows`: ``windows (N, C * kw, Hp, OW)``
    -> ``(N, C, H, W)``. Like :func:`spread_rows`, each kernel column's block is copied to
    the image columns it was read from, then the ``kw`` copies are summed."""
    n, c, h, w = x_shape
    sw, (ph, pw) = pair(stride, "stride")[1], pair(padding, "padding")
    ow = windows.shape[-1]
    windows = windows.reshape(n, c, kernel_w, h + 2 * ph, ow)
    spread = np.zeros((n, c, kernel_w, h + 2 * ph, w + 2 * pw), dtype=windows.dtype)
    for j in range(kernel_w):
        spread[:, :, j, :, j : j + sw * ow : sw] = windows[:, :, j]
    return spread.sum(axis=2)[:, :, ph : ph + h, pw : pw + w]


def fold_rows(rows, x_shape, kernel_h, kernel_w, stride=1, padding=0):
    """The adjoint of :func:`unfold_rows`: ``rows (N, kh, C * kw, OH * OW)`` -> ``(N, C, H, W)``,
    summing where windows overlap (no ``np.add.at``)."""
    n, c, h, w = x_shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = conv_output_size((h, w), (kernel_h, kernel_w), (sh, sw), (ph, pw))
    rows = rows.reshape(n, kernel_h, c * kernel_w, oh, ow)
    windows = spread_rows(rows, h + 2 * ph, sh).sum(axis=1)  # (N, C*kw, Hp, OW)
    return fold_width(windows, x_shape, kernel_w, stride, padding)


def im2col(x, kernel_h, kernel_w, stride=1, padding=0):
    """Unfold ``x (N, C, H, W)`` into ``cols (C * kernel_h * kernel_w, N * OH * OW)``.

    Column ``(n * OH + oh) * OW + ow`` holds the receptive field of output pixel ``(oh, ow)``
    of image ``n``, flattened in ``(c, i, j)`` order: the kernel rows of :func:`unfold_rows`,
    stacked.
    """
    n, c = x.shape[:2]
    rows = unfold_rows(x, kernel_h, kernel_w, stride, padding)  # (N, kh, C*kw, OH*OW)
    rows = rows.reshape(n, kernel_h, c, kernel_w, -1).transpose(2, 1, 3, 0, 4)  # (C, kh, kw, N, OH*OW)
    return rows.reshape(c * kernel_h * kernel_w, -1)


def col2im(cols, x_shape, kernel_h, kernel_w, stride=1, padding=0):
    """The adjoint of :func:`im2col`: fold ``cols (C * kh * kw, N * OH * OW)`` back into
    ``(N, C, H, W)``, summing where receptive fields overlap (by :func:`fold_rows`: ``kh``
    strided copies, one sum and ``kw`` strided slice additions, no ``np.add.at``)."""
    n, c, h, w = x_shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = conv_output_size((h, w), (kernel_h, kernel_w), (sh, sw), (ph, pw))
    expected = (c * kernel_h * kernel_w, n * oh * ow)
    if cols.shape != expected:
        raise ValueError(f"cols has shape {cols.shape}, expected {expected} for x_shape {x_shape}")
    rows = cols.reshape(c, kernel_h, kernel_w, n, oh * ow).transpose(3, 1, 0, 2, 4)  # (N, kh, C, kw, OH*OW)
    return fold_rows(rows.reshape(n, kernel_h, c * kernel_w, oh * ow), x_shape, kernel_h, kernel_w,
                     stride, padding)


def conv2d_naive(x, W, b, stride=1, padding=0):
    """Reference convolution by nested loops. ``x (N, C, H, W)``, ``W (F, C, kh, kw)``,
    ``b (F,)`` -> ``(N, F, OH, OW)``."""
    _check_image(x)
    n, c, h, w = x.shape
    f, _, kh, kw = W.shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = conv_output_size((h, w), (kh, kw), (sh, sw), (ph, pw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, f, oh, ow), dtype=np.result_type(x, W))
    for s in range(n):
        for k in range(f):
            for r in range(oh):
                for q in range(ow):
                    field = xp[s, :, r * sh : r * sh + kh, q * sw : q * sw + kw]
                    out[s, k, r, q] = np.sum(field * W[k]) + b[k]
    return out


def conv2d_naive_backward(dout, x, W, stride=1, padding=0):
    """Reference gradients by nested loops: ``dout (N, F, OH, OW)`` -> ``(dx, dW, db)``
    with the shapes of ``x``, ``W`` and ``(F,)``."""
    n, c, h, w = x.shape
    f, _, kh, kw = W.shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = dout.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    for s in range(n):
        for k in range(f):
            for r in range(oh):
                for q in range(ow):
                    rows, cols = slice(r * sh, r * sh + kh), slice(q * sw, q * sw + kw)
                    dW[k] += dout[s, k, r, q] * xp[s, :, rows, cols]
                    dxp[s, :, rows, cols] += dout[s, k, r, q] * W[k]
    db = dout.sum(axis=(0, 2, 3))
    return dxp[:, :, ph : ph + h, pw : pw + w], dW, db
