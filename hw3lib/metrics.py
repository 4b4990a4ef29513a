"""Classification metrics from labels: accuracy, the confusion matrix, per-class precision,
recall and F1, and a printable table of them.

Labels are integer class indices ``y (N,)`` in ``[0, K)``. Conventions (scikit-learn's):
the confusion matrix has the TRUE class in rows and the PREDICTED class in columns;
precision of class k = correct k / predicted k, recall = correct k / true k, F1 their harmonic
mean. A ratio with a zero denominator (a class never predicted, or absent) is reported as 0.
"""
import numpy as np

from .checks import integer
from .tables import Table


def _labels(y, name):
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be 1-D integer class indices (N,), got dtype {y.dtype} "
                         f"shape {y.shape}")
    return y


def _check_pair(y_true, y_pred):
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"y_true and y_pred must hold the same number (>= 1) of labels, got "
                         f"{len(y_true)} and {len(y_pred)}")
    return y_true, y_pred


def accuracy(y_true, y_pred):
    """The fraction of labels ``y_pred (N,)`` equal to ``y_true (N,)``."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes):
    """``(K, K)`` int64 counts of labels ``y_true (N,)`` against ``y_pred (N,)``, ``K =
    num_classes``: entry ``[i, j]`` is the number of samples
    of true class ``i`` predicted as class ``j`` (rows true, columns predicted)."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name} holds labels from {y.min()} to {y.max()}, outside [0, "
                             f"{num_classes}); pass num_classes = the number of classes")
    # int64 before the arithmetic: in narrower labels (uint8, int8) true * K + pred wraps around
    cell = y_true.astype(np.int64) * num_classes + y_pred
    return np.bincount(cell, minlength=num_classes ** 2).reshape(num_classes, num_classes).astype(
        np.int64)


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def per_class(cm):
    """Per-class metrics of a confusion matrix ``cm (K, K)`` (rows true, columns predicted):
    a dict of ``(K,)`` arrays ``precision``, ``recall``, ``f1`` and ``support`` (true samples)."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or (cm < 0).any():
        raise ValueError(f"cm must be a square (K, K) matrix of counts >= 0, got shape {cm.shape}")
    correct = np.diag(cm).astype(float)
    precision, recall = _ratio(correct, cm.sum(axis=0)), _ratio(correct, cm.sum(axis=1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    return dict(precision=precision, recall=recall, f1=f1, support=cm.sum(axis=1))


def metrics_table(cm, classes, digits=3):
    """:class:`Table` of precision, recall, F1 and support per class of ``cm (K, K)``, then their
    unweighted mean over classes (``macro mean``, support: the total) and the accuracy."""
    m = per_class(cm)
    cm = np.asarray(cm)
    if len(classes) != len(cm) or cm.sum() == 0:
        raise ValueError(f"metrics_table needs one class name per row of a non-empty confusion "
                         f"matrix, got {len(classes)} names for shape {cm.shape}, {cm.sum()} samples")
    rows = [(name, m["precision"][k], m["recall"][k], m["f1"][k], int(m["support"][k]))
            for k, name in enumerate(classes)]
    rows.append(("macro mean", m["precision"].mean(), m["recall"].mean(), m["f1"].mean(),
                 int(cm.sum())))
    rows.append(("accuracy", None, None, np.trace(cm) / cm.sum(), int(cm.sum())))
    return Table(["class", "precision", "recall", "F1", "support"], rows, digits=digits)


def bootstrap_interval(correct, level=0.95, resamples=2000, seed=0, blocks=None):
    """A percentile bootstrap interval ``(low, high)`` for the mean accuracy over runs.

    ``correct (S, N)`` (bool) says which of N test images each of S runs (e.g. seeds)
    classified correctly. Each of ``resamples`` rounds draws test images with replacement,
    the same images for every run, and takes the mean accuracy over the runs; the interval
    holds the central ``level`` of those means. It measures how much the figure depends on
    which test images were drawn; the spread between the runs is the standard deviation.

    ``blocks (N,)``: a block label per image (:func:`hw3lib.data.frame_runs`). Neighbouring
    frames of a video are near-copies, right or wrong together (the report's loop misses 14 of
    15 consecutive test pears), so single images are no independent draws and resampling them
    gives an interval too narrow; with ``blocks`` each round draws as many blocks as there
    are, with replacement, and takes the mean over their images. None: each image its own block.
    """
    correct = np.asarray(correct, dtype=float)
    if correct.ndim != 2 or correct.size == 0:
        raise ValueError(f"correct must be (S runs, N images) and non-empty, got shape {correct.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    resamples = integer("resamples", resamples, what="the bootstrap's rounds, e.g. 2000")
    per_image = correct.mean(axis=0)  # the runs' mean accuracy on each image
    if blocks is None:
        blocks = np.arange(len(per_image))
    blocks = np.asarray(blocks)
    if blocks.shape != per_image.shape:
        raise ValueError(f"blocks must hold one label per image, ({len(per_image)},), got shape "
                         f"{blocks.shape}")
    labels = np.unique(blocks, return_inverse=True)[1].reshape(-1)
    sums, sizes = np.bincount(labels, per_image), np.bincount(labels)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sizes), size=(resamples, len(sizes)))
    means = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
