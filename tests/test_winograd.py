"""Winograd's F(4x4, r x r): its transforms, their adjoints, and Conv2D(algorithm="winograd")
against the naive loops (the finite differences are in test_gradcheck, PyTorch in
test_torch_oracle)."""
import numpy as np
import pytest
from conftest import (WINOGRAD_PADDING_PER_AXIS, assert_adjoint, split_winograd,
                      winograd_config_id as config_id, winograd_configs)

from hw3lib import Conv2D, conv, conv2d_naive, conv2d_naive_backward, winograd
from hw3lib.im2col import padded_rows


CONFIGS = winograd_configs(16, seed=4)


@pytest.mark.parametrize("m", [2, winograd.TILE])
@pytest.mark.parametrize("r", winograd.KERNELS)
def test_the_1d_transforms_compute_m_outputs_of_a_correlation(r, m):
    AT, G, BT = winograd.transforms_1d(r, m)
    t = m + r - 1
    assert AT.shape == (m, t) and G.shape == (t, r) and BT.shape == (t, t)
    rng = np.random.default_rng(r)
    for _ in range(5):
        d, g = rng.standard_normal(t), rng.standard_normal(r)
        np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), np.correlate(d, g, "valid"),
                                   rtol=1e-12, atol=1e-12)


def test_the_transforms_of_a_3x3_kernel_are_the_published_ones():
    # Lavin and Gray (2016), F(2, 3), up to the order of the points and the signs of rows
    AT, G, BT = winograd.transforms_1d(3, m=2)
    np.testing.assert_array_equal(AT, [[1, 1, 1, 0], [0, 1, -1, 1]])
    np.testing.assert_allclose(np.abs(BT), [[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 1]],
                               atol=1e-15)
    np.testing.assert_allclose(np.abs(G), [[1, 0, 0], [.5, .5, .5], [.5, .5, .5], [0, 0, 1]],
                               atol=1e-15)


@pytest.mark.parametrize("r", winograd.KERNELS)
def test_the_transforms_hold_no_rounding_noise(r):
    # a zero computed as 1e-17 becomes 1e-34 in the Kronecker square, and its products with
    # small gradients subnormal numbers, which Intel CPUs compute many times slower
    for M in winograd.transforms(r, np.float32):
        assert np.abs(M[M != 0]).min() > 1e-6


def test_kernels_without_transforms_are_refused():
    with pytest.raises(ValueError, match="4x4 tiles are built for kernels of 2-5, got 6"):
        winograd.transforms_1d(6)
    with pytest.raises(ValueError, match="got 1"):
        winograd.transforms_1d(1)


@pytest.mark.parametrize("cfg", CONFIGS[:6], ids=config_id)
def test_each_transform_has_its_adjoint(cfg):
    rng = np.random.default_rng(5)
    r, n = cfg["r"], cfg["n"]
    x = rng.standard_normal((n, cfg["c"], cfg["h"], cfg["w"]))
    rows = padded_rows(x, cfg["padding"])
    hp, _, wp, _ = rows.shape
    tiled = winograd.tiled_shape(rows.shape, r)
    assert tiled[1::2] == rows.shape[1::2] and hp <= tiled[0] < hp + winograd.TILE
    assert wp <= tiled[2] < wp + winograd.TILE
    assert_adjoint(lambda rows: winograd.input_transform(rows, r),
                   lambda dV: winograd.input_transform_adjoint(dV, r, np.zeros(tiled))[:hp, :, :wp],
                   rows, rng)
    W = rng.standard_normal((cfg["f"], cfg["c"], r, r))
    assert_adjoint(winograd.kernel_transform,
                   lambda dU: winograd.kernel_transform_adjoint(dU, r), W, rng)
    out_hw = (rows.shape[0] - r + 1, rows.shape[2] - r + 1)
    t, tiles = winograd.TILE + r - 1, np.prod(winograd.tile_grid(out_hw))
    M = rng.standard_normal((t * t, cfg["f"], tiles * n))
    out = np.empty((out_hw[0], cfg["f"], out_hw[1] * n))
    assert_adjoint(lambda M: winograd.output_transform(M, r, out, n).copy(),
                   lambda G: winograd.output_transform_adjoint(G, r, n), M, rng)


def test_the_input_transform_adjoint_adds_to_what_is_there():
    rng = np.random.default_rng(7)
    rows_shape, r = (13, 3, 11, 2), 5  # outputs 9x7: the last tiles pass the edge
    tiled = winograd.tiled_shape(rows_shape, r)
    assert tiled == (4 * 3 + 4, 3, 4 * 2 + 4, 2)
    dV = rng.standard_normal(winograd.input_transform(np.zeros(rows_shape), r).shape)
    before = rng.standard_normal(tiled)
    drows = before.copy()
    assert winograd.input_transform_adjoint(dV, r, drows) is drows
    alone = winograd.input_transform_adjoint(dV, r, np.zeros(tiled))
    np.testing.assert_allclose(drows, before + alone, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("split", ["whole", "one_tile_row_kept", "one_tile_row_rebuilt"])
@pytest.mark.parametrize("cfg", CONFIGS + WINOGRAD_PADDING_PER_AXIS, ids=config_id)
def test_winograd_conv_equals_the_naive_loops(cfg, split, monkeypatch):
    if split != "whole":
        split_winograd(split, monkeypatch)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"]))
    layer = Conv2D(cfg["c"], cfg["f"], cfg["r"], padding=cfg["padding"], rng=0, dtype=np.float64,
                   algorithm="winograd")
    W, b, p = layer.params["W"], layer.params["b"], cfg["padding"]
    out = layer.forward(x)
    tile_rows = -(-out.shape[2] // winograd.TILE)
    assert len(layer.blocks) == (tile_rows if split != "whole" else 1)
    assert len(layer.V) == (0 if split == "one_tile_row_rebuilt" else len(layer.blocks))
    np.testing.assert_allclose(out, conv2d_naive(x, W, b, 1, p), rtol=1e-11, atol=1e-11)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    dx_ref, dW_ref, db_ref = conv2d_naive_backward(dout, x, W, 1, p)
    for ours, ref in ((dx, dx_ref), (layer.grads["W"], dW_ref), (layer.grads["b"], db_ref)):
        np.testing.assert_allclose(ours, ref, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("split", ["whole", "one_tile_row_kept", "one_tile_row_rebuilt"])
@pytest.mark.parametrize("cfg", CONFIGS[::4] + WINOGRAD_PADDING_PER_AXIS, ids=config_id)
def test_winograd_conv_in_float32_equals_the_naive_loops_up_to_float32_rounding(cfg, split,
                                                                                monkeypatch):
    """float32 (its transforms cast to float32) for every kernel and tile block: against the
    loops in float64 on the same (float32) numbers, within 2e-5 of the largest value."""
    if split != "whole":
        split_winograd(split, monkeypatch)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"])).astype(np.float32)
    layer = Conv2D(cfg["c"], cfg["f"], cfg["r"], padding=cfg["padding"], rng=0, algorithm="winograd")
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = layer.backward(dout)
    W, b, p = layer.params["W"].astype(np.float64), layer.params["b"].astype(np.float64), cfg["padding"]
    x64 = x.astype(np.float64)
    refs = (conv2d_naive(x64, W, b, 1, p), *conv2d_naive_backward(dout.astype(np.float64), x64, W, 1, p))
    for ours, exact in zip((out, dx, layer.grads["W"], layer.grads["b"]), refs):
        assert ours.dtype == np.float32
        assert np.abs(ours - exact).max() <= 2e-5 * np.abs(exact).max()


@pytest.mark.parametrize("channels, kernel", [((64, 128), 5), ((256, 64), 3)])
def test_in_float32_winograd_stays_within_2e_5_of_the_largest_value_and_im2col_within_1e_6(
        channels, kernel):
    """The accuracy that the module docstring and the README state, against float64."""
    (c, f), rng = channels, np.random.default_rng(7)
    x = rng.standard_normal((4, c, 14, 14)).astype(np.float32)
    exact = Conv2D(c, f, kernel, padding=1, rng=0, dtype=np.float64, algorithm="im2col")
    out = exact.forward(x.astype(np.float64))
    dout = rng.standard_normal(out.shape).astype(np.float32)
    expected = (out, exact.backward(dout.astype(np.float64)), exact.grads["W"])
    for algorithm, bound in (("winograd", 2e-5), ("im2col", 1e-6)):
        layer = Conv2D(c, f, kernel, padding=1, rng=0, algorithm=algorithm)
        got = (layer.forward(x), layer.backward(dout), layer.grads["W"])
        for a, b in zip(got, expected):
            assert a.dtype == np.float32
            assert np.abs(a - b).max() <= bound * np.abs(b).max(), algorithm


def test_auto_takes_winograd_only_for_wide_stride_1_square_kernels_of_3_to_5():
    wide = conv.WINOGRAD_MIN_CHANNELS  # a harmonic mean of the channel counts
    assert Conv2D(wide, wide, 5).algorithm == "winograd"
    assert Conv2D(wide, wide, 3, padding=1).algorithm == "winograd"
    assert Conv2D(64, 128, 5).algorithm == "winograd"  # harmonic mean 85
    assert Conv2D(32, 64, 5).algorithm == "winograd"  # 43
    assert Conv2D(16, 32, 5).algorithm == "im2col"  # 21
    assert Conv2D(wide - 1, wide, 5).algorithm == "im2col"
    assert Conv2D(6, 16, 5).algorithm == "im2col"  # the course's LeNet
    assert Conv2D(wide, wide, 2).algorithm == "im2col"
    assert Conv2D(wide, wide, 5, stride=2).algorithm == "im2col"
    assert Conv2D(wide, wide, (5, 3)).algorithm == "im2col"
    assert Conv2D(wide, wide, 7).algorithm == "im2col"
    assert Conv2D(wide, wide, 5, algorithm="im2col").algorithm == "im2col"
    assert Conv2D(1, 1, 2, algorithm="winograd").algorithm == "winograd"
    assert "algorithm='winograd'" in repr(Conv2D(wide, wide, 5))
    assert "algorithm" not in repr(Conv2D(1, 1, 5))


@pytest.mark.parametrize("kwargs,match", [
    (dict(stride=2), "needs stride 1"), (dict(kernel_size=(5, 3)), "square kernel"),
    (dict(kernel_size=7), "of 2-5, got kernel"), (dict(kernel_size=1), "use 'im2col'"),
])
def test_winograd_where_it_cannot_run_is_refused_clearly(kwargs, match):
    args = dict(in_channels=2, out_channels=3, kernel_size=5) | kwargs
    with pytest.raises(ValueError, match=match):
        Conv2D(**args, algorithm="winograd")


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="algorithm must be one of"):
        Conv2D(2, 3, 5, algorithm="fft")


def test_a_first_winograd_layer_skips_its_input_gradient_but_not_its_parameters():
    x = np.random.default_rng(9).standard_normal((2, 3, 9, 8))
    first, full = (Conv2D(3, 4, 3, padding=1, rng=0, dtype=np.float64, algorithm="winograd")
                   for _ in range(2))
    first.needs_input_grad = False
    dout = np.random.default_rng(10).standard_normal(first.forward(x).shape)
    full.forward(x)
    assert first.backward(dout) is None and full.backward(dout) is not None
    for key in ("W", "b"):
        np.testing.assert_allclose(first.grads[key], full.grads[key], rtol=1e-12, atol=1e-12)
