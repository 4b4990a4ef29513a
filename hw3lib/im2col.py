"""Convolution as a matrix product: im2col, its adjoint col2im, and the naive loop reference.

Layout conventions (PyTorch's): images ``x`` are ``(N, C, H, W)``, kernels ``W`` are
``(F, C, kh, kw)``. ``im2col`` turns every receptive field into one *column* of a matrix
``cols`` of shape ``(C * kh * kw, N * OH * OW)``; the row order is ``(c, i, j)``, so that
``W.reshape(F, -1) @ cols`` is the convolution, and the column order is ``(n, oh, ow)``.
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


def im2col(x, kernel_h, kernel_w, stride=1, padding=0):
    """Unfold ``x (N, C, H, W)`` into ``cols (C * kernel_h * kernel_w, N * OH * OW)``.

    Column ``(n * OH + oh) * OW + ow`` holds the receptive field of output pixel ``(oh, ow)``
    of image ``n``, flattened in ``(c, i, j)`` order.
    """
    _check_image(x)
    n, c, h, w = x.shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = conv_output_size((h, w), (kernel_h, kernel_w), (sh, sw), (ph, pw))
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(x, (kernel_h, kernel_w), axis=(2, 3))
    windows = windows[:, :, : sh * oh : sh, : sw * ow : sw]  # (N, C, OH, OW, kh, kw)
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(c * kernel_h * kernel_w, n * oh * ow)


def col2im(cols, x_shape, kernel_h, kernel_w, stride=1, padding=0):
    """The adjoint of :func:`im2col`: fold ``cols (C * kh * kw, N * OH * OW)`` back into
    ``(N, C, H, W)``, summing where receptive fields overlap.

    One strided slice addition per kernel offset ``(i, j)`` (``kh * kw`` of them), no
    ``np.add.at``. The result is stored channel-major (a transposed view of a
    ``(C, N, H, W)`` array), which keeps the additions contiguous.
    """
    n, c, h, w = x_shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = conv_output_size((h, w), (kernel_h, kernel_w), (sh, sw), (ph, pw))
    expected = (c * kernel_h * kernel_w, n * oh * ow)
    if cols.shape != expected:
        raise ValueError(f"cols has shape {cols.shape}, expected {expected} for x_shape {x_shape}")
    patches = cols.reshape(c, kernel_h, kernel_w, n, oh, ow)
    out = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            out[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += patches[:, i, j]
    return out[:, :, ph : ph + h, pw : pw + w].transpose(1, 0, 2, 3)


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
