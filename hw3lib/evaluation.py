"""Evaluating a model: its loss and accuracy over batches of images (:func:`evaluate`), and
the checks of images and labels that training, evaluation and a run's predictions share.

:func:`evaluate` checks its inputs with these, then evaluates (:func:`evaluate_checked`);
:func:`~hw3lib.train.fit` checks its data once, before its first epoch, and evaluates each
epoch without checking again.
"""
import math
import time

import numpy as np
from tqdm.auto import tqdm

from .checks import integer
from .data import PROGRESS_DELAY, normalize
from .losses import CrossEntropyLoss
from .model import Sequential

EVAL_BATCH = 256
# ... and at most this many bytes of a batch's largest layer output (eval_batch), so that memory
# does not grow with the image size either: 256 RGB images of 256x256 took 1.2 GB to evaluate,
# of 512x512 4.7 GB. The course's 32x32 and the grid's sizes (up to 128x128) stay at 256.
EVAL_BYTES = 2**27


def eval_batch(model):
    """How many images a batch of ``model``'s forward passes takes in evaluation and prediction:
    :data:`EVAL_BATCH`, fewer where their largest layer output (the input, a convolution's maps),
    in the weights' dtype, would pass :data:`EVAL_BYTES` (88 RGB images of 256x256, 21 of
    512x512 in float32), at least one."""
    itemsize = max((p.dtype.itemsize for p in model.get_params().values()), default=4)
    largest = max(math.prod(shape) for shape in model.shapes) * itemsize
    return max(1, min(EVAL_BATCH, EVAL_BYTES // largest))


class CountedForward:
    """``model`` whose forward passes over ``total`` images are counted on a ``tqdm.auto`` bar
    labelled ``desc`` (with ``progress``), made once they have taken
    :data:`~hw3lib.data.PROGRESS_DELAY` seconds, not before: in a notebook a bar is a widget,
    kept in the notebook's file whether shown or not (one per epoch of fit's evaluations, 270 KB
    over notebook 05's 24). Use it as a context manager, or :meth:`close` it."""

    def __init__(self, model, total, desc, progress):
        self.model, self.total, self.desc, self.progress = model, total, desc, progress
        self.start, self.done, self.bar = time.perf_counter(), 0, None

    def forward(self, X):
        out = self.model.forward(X)
        self.done += len(X)
        if self.bar is not None:
            self.bar.update(len(X))
        elif self.progress and time.perf_counter() - self.start >= PROGRESS_DELAY:
            self.bar = tqdm(total=self.total, initial=self.done, unit="image", leave=False,
                            desc=self.desc)
        return out

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def evaluate(model, X, y, batch_size=None, normalizer=None):
    """``(loss, accuracy)`` of ``model`` on normalised images ``X (N, C, H, W)`` with labels
    ``y (N,)``: the mean cross-entropy per sample and the fraction of correct predictions,
    over all N samples (batches of ``batch_size``, default :func:`eval_batch`, the last one
    weighted by its size).
    With ``normalizer = (mean, std)``, ``X`` holds raw images, normalised batch by batch
    (:func:`image_batches`). Forward passes only; the weights do not change.
    ValueError, before any work, for images that are not finite floats, in [0, 1] with
    ``normalizer`` (integer pixels, images normalised already), and for labels other than 1-D
    integers, as :func:`~hw3lib.train.fit`."""
    if not isinstance(model, Sequential):
        run = (": evaluate a run with result.evaluate(X, y) on raw images, or pass result.model"
               if isinstance(getattr(model, "model", None), Sequential) else "")  # a FitResult
        raise ValueError(f"evaluate takes a model (a Sequential such as LeNet5), got a "
                         f"{type(model).__name__}{run}")
    if normalizer is None:
        X = checked_images(X, raw=False, fix=", then normalise them (hw3lib.data.normalize), or "
                           "give raw images in [0, 1] with normalizer=(mean, std)")
    else:
        X = checked_images(X, fix="; images normalised already go to evaluate without normalizer")
        if not (isinstance(normalizer, (tuple, list)) and len(normalizer) == 2):
            raise ValueError(f"normalizer must be the pair (mean, std), e.g. (data.mean, data.std), "
                             f"got {normalizer!r}")
    y = checked_labels(y)
    if len(X) != len(y):
        raise ValueError(f"evaluate needs as many labels as images, got {len(X)} and {len(y)}")
    batch_size = eval_batch(model) if batch_size is None else integer("batch_size", batch_size)
    model.check_input(X)  # all of X: a batch's error would name the batch's shape
    return evaluate_checked(model, X, y, batch_size, normalizer)


def evaluate_checked(model, X, y, batch_size, normalizer):
    """``(loss, accuracy)`` as :func:`evaluate` gives it, of images
    ``X (N, C, H, W)`` and labels ``y (N,)`` checked already (by fit, before its first epoch:
    not again at every epoch, a pass over all of ``X``)."""
    cost, loss_sum, correct = CrossEntropyLoss(), 0.0, 0
    for i, X_batch in image_batches(X, batch_size, normalizer):
        probs, yb = model.forward(X_batch), y[i:i + batch_size]
        loss_sum += cost.get(probs, yb) * len(yb)
        correct += int((probs.argmax(axis=1) == yb).sum())
    return loss_sum / len(X), correct / len(X)


def image_batches(X, batch_size, normalizer=None):
    """``(start, X[start:start + batch_size])`` for consecutive batches of ``X (N, C, H, W)``,
    each normalised with ``normalizer = (mean, std)`` when given: the same numbers, bit for
    bit, as batches of ``normalize(X, mean, std)``, without a normalised copy of all of ``X``
    (1.2 GB beside the raw images for 24,000 RGB 64x64 ones)."""
    for i in range(0, len(X), batch_size):
        yield i, X[i:i + batch_size] if normalizer is None else normalize(X[i:i + batch_size], *normalizer)


def _nonfinite_images(X):
    """Words for images ``X (N, ...)`` of which some hold NaN or infinite values: how many, the
    first, and the fix."""
    bad = np.flatnonzero(~np.isfinite(X.reshape(len(X), -1)).all(axis=1))
    return (f"{len(bad)} image(s) hold NaN or infinite values (the first at index {bad[0]}): fix "
            "or drop them")


def checked_images(X, name="X", raw=True, fix=""):
    """``X`` as a NumPy array, refused unless it holds images ``(N, C, H, W)``, N >= 1, as
    finite floats, in [0, 1] where ``raw``: integer pixels, NaN and images normalised twice or
    not at all would give answers at chance or a NaN loss. The ValueError names ``name``, the
    cause and the fix, ``fix`` (the caller's other ways) appended."""
    X = np.asarray(X)
    what = "raw images as floats in [0, 1]" if raw else "normalised images as floats"
    if X.ndim == 0 or len(X) == 0:
        raise ValueError(f"{name} must hold {what} (N, C, H, W) with N >= 1, got shape {X.shape}")
    if X.dtype.kind != "f":
        raise ValueError(f"{name} must hold {what}, got {X.dtype} values: divide 8-bit pixels by "
                         f"255 (16-bit ones by 65535){fix}")
    if not np.isfinite(X).all():  # min and max would let NaN through
        raise ValueError(f"{name}: {_nonfinite_images(X)}")
    if raw and X.size and (X.min() < 0 or X.max() > 1):  # size 0: the shape check's
        raise ValueError(f"{name} must hold {what}, got {X.dtype} values from {X.min():.3g} to "
                         f"{X.max():.3g}: divide 8-bit pixels by 255{fix}")
    return X


def checked_labels(y, name="y"):
    """``y`` as a NumPy array ``(N,)``; ValueError naming ``name`` unless it holds 1-D integer
    labels."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        fix = ""
        if y.dtype.kind in "USO":  # class names, as a folder's names or a CSV give them
            fix = (": class names? Fix: give each its index in the classes, "
                   f"np.array([classes.index(c) for c in {name}]) with the run's or the data's "
                   "classes (run.classes, data.classes)")
        elif y.ndim == 1 and y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
            fix = f": whole numbers as floats? Fix: {name}.astype(int)"
        raise ValueError(f"{name} must be 1-D integer labels, got dtype {y.dtype} shape {y.shape}{fix}")
    return y


# The fix for channels-last images, ``{0}`` the array's name (e.g. ``X_train``).
CHANNELS_LAST = ("the images are channels-last (N, H, W, C), as Pillow and matplotlib give "
                 "them. Fix: {0}.transpose(0, 3, 1, 2)")
