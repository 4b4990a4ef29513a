"""im2col/col2im against the naive loops, and col2im as the exact adjoint of im2col."""
import inspect

import numpy as np
import pytest
from conftest import (CONV_SPLITS, anisotropic_config_id, anisotropic_configs, assert_adjoint,
                      assert_split, config_id, image_and_window, random_configs, split_conv)

from hw3lib import Conv2D, col2im, conv2d_naive, conv2d_naive_backward, im2col

CONFIGS = random_configs(24, seed=2)
ANISOTROPIC = anisotropic_configs(10, seed=3)  # (sh, sw) and (ph, pw) not equal


def make(cfg, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"]))
    layer = Conv2D(cfg["c"], cfg["f"], (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["padding"],
                   rng=seed, dtype=np.float64)
    return x, layer


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_im2col_conv_equals_naive_forward_and_backward(cfg):
    x, layer = make(cfg)
    W, b = layer.params["W"], layer.params["b"]
    out = layer.forward(x)
    ref = conv2d_naive(x, W, b, cfg["stride"], cfg["padding"])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dx = layer.backward(dout)
    dx_ref, dW_ref, db_ref = conv2d_naive_backward(dout, x, W, cfg["stride"], cfg["padding"])
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], dW_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], db_ref, rtol=1e-12, atol=1e-12)


def any_config_id(cfg):
    return (anisotropic_config_id if isinstance(cfg["stride"], tuple) else config_id)(cfg)


@pytest.mark.parametrize("cfg", CONFIGS + ANISOTROPIC, ids=any_config_id)
def test_col2im_is_the_adjoint_of_im2col(cfg):
    rng, x, window = image_and_window(cfg, seed=3)
    assert_adjoint(lambda x: im2col(x, *window), lambda c: col2im(c, x.shape, *window), x, rng)


@pytest.mark.parametrize("cfg", CONFIGS + ANISOTROPIC, ids=any_config_id)
def test_im2col_times_the_kernels_is_the_naive_convolution(cfg):
    """``W.reshape(F, -1) @ im2col(x)`` is the convolution, also with a stride and padding per
    axis: the rows' stride or padding used for the columns (or the reverse) went unseen, as
    the adjoint check above passes an im2col and col2im wrong alike."""
    rng, x, (kh, kw, stride, padding) = image_and_window(cfg, seed=4)
    W = rng.standard_normal((cfg["f"], cfg["c"], kh, kw))
    ref = conv2d_naive(x, W, np.zeros(cfg["f"]), stride, padding)
    n, f, oh, ow = ref.shape
    out = (W.reshape(f, -1) @ im2col(x, kh, kw, stride, padding)).reshape(f, n, oh, ow)
    np.testing.assert_allclose(out.transpose(1, 0, 2, 3), ref, rtol=1e-12, atol=1e-12)


def test_im2col_layout_on_a_hand_example():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    cols = im2col(x, 3, 3)
    assert cols.shape == (9, 4)
    np.testing.assert_array_equal(cols[:, 0], [0, 1, 2, 4, 5, 6, 8, 9, 10])
    np.testing.assert_array_equal(cols[:, 3], [5, 6, 7, 9, 10, 11, 13, 14, 15])
    # padding 1, stride 2: the first field is the top-left corner with a zero border
    cols = im2col(x, 3, 3, stride=2, padding=1)
    assert cols.shape == (9, 4)
    np.testing.assert_array_equal(cols[:, 0], [0, 0, 0, 0, 0, 1, 0, 4, 5])


def test_im2col_entries_follow_notebook_03s_index_formula():
    """cols[(c kh + i) kw + j, (n OH + r) OW + q] = x_padded[n, c, r s + i, q s + j], the formula
    notebook 03 states, on several images and channels, a non-square kernel, stride and padding."""
    n, c, h, w, kh, kw, s, p = 2, 3, 7, 6, 3, 2, 2, 1
    x = np.random.default_rng(5).standard_normal((n, c, h, w))
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    cols = im2col(x, kh, kw, stride=s, padding=p)
    assert cols.shape == (c * kh * kw, n * oh * ow)
    for ni, ci, i, j, r, q in np.ndindex(n, c, kh, kw, oh, ow):
        assert cols[(ci * kh + i) * kw + j, (ni * oh + r) * ow + q] == xp[ni, ci, r * s + i, q * s + j]


def test_col2im_counts_overlaps():
    ones = np.ones((9, 4))
    counts = col2im(ones, (1, 1, 4, 4), 3, 3)[0, 0]
    np.testing.assert_array_equal(counts, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_col2im_uses_no_add_at():
    # np.add.at (a ufunc method) cannot be patched, so read the source instead
    assert ".at(" not in inspect.getsource(col2im)


def test_kernel_larger_than_input_is_refused_clearly():
    with pytest.raises(ValueError, match="does not fit"):
        im2col(np.zeros((1, 1, 4, 4)), 5, 5)
    with pytest.raises(ValueError, match="stride"):
        im2col(np.zeros((1, 1, 4, 4)), 2, 2, stride=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        im2col(np.zeros((4, 4)), 2, 2)


def test_the_naive_loops_refuse_shapes_that_numpy_would_broadcast():
    """Notebook 02's worked example edited: a 3-channel W on the 1-channel x gave the 1-channel
    convolution with the channels' filters summed, a b of 2 values for 1 filter was cut short,
    and a gradient of the wrong shape met a NumPy broadcasting error inside the loops."""
    x, W, b = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), np.zeros(1)
    for args in ((x, np.zeros((1, 3, 3, 3)), b), (np.zeros((1, 2, 4, 4)), W, b), (x, W, np.zeros(2)),
                 (x, W, 1.0), (x, W[0, 0], b)):
        with pytest.raises(ValueError, match=r"do not agree: x is \(N, C, H, W\), W \(F, C, kh, kw\) "
                                             r"with x's C, b \(F,\)"):
            conv2d_naive(*args)
    with pytest.raises(ValueError, match="do not agree"):
        conv2d_naive_backward(np.zeros((1, 1, 2, 2)), x, np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"dout has shape \(1, 1, 2, 2\), but conv2d_naive\(x, W, b, "
                                         r"stride=2, padding=0\) gives \(1, 1, 1, 1\)"):
        conv2d_naive_backward(np.zeros((1, 1, 2, 2)), x, W, stride=2)


def test_the_reference_functions_refuse_lists_and_a_shape_of_another_form_naming_them():
    """Each failed inside: on .ndim or .shape of a list, in unpacking a 3-value x_shape, or on
    subscripting b=None."""
    x, W, b = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), np.zeros(1)
    cols = im2col(x, 3, 3)
    for call, match in (
            (lambda: im2col(x.tolist(), 3, 3), r"x must be a NumPy array of images \(N, C, H, W\), got a list"),
            (lambda: col2im(cols, (1, 4, 4), 3, 3), r"x_shape must be the images' shape \(N, C, H, W\).*got \(1, 4, 4\)"),
            (lambda: col2im(cols, x, 3, 3), r"x_shape must be .*as x.shape"),
            (lambda: col2im(cols.tolist(), x.shape, 3, 3), r"cols must be a NumPy array.*got a list"),
            (lambda: conv2d_naive(x.tolist(), W, b), r"x must be a NumPy array"),
            (lambda: conv2d_naive(x, W.tolist(), b), r"W must be a NumPy array \(F, C, kh, kw\), got a list"),
            (lambda: conv2d_naive(x, W, None), r"b None do not agree"),
            (lambda: conv2d_naive_backward(np.zeros((1, 1, 2, 2)).tolist(), x, W),
             r"dout must be a NumPy array \(1, 1, 2, 2\), got a list")):
        with pytest.raises(ValueError, match=match):
            call()
    np.testing.assert_array_equal(col2im(cols, list(x.shape), 3, 3), col2im(cols, x.shape, 3, 3))


def check_split_conv_against_the_naive_loops(cfg, split, monkeypatch):
    x, layer = make(cfg)
    if split != "whole":
        split_conv(split, monkeypatch, layer, x.shape)
    W, b = layer.params["W"], layer.params["b"]
    out = layer.forward(x)
    if split != "whole":
        assert_split(split, layer, out)
    np.testing.assert_allclose(out, conv2d_naive(x, W, b, cfg["stride"], cfg["padding"]),
                               rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dx = layer.backward(dout)
    dx_ref, dW_ref, db_ref = conv2d_naive_backward(dout, x, W, cfg["stride"], cfg["padding"])
    for ours, ref in ((dx, dx_ref), (layer.grads["W"], dW_ref), (layer.grads["b"], db_ref)):
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("split", CONV_SPLITS)
@pytest.mark.parametrize("cfg", CONFIGS[:8], ids=config_id)
def test_conv_in_blocks_and_bands_equals_the_naive_loops(cfg, split, monkeypatch):
    check_split_conv_against_the_naive_loops(cfg, split, monkeypatch)


@pytest.mark.parametrize("split", ["whole", *CONV_SPLITS])
@pytest.mark.parametrize("cfg", ANISOTROPIC, ids=anisotropic_config_id)
def test_conv_with_a_stride_and_padding_per_axis_equals_the_naive_loops(cfg, split, monkeypatch):
    """random_configs draws one stride and one padding for both axes, so an axis's value used
    for the other (the rows' stride for the columns, say) went unseen."""
    check_split_conv_against_the_naive_loops(cfg, split, monkeypatch)


@pytest.mark.parametrize("split", ["whole", *CONV_SPLITS])
@pytest.mark.parametrize("cfg", CONFIGS[8:12] + ANISOTROPIC[:2],
                         ids=lambda cfg: (anisotropic_config_id if isinstance(cfg["stride"], tuple)
                                          else config_id)(cfg))
def test_conv_in_float32_equals_the_naive_loops_up_to_float32_rounding(cfg, split, monkeypatch):
    """float32, the dtype training runs in, in every split: against the loops in float64 on the
    same (float32) numbers, within 3e-6 of the largest value (test_torch_oracle says why)."""
    x = make(cfg)[0].astype(np.float32)
    layer = Conv2D(cfg["c"], cfg["f"], (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["padding"], rng=0,
                   algorithm="im2col")
    if split != "whole":
        split_conv(split, monkeypatch, layer, x.shape)
    out = layer.forward(x)
    if split != "whole":
        assert_split(split, layer, out)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    dx = layer.backward(dout)
    W, b = (layer.params[k].astype(np.float64) for k in "Wb")
    x64, dout64 = x.astype(np.float64), dout.astype(np.float64)
    ref = conv2d_naive(x64, W, b, cfg["stride"], cfg["padding"])
    refs = conv2d_naive_backward(dout64, x64, W, cfg["stride"], cfg["padding"])
    for ours, exact in zip((out, dx, layer.grads["W"], layer.grads["b"]), (ref, *refs)):
        assert ours.dtype == np.float32
        assert np.abs(ours - exact).max() <= 3e-6 * np.abs(exact).max()


def test_the_naive_backward_takes_integer_images_as_the_forward_does():
    """conv2d_naive takes uint8 images (its output is float), but its backward summed the
    gradient into an array of x's dtype: 'Cannot cast ufunc add output from float64 to uint8';
    and a float32 x took a float64 gradient rounded to float32."""
    rng = np.random.default_rng(0)
    x, W = rng.integers(0, 256, (2, 1, 5, 4)).astype(np.uint8), rng.standard_normal((2, 1, 3, 3))
    dout = rng.standard_normal(conv2d_naive(x, W, np.zeros(2), padding=1).shape)
    dx, dW, db = conv2d_naive_backward(dout, x, W, padding=1)
    exact = conv2d_naive_backward(dout, x.astype(np.float64), W, padding=1)
    for got, want in zip((dx, dW, db), exact):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)
    assert conv2d_naive_backward(dout, x.astype(np.float32), W, padding=1)[0].dtype == np.float64


@pytest.mark.parametrize("blas, views", [
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "SkylakeX"}], True),
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "SapphireRapids"}], True),
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "Haswell"}], False),
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": None}], False),
    ([{"user_api": "blas", "internal_api": "mkl"}], False),
    ([{"user_api": "openmp", "internal_api": "openmp"}], False),
    ([], False),
])
def test_the_weight_gradient_reads_views_only_where_openblas_runs_its_small_matrix_kernels(
        blas, views, monkeypatch):
    """"auto" takes views of the input with OpenBLAS's AVX-512 kernels, which multiply small
    matrices without packing them, and windows with any other BLAS (with OpenBLAS's Haswell
    kernels views took 1.2-1.3 times the windows' time); the two settings force either."""
    from hw3lib import conv

    monkeypatch.setattr(conv, "threadpool_info", lambda: blas)
    monkeypatch.setattr(conv, "_numpy_blas_name", lambda: "scipy-openblas")
    conv._blas_has_small_kernels.cache_clear()
    try:
        assert conv.weight_gradient_from_views() is views
        layer = Conv2D(2, 3, 3, rng=0, algorithm="im2col")
        layer.forward(np.ones((2, 2, 6, 6), dtype=np.float32))
        assert layer.views is views
        for setting in ("views", "windows"):
            monkeypatch.setattr(conv, "WEIGHT_GRADIENT", setting)
            assert conv.weight_gradient_from_views() is (setting == "views")
        monkeypatch.setattr(conv, "WEIGHT_GRADIENT", "view")
        words = r"WEIGHT_GRADIENT must be one of \('auto', 'views', 'windows'\), got 'view'"
        with pytest.raises(ValueError, match=words):
            conv.weight_gradient_from_views()
    finally:
        conv._blas_has_small_kernels.cache_clear()


def test_another_librarys_openblas_beside_a_numpy_on_another_blas_does_not_choose_views(monkeypatch):
    """threadpoolctl reports every BLAS loaded in the process: an OpenBLAS on AVX-512 kernels
    that another library loaded says nothing of the products of a NumPy built on MKL."""
    from hw3lib import conv

    skylakex = [{"user_api": "blas", "internal_api": "openblas", "architecture": "SkylakeX"}]
    monkeypatch.setattr(conv, "threadpool_info", lambda: skylakex)
    try:
        for name, views in (("mkl", False), ("accelerate", False), ("", False), ("openblas", True)):
            monkeypatch.setattr(conv, "_numpy_blas_name", lambda: name)
            conv._blas_has_small_kernels.cache_clear()
            assert conv.weight_gradient_from_views() is views, name
    finally:
        conv._blas_has_small_kernels.cache_clear()
    assert "openblas" in conv._numpy_blas_name()  # this NumPy's wheel: scipy-openblas
