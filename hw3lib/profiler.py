"""Where a training step spends its time (``python -m hw3lib bench --profile``): every layer's
forward and backward pass and the optimizer's update, timed inside the training loop.

The layers are timed where training runs them, not one by one: a layer called by itself finds
its data in the cache, while in the loop the products before it have evicted it (at
3x128x128, batch 32, on an Intel Xeon, the first max-pool's backward took 3.9 ms by itself and
7.4 ms in the loop). Timing replaces each layer's ``forward`` and ``backward`` for the duration
(:func:`timed_layers`); what they compute is unchanged, bit for bit.
"""
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager

from .config import TrainConfig
from .conv import Conv2D
from .layers import AvgPool2D, MaxPool2D
from .losses import CrossEntropyLoss
from .model import run_order

PHASES = ("forward", "backward")
WARMUP = 3  # steps run before the timed ones


def layer_label(layer):
    """A short name of ``layer`` for the profile's table, which must fit 80 columns:
    a convolution's or pool's kernel as ``5x5``, its stride and padding only where not the
    default (1 and 0; a pool's stride its kernel), Winograd where a convolution uses it:
    ``Conv2D(6, 16, 5x5)``, ``Conv2D(32, 64, 5x5, winograd)``, ``MaxPool2D(2x2)``; any other
    layer as its ``repr``."""
    def size(pair):
        return "x".join(map(str, pair))
    if isinstance(layer, Conv2D):
        parts, stride = [str(layer.in_channels), str(layer.out_channels)], (1, 1)
    elif isinstance(layer, (MaxPool2D, AvgPool2D)):
        parts, stride = [], layer.kernel_size
    else:
        return repr(layer)
    parts.append(size(layer.kernel_size))
    if tuple(layer.stride) != tuple(stride):
        parts.append(f"stride {size(layer.stride)}")
    if any(getattr(layer, "padding", ())):
        parts.append(f"padding {size(layer.padding)}")
    if getattr(layer, "algorithm", None) == "winograd":
        parts.append("winograd")
    return f"{type(layer).__name__}({', '.join(parts)})"


@contextmanager
def timed_layers(model, seconds):
    """While inside, each call of a layer's ``forward`` or ``backward`` appends its seconds to
    ``seconds[layer, phase]`` (``seconds`` a ``defaultdict(list)``); on leaving, the layers
    are as before."""
    def timed(layer, phase):
        run, times = getattr(layer, phase), seconds[layer, phase]

        def call(x):
            start = time.perf_counter()
            out = run(x)
            times.append(time.perf_counter() - start)
            return out
        return call

    for layer in model.layers:
        for phase in PHASES:
            setattr(layer, phase, timed(layer, phase))
    try:
        yield seconds
    finally:
        for layer in model.layers:
            for phase in PHASES:
                vars(layer).pop(phase, None)


def profile_training(model, X, y, batch, steps=20, warmup=WARMUP):
    """Train ``model`` on batches of ``batch`` images of ``X (N, C, H, W)``, ``y (N,)`` in turn
    (from the first again after the last) with the report's loop (``TrainConfig``'s AdamGD), for
    ``warmup + steps`` steps, and return the medians over the last ``steps``, in seconds:
    ``{"layers": [(layer, forward, backward), ...], "update": ..., "step": ...}``, the layers
    in the order the forward pass runs them (:func:`~hw3lib.model.run_order`; a backward pass
    that never reached a layer gives None), ``step`` the whole step timed around the rest."""
    if steps < 1 or warmup < 0 or not 1 <= batch <= len(X):
        raise ValueError(f"need steps >= 1, warmup >= 0 and 1 <= batch <= {len(X)} images, "
                         f"got steps={steps}, warmup={warmup}, batch={batch}")
    cost, optimizer = CrossEntropyLoss(), TrainConfig().build_optimizer(model.get_params())
    starts = range(0, len(X) - batch + 1, batch)
    seconds, update, step = defaultdict(list), [], []
    with timed_layers(model, seconds):
        for k in range(warmup + steps):
            i = starts[k % len(starts)]
            start = time.perf_counter()
            y_pred = model.forward(X[i:i + batch])
            cost.get(y_pred, y[i:i + batch])
            grads = model.backward(y_pred, y[i:i + batch])
            middle = time.perf_counter()
            model.set_params(optimizer.update_params(grads))
            end = time.perf_counter()
            update.append(end - middle)
            step.append(end - start)

    def median(times):
        return statistics.median(times[warmup:]) if times[warmup:] else None
    layers = [(layer, *(median(seconds[layer, phase]) for phase in PHASES))
              for layer in run_order(model.layers)]
    return {"layers": layers, "update": median(update), "step": median(step)}
