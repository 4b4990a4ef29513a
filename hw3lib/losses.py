"""Softmax and the cross-entropy loss of the report (on probabilities, mean over the batch)."""
import numpy as np


def softmax(logits):
    """Row-wise softmax of ``logits (N, K)`` (any array-like, softmax over the last axis),
    stable for any finite logits (shifted by the row max)."""
    logits = np.asarray(logits)
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def one_hot(y, num_classes, dtype=np.float32):
    """Integer labels ``y (N,)`` -> ``(N, num_classes)``; labels outside the range raise."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got dtype {y.dtype} shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        fix = (f": the model gives {num_classes} class scores. Fix: one output per class, its last "
               f"layer e.g. Dense(..., {y.max() + 1})" if y.min() >= 0 else "")
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], got min {y.min()} max {y.max()}{fix}")
    out = np.zeros((y.size, num_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out


def as_targets(y, y_pred):
    """Labels as integers ``(N,)`` or one-hot ``(N, K)`` -> one-hot ``(N, K)`` in ``y_pred``'s dtype;
    ValueError unless ``y_pred`` is a float array ``(N, K)``."""
    if not (isinstance(y_pred, np.ndarray) and y_pred.ndim == 2 and y_pred.dtype.kind == "f"):
        got = (f"dtype {y_pred.dtype} shape {y_pred.shape}" if isinstance(y_pred, np.ndarray)
               else f"a {type(y_pred).__name__}")
        raise ValueError(f"predictions must be probabilities (N, K) in a float NumPy array, as "
                         f"model.forward returns them, got {got}")
    if y_pred.size and ((y_pred < 0).any() or (y_pred > 1).any()):  # NaN passes: fit reports it
        raise ValueError(f"predictions must be probabilities in [0, 1], as model.forward returns "
                         f"them, got values from {np.nanmin(y_pred):.3g} to {np.nanmax(y_pred):.3g}: "
                         "logits (model.logits, the last layer's output)? Fix: pass model.forward's "
                         "output, or softmax(logits)")
    y = np.asarray(y)
    n, k = y_pred.shape
    if y.ndim == 1:
        targets = one_hot(y, k, y_pred.dtype)
    elif y.shape == (n, k):
        if y.dtype.kind not in "biuf":
            raise ValueError(f"one-hot labels must be numbers, got dtype {y.dtype}")
        targets = y.astype(y_pred.dtype, copy=False)
        sums = targets.sum(axis=1)
        if n and ((targets < 0).any() or not np.allclose(sums, 1, atol=1e-3)):
            raise ValueError(f"one-hot labels (N, {k}) must be rows of 0s and a 1 (or of "
                             f"probabilities >= 0) summing to 1, got rows summing from "
                             f"{sums.min():.3g} to {sums.max():.3g}, values from {targets.min():.3g}: "
                             "integer labels (N,) go as they are, e.g. y, not a one-hot of it")
    else:
        raise ValueError(f"labels must be (N,) integers or (N, {k}) one-hot for predictions "
                         f"{y_pred.shape}, got shape {y.shape}")
    if targets.shape[0] != n:
        raise ValueError(f"{n} predictions but {targets.shape[0]} labels")
    return targets


class CrossEntropyLoss:
    """Mean cross-entropy ``-1/N sum_n sum_k y_nk log p_nk`` of probabilities ``(N, K)``.

    Probabilities are clipped at the dtype's smallest normal number ``tiny`` before the log,
    so the loss stays finite when a probability underflows (to 0 or a subnormal number): a
    sample's loss reads at most ``-log(tiny)``, 87.3 in float32 and 708.4 in float64, however
    far its label's logit lies below the others (1e4 below: 87.3, where PyTorch's
    ``cross_entropy`` of the logits gives 1e4). The probabilities hold no more; an exact value
    would take the logits (``model.last_logits``), which the report's ``cost.get(y_pred, y)``
    does not get. The gradient, :meth:`backward`, is exact either way.
    """

    def get(self, y_pred, y):
        """The loss (a Python float) of probabilities ``y_pred (N, K)`` for labels ``y (N,)``
        (or one-hot ``(N, K)``)."""
        targets = as_targets(y, y_pred)
        tiny = np.finfo(y_pred.dtype).tiny
        return float(-(targets * np.log(np.maximum(y_pred, tiny))).sum() / y_pred.shape[0])

    def backward(self, y_pred, y):
        """Gradient of the loss w.r.t. the *logits* that ``y_pred (N, K) = softmax(logits)``
        came from, for labels ``y (N,)`` (or one-hot ``(N, K)``): ``(y_pred - y) / N``, ``(N, K)``."""
        return (y_pred - as_targets(y, y_pred)) / y_pred.shape[0]
