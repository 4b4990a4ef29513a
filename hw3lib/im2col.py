"""Convolution as a matrix product: im2col, its adjoint col2im, and the naive loop reference.

Layout conventions (PyTorch's): images ``x`` are ``(N, C, H, W)``, kernels ``W`` are
``(F, C, kh, kw)``. ``im2col`` turns every receptive field into one *column* of a matrix
``cols`` of shape ``(C * kh * kw, N * OH * OW)``; the row order is ``(c, i, j)``, so that
``W.reshape(F, -1) @ cols`` is the convolution, and the column order is ``(n, oh, ow)``.

``Conv2D`` does not build that matrix. :func:`padded_rows` lays the input out image row by
image row with the batch innermost, ``(Hp, C, Wp, N)``, and :func:`width_windows` copies its
width windows once, ``(Hp, C * kw, OW * N)``; the im2col matrix of output row ``oh`` is then
``kh`` consecutive image rows of it, a contiguous block, and :func:`stack_rows` stacks those
blocks as one view ``(OH, kh * C * kw, OW * N)``. Every product of the layer becomes one
stacked matrix product over output rows, each as large as the whole batch; the full matrix,
``kh`` times larger, exists only when ``im2col`` is asked for it. The adjoints
:func:`unstack_rows` (or :func:`unstack_product`, which folds a product without building it)
and :func:`fold_windows` carry gradients back. :func:`unfold_width` and :func:`fold_width`
are the same steps for ``(N, C, H, W)`` arrays. :func:`kernel_columns` gives the rows of the
im2col matrix that each kernel column reads as views of the padded rows (over
:func:`stride_phases` for a stride along the width), without the windows' copies.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .checks import check_array, is_int

# images and image rows moved at a time when the batch goes innermost (padded_rows), so that
# the reads stay in the cache: from (N, C, H, W) memory, 2-3x faster than all at once (at
# 128x3x128x128: 6 ms, not 18 ms); 8 images 16 rows at a time, against 16 images all rows, on
# the faster AVX-512 EPYC (inside the training loop): 1.0 ms against 1.4 at 3x128x128, batch
# 32, 0.06 against 0.07 at 3x32x32, 4.9-5.2 against 5.3-5.4 at batch 128 (8 images all rows:
# 6.3-6.5, a destination line written in two passes far apart)
BATCH_BLOCK = 8
ROW_BLOCK = 16


def pair(value, name="value"):
    """``(a, b)`` as Python ints for an int or a pair of ints (NumPy's included, no bools);
    ValueError naming ``name`` otherwise. Their range is :func:`check_window`'s."""
    if is_int(value):
        value = (int(value), int(value))
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if not all(is_int(v) for v in (a, b)):
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
    check_array("x", x, "of images (N, C, H, W)")
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got shape {x.shape}")


def padded_rows(x, padding=0):
    """``x (N, C, H, W)`` zero-padded and laid out image row by image row, the batch innermost:
    ``(Hp, C, Wp, N)``, the form :func:`width_windows` reads. No copy when ``x`` already has
    that memory layout (a ``Conv2D`` or pooling output) and there is no padding."""
    _check_image(x)
    n, c, h, w = x.shape
    ph, pw = pair(padding, "padding")
    x_rows = x.transpose(2, 1, 3, 0)
    if not (ph or pw) and x_rows.flags.c_contiguous:
        return x_rows
    rows = (np.zeros if ph or pw else np.empty)((h + 2 * ph, c, w + 2 * pw, n), dtype=x.dtype)
    for r in range(0, h, ROW_BLOCK):
        to = slice(ph + r, ph + min(h, r + ROW_BLOCK))
        for i in range(0, n, BATCH_BLOCK):
            block = x_rows[r : r + ROW_BLOCK, ..., i : i + BATCH_BLOCK]
            rows[to, :, pw : pw + w, i : i + BATCH_BLOCK] = block
    return rows


def _window_span(rows_shape, kernel_w, stride_w, columns):
    """``(first, count)`` of the output columns that the slice ``columns`` (None: all) selects."""
    ow = (rows_shape[2] - kernel_w) // stride_w + 1
    first, stop, _ = (columns or slice(None)).indices(ow)
    return first, stop - first


def width_windows(rows, kernel_w, stride_w=1, columns=None, buffer=None):
    """The width windows of padded rows ``(Hp, C, Wp, N)`` (:func:`padded_rows`) for the output
    columns ``columns`` (a slice; None: all): ``X (Hp, C * kw, OWb * N)`` with
    ``X[h, c * kw + j, ow * N + n] = rows[h, c, (columns.start + ow) * sw + j, n]``.

    Each image row ``h`` is one contiguous ``(C * kw, OWb * N)`` matrix, so the ``kh`` rows that
    an output row reads are one contiguous block of ``X`` (see :func:`stack_rows`). ``X`` holds
    ``kw`` copies of the rows it reads; with the batch innermost, each copy is of runs of
    ``OWb * N`` contiguous numbers (stride 1), not of short image rows. ``X`` is written into
    ``buffer`` (a flat array of at least ``X.size`` numbers) when one is given, else is new."""
    hp, c, _, n = rows.shape
    first, count = _window_span(rows.shape, kernel_w, stride_w, columns)
    span = rows[:, :, first * stride_w : (first + count - 1) * stride_w + kernel_w]
    windows = sliding_window_view(span, kernel_w, axis=2)[:, :, ::stride_w]  # (Hp, C, OWb, N, kw)
    windows = windows.transpose(0, 1, 4, 2, 3)  # (Hp, C, kw, OWb, N)
    if buffer is None:
        X = np.ascontiguousarray(windows)
    else:
        X = buffer[: windows.size].reshape(windows.shape)
        np.copyto(X, windows)
    return X.reshape(hp, c * kernel_w, count * n)


def stride_phases(rows, stride_w):
    """The padded rows ``(Hp, C, Wp, N)`` with their columns dealt into ``sw`` stride phases,
    ``(Hp, C, sw, ceil(Wp / sw), N)``: column ``w`` of phase ``p`` is column ``w * sw + p`` of
    the rows (zeros past ``Wp``). A view for stride 1, else one copy of the rows (not ``kw``).
    In a phase, the columns that a kernel column reads for consecutive output columns are
    consecutive, so what it reads is a view (:func:`kernel_columns`)."""
    hp, c, wp, n = rows.shape
    if stride_w == 1:
        return np.ascontiguousarray(rows).reshape(hp, c, 1, wp, n)
    phases = np.zeros((hp, c, stride_w, -(-wp // stride_w), n), dtype=rows.dtype)
    for p in range(min(stride_w, wp)):
        column = rows[:, :, p::stride_w]
        phases[:, :, p, : column.shape[2]] = column
    return phases


def kernel_columns(phases, padded_w, kernel, stride=1, columns=None):
    """What each kernel column reads for the output columns ``columns`` (a slice; None: all),
    as read-only views of ``phases`` (:func:`stride_phases` of rows ``padded_w`` wide): a list
    of ``(js, V)``, ``js`` the slice of the kernel columns in one stride phase (all ``kw`` for
    stride 1) and ``V (len(js), OH, kh * C, OWb * N)`` with, for ``j = js[q]``,
    ``V[q, oh, i * C + c, ow * N + n] = rows[oh * sh + i, c, (first + ow) * sw + j, n]``,
    ``first`` the first column of ``columns``.

    Each ``V[q, oh]`` is ``kh * C`` runs of ``OWb * N`` contiguous numbers, equally spaced: a
    matrix BLAS reads in place. Together they are the rows ``(i, c, j)`` of
    :func:`stack_rows` over :func:`width_windows`, without its ``kw`` copies of the input."""
    hp, c, sw, wq, n = phases.shape
    (kh, kw), (sh, stride_w) = pair(kernel, "kernel_size"), pair(stride, "stride")
    if kh > hp or kw > padded_w or min(kh, kw, sh) < 1:  # conv_output_size's check, 8x faster
        conv_output_size((hp, padded_w), (kh, kw), (sh, stride_w))  # raises, saying why
    if not phases.flags.c_contiguous:  # the views' strides are those of C order (below)
        raise ValueError(f"phases {phases.shape} must be C-contiguous, as stride_phases returns "
                         "them: pass its array itself, not a view of it")
    if stride_w != sw:
        raise ValueError(f"phases {phases.shape} are dealt into {sw} stride phases, but the stride "
                         f"along the width is {stride_w}: pass stride_phases(rows, {stride_w})")
    if -(-padded_w // sw) != wq:
        raise ValueError(f"phases {phases.shape} are not the stride phases of rows {padded_w} wide "
                         f"at stride {sw}: pass the padded rows' width, rows.shape[2]")
    oh, (first, count) = (hp - kh) // sh + 1, _window_span((hp, c, padded_w, n), kw, sw, columns)
    # the strides of C order, from the shape: NumPy's own may be anything along an axis of 1
    s_n = phases.itemsize
    s_w, s_c = n * s_n, sw * wq * n * s_n
    s_h = c * s_c
    views = []
    for p in range(min(sw, kw)):
        js = slice(p, kw, sw)  # kernel column p + q * sw reads column first + ow + q of phase p
        # an ndarray over phases' memory (4x faster than as_strided; it refuses views past its end)
        V = np.ndarray((len(range(p, kw, sw)), oh, kh * c, count * n), phases.dtype, phases,
                       offset=p * wq * s_w + first * s_w, strides=(s_w, sh * s_h, s_c, s_n))
        V.flags.writeable = False
        views.append((js, V))
    return views


def fold_windows(X, rows, kernel_w, stride_w=1, columns=None):
    """The adjoint of :func:`width_windows`: adds ``X (Hp, C * kw, OWb * N)`` onto the padded
    rows ``rows (Hp, C, Wp, N)`` it was read from, in place (``kw`` strided slice additions,
    no ``np.add.at``), and returns ``rows``."""
    hp, c, _, n = rows.shape
    first, count = _window_span(rows.shape, kernel_w, stride_w, columns)
    X = X.reshape(hp, c, kernel_w, count, n)
    for j in range(kernel_w):
        start = first * stride_w + j
        rows[:, :, start : start + (count - 1) * stride_w + 1 : stride_w] += X[:, :, j]
    return rows


def unfold_width(x, kernel_w, stride_w=1, padding=0):
    """The width windows of ``x (N, C, H, W)``: ``X (Hp, C * kw, OW * N)``,
    ``X[h, c * kw + j, ow * N + n] = x_padded[n, c, h, ow * sw + j]`` (:func:`width_windows`
    of :func:`padded_rows`); ``padding`` is ``(ph, pw)`` or an int."""
    rows = padded_rows(x, padding)
    conv_output_size(rows.shape[::2], (1, kernel_w), (1, stride_w))  # checks the fit
    return width_windows(rows, kernel_w, stride_w)


def fold_width(X, x_shape, kernel_w, stride_w=1, padding=0):
    """The adjoint of :func:`unfold_width`: ``X (Hp, C * kw, OW * N)`` -> ``(N, C, H, W)``,
    summing where windows overlap; the result is a view whose memory is laid out ``(H, C, W, N)``."""
    n, c, h, w = x_shape
    ph, pw = pair(padding, "padding")
    rows = fold_windows(X, np.zeros((h + 2 * ph, c, w + 2 * pw, n), dtype=X.dtype), kernel_w, stride_w)
    return rows[ph : ph + h, :, pw : pw + w].transpose(3, 1, 0, 2)


def stack_rows(X, kernel_h, stride_h=1):
    """The im2col matrix of every output row, as one read-only view of ``X (Hp, K, M)`` from
    :func:`width_windows`: ``(OH, kh * K, M)``, element ``oh`` being the image rows
    ``oh * sh ... oh * sh + kh - 1`` of ``X``, a contiguous block (rows ``(i, c, j)``,
    columns ``(ow, n)``). Nothing is copied: stacked, they are the ``kh`` times larger im2col."""
    hp, k, m = X.shape
    oh = (hp - kernel_h) // stride_h + 1
    return np.lib.stride_tricks.as_strided(X, (oh, kernel_h * k, m),
                                           (stride_h * X.strides[0], *X.strides[1:]),
                                           writeable=False)


def unstack_rows(S, padded_h, kernel_h, stride_h=1):
    """The adjoint of :func:`stack_rows`: ``S (OH, kh * K, M)`` -> ``(Hp, K, M)``, adding each
    output row's block back onto the image rows it was read from (``kh`` strided additions)."""
    oh, _, m = S.shape
    S = S.reshape(oh, kernel_h, -1, m)
    out = np.zeros((padded_h, S.shape[2], m), dtype=S.dtype)
    for i in range(kernel_h):
        out[i : i + stride_h * oh : stride_h] += S[:, i]
    return out


def unstack_product(W, G, padded_h, stride_h=1):
    """``unstack_rows(W.T @ G)`` without the ``kh`` times larger ``W.T @ G``: for kernel rows
    ``W (F, kh, K)`` and ``G (OH, F, M)``, returns ``out (Hp, K, M)``
    with ``out[h] = sum over (oh, i) with oh * sh + i = h of W[:, i].T @ G[oh]``.

    Image row ``h`` is one product over the output rows that read it, a block of ``G``, so
    only the products that are needed are done: no zeros are multiplied. With stride 1 the
    rows read by all ``kh`` kernel rows (``kh - 1`` to ``OH - 1``) are one stacked product
    over windows of ``G`` (:func:`stack_rows` again); only the ``2 (kh - 1)`` border rows
    are done one by one."""
    f, kh, k = W.shape
    oh, _, m = G.shape
    out = np.empty((padded_h, k, m), dtype=np.result_type(W, G))
    Wr = np.ascontiguousarray(W[:, ::-1].transpose(2, 1, 0))  # (K, kh, F), kernel rows reversed
    inner = range(kh - 1, oh) if stride_h == 1 else range(0)
    if inner:  # G[h - kh + 1 : h + 1] meets kernel rows kh - 1, ..., 0
        np.matmul(Wr.reshape(k, -1), stack_rows(G, kh), out=out[kh - 1 : oh])
    for h in range(padded_h):
        if h in inner:
            continue
        first, last = max(0, -(-(h - kh + 1) // stride_h)), min(oh - 1, h // stride_h)
        if first > last:
            out[h] = 0  # a row no window reads (stride > kernel)
            continue
        # output rows first..last read h with kernel rows i, i - sh, ...: reversed, a slice of Wr
        r = kh - 1 - (h - first * stride_h)
        rows = Wr[:, r : r + stride_h * (last - first) + 1 : stride_h]  # (K, m, F), a view
        np.matmul(rows.reshape(k, -1), G[first : last + 1].reshape(-1, m), out=out[h])  # (K, M)
    return out


def im2col(x, kernel_h, kernel_w, stride=1, padding=0):
    """Unfold ``x (N, C, H, W)`` into ``cols (C * kernel_h * kernel_w, N * OH * OW)``.

    Column ``(n * OH + oh) * OW + ow`` holds the receptive field of output pixel ``(oh, ow)``
    of image ``n``, flattened in ``(c, i, j)`` order: the output rows of :func:`stack_rows`,
    rearranged.
    """
    _check_image(x)
    n, c = x.shape[:2]
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    conv_output_size(x.shape[2:], (kernel_h, kernel_w), (sh, sw), (ph, pw))  # checks the fit
    S = stack_rows(unfold_width(x, kernel_w, sw, (ph, pw)), kernel_h, sh)  # (OH, kh*C*kw, OW*N)
    oh = S.shape[0]
    S = S.reshape(oh, kernel_h, c, kernel_w, -1, n).transpose(2, 1, 3, 5, 0, 4)  # (C,kh,kw,N,OH,OW)
    return S.reshape(c * kernel_h * kernel_w, -1)


def col2im(cols, x_shape, kernel_h, kernel_w, stride=1, padding=0):
    """The adjoint of :func:`im2col`: fold ``cols (C * kh * kw, N * OH * OW)`` back into
    ``(N, C, H, W)``, summing where receptive fields overlap (by :func:`unstack_rows` and
    :func:`fold_width`: strided slice additions, no ``np.add.at``)."""
    if not (isinstance(x_shape, (tuple, list)) and len(x_shape) == 4 and all(is_int(v) for v in x_shape)):
        raise ValueError(f"x_shape must be the images' shape (N, C, H, W), a tuple of 4 ints such "
                         f"as x.shape, got {x_shape!r}")
    check_array("cols", cols, "(C * kh * kw, N * OH * OW), as im2col returns it")
    n, c, h, w = x_shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = conv_output_size((h, w), (kernel_h, kernel_w), (sh, sw), (ph, pw))
    expected = (c * kernel_h * kernel_w, n * oh * ow)
    if cols.shape != expected:
        raise ValueError(f"cols has shape {cols.shape}, expected {expected} for x_shape {x_shape}")
    S = cols.reshape(c, kernel_h, kernel_w, n, oh, ow).transpose(4, 1, 0, 2, 5, 3)  # (OH,kh,C,kw,OW,N)
    X = unstack_rows(S.reshape(oh, kernel_h * c * kernel_w, ow * n), h + 2 * ph, kernel_h, sh)
    return fold_width(X, x_shape, kernel_w, sw, (ph, pw))


def _check_conv(x, W, b=False):
    """ValueError unless ``x (N, C, H, W)``, ``W (F, C, kh, kw)`` and ``b (F,)`` (False: none
    to check) agree: the loops would broadcast a 1-channel ``x`` against a 3-channel ``W`` (or
    the reverse) and skip the extra values of a longer ``b``, giving a wrong result rather
    than an error."""
    _check_image(x)
    check_array("W", W, "(F, C, kh, kw)")
    if W.ndim != 4 or W.shape[1] != x.shape[1] or (b is not False and np.shape(b) != W.shape[:1]):
        got = "-" if b is False else "None" if b is None else np.shape(b)
        raise ValueError(f"x {x.shape}, W {W.shape} and b {got} do not "
                         f"agree: x is (N, C, H, W), W (F, C, kh, kw) with x's C, b (F,)")


def conv2d_naive(x, W, b, stride=1, padding=0):
    """Reference convolution by nested loops. ``x (N, C, H, W)``, ``W (F, C, kh, kw)``,
    ``b (F,)`` -> ``(N, F, OH, OW)``."""
    _check_conv(x, W, b)
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
    with the shapes of ``x``, ``W`` and ``(F,)``; ``dout`` must have the output's shape."""
    _check_conv(x, W)
    n, c, h, w = x.shape
    f, _, kh, kw = W.shape
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    oh, ow = conv_output_size((h, w), (kh, kw), (sh, sw), (ph, pw))
    check_array("dout", dout, f"{(n, f, oh, ow)}")
    if dout.shape != (n, f, oh, ow):
        raise ValueError(f"dout has shape {np.shape(dout)}, but conv2d_naive(x, W, b, stride={stride}, "
                         f"padding={padding}) gives {(n, f, oh, ow)}")
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    # in the dtype of the products summed, not x's or W's: uint8 images could not hold them
    dtype = np.result_type(dout, x, W)
    dxp = np.zeros(xp.shape, dtype=dtype)
    dW = np.zeros(W.shape, dtype=dtype)
    for s in range(n):
        for k in range(f):
            for r in range(oh):
                for q in range(ow):
                    rows, cols = slice(r * sh, r * sh + kh), slice(q * sw, q * sw + kw)
                    dW[k] += dout[s, k, r, q] * xp[s, :, rows, cols]
                    dxp[s, :, rows, cols] += dout[s, k, r, q] * W[k]
    db = dout.sum(axis=(0, 2, 3))
    return dxp[:, :, ph : ph + h, pw : pw + w], dW, db
