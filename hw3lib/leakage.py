"""A leakage audit: how close validation and test images sit to the images a model trains on.

A validation split is only worth choosing settings on if its images are as new to the model
as the test images are. Frames of one video are near-copies of their neighbours, so a random
split puts a near-copy of almost every validation image into training. The audit measures
this for each split method of :func:`hw3lib.data.train_val_split` and several seeds:

- the Euclidean distance from each validation (and test) image to its nearest training image,
  over all ``C*H*W`` pixel values in [0, 1] (:func:`nearest`);
- **exact duplicates**: images whose pixels equal a training image's, value for value;
- **near duplicates**: images closer to a training image than the ``near`` distance. By
  default ``near`` is :func:`frame_step`, the median distance between consecutive files of a
  class in the training folder: a near duplicate is closer to a training image than a video's
  typical next frame is to the frame before it. On data that is not video the step is simply
  a typical distance between two images of a class; pass ``near`` to use another threshold.

Typical use (notebook 01)::

    audit = leakage_audit(X, y, X_test)          # Data_train and Data_test as load_split gives them
    print(audit.table())
    plots.plot_leakage(audit)
"""
from dataclasses import dataclass, field

import numpy as np

from .data import SPLIT_METHODS, train_val_split
from .tables import Table

# (images, reference): each image is compared with its nearest image in the reference
PAIRS = ("validation -> training", "test -> training", "test -> validation")


def _flat(X):
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1)


def nearest(X, X_ref, chunk=1024):
    """``(distances, indices)``, both ``(N,)``: for each image of ``X (N, C, H, W)`` the
    Euclidean distance to its nearest image in ``X_ref (M, C, H, W)`` and that image's index.

    Computed in float64 from ``|a|^2 + |b|^2 - 2 a.b``, ``chunk`` rows of ``X`` at a time."""
    X, X_ref = np.asarray(X), np.asarray(X_ref)
    if X.ndim < 2 or X.shape[1:] != X_ref.shape[1:] or len(X_ref) == 0:
        raise ValueError(f"X {X.shape} and X_ref {X_ref.shape} must be images of one shape, "
                         "X_ref non-empty")
    A, B = _flat(X), _flat(X_ref)
    b2 = (B ** 2).sum(axis=1)
    indices = np.empty(len(A), dtype=np.int64)
    squared = np.empty(len(A))
    for start in range(0, len(A), chunk):
        part = A[start:start + chunk]
        d2 = (part ** 2).sum(axis=1)[:, None] + b2[None, :] - 2 * part @ B.T
        indices[start:start + chunk] = d2.argmin(axis=1)
        squared[start:start + chunk] = d2[np.arange(len(part)), indices[start:start + chunk]]
    return np.sqrt(np.maximum(squared, 0)), indices


def exact_duplicates(X, X_ref):
    """A boolean ``(N,)``: which images of ``X (N, ...)`` equal some image of ``X_ref``
    value for value (compared as bytes, so no rounding is involved)."""
    X, X_ref = np.ascontiguousarray(X), np.ascontiguousarray(X_ref, dtype=np.asarray(X).dtype)
    seen = {row.tobytes() for row in X_ref.reshape(len(X_ref), -1)}
    return np.array([row.tobytes() in seen for row in X.reshape(len(X), -1)], dtype=bool)


def frame_step(X, y):
    """The median distance between consecutive images of each class of ``X (N, C, H, W)``
    (in the given order, by class ``y (N,)``): the default ``near`` threshold."""
    y = np.asarray(y)
    steps = [np.linalg.norm(np.diff(_flat(X[y == c]), axis=0), axis=1) for c in np.unique(y)]
    steps = np.concatenate(steps) if steps else np.empty(0)
    if len(steps) == 0:
        raise ValueError("frame_step needs at least two images of one class")
    return float(np.median(steps))


@dataclass
class LeakageAudit:
    """What :func:`leakage_audit` measured.

    ``distances[(method, seed, pair)]`` holds each image's distance to its nearest reference
    image ``(N,)``, ``exact[(method, seed, pair)]`` whether it is an exact duplicate (bool
    ``(N,)``); ``pair`` is one of :data:`PAIRS`. ``near`` is the near-duplicate threshold.
    """

    near: float
    distances: dict = field(default_factory=dict)
    exact: dict = field(default_factory=dict)

    def summary(self, method, pair):
        """``(median distance, near-duplicate fraction)`` of ``pair`` under ``method``, each the
        mean over the audited seeds."""
        keys = [k for k in self.distances if k[0] == method and k[2] == pair]
        medians = [np.median(self.distances[k]) for k in keys]
        near = [np.mean(self.distances[k] <= self.near) for k in keys]
        return float(np.mean(medians)), float(np.mean(near))

    def summary_table(self):
        """:class:`Table`, one row per split method and pair, over the audited seeds: the
        median distance (its range over seeds), exact duplicates (all seeds) and the share of
        near duplicates (its range over seeds)."""
        groups = {}
        for (method, _, pair), d in self.distances.items():
            groups.setdefault((method, pair), []).append(d)
        rows = []
        for (method, pair), ds in groups.items():
            medians = [np.median(d) for d in ds]
            near = [100 * np.mean(d <= self.near) for d in ds]
            exact = sum(int(self.exact[k].sum()) for k in self.exact if (k[0], k[2]) == (method, pair))
            rows.append((method, pair, f"{np.min(medians):.2f}-{np.max(medians):.2f}", exact,
                         f"{np.min(near):.0f}-{np.max(near):.0f}%"))
        seeds = len({seed for _, seed, _ in self.distances})
        return Table(["split", "images -> nearest in", f"median ({seeds} seeds)", "exact dup",
                      "near dup"], rows)

    def table(self):
        """:class:`Table`, one row per split method, seed and pair: the number of images, the
        median and 10th percentile of the distance to the nearest reference image, exact and
        near duplicates (count and per cent)."""
        rows = []
        for (method, seed, pair), d in self.distances.items():
            exact, near = int(self.exact[method, seed, pair].sum()), int((d <= self.near).sum())
            rows.append((method, seed, pair, len(d), np.median(d), np.percentile(d, 10),
                         exact, near, f"{100 * near / len(d):.0f}%"))
        return Table(["split", "seed", "images -> nearest in", "images", "median", "10th pct",
                      "exact dup", "near dup", "near %"], rows, digits=2)


def leakage_audit(X, y, X_test, *, methods=SPLIT_METHODS, seeds=(0, 1, 2), val_fraction=0.3,
                  near=None):
    """Audit each split method of :func:`hw3lib.data.train_val_split` for each seed.

    ``X (N, C, H, W)``, ``y (N,)``: the training folder in :func:`~hw3lib.data.load_split`
    order (natural file order, which the "blocked" split and :func:`frame_step` rely on);
    ``X_test (M, C, H, W)``: the test folder. For every method and seed, the validation and
    the test images are compared with that split's training part, and the test images with
    its validation part (:data:`PAIRS`).
    ``near``: the near-duplicate distance, by default :func:`frame_step` of ``X, y``.
    """
    if not len(seeds):
        raise ValueError("seeds is empty: pass e.g. (0, 1, 2)")
    audit = LeakageAudit(frame_step(X, y) if near is None else float(near))
    for method in methods:
        for seed in seeds:
            X_train, _, X_val, _ = train_val_split(X, y, val_fraction, seed, method)
            for pair, (images, reference) in zip(PAIRS, ((X_val, X_train), (X_test, X_train),
                                                         (X_test, X_val))):
                audit.distances[method, seed, pair] = nearest(images, reference)[0]
                audit.exact[method, seed, pair] = exact_duplicates(images, reference)
    return audit
