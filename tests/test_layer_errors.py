"""Every layer refuses a wrong array in one ValueError naming the layer and the fix: a gradient
of another shape than its last output, backward before forward, an input with the wrong axes,
integers; and runs an empty batch (N = 0)."""
import numpy as np
import pytest

from hw3lib.conv import Conv2D
from hw3lib.layers import AvgPool2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from hw3lib.model import LeNet5, Sequential

# name -> (a new layer, the shape of an input it takes)
LAYERS = {
    "conv-im2col": (lambda: Conv2D(3, 4, 3, algorithm="im2col", rng=0), (2, 3, 8, 8)),
    "conv-im2col-strided": (lambda: Conv2D(3, 4, 3, stride=2, padding=1, rng=0), (2, 3, 9, 9)),
    "conv-winograd": (lambda: Conv2D(48, 64, 3, algorithm="winograd", rng=0), (2, 48, 10, 10)),
    "maxpool": (lambda: MaxPool2D(2), (2, 3, 8, 8)),
    "maxpool-overlapping": (lambda: MaxPool2D(3, 2), (2, 3, 9, 9)),
    "avgpool": (lambda: AvgPool2D(2), (2, 3, 8, 8)),
    "dense": (lambda: Dense(5, 4, rng=0), (2, 5)),
    "relu": (ReLU, (2, 3, 4, 4)),
    "tanh": (Tanh, (2, 6)),
    "flatten": (Flatten, (2, 3, 4, 4)),
}
# the layers whose input must be (N, C, H, W)
IMAGE_LAYERS = [name for name in LAYERS if name.split("-")[0] in ("conv", "maxpool", "avgpool")]


def _ran(name, n=None):
    """A layer of ``LAYERS[name]`` that has run forward on a float32 batch of ``n`` (None: the
    listed shape's) inputs, and its output."""
    make, shape = LAYERS[name]
    layer = make()
    shape = shape if n is None else (n, *shape[1:])
    return layer, layer.forward(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


def _wrong_shapes(shape):
    """Gradient shapes that differ from ``shape``: one axis one longer or shorter, the batch
    axis 1, an axis missing or extra."""
    shapes = [shape[:-1] + (shape[-1] + 1,), shape[:-1] + (shape[-1] - 1,), shape[1:], shape + (1,)]
    if shape[0] > 1:
        shapes.append((1, *shape[1:]))
    if len(shape) > 2:
        shapes.append(shape[:1] + (shape[1] + 1,) + shape[2:])
    return shapes


@pytest.mark.parametrize("name", LAYERS)
def test_backward_refuses_gradient_of_another_shape(name):
    layer, out = _ran(name)
    for shape in _wrong_shapes(out.shape):
        message = (f"{layer!r}.backward expects a gradient of shape {out.shape}, the shape of "
                   f"its last output; got {shape}")
        with pytest.raises(ValueError) as err:
            layer.backward(np.ones(shape, np.float32))
        assert str(err.value) == message
    assert layer.backward(np.ones_like(out)) is not None  # the layer still works


@pytest.mark.parametrize("name", LAYERS)
def test_backward_checks_against_the_last_forward(name):
    layer, first = _ran(name, n=1)
    last = layer.forward(np.ones((3, *LAYERS[name][1][1:]), np.float32))
    with pytest.raises(ValueError, match=r"expects a gradient of shape \(3,"):
        layer.backward(np.ones_like(first))
    assert layer.backward(np.ones_like(last)).shape[0] == 3


@pytest.mark.parametrize("name", LAYERS)
def test_backward_before_forward(name):
    layer = LAYERS[name][0]()
    with pytest.raises(ValueError, match=r"\.backward called before forward: run forward on the "
                                         r"batch first$"):
        layer.backward(np.ones((1, 1, 1, 1), np.float32))


@pytest.mark.parametrize("name", IMAGE_LAYERS)
@pytest.mark.parametrize("drop", [0, None])
def test_image_layers_refuse_input_without_four_axes(name, drop):
    make, shape = LAYERS[name]
    layer = make()
    shape = shape[1:] if drop == 0 else (*shape, 1)  # one image without its batch axis; 5 axes
    with pytest.raises(ValueError) as err:
        layer.forward(np.ones(shape, np.float32))
    axes = f"N, {layer.in_channels}, H, W" if isinstance(layer, Conv2D) else "N, C, H, W"
    assert str(err.value) == f"{layer!r} expects input ({axes}), got shape {shape}"


@pytest.mark.parametrize("shape", [(5,), (2, 4), (2, 5, 1)])
def test_dense_refuses_input_other_than_n_by_in(shape):
    with pytest.raises(ValueError) as err:
        Dense(5, 4).forward(np.ones(shape, np.float32))
    assert str(err.value) == f"Dense(5, 4) expects input (N, 5), got shape {shape}"


def test_conv_refuses_other_channel_count():
    with pytest.raises(ValueError, match=r"expects input \(N, 3, H, W\), got shape \(2, 4, 8, 8\)"):
        Conv2D(3, 4, 3).forward(np.ones((2, 4, 8, 8), np.float32))


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, bool])
def test_forward_refuses_non_float_input(name, dtype):
    make, shape = LAYERS[name]
    layer = make()
    with pytest.raises(ValueError, match=rf"\.forward expects the input as a float32 or float64 "
                                         rf"NumPy array, got dtype {np.dtype(dtype)}; convert it"):
        layer.forward(np.ones(shape, dtype))


@pytest.mark.parametrize("name", LAYERS)
def test_forward_refuses_non_array(name):
    make, shape = LAYERS[name]
    with pytest.raises(ValueError, match=r"expects the input as a float32 or float64 NumPy array, "
                                         r"got a list"):
        make().forward(np.ones(shape, np.float32).tolist())


@pytest.mark.parametrize("name", LAYERS)
def test_forward_refuses_a_zero_dimensional_array(name):
    """ReLU, Tanh and Flatten, which take any shape, failed on len() of it."""
    with pytest.raises(ValueError, match=r"expects input \(N, .*\), got shape \(\)"):
        LAYERS[name][0]().forward(np.array(-1.0, np.float32))


def test_a_model_refuses_non_array_input_as_its_layers_do():
    for model in (LeNet5(), Sequential([Flatten(), Dense(4, 2)], input_shape=(1, 2, 2))):
        for call in (model.forward, model.predict):
            with pytest.raises(ValueError, match=r"expects its input as a NumPy array \(N, 1, (32, 32|2, 2)\), "
                                                 r"got a list; convert it with np.asarray"):
                call(np.ones((2, *model.input_shape), np.float32).tolist())


@pytest.mark.parametrize("name", LAYERS)
def test_backward_refuses_non_float_gradient(name):
    layer, out = _ran(name)
    with pytest.raises(ValueError, match=r"\.backward expects the gradient as a float32 or "
                                         r"float64 NumPy array, got dtype int64"):
        layer.backward(np.ones(out.shape, np.int64))


@pytest.mark.parametrize("name, needs_input_grad", [(name, True) for name in LAYERS] + [
    (name, False) for name in LAYERS if name.startswith("conv")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch(name, needs_input_grad, dtype):
    """N = 0 gives an empty output of the per-sample shape, an empty input gradient (none where
    a Conv2D skips it) and zero parameter gradients."""
    make, shape = LAYERS[name]
    layer = make()
    if not needs_input_grad:
        layer.needs_input_grad = False
    x = np.zeros((0, *shape[1:]), dtype)
    out = layer.forward(x)
    assert out.shape == (0, *layer.output_shape(shape[1:]))
    dx = layer.backward(np.zeros(out.shape, dtype))
    assert dx is None if not needs_input_grad else dx.shape == x.shape
    for key, grad in layer.grads.items():
        assert grad.shape == layer.params[key].shape and not grad.any()


@pytest.mark.parametrize("name", [name for name in LAYERS if not name.startswith(("conv", "dense"))])
def test_no_channels(name):
    """C = 0 (a slice of no channels) gives empty outputs and input gradients, as N = 0 does.
    (MaxPool2D's backward sized its blocks by the bytes of an input row, 0 here: a
    ZeroDivisionError. PyTorch refuses such inputs.)"""
    make, shape = LAYERS[name]
    layer, x = make(), np.zeros((2, 0, *shape[2:]), np.float32)
    out = layer.forward(x)
    assert out.shape == (2, *layer.output_shape(x.shape[1:])) and out.size == 0
    assert layer.backward(np.zeros(out.shape, np.float32)).shape == x.shape


@pytest.mark.parametrize("make, words", [
    (lambda: Conv2D(2.5, 4, 3), "in_channels must be an integer >= 1 (the input's channels), got 2.5"),
    (lambda: Conv2D("3", 4, 3), "in_channels must be an integer >= 1 (the input's channels), got '3'"),
    (lambda: Conv2D(True, 4, 3), "in_channels must be an integer >= 1 (the input's channels), got True"),
    (lambda: Conv2D(3, 0, 3), "out_channels must be an integer >= 1 (the output's channels), got 0"),
    (lambda: Conv2D(1, 1, True), "kernel_size must be an int or a pair of ints, got True"),
    (lambda: Conv2D(1, 1, 3, stride=(1, False)), "stride must be an int or a pair of ints, got (1, False)"),
    (lambda: Conv2D(1, 1, 3, padding=0.5), "padding must be an int or a pair of ints, got 0.5"),
    (lambda: Dense(2.7, 3), "in_features must be an integer >= 1 (the input's width), got 2.7"),
    (lambda: Dense(3, np.float64(2)), "out_features must be an integer >= 1 (the output's width), got"),
    (lambda: MaxPool2D(True), "kernel_size must be an int or a pair of ints, got True"),
    (lambda: AvgPool2D(2, stride=1.0), "stride must be an int or a pair of ints, got 1.0"),
])
def test_constructors_refuse_what_is_no_count_naming_the_argument(make, words):
    """Floats, strings and bools are refused, not truncated to ints or taken as 1."""
    with pytest.raises(ValueError) as err:
        make()
    assert str(err.value).startswith(words)


@pytest.mark.parametrize("make", [
    lambda: Conv2D(1, 1, 3, padding=-1), lambda: Conv2D(1, 1, 3, padding=(0, -2)),
    lambda: Conv2D(1, 1, 3, stride=0), lambda: Conv2D(1, 1, (3, 0)), lambda: MaxPool2D(2, stride=0),
    lambda: MaxPool2D((0, 2)), lambda: AvgPool2D(2, stride=(1, -1)),
], ids=["conv-padding", "conv-padding-w", "conv-stride", "conv-kernel", "maxpool-stride",
        "maxpool-kernel", "avgpool-stride"])
def test_constructors_refuse_windows_out_of_range(make):
    """A kernel or stride below 1, or padding below 0, is refused when the layer is made."""
    with pytest.raises(ValueError, match=r"kernel and stride must be >= 1 and padding >= 0"):
        make()


@pytest.mark.parametrize("make", [lambda dtype: Conv2D(1, 4, 3, dtype=dtype),
                                  lambda dtype: Dense(3, 2, dtype=dtype)])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, bool, np.float16, np.longdouble, "x", None])
def test_constructors_refuse_a_dtype_other_than_float32_and_float64(make, dtype):
    """An integer dtype would draw all-zero weights that no optimizer can update."""
    with pytest.raises(ValueError, match=r"dtype must be float32 or float64 \(the weights' "
                                         r"precision\), got"):
        make(dtype)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_forward_refuses_other_floats_as_it_says(name, dtype):
    """The check says float32 or float64, and takes no other float."""
    make, shape = LAYERS[name]
    with pytest.raises(ValueError, match=rf"expects the input as a float32 or float64 NumPy "
                                         rf"array, got dtype {np.dtype(dtype)}"):
        make().forward(np.ones(shape, dtype))
