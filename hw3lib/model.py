"""LeNet-5 with the report's interface: ``forward``, ``backward``, ``get_params``, ``set_params``."""
import copy
import inspect
from collections.abc import Mapping

import numpy as np

from .checks import integer, is_int
from .conv import Conv2D
from .layers import DTYPES, AvgPool2D, Dense, Flatten, Layer, MaxPool2D, ReLU, Tanh, float_dtype
from .losses import CrossEntropyLoss, softmax

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh}
POOLINGS = {"max": MaxPool2D, "avg": AvgPool2D}
MAX_WEIGHT_BYTES = 2**31  # the largest first dense layer built: larger ones are refused
# the advice a too-small input ends with; a command without a kernel option leaves it out
KERNEL_ADVICE = ", or a smaller kernel_size"


def _pair(name, value, what, example, square=False):
    """``value`` (two integers >= 1; with ``square``, also one for both) as a tuple of two
    Python ints; ValueError naming ``name``, ``value`` and what it must be otherwise."""
    values = value.tolist() if isinstance(value, np.ndarray) else value
    if square and is_int(value):
        values = (value, value)
    if not (isinstance(values, (tuple, list)) and len(values) == 2
            and all(is_int(v) and v >= 1 for v in values)):
        form = "an integer or a pair of integers" if square else "two integers"
        raise ValueError(f"{name} must be {form} >= 1 ({what}), e.g. {example}; got {value!r}")
    return tuple(int(v) for v in values)


def architecture(arguments):
    """The settings that decide a :class:`LeNet5`'s layers, from its ``arguments`` (a dict
    such as ``LeNet5.config``; ``seed`` and ``dtype`` are not among them), checked and in one
    form: counts as Python ints, pairs as tuples (an ``input_size`` of 32 is ``(32, 32)``);
    ValueError naming an argument that LeNet5 cannot take, what it is and what it must be."""
    for name, choices in (("activation", ACTIVATIONS), ("pooling", POOLINGS)):
        if not (isinstance(arguments[name], str) and arguments[name] in choices):
            raise ValueError(f"{name} must be one of {sorted(choices)}, got {arguments[name]!r}")
    return dict(
        in_channels=integer("in_channels", arguments["in_channels"], 1, "the images' channels"),
        num_classes=integer("num_classes", arguments["num_classes"], 2, "one output per class"),
        input_size=_pair("input_size", arguments["input_size"], "the images' height and width in "
                         "pixels", "32 or (28, 36)", square=True),
        conv_channels=_pair("conv_channels", arguments["conv_channels"],
                            "the output channels of the two convolutions", "(6, 16)"),
        kernel_size=_pair("kernel_size", arguments["kernel_size"],
                          "the convolutions' kernel height and width", "5 or (5, 3)", square=True),
        hidden=_pair("hidden", arguments["hidden"], "the widths of the two hidden dense layers",
                     "(120, 84)"),
        activation=arguments["activation"], pooling=arguments["pooling"])


def _check_layer(layer, shape):
    """ValueError unless ``layer`` is a :class:`~hw3lib.layers.Layer` whose input axes fit one
    sample of ``shape`` (the output of the layers before it)."""
    if not isinstance(layer, Layer):
        kind = type(layer)
        what = (f". Fix: {layer.__name__}(), an instance" if isinstance(layer, type) and
                issubclass(layer, Layer) else f", a {kind.__module__}.{kind.__qualname__}: hw3lib's "
                "own layers only (hw3lib.ReLU, hw3lib.Conv2D, ...)")
        raise ValueError(f"Sequential takes layers such as ReLU(), got {layer!r}{what}")
    axes = layer.input_axes
    if axes is not None and len(axes) != len(shape) + 1:
        raise ValueError(f"{layer!r} expects input ({', '.join(map(str, axes))}), but gets "
                         f"(N, {', '.join(map(str, shape))}): check the input_shape and that a "
                         "Flatten() stands between the image layers and the Dense ones")


def _layer_shapes(layers, input_shape):
    """``[input_shape, shape after layer 1, ...]`` for one sample; ValueError where a layer
    does not fit the shape it gets."""
    shapes = [input_shape]
    for layer in layers:
        _check_layer(layer, shapes[-1])
        shapes.append(layer.output_shape(shapes[-1]))
    return shapes


def _refuse_a_batch_axis(layers, input_shape):
    """ValueError saying that ``input_shape`` holds the batch axis where ``layers``, which do
    not fit it, fit it without its first size."""
    if len(input_shape) < 2:
        return
    try:
        _layer_shapes(layers, input_shape[1:])
    except ValueError:
        return
    raise ValueError(f"input_shape {input_shape} looks like a batch's shape: it is one sample's "
                     f"shape, without the batch axis, and the layers fit {input_shape[1:]}. Fix: "
                     f"input_shape={input_shape[1:]}") from None


def _output_shape(layers, input_shape):
    """The shape that ``layers`` give one input of ``input_shape``; ValueError where it does
    not fit a layer."""
    for layer in layers:
        input_shape = layer.output_shape(input_shape)
    return input_shape


def _smallest_input(layers, channels):
    """The smallest side ``S`` of an ``S x S`` input that fits every one of ``layers``."""
    side = 1
    while True:
        try:
            _output_shape(layers, (channels, side, side))
            return side
        except ValueError:
            side += 1


def run_order(layers):
    """``layers`` in the order a forward pass runs them: as listed, except that a layer that
    commutes with max-pooling (``commutes_with_max_pool``: ``ReLU``) directly followed by
    ``MaxPool2D`` layers runs after them. For ReLU outputs and gradients are the same, ties
    included (a window whose maximum is positive sends its gradient to the same first maximum
    either way; one whose maximum is not gets none either way), and the ReLU then touches a
    quarter of the numbers (2x2 pools)."""
    order = list(layers)
    for i in range(len(order) - 1):
        if getattr(order[i], "commutes_with_max_pool", False) and type(order[i + 1]) is MaxPool2D:
            order[i], order[i + 1] = order[i + 1], order[i]
    return order


def _refuse_mixed_dtypes(layers):
    """ValueError where the weights of ``layers`` are not all of one dtype: a model computes in
    its weights' dtype, and one of float32 and float64 layers ran in float64, its float32
    layers' gradients float64 and its PyTorch twin in float32."""
    first = {}  # each dtype's first layer
    for layer in layers:
        for p in layer.params.values():
            first.setdefault(p.dtype.name, layer)
    if len(first) > 1:
        mixed = " and ".join(f"{dtype} ({layer!r})" for dtype, layer in first.items())
        raise ValueError(f"the layers' weights mix {mixed}: a model computes in one dtype. Fix: "
                         "build every layer with the same dtype, e.g. dtype=np.float64 on each")


def _check_skipped_input_grads(order):
    """ValueError where a layer that skips its input gradient (``needs_input_grad = False``) has
    layers with parameters before it in the run ``order``: the backward pass stops at it, and
    their gradients would be the last pass's (or missing), silently."""
    for i, layer in enumerate(order):
        before = [other for other in order[:i] if other.params]
        if not getattr(layer, "needs_input_grad", True) and before:
            raise ValueError(f"{layer!r} skips its input gradient (needs_input_grad = False), but "
                             f"{before[-1]!r} before it has parameters, whose gradients need it. "
                             "Fix: needs_input_grad = False only on the first layer with "
                             "parameters; set it True on this one")


def channels_last(shape, expected):
    """Whether images of ``shape`` are those of one sample's ``expected`` ``(C, H, W)`` laid out
    ``(N, H, W, C)``, as Pillow and matplotlib give them."""
    return len(shape) == 4 and len(expected) == 3 and tuple(shape[1:]) == (*expected[1:], expected[0])


def batch_axis_fix(shape, expected, name="x"):
    """The fix for inputs of ``shape`` that are one sample of ``expected`` without the batch
    axis, ``(C, H, W)`` (or, for one channel, a grey ``(H, W)``), or grey images ``(N, H, W)``
    without the channel axis, in words naming the array ``name``; None for any other shape."""
    shape, expected = tuple(shape), tuple(expected)
    if shape == expected:
        return f"one sample without the batch axis (N, ...)? Fix: {name}[None], a batch of one"
    if len(expected) == 3 and expected[0] == 1 and shape == expected[1:]:
        return f"one grey image (H, W) without the batch and channel axes? Fix: {name}[None, None]"
    if len(expected) == 3 and expected[0] == 1 and len(shape) == 3 and shape[1:] == expected[1:]:
        return f"grey images (N, H, W) without the channel axis? Fix: {name}[:, None]"
    return None


def _reshape_fix(shape, expected):
    """The fix for inputs of ``shape`` whose samples hold as many numbers as one sample of
    ``expected`` in another shape: images for a model that takes them flat (Dense layers
    only), or flat images for one that takes images; None for any other shape."""
    flat, takes_flat = len(shape) == 2, len(expected) == 1
    if len(shape) < 2 or flat == takes_flat or np.prod(shape[1:]) != np.prod(expected):
        return None
    if takes_flat:
        return (f"images for a model of flat inputs? Fix: x.reshape(len(x), -1), or begin the "
                f"model with Flatten() and input_shape={tuple(shape[1:])}")
    return f"flat images? Fix: x.reshape(len(x), {', '.join(map(str, expected))})"


class Sequential:
    """Layers applied in order (run in :func:`run_order`), the last giving ``K`` class scores
    (logits) that ``forward`` turns into probabilities and ``backward`` differentiates through
    the batch-mean cross-entropy, as in the report's loop; parameters named ``W1, b1, W2, b2,
    ...`` in the order of the layers that have them (the report's naming). Each layer is listed
    once, in one model: it keeps one pass's activations for ``backward``.

    ``input_shape`` is one sample's shape without the batch axis: ``(C, H, W)`` for images,
    ``(D,)`` for vectors. ValueError, when built, where the layers do not fit it one after
    another or the last one gives other than ``(K,)`` scores, ``K >= 2``."""

    def __init__(self, layers, input_shape):
        if isinstance(layers, Layer) or not isinstance(layers, (list, tuple)):
            raise ValueError(f"Sequential takes a list of layers, e.g. Sequential([Flatten(), "
                             f"Dense(784, 10)], input_shape=(1, 28, 28)), got {layers!r}")
        if not (isinstance(input_shape, (tuple, list)) and input_shape
                and all(is_int(size) and size >= 1 for size in input_shape)):
            fix = f" Fix: ({input_shape},)" if is_int(input_shape) else ""
            raise ValueError(f"input_shape must be one sample's shape without the batch axis, a "
                             f"tuple of integers >= 1 such as (1, 32, 32) or (784,), got "
                             f"{input_shape!r}.{fix}")
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if any(layer is other for other in self.layers[:i]):
                raise ValueError(
                    f"{layer!r} is listed twice: a layer keeps the activations of one pass for "
                    "backward, so its second use overwrites its first's and the gradients come "
                    "out wrong. Fix: a new layer for each place, e.g. ReLU() twice")
        self.input_shape = tuple(int(size) for size in input_shape)
        try:
            self.shapes = _layer_shapes(self.layers, self.input_shape)
        except ValueError:
            _refuse_a_batch_axis(self.layers, self.input_shape)
            raise
        if len(self.shapes[-1]) != 1 or self.shapes[-1][0] < 2:
            raise ValueError(
                f"the last layer must give K >= 2 class scores, (N, K), but the model outputs "
                f"(N, {', '.join(map(str, self.shapes[-1]))}): "
                + ("a softmax over one score is always 1, so the gradients are zero and it never "
                   "learns. Fix: one output per class, e.g. Dense(..., 2) for two classes"
                   if self.shapes[-1] == (1,) else
                   "end with Flatten() and Dense(features, num_classes)"))
        self.param_layers = [layer for layer in self.layers if layer.params]
        _refuse_mixed_dtypes(self.param_layers)
        self.ran = self.last_logits = None  # the last pass's run order and output (None: no pass yet)
        self.cost = CrossEntropyLoss()

    def logits(self, x):
        """Forward pass ``x (N, *input_shape) -> (N, K)`` logits, in the parameters' dtype: a
        float ``x`` is cast to it (PyTorch refuses the mix; the layers would promote a float32
        model's whole pass, and its gradients, to float64 images' dtype, at about twice the
        time: ``np.asarray(image) / 255`` gives float64)."""
        self.check_input(x)
        params = self.get_params()
        if params and x.dtype in DTYPES:  # other dtypes: the first layer says what it takes
            x = x.astype(np.result_type(*params.values()), copy=False)
        self.ran = run_order(self.layers)
        for layer in self.ran:
            x = layer.forward(x)
        self.layer_passes = [layer.passes for layer in self.ran]
        self.last_logits = x
        return x

    def forward(self, X):
        """Class probabilities ``(N, K)``, the softmax of the last layer's output, for inputs
        ``X (N, *input_shape)``."""
        return softmax(self.logits(X))

    def backward(self, y_pred, y):
        """Gradients ``{"dW1": ..., "db1": ...}`` of the batch-mean cross-entropy, from the
        probabilities ``y_pred (N, K)`` of the last ``forward`` (or a copy) and labels
        ``y (N,)``; ValueError for any other ``y_pred``: the layers keep only the last pass's
        activations, so gradients from another pass's output would be silently wrong."""
        if self.last_logits is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward: run forward "
                             "on the batch first, then backward on its output")
        if not np.array_equal(y_pred, softmax(self.last_logits), equal_nan=True):
            raise ValueError(
                f"{type(self).__name__}.backward takes the probabilities that the last forward "
                "returned, but y_pred differs from them: forward, predict or logits ran on other "
                "images since, and the layers keep only the last pass's activations. Fix: run "
                "forward on this batch right before backward, and predict other images after backward")
        return self.backward_logits(self.cost.backward(y_pred, y))

    def predict(self, X):
        """Predicted labels ``(N,)`` of inputs ``X (N, *input_shape)``; ValueError where an
        image's class scores are not finite (argmax would name class 0 for a NaN image)."""
        logits = self.logits(X)
        bad = np.flatnonzero(~np.isfinite(logits).all(axis=1))
        if len(bad):
            raise ValueError(f"the model's class scores for {len(bad)} image(s) are not finite "
                             f"(the first at index {bad[0]}): their input holds NaN or infinite "
                             "values, or the weights stopped being finite. Fix: check the images "
                             "with np.isfinite(X).all()")
        return logits.argmax(axis=1)

    def check_input(self, x):
        """ValueError unless ``x`` is a NumPy array of shape ``(N, *input_shape)``."""
        if not isinstance(x, np.ndarray):
            raise ValueError(f"the model expects its input as a NumPy array (N, "
                             f"{', '.join(map(str, self.input_shape))}), got a {type(x).__name__}; "
                             "convert it with np.asarray(..., dtype=np.float32)")
        if x.shape[1:] != self.input_shape:
            shape = self.input_shape
            fix = ("the images are channels-last (N, H, W, C): transpose them, x.transpose(0, 3, 1, 2)"
                   if channels_last(x.shape, shape) else batch_axis_fix(x.shape, shape)
                   or _reshape_fix(x.shape, shape) or "check the data's channel mode and image size")
            raise ValueError(f"the model expects input (N, {', '.join(map(str, shape))}), got {x.shape}; {fix}")

    def backward_logits(self, dlogits):
        """Backward pass from ``dlogits (N, K)``, the gradient of the last :meth:`logits`
        output; fills every layer's ``grads``."""
        if self.ran is None:
            raise ValueError(f"{type(self).__name__}.backward_logits called before logits: run "
                             "logits (or forward) on the batch first")
        _check_skipped_input_grads(self.ran)
        for layer, passes in zip(self.ran, self.layer_passes):
            if layer.passes != passes:
                raise ValueError(
                    f"{layer!r} ran another forward pass since this model's last one (a layer "
                    "shared with another model, or called directly): it keeps that pass's "
                    "activations, so the gradients would be wrong. Fix: give each model layers "
                    "of its own, and run forward on the batch right before backward")
        d = dlogits
        for layer in reversed(self.ran):
            d = layer.backward(d)
            if d is None:  # a first layer that skips its input gradient
                break
        return self._named(lambda layer: layer.grads, prefix="d")

    def _named(self, pick, prefix=""):
        return {f"{prefix}{key}{i}": value
                for i, layer in enumerate(self.param_layers, start=1)
                for key, value in pick(layer).items()}

    def get_params(self):
        """The parameter arrays themselves (not copies), keyed ``W1, b1, ...``."""
        return self._named(lambda layer: layer.params)

    def set_params(self, params):
        """Copy ``params`` (arrays of real numbers, or nested lists of them, in a dict or another
        mapping such as ``np.load`` of an ``.npz`` file that ``np.savez(path, **get_params())``
        wrote) into the model's arrays, checking names and shapes."""
        own = self.get_params()
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a dict of arrays keyed {', '.join(list(own)[:2])}, ..., "
                             f"as get_params returns it, got a {type(params).__name__}")
        params = dict(params)  # an npz file reads its arrays once
        if set(params) != set(own):
            fix = ""
            if {f"best.{k}" for k in own} <= set(params):  # np.load of a checkpoint
                fix = (": these are a checkpoint's arrays. Fix: hw3lib.checkpoint.load_checkpoint("
                       "path, model) loads its kept weights into the model (and returns the "
                       "checkpoint, whose mean and std normalise the inputs), or "
                       "hw3lib.trained.FitResult.load(path) the whole run, which predicts raw images")
            raise ValueError(f"parameter names differ: expected {sorted(own)}, got {sorted(params)}{fix}")
        for k, p in params.items():
            if np.asarray(p).dtype.kind not in "iuf":
                got = f"{p.dtype} values" if isinstance(p, np.ndarray) else f"a {type(p).__name__}"
                raise ValueError(f"{k} must be an array of real numbers, got {got}")
        wrong = [f"{k}: expected {own[k].shape}, got {np.shape(params[k])}"
                 for k in own if np.shape(params[k]) != own[k].shape]
        if wrong:
            raise ValueError("parameter shapes differ (another architecture?): " + "; ".join(wrong))
        for k, p in own.items():
            if params[k] is not p:
                np.copyto(p, params[k])

    def num_params(self):
        """The number of parameters (weights and biases) of all layers."""
        return sum(p.size for p in self.get_params().values())

    def flops(self, training=True):
        """Floating-point operations of the matrix products of one image's training step (with
        ``training=False``: of its forward pass, one product per layer).

        A ``Conv2D`` from ``C`` to ``F`` channels with a ``kh x kw`` kernel and an ``OH x OW``
        output does ``2 F C kh kw OH OW`` operations per product, a ``Dense`` from ``in`` to
        ``out`` features ``2 in out``; training does three products per layer (forward, weight
        gradient, input gradient), two for a first layer that skips its input gradient.
        Elementwise work (bias, activations, pooling, loss, the optimizer) is not counted."""
        total = 0
        for layer, shape in zip(self.layers, self.shapes[1:]):
            if not isinstance(layer, (Conv2D, Dense)):
                continue
            positions = shape[1] * shape[2] if isinstance(layer, Conv2D) else 1
            products = (3 if getattr(layer, "needs_input_grad", True) else 2) if training else 1
            total += products * 2 * layer.params["W"].size * positions
        return total

    def replica(self):
        """A model whose layers share this model's parameter arrays (updates to them show in
        both) but keep their own inputs, caches and gradients: for passes over parts of a
        batch side by side (:mod:`hw3lib.parallel`)."""
        twin = copy.copy(self)
        twin.layers = [copy.copy(layer) for layer in self.layers]
        for layer in twin.layers:
            layer.grads = {}
        twin.param_layers = [layer for layer in twin.layers if layer.params]
        return twin

    def summary(self):
        """Rows ``(layer, output shape, parameter count)``, the input first."""
        rows = [("Input", self.input_shape, 0)]
        for layer, shape in zip(self.layers, self.shapes[1:]):
            rows.append((repr(layer), shape, sum(p.size for p in layer.params.values())))
        return rows


class LeNet5(Sequential):
    """LeNet-5 for ``(N, in_channels, H, W)`` images, ``H, W = input_size``:

    conv k x k -> c1, activation, pool 2 -> conv k x k -> c2, activation, pool 2 -> flatten ->
    dense h1, activation -> dense h2, activation -> dense ``num_classes`` -> softmax, with
    ``k = kernel_size``, ``(c1, c2) = conv_channels`` and ``(h1, h2) = hidden``.

    ``activation`` is ``"relu"`` or ``"tanh"``, ``pooling`` ``"max"`` or ``"avg"`` (``"tanh"``
    with ``"avg"`` is the classic variant of the report's source). Weights are drawn from
    ``np.random.default_rng(seed)`` with PyTorch's default initialisation,
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``. The first convolution never computes its input
    gradient. ``config`` holds the arguments, ``dtype`` aside, in one form (see
    :func:`architecture`), as checkpoints store them.
    """

    def __init__(self, in_channels=1, num_classes=3, input_size=32, conv_channels=(6, 16),
                 kernel_size=5, hidden=(120, 84), activation="relu", pooling="max", seed=0,
                 dtype=np.float32):
        self.config, features, flat, rng = self._features(
            in_channels=in_channels, num_classes=num_classes, input_size=input_size,
            conv_channels=conv_channels, kernel_size=kernel_size, hidden=hidden,
            activation=activation, pooling=pooling, seed=seed, dtype=dtype)
        self.num_classes = self.config["num_classes"]
        act, (h1, h2) = ACTIVATIONS[activation], self.config["hidden"]
        head = [Dense(flat, h1, rng=rng, dtype=dtype), act(),
                Dense(h1, h2, rng=rng, dtype=dtype), act(),
                Dense(h2, self.num_classes, rng=rng, dtype=dtype)]
        features[0].needs_input_grad = False
        super().__init__(features + head, (self.config["in_channels"], *self.config["input_size"]))

    @classmethod
    def check(cls, fit=True, **kwargs):
        """The ValueError that ``LeNet5(**kwargs)`` would raise, without building its dense
        layers (at large inputs, the first one is most of the model). ``fit=False``: the
        arguments alone, not whether the model fits its ``input_size`` (for images whose size
        is not known yet)."""
        arguments = inspect.signature(cls).bind(**kwargs)
        arguments.apply_defaults()
        (cls._features if fit else cls._config)(**arguments.arguments)

    @staticmethod
    def _config(seed, dtype, **arguments):
        """The model's ``config``: its :func:`architecture` and ``seed``; ValueError for an
        argument out of range or a ``dtype`` other than float32 and float64."""
        float_dtype(dtype)
        # an int, as TrainConfig's: the config is stored as JSON (a Generator failed at the
        # checkpoint, after the first epoch's work)
        return {**architecture(arguments), "seed": integer("seed", seed, 0, "draws the initial weights")}

    @staticmethod
    def _features(seed, dtype, **arguments):
        """The model's ``config`` (:meth:`_config`), its layers up to ``Flatten``, the number
        of features they give the first dense layer and the random generator of ``seed`` that
        drew their weights, to draw the rest; ValueError as :meth:`_config`, and for a kernel
        larger than its input or a first dense layer over ``MAX_WEIGHT_BYTES``."""
        config = LeNet5._config(seed, dtype, **arguments)
        itemsize = float_dtype(dtype).itemsize
        act, pool = ACTIVATIONS[config["activation"]], POOLINGS[config["pooling"]]
        (c1, c2), kernel = config["conv_channels"], config["kernel_size"]
        in_channels, rng = config["in_channels"], np.random.default_rng(seed)
        features = [Conv2D(in_channels, c1, kernel, rng=rng, dtype=dtype), act(), pool(2),
                    Conv2D(c1, c2, kernel, rng=rng, dtype=dtype), act(), pool(2), Flatten()]
        height, width = config["input_size"]
        try:
            (flat,) = _output_shape(features, (in_channels, height, width))
        except ValueError:
            side = _smallest_input(features, in_channels)
            raise ValueError(
                f"LeNet5 with kernel_size={arguments['kernel_size']} does not fit {height}x{width} "
                f"inputs: it needs at least {side} pixels a side. Fix: larger images, e.g. "
                f"TrainConfig(image_size={side}){KERNEL_ADVICE}") from None
        weights = flat * config["hidden"][0]
        if weights * itemsize > MAX_WEIGHT_BYTES:
            raise ValueError(
                f"LeNet5 on {height}x{width} inputs would have {weights:,} weights in its first dense "
                f"layer, {weights * itemsize / 2**30:.2f} GiB (at most "
                f"{MAX_WEIGHT_BYTES / 2**30:g} GiB). Fix: shrink the images, e.g. with "
                "TrainConfig(image_size=64)")
        return config, features, flat, rng
