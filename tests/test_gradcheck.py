"""Finite differences in float64 for every layer, on set and on random geometries, and for the
whole LeNet5, also with its batch split over threads (relative error < 1e-6)."""
import numpy as np
import pytest
from conftest import (CONV_SPLITS, WINOGRAD_PADDING_PER_AXIS, anisotropic_config_id,
                      anisotropic_configs, assert_split, config_id, pool_config_id, pool_configs,
                      random_configs, split_conv, split_winograd, winograd_config_id,
                      winograd_configs)

from hw3lib import (AvgPool2D, Conv2D, CrossEntropyLoss, Dense, Flatten, LeNet5, MaxPool2D, ReLU,
                    Tanh, gradcheck, gradcheck_layer, numerical_gradient, relative_error)
from hw3lib import parallel
from hw3lib.parallel import SplitBatch

TOL = 1e-6
RNG = np.random.default_rng


def layers():
    yield "conv", Conv2D(3, 4, 3, rng=0, dtype=np.float64), (2, 3, 7, 6)
    yield "conv_stride_pad_rect", Conv2D(2, 3, (3, 2), stride=2, padding=1, rng=1, dtype=np.float64), (2, 2, 7, 8)
    # a stride and padding per axis; rows, then columns, that no window reads (stride > kernel)
    yield "conv_rows_stride_over_kernel", Conv2D(2, 3, (2, 3), stride=(3, 1), padding=(0, 2), rng=4,
                                                 dtype=np.float64), (2, 2, 11, 7)
    yield "conv_cols_stride_over_kernel", Conv2D(2, 3, (3, 1), stride=(1, 2), padding=(2, 0), rng=5,
                                                 dtype=np.float64), (2, 2, 7, 9)
    yield "conv_winograd_pad_odd", Conv2D(2, 3, 5, padding=1, rng=3, dtype=np.float64,
                                          algorithm="winograd"), (2, 2, 8, 7)
    yield "conv_winograd_pad_per_axis", Conv2D(2, 3, 4, padding=(2, 0), rng=6, dtype=np.float64,
                                               algorithm="winograd"), (2, 2, 9, 7)
    yield "maxpool", MaxPool2D(2), (2, 3, 8, 6)
    yield "maxpool_overlap", MaxPool2D(3, stride=2), (2, 2, 7, 9)
    yield "maxpool_uncovered", MaxPool2D(2), (2, 2, 7, 9)
    yield "maxpool_272_offsets", MaxPool2D((16, 17), (1, 16)), (1, 2, 17, 33)  # offsets in uint16
    yield "avgpool_gaps", AvgPool2D(2, stride=3), (1, 2, 8, 8)
    yield "avgpool", AvgPool2D(2), (2, 3, 8, 6)
    yield "avgpool_rect", AvgPool2D((2, 3), stride=(1, 2)), (1, 2, 5, 9)
    yield "relu", ReLU(), (3, 4, 5)
    yield "tanh", Tanh(), (3, 4, 5)
    yield "flatten", Flatten(), (2, 3, 4, 5)
    yield "dense", Dense(7, 5, rng=2, dtype=np.float64), (4, 7)


@pytest.mark.parametrize("name,layer,shape", [pytest.param(*case, id=case[0]) for case in layers()])
def test_layer_gradients_match_finite_differences(name, layer, shape):
    x = RNG(5).standard_normal(shape)
    errors = gradcheck_layer(layer, x)
    assert set(errors) == {"x", *layer.params}
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("cfg", random_configs(12, seed=41) + anisotropic_configs(8, seed=42),
                         ids=lambda cfg: (anisotropic_config_id if isinstance(cfg["stride"], tuple)
                                          else config_id)(cfg))
def test_conv_on_random_geometries_matches_finite_differences(cfg):
    """Random strides and paddings, one for both axes and one per axis: the set geometries above
    are a handful, the PyTorch oracle (optional) the only other check of random ones."""
    layer = Conv2D(cfg["c"], cfg["f"], (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["padding"],
                   rng=0, dtype=np.float64, algorithm="im2col")
    errors = gradcheck_layer(layer, RNG(7).standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"])))
    assert set(errors) == {"x", "W", "b"} and max(errors.values()) < TOL, errors


@pytest.mark.parametrize("cfg", winograd_configs(10, seed=43) + WINOGRAD_PADDING_PER_AXIS,
                         ids=winograd_config_id)
def test_winograd_conv_on_random_geometries_matches_finite_differences(cfg):
    layer = Conv2D(cfg["c"], cfg["f"], cfg["r"], padding=cfg["padding"], rng=0, dtype=np.float64,
                   algorithm="winograd")
    errors = gradcheck_layer(layer, RNG(8).standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"])))
    assert set(errors) == {"x", "W", "b"} and max(errors.values()) < TOL, errors


@pytest.mark.parametrize("cfg", pool_configs(12, seed=32), ids=pool_config_id)
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_pools_on_random_geometries_match_finite_differences(cfg, cls):
    layer = cls(cfg["kernel"], cfg["stride"])
    errors = gradcheck_layer(layer, RNG(9).standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"])))
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("split", CONV_SPLITS)
@pytest.mark.parametrize("kernel,stride,padding,shape,out_hw", [
    ((3, 2), 2, 1, (2, 2, 7, 8), (4, 5)),
    ((2, 3), (3, 1), (0, 2), (2, 2, 11, 7), (4, 9)),  # per axis; rows that no window reads
], ids=["stride_pad", "per_axis"])
def test_conv_in_blocks_and_bands_matches_finite_differences(kernel, stride, padding, shape, out_hw,
                                                             split, monkeypatch):
    layer = Conv2D(2, 3, kernel, stride=stride, padding=padding, rng=1, dtype=np.float64)
    x = RNG(5).standard_normal(shape)
    split_conv(split, monkeypatch, layer, x.shape)
    out = layer.forward(x)
    assert out.shape[2:] == out_hw  # several blocks, or several bands of two rows
    assert_split(split, layer, out)
    errors = gradcheck_layer(layer, x)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("split", ["whole", "one_tile_row_kept", "one_tile_row_rebuilt"])
@pytest.mark.parametrize("kernel", [2, 3, 4, 5])
def test_winograd_conv_matches_finite_differences_for_every_kernel_and_block(kernel, split, monkeypatch):
    if split != "whole":
        split_winograd(split, monkeypatch)
    layer = Conv2D(2, 3, kernel, padding=1, rng=kernel, dtype=np.float64, algorithm="winograd")
    x = RNG(6).standard_normal((2, 2, 11, 7))
    layer.forward(x)
    assert len(layer.blocks) == (1 if split == "whole" else 3)  # 9-12 output rows: 3 tile rows
    assert len(layer.V) == (0 if split == "one_tile_row_rebuilt" else len(layer.blocks))
    errors = gradcheck_layer(layer, x)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("kernel,stride,shape", [(2, None, (2, 3, 8, 6)), (3, 2, (2, 2, 7, 9)),
                                                 (2, None, (2, 2, 7, 9))])
def test_maxpool_in_blocks_of_one_output_row_matches_finite_differences(kernel, stride, shape,
                                                                        monkeypatch):
    from hw3lib import layers

    monkeypatch.setattr(layers, "POOL_BLOCK_BYTES", 1)
    layer = MaxPool2D(kernel, stride)
    x = RNG(5).standard_normal(shape)
    layer.forward(x)
    assert len(layer._row_blocks(x)) == layer.out.shape[2] > 1
    errors = gradcheck_layer(layer, RNG(5).standard_normal(shape))
    assert max(errors.values()) < TOL, errors


def test_conv_without_input_grad_returns_none_but_the_same_param_grads():
    x = RNG(0).standard_normal((2, 2, 5, 5))
    first, twin = Conv2D(2, 3, 3, rng=0, dtype=np.float64), Conv2D(2, 3, 3, rng=0, dtype=np.float64)
    first.needs_input_grad = False
    dout = RNG(1).standard_normal(first.forward(x).shape)
    twin.forward(x)
    assert first.backward(dout) is None and twin.backward(dout).shape == x.shape
    for key in ("W", "b"):
        np.testing.assert_array_equal(first.grads[key], twin.grads[key])
    errors = gradcheck_layer(first, x)  # its parameters checked, no input gradient to check
    assert errors.keys() == {"W", "b"} and max(errors.values()) < 1e-7


def test_the_checks_find_a_wrong_gradient():
    """The finite differences every layer is checked against are not the analytic gradient
    again: a ReLU whose backward doubles its gradient and a Dense whose weight gradient is 1%
    too large are found, and only where they are wrong."""
    class DoubledReLU(ReLU):
        def _backward(self, dout):
            return 2 * super()._backward(dout)

    class ScaledDense(Dense):
        def _backward(self, dout):
            dx = super()._backward(dout)
            self.grads["W"] = 1.01 * self.grads["W"]
            return dx

    assert gradcheck_layer(DoubledReLU(), RNG(2).standard_normal((3, 4)))["x"] > 0.3
    errors = gradcheck_layer(ScaledDense(4, 3, rng=0, dtype=np.float64), RNG(3).standard_normal((5, 4)))
    assert errors["W"] > 1e-3 and errors["x"] < TOL and errors["b"] < TOL
    # numerical_gradient itself, against a closed form: d/dx sum(x^3) = 3 x^2
    x = RNG(4).standard_normal(6)
    np.testing.assert_allclose(numerical_gradient(lambda: float(np.sum(x**3)), x), 3 * x**2, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("activation,pooling,threads", [("relu", "max", 1), ("tanh", "avg", 1),
                                                       ("relu", "max", 3)])
def test_whole_lenet5_gradients_match_finite_differences(activation, pooling, threads, monkeypatch):
    """With ``threads=3`` the gradient is that of the batch split over three threads."""
    monkeypatch.setattr(parallel, "MIN_PART_FLOPS", 1)  # split even this small batch
    model = LeNet5(in_channels=2, num_classes=3, input_size=(16, 20), conv_channels=(3, 4),
                   kernel_size=3, hidden=(10, 8), activation=activation, pooling=pooling,
                   seed=1, dtype=np.float64)
    X, y = RNG(2).standard_normal((4, 2, 16, 20)), np.array([0, 1, 2, 1])
    cost, params = CrossEntropyLoss(), model.get_params()
    with SplitBatch(model, threads) as split:
        assert len(split.parts(len(X))) == threads
        grads = split.backward(split.forward(X), y)
    errors = gradcheck(lambda: cost.get(model.forward(X), y), params,
                       {k: grads["d" + k] for k in params})
    assert max(errors.values()) < TOL, errors


def test_loss_gradient_wrt_logits():
    logits, y = RNG(0).standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    cost = CrossEntropyLoss()
    from hw3lib import softmax
    err = relative_error(cost.backward(softmax(logits), y),
                         numerical_gradient(lambda: cost.get(softmax(logits), y), logits))
    assert err < TOL


def test_relative_error_is_scale_free_and_zero_for_zeros():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([1.0], [-1.0]) == pytest.approx(1.0)


def test_relative_error_refuses_arrays_of_other_shapes():
    # (3, 1) against (1, 3) broadcast to a (3, 3) difference; (3,) zeros against (4,) gave 0.0
    for a, b in ((np.ones((3, 1)), np.ones((1, 3))), (np.zeros(3), np.zeros(4))):
        with pytest.raises(ValueError, match="arrays of one shape"):
            relative_error(a, b)


def test_gradcheck_refuses_float32_whose_rounding_would_report_a_right_gradient_wrong():
    """In float32 the perturbations of eps = 1e-6 drown in rounding (relative errors of about
    1e-2 for Conv2D's correct gradients): refused, naming the array and the fix."""
    x = RNG(0).standard_normal((2, 2, 5, 5))
    with pytest.raises(ValueError, match=r"gradcheck needs float64 arrays: W is float32.*"
                                         r"dtype=np.float64"):
        gradcheck_layer(Conv2D(2, 3, 3, rng=0), x)
    with pytest.raises(ValueError, match=r"x is float32"):
        gradcheck_layer(ReLU(), x.astype(np.float32))
    assert max(gradcheck_layer(Conv2D(2, 3, 3, rng=0, dtype=np.float64), x).values()) < TOL


def test_numerical_gradient_refuses_what_it_cannot_perturb():
    """Integers took no perturbation (old + 1e-6 stored as old): a gradient of 0 for x**2;
    a list failed on .reshape."""
    x = np.array([1, 2, 3])
    for value, got in ((x, "int64"), (x.tolist(), "a list"), (x.astype(np.float32), "float32")):
        with pytest.raises(ValueError, match=f"gradcheck needs float64 arrays: x is {got}"):
            numerical_gradient(lambda: float(np.sum(np.asarray(value) ** 2)), value)


@pytest.mark.parametrize("layout", ["fortran", "transposed", "flipped"])
def test_finite_differences_perturb_an_array_that_is_not_c_contiguous(layout):
    """x.reshape(-1) copied such an x: f() never saw the perturbations, the numerical gradient
    was 0 and gradcheck_layer reported a right gradient wrong (relative error 1.0)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    x = {"fortran": np.asfortranarray(x), "transposed": x.transpose(0, 1, 3, 2),
         "flipped": x[..., ::-1]}[layout]
    before = x.copy()
    assert gradcheck_layer(ReLU(), x)["x"] < 1e-7
    assert gradcheck_layer(Conv2D(3, 2, 3, rng=0, dtype=np.float64), x)["x"] < 1e-7
    a = np.arange(6.0).reshape(2, 3).T
    np.testing.assert_allclose(numerical_gradient(lambda: float((a ** 2).sum()), a), 2 * a, rtol=1e-6)
    assert np.array_equal(x, before)  # restored
