"""A leakage audit: how close validation and test images sit to the images a model trains on.

A validation split is only worth choosing settings on if its images are as new to the model
as the test images are. Frames of one video are near-copies of their neighbours, so a random
split leaves a neighbouring frame of most validation images in training (of about 90% in the
fruit data's 70/30 split). The audit measures
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
import hashlib
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .data import SPLIT_METHODS, validation_mask
from .tables import Table

# (images, reference): each image is compared with its nearest image in the reference
PAIRS = ("validation -> training", "test -> training", "test -> validation")


# The most bytes of float64 pixels converted at once, per block of images (:func:`nearest`): a
# block of the images, a block of the reference images and their block of squared distances each
# stay within it, so memory does not grow with the dataset.
BLOCK_BYTES = 2**26

# Seconds an audit runs before its progress bar shows: the course's audit (0.2 s) shows none,
# one of 24,000 RGB 64x64 images (minutes) does.
PROGRESS_DELAY = 2.0

# A split's validation images count as less new to the model than its test images (and its
# validation accuracy as too kind) when their share of near duplicates of training images
# exceeds the test images' by more than this; the test images as less new than validation's
# (and test accuracy as too kind) when theirs exceeds validation's by more than this. Frames at
# the two ends of a blocked split's held-out runs have a neighbour in training, which on video
# makes about a tenth of its validation images near duplicates where none of the test images
# may be (the fruit data: random split 0.68 against 0.11 of the test images, blocked 0.11
# against 0.10).
NEAR_MARGIN = 0.15

# The files of a class are taken as out of order (near-identical images that are not neighbours
# in file-name order: random names, several videos interleaved) when consecutive files sit this
# many times farther apart than an image sits from its nearest image in the training folder
# (:attr:`LeakageAudit.neighbour`). In frame order the two are alike (the fruit data: 1.28 and
# 1.20); independent images (random smooth patterns) came within 1.7 of it; shuffled frames 6-7 (two shuffles).
ORDER_RATIO = 3.0

# Near-copies in the training folder leak only where new images have none: files out of frame
# order are taken as such only where the test images also sit over this many times farther from
# their nearest training image than an image of the folder from its nearest (the fruit data named
# at random: 2.6). Independent renders (shapes at random places in random colours), numerous
# enough that each has a close one, sit 3.2-3.6 times farther from the next file than from their
# nearest image, yet the test images as close (1.1-1.2): no video to rename.
ORDER_TEST_RATIO = 1.5

# The images of each half of a folder that :func:`file_order_note` looks up in the other half,
# and the test images it looks up in the folder (the audit looks up every image): enough for a
# median, and a check before training that costs 0.4 ms an image at RGB 64x64 (10 seconds at
# 24,000 images, a whole audit minutes), most of it converting the folder to float64.
ORDER_SAMPLE = 256

# The images of a class that :func:`file_order_note` must have looked up (of its
# :data:`ORDER_SAMPLE` per half) to judge the class alone: a median of a few strays (200 classes
# of 10 independent renders, judged on the 2 or 3 images each had looked up: several noted out of order).
# Folders of many small classes are judged as a whole only, as the audit judges them.
ORDER_CLASS_SAMPLE = 16

# How to name files so that the blocked split holds near-identical images out together.
ORDER_FIX = ("name each class's files so that they sort video by video, in frame order (e.g. "
             "video03_frame0007.png)")


def _flat(X):
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1)


def _selected(mask, n):
    return np.arange(n) if mask is None else np.flatnonzero(mask)


def _nearest_many(X, X_ref, col_masks, rows=None, chunk=1024, bar=None):
    """:func:`nearest` of the ``rows`` of ``X`` (a boolean mask, None: all) to each of several
    subsets of ``X_ref`` at once, ``col_masks`` boolean masks over ``X_ref`` (None: all): a list
    of ``(distances, indices)``, one pair per mask, indices counted among the images it selects.
    One pass over the images of ``X_ref`` that any mask selects serves them all.

    Blocks of both arrays are converted to float64 one at a time (:data:`BLOCK_BYTES`). Rows go
    in blocks of ``chunk`` as a single :func:`nearest` call takes them (a BLAS product's rounding
    depends on where a row sits in its block, not on the columns), so the distances are the same
    bits as a call per subset. ``bar`` (a tqdm bar, or None) counts the image pairs compared."""
    rows = _selected(rows, len(X))
    cols = [_selected(c, len(X_ref)) for c in col_masks]
    union = cols[0] if len(cols) == 1 else np.flatnonzero(
        np.isin(np.arange(len(X_ref)), np.concatenate(cols)))
    features = int(np.prod(X.shape[1:]))
    per_block = max(1, BLOCK_BYTES // (8 * max(features, 1)))
    row_block = max(1, min(chunk, per_block))
    col_block = max(2, min(per_block, BLOCK_BYTES // (8 * row_block)))
    # equal blocks of columns, none of one column alone (a product with one column is a
    # matrix-vector product, rounded differently)
    col_blocks = np.array_split(np.arange(len(union)), -(-len(union) // col_block)) if len(union) else []
    ranks = []  # each mask's rank of each union column, -1 where it does not select it
    for c in cols:
        rank = np.full(len(union), -1)
        rank[np.searchsorted(union, c)] = np.arange(len(c))
        ranks.append(rank)
    best = [np.full(len(rows), np.inf) for _ in cols]
    best_index = [np.zeros(len(rows), dtype=np.int64) for _ in cols]
    for block in col_blocks:
        B = _flat(X_ref[union[block]])
        b2 = (B ** 2).sum(axis=1)
        block_ranks = [rank[block] for rank in ranks]
        kept = [np.flatnonzero(rank >= 0) for rank in block_ranks]
        for start in range(0, len(rows), row_block):
            part = _flat(X[rows[start:start + row_block]])
            d2 = (part ** 2).sum(axis=1)[:, None] + b2[None, :] - 2 * part @ B.T
            if bar is not None:
                bar.update(d2.size)
            for q, (rank, keep) in enumerate(zip(block_ranks, kept)):
                if not len(keep):
                    continue
                sub = d2 if len(keep) == len(rank) else d2[:, keep]
                arg = sub.argmin(axis=1)
                value = sub[np.arange(len(sub)), arg]
                here = slice(start, start + len(part))
                better = value < best[q][here]  # strict: the first of equal minima wins, as argmin's
                best[q][here][better] = value[better]
                best_index[q][here][better] = rank[keep[arg[better]]]
    return [(np.sqrt(np.maximum(b, 0)), i) for b, i in zip(best, best_index)]


def nearest(X, X_ref, chunk=1024):
    """``(distances, indices)``, both ``(N,)``: for each image of ``X (N, C, H, W)`` the
    Euclidean distance to its nearest image in ``X_ref (M, C, H, W)`` and that image's index.

    Computed in float64 from ``|a|^2 + |b|^2 - 2 a.b``, in blocks of at most ``chunk`` rows of
    ``X`` and of :data:`BLOCK_BYTES` of float64 from either array, so memory stays bounded
    however many images there are (time grows as N * M)."""
    X, X_ref = _check_shapes(X, X_ref)
    return _nearest_many(X, X_ref, [None], chunk=chunk)[0]


def _check_shapes(X, X_ref, names=("X", "X_ref")):
    """``X`` and ``X_ref`` as arrays; a ValueError, naming them as the caller's arguments
    ``names``, unless they hold images of one shape and ``X_ref`` holds at least one."""
    X, X_ref = np.asarray(X), np.asarray(X_ref)
    if X.ndim < 2 or X.shape[1:] != X_ref.shape[1:] or len(X_ref) == 0:
        raise ValueError(f"{names[0]} {X.shape} and {names[1]} {X_ref.shape} must be images of one "
                         f"shape, {names[1]} non-empty")
    return X, X_ref


def _digests(X, dtype):
    """A 16-byte BLAKE2b digest of each image of ``X`` as ``dtype`` bytes (one image converted
    at a time): the key that finds candidate duplicates without holding every image's bytes."""
    return [hashlib.blake2b(np.ascontiguousarray(image, dtype=dtype), digest_size=16).digest()
            for image in X]


def _exact(X, X_ref, digests, ref_digests, rows=None, cols=None):
    """:func:`exact_duplicates` of the ``rows`` of ``X`` among the ``cols`` of ``X_ref`` (boolean
    masks, None: all) from their :func:`_digests`; a digest match is confirmed byte for byte."""
    index = {}
    for j in _selected(cols, len(X_ref)):
        index.setdefault(ref_digests[j], []).append(j)
    found = []
    for i in _selected(rows, len(X)):
        matches = index.get(digests[i], ())
        row = np.ascontiguousarray(X[i]).tobytes() if matches else None
        found.append(any(np.ascontiguousarray(X_ref[j], dtype=X.dtype).tobytes() == row for j in matches))
    return np.array(found, dtype=bool)


def exact_duplicates(X, X_ref):
    """A boolean ``(N,)``: which images of ``X (N, ...)`` equal some image of ``X_ref``
    value for value (compared as bytes, so no rounding is involved). Holds a 16-byte digest per
    image, not the images' bytes."""
    X, X_ref = np.asarray(X), np.asarray(X_ref)
    return _exact(X, X_ref, _digests(X, X.dtype), _digests(X_ref, X.dtype))


def frame_step(X, y):
    """The median distance between consecutive images of each class of ``X (N, C, H, W)``
    (in the given order, by class ``y (N,)``): the default ``near`` threshold."""
    return _median_step(_class_steps(np.asarray(X), np.asarray(y)))


def _class_steps(X, y):
    """``{label: the distances between its consecutive images (n - 1,)}`` for each class of
    ``y (N,)`` in ``X (N, C, H, W)``."""
    return {c: _steps(X, np.flatnonzero(y == c)) for c in np.unique(y)}


def _median_step(steps):
    """:func:`frame_step` of :func:`_class_steps`'s ``steps``."""
    steps = np.concatenate([np.empty(0), *steps.values()])
    if len(steps) == 0:
        raise ValueError("frame_step needs at least two images of one class")
    return float(np.median(steps))


def _steps(X, idx):
    """The distances between consecutive images ``X[idx]`` ``(len(idx) - 1,)``, converted to
    float64 :data:`BLOCK_BYTES` at a time."""
    block = max(2, BLOCK_BYTES // (8 * max(int(np.prod(X.shape[1:])), 1)))
    return np.concatenate([np.empty(0)] + [  # blocks overlap by one image
        np.linalg.norm(np.diff(_flat(X[idx[start:start + block]]), axis=0), axis=1)
        for start in range(0, len(idx) - 1, block - 1)])


def neighbour_distance(X, sample=None, bar=None):
    """The median distance from an image of ``X (N, C, H, W)`` (N >= 2) to its nearest image in
    the other half of ``X`` (a seeded random half; each half's images looked up in the other; an
    exact copy at 0). ``sample``: look up at most this many images of each half (seeded), None:
    all of them. ``bar`` (a tqdm bar, or None) counts the image pairs compared."""
    return float(np.median(_neighbour_distances(X, sample, bar)[1]))


def _neighbour_distances(X, sample=None, bar=None):
    """``(looked_up, distances)``: the indices of the images of ``X`` that
    :func:`neighbour_distance` looks up, and each one's distance to its nearest image in the
    other half, both ``(L,)``."""
    rng = np.random.default_rng(0)
    half = np.zeros(len(X), dtype=bool)
    half[rng.permutation(len(X))[:len(X) // 2]] = True
    indices, distances = [], []
    for rows in (half, ~half):
        looked_up = rows
        if sample is not None and rows.sum() > sample:
            looked_up = np.zeros(len(X), dtype=bool)
            looked_up[rng.choice(np.flatnonzero(rows), sample, replace=False)] = True
        distance, index = _nearest_many(X, X, [~rows], rows=looked_up, bar=bar)[0]
        # an exact copy is at distance 0, which |a|^2 + |b|^2 - 2 a.b rounds to about 1e-7
        indices.append(np.flatnonzero(looked_up))
        pairs = zip(indices[-1], np.flatnonzero(~rows)[index])
        distance[[np.array_equal(X[i], X[j]) for i, j in pairs]] = 0
        distances.append(distance)
    return np.concatenate(indices), np.concatenate(distances)


def files_out_of_order(step, neighbour, test):
    """Whether consecutive files of a class sit over :data:`ORDER_RATIO` times farther apart
    (``step``, :func:`frame_step`) than an image from its nearest image (``neighbour``,
    :func:`neighbour_distance`), and the test images over :data:`ORDER_TEST_RATIO` times farther
    from their nearest training image (``test``, a median): near-identical images that are not
    neighbours in file-name order, and that new images are not near."""
    return step > ORDER_RATIO * neighbour and test > ORDER_TEST_RATIO * neighbour


def order_sentence(step, neighbour, of="a class", folder="training"):
    """The start of a sentence saying that consecutive files of ``of`` sit ``step`` apart
    (:func:`frame_step`), far more than an image from its nearest image (``neighbour``,
    :func:`neighbour_distance`) in the ``folder`` folder: near-identical images are not
    neighbours in file-name order."""
    causes = "random names, several videos interleaved, numbers that do not count the frames"
    if not neighbour:  # most images have an exact copy elsewhere in the folder (no ratio)
        return (f"most images of the {folder} folder have an exact copy in it (files saved twice, "
                f"repeated frames), yet consecutive files of {of} sit {step:.3g} apart: the "
                f"copies are not neighbours in file-name order ({causes})")
    return (f"consecutive files of {of} sit {step / neighbour:.1f} times farther apart "
            f"({step:.3g}) than an image from its nearest image in the {folder} folder "
            f"({neighbour:.3g}): near-identical images (frames of a video, bursts) are not "
            f"neighbours in file-name order ({causes})")


def order_fix(neighbour):
    """How to fix files out of frame order (:func:`order_sentence` of ``neighbour``): where
    most images have an exact copy (``neighbour`` 0), first remove the copies."""
    return ("" if neighbour else "remove the extra copies (each image once), then ") + ORDER_FIX


def file_order_note(X, y, X_test, classes=None):
    """A note when the images ``X (N, C, H, W)`` of labels ``y (N,)``, in file order (the
    training part of :func:`~hw3lib.data.load_dataset`'s blocked split keeps it), are out of
    frame order (:func:`order_finding` with the test images ``X_test (M, C, H, W)``): the
    blocked split then holds out images whose near-copies train. None otherwise."""
    found = order_finding(X, y, classes, X_test)
    if found is None:
        return None
    return f"note: {order_consequence(*found)}; `python -m hw3lib audit` measures it"


def order_consequence(of, step, neighbour):
    """What files of ``of`` out of frame order (:func:`order_finding`'s ``(of, step,
    neighbour)``) do to the blocked split, and the fix: :func:`file_order_note`'s and the
    audit's words."""
    return (f"{order_sentence(step, neighbour, of)}, so the blocked validation split holds out "
            "images whose near-copies train: validation accuracy, and the epoch and settings "
            f"chosen on it, will read higher than on new images. Fix: {order_fix(neighbour)}")


def order_finding(X, y, classes=None, X_test=None):
    """``(of, step, neighbour)`` where the images ``X (N, C, H, W)`` of labels ``y (N,)``, in
    file order, are out of frame order (:func:`files_out_of_order`), None where not: ``of`` names
    the classes out of order ("class A (and of B)", by ``classes``, the names by label, default
    the labels) or "a class" (the folder as a whole), ``step`` and ``neighbour`` are the first's.
    Judged class by class where :data:`ORDER_CLASS_SAMPLE` of a class's images were looked up,
    and over the whole folder; the nearest images of :data:`ORDER_SAMPLE` images per half looked
    up, and of as many test images ``X_test (M, C, H, W)`` (None: by the step alone, as for the
    order of the test folder itself)."""
    y = np.asarray(y)
    if len(y) < 2:
        return None
    looked_up, distances = _neighbour_distances(X, ORDER_SAMPLE)
    test = np.inf
    if X_test is not None:
        X_test = np.asarray(X_test)
        tests = np.random.default_rng(0).permutation(len(X_test))[:ORDER_SAMPLE]
        test = np.median(nearest(X_test[np.sort(tests)], X)[0])
    return _judged_order(y, looked_up, distances, test, _class_steps(X, y), classes)


def _judged_order(y, looked_up, distances, test, steps, classes):
    """:func:`order_finding` from its measurements: ``looked_up, distances`` as
    :func:`_neighbour_distances` gives them, ``test`` the test images' median distance to their
    nearest image of the folder, ``steps`` :func:`_class_steps`."""
    looked_up = y[looked_up]  # the labels of the images looked up

    def judged(group):
        """``(step, neighbour)`` of the classes ``group`` where out of order, else None."""
        group_steps = np.concatenate([steps[c] for c in group])
        if not len(group_steps):
            return None
        step = float(np.median(group_steps))
        neighbour = float(np.median(distances[np.isin(looked_up, group)]))
        return (step, neighbour) if files_out_of_order(step, neighbour, test) else None

    found = [(str(c if classes is None else classes[c]), judged([c])) for c in steps
             if (looked_up == c).sum() >= ORDER_CLASS_SAMPLE]
    found = [(name, measured) for name, measured in found if measured]
    if found:
        (name, measured), others = found[0], [other for other, _ in found[1:]]
        return (f"class {name}" + (f" (and of {', '.join(others)})" if others else ""), *measured)
    whole = judged(list(steps))
    return None if whole is None else ("a class", *whole)


@dataclass
class LeakageAudit:
    """What :func:`leakage_audit` measured.

    ``distances[(method, seed, pair)]`` holds each image's distance to its nearest reference
    image ``(N,)`` (0 for an exact duplicate, which is therefore always a near one too),
    ``exact[(method, seed, pair)]`` whether it is an exact duplicate (bool ``(N,)``); ``pair`` is
    one of :data:`PAIRS`. ``near`` is the near-duplicate threshold; ``step`` the
    :func:`frame_step` of the training folder and ``neighbour`` the median distance from one of
    its images to the nearest image of the other half of it (a seeded random half), which
    :meth:`findings` compare to tell whether the files come in frame order (None: not measured).
    ``test_neighbour`` is the median distance from a test image to its nearest image of the
    training folder (None: not measured).
    ``mirrored`` (bool ``(M,)``, None: not measured) says which test images equal a training-folder
    image flipped left-right, as training with flips shows it. ``disordered`` is
    :func:`order_finding` of the training folder, ``(of, step, neighbour)``: its files out of
    frame order judged class by class, as ``train`` notes them (None: in order, or not measured).
    """

    near: float
    distances: dict = field(default_factory=dict)
    exact: dict = field(default_factory=dict)
    step: float | None = None
    neighbour: float | None = None
    test_neighbour: float | None = None
    mirrored: np.ndarray | None = None
    disordered: tuple | None = None

    def out_of_order(self):
        """:func:`files_out_of_order` of :attr:`step`, :attr:`neighbour` and :attr:`test_neighbour`
        (False where not measured)."""
        return self.step is not None and files_out_of_order(self.step, self.neighbour, self.test_neighbour)

    def summary(self, method, pair):
        """``(median distance, near-duplicate fraction)`` of ``pair`` under ``method``, each the
        mean over the audited seeds."""
        keys = [k for k in self.distances if k[0] == method and k[2] == pair]
        medians = [np.median(self.distances[k]) for k in keys]
        near = [np.mean(self.distances[k] <= self.near) for k in keys]
        return float(np.mean(medians)), float(np.mean(near))

    def held_out_summary(self, methods):
        """Two lines per split method of ``methods``, in their order: the :meth:`summary` of its
        validation and of the test images, the median distance to the nearest training image and
        the share of near duplicates, side by side."""
        lines = []
        for method in methods:
            (val_median, val_near), (test_median, test_near) = (self.summary(method, pair)
                                                                for pair in PAIRS[:2])
            lines += [f"{method} split, median distance to the nearest training image (share of "
                      "near duplicates):",
                      f"  validation {val_median:.2f} ({100 * val_near:.0f}%), "
                      f"test {test_median:.2f} ({100 * test_near:.0f}%)"]
        return "\n".join(lines)

    def test_copies(self):
        """The indices of the test images whose pixels equal an image of the training folder
        (any split's training or validation part): ``(K,)``."""
        return np.flatnonzero(self._copied())

    def _copied(self):
        """Which test images equal an image of the training folder: bool ``(M,)``."""
        method, seed, _ = next(iter(self.exact))
        return self.exact[method, seed, PAIRS[1]] | self.exact[method, seed, PAIRS[2]]

    def test_mirrors(self):
        """The indices of the test images that are no exact copy of a training-folder image but
        its mirror image (flipped left-right): ``(K,)``, empty where :attr:`mirrored` is None."""
        return np.flatnonzero(self.mirrored & ~self._copied()) if self.mirrored is not None else np.empty(0, int)

    def findings(self):
        """What the audit means, in sentences: for each split method, whether its validation
        images are as new to a model trained on its training images as the test images are
        (their near-duplicate shares within :data:`NEAR_MARGIN`), or which are the less new, the
        newest validation of the audited methods counting as new images too (a test folder of
        the training videos' frames is as near as a random split's validation: both read high);
        that near duplicates mean little when the files do not come in runs of near-copies (the
        blocked split's validation images no farther from training than :attr:`near`, where that
        is the step between files, no ``near`` given), or, where the files are out of frame order
        (:meth:`out_of_order`) and the threshold is their step, that no split can be judged until
        they are renamed (the shares then count unrelated images as near), or, where only some
        classes are (:attr:`disordered`, whose near-copies a threshold set by the others' steps
        may not count), that the blocked split cannot choose until they are; and how many test
        images have an exact copy in the training folder."""
        # out of order, the frame step is no near threshold; a threshold given (near=) still is
        stepped = self.step is None or self.near == self.step  # None: an audit made by hand
        lines, shuffled = [], self.out_of_order() and stepped
        disordered = self.disordered if stepped and not shuffled else None
        methods = list(dict.fromkeys(key[0] for key in self.distances))
        # the newest validation of all the methods: a split whose validation or test images are
        # far nearer to training than it reads high, even where the two are alike (a test
        # folder of frames of the training videos)
        newest, other = min((self.summary(method, PAIRS[0])[1], method) for method in methods)
        for method in methods:
            (val_median, val), (test_median, test) = (self.summary(method, pair) for pair in PAIRS[:2])
            shares = (f"{val:.0%} of its validation images are near duplicates of a training "
                      f"image, {test:.0%} of the test images")
            if shuffled:  # the threshold is a step between unrelated images: the shares say nothing
                lines.append(f"{method} split: {shares}, against a threshold that the file order "
                             "makes too large (below); the median distance to the nearest training "
                             f"image is {val_median:.3g} for validation, {test_median:.3g} for test")
                continue
            fix = ("--split blocked holds out whole runs of neighbouring files instead"
                   if method == "random" else
                   "near-identical images (bursts, frames of one video) held out together need "
                   "to be neighbours in file-name order within their class folder")
            own_test = ("give the test folder images of its own (other videos, other bursts), not "
                        "near-copies of training images")
            val_high = val > min(test, newest) + NEAR_MARGIN
            test_high = test > min(val, newest) + NEAR_MARGIN  # the test folder holds near-copies
            if val_high and test_high:
                lines.append(f"{method} split: {shares}, against {newest:.0%} of the {other} split's "
                             "validation images: validation and test accuracy will both read "
                             "higher than accuracy on new images, and settings chosen on this "
                             f"validation may not hold; {fix}, and {own_test}")
            elif test_high:
                lines.append(f"{method} split: {shares}: the test images are less new to the model "
                             "than validation's, so test accuracy will read higher than accuracy "
                             f"on new images; {own_test}")
            elif val_high:
                lines.append(f"{method} split: {shares}: validation accuracy will read higher than "
                             f"test accuracy, and settings chosen on it may not hold; {fix}")
            elif method == "blocked" and disordered:
                lines.append(f"{method} split: {shares}: validation is as new to the model as "
                             f"test by these shares, but the files of {disordered[0]} are out of "
                             "frame order (below), so it is no judge of the epoch or the settings "
                             "until they are renamed")
            else:
                lines.append(f"{method} split: {shares}: validation is as new to the model as "
                             "test, so it can choose the epoch and the settings")
        if shuffled:
            lines.append(f"{order_sentence(self.step, self.neighbour)}, so the blocked split "
                         "cannot hold them out together and whether validation is as new as test "
                         f"cannot be told. Fix: {order_fix(self.neighbour)}, and audit again")
        elif disordered and "blocked" in methods:
            lines.append(f"{order_consequence(*disordered)}, and audit again")
        elif "blocked" in (key[0] for key in self.distances) and stepped:  # near: the step between files
            held_out = self.summary("blocked", PAIRS[0])[0]
            if held_out <= self.near:  # e.g. independent photos: a typical pair's distance
                lines.append(f"consecutive files of a class are no nearer each other ({self.near:.3g}) "
                             "than the blocked split's validation images are to their nearest "
                             f"training image ({held_out:.3g}): the files do not come in runs of "
                             "near-identical images (video frames, bursts), so a near duplicate "
                             "here is only an image nearer a training image than two neighbouring "
                             "files are")
        copies = len(self.test_copies())
        lines.append(f"{copies} test image(s) have an exact copy in the training folder: the test "
                     "accuracy counts them as unseen; remove them from the test folder (or their "
                     "copies from the training folder)" if copies else
                     "no test image has an exact copy in the training folder")
        mirrors = len(self.test_mirrors())
        if mirrors:
            lines.append(f"{mirrors} test image(s) are the mirror image (flipped left-right) of an "
                         "image in the training folder: training with flips (--hflip, the default) "
                         "shows the model that very image, so test accuracy counts it as unseen; "
                         "remove them from the test folder (or train with --no-hflip)")
        return lines

    def summary_table(self):
        """:class:`Table`, one row per split method and pair, over the audited seeds: the
        median distance, the exact duplicates and the share of near duplicates, each as its
        range over the seeds ("4-7", or "0" where every seed gives 0)."""
        groups = {}
        for (method, _, pair), d in self.distances.items():
            groups.setdefault((method, pair), []).append(d)
        rows = []
        for (method, pair), ds in groups.items():
            medians = [np.median(d) for d in ds]
            near = [100 * np.mean(d <= self.near) for d in ds]
            exact = [int(self.exact[k].sum()) for k in self.exact if (k[0], k[2]) == (method, pair)]
            rows.append((method, pair, f"{np.min(medians):.2f}-{np.max(medians):.2f}",
                         f"{min(exact)}" if min(exact) == max(exact) else f"{min(exact)}-{max(exact)}",
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
                  near=None, classes=None, progress=True):
    """Audit each split method of :func:`hw3lib.data.train_val_split` for each seed.

    ``X (N, C, H, W)``, ``y (N,)``: the training folder in :func:`~hw3lib.data.load_split`
    order (natural file order, which the "blocked" split and :func:`frame_step` rely on);
    ``X_test (M, C, H, W)``: the test folder. For every method and seed, the validation and
    the test images are compared with that split's training part, and the test images with
    its validation part (:data:`PAIRS`).
    ``near``: the near-duplicate distance, by default :func:`frame_step` of ``X, y``.
    ``classes``: the names of the labels, which the findings name (default the labels).
    ``progress``: a ``tqdm.auto`` bar of the image pairs compared, shown once the audit has run
    :data:`PROGRESS_DELAY` seconds (time grows as the number of pairs: minutes at 24,000 images).
    """
    if not len(seeds):
        raise ValueError("seeds is empty: pass e.g. (0, 1, 2)")
    y = np.asarray(y)
    X_test, X = _check_shapes(X_test, X, names=("X_test", "X"))
    if not len(X_test):  # its tables would take medians of nothing
        raise ValueError(f"X_test {X_test.shape} holds no images: pass the test folder's, "
                         "load_split(split='test')[0]")
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} != {len(y)}")
    keys = [(method, seed) for method in methods for seed in seeds]
    # the splits first: their errors name what is wrong with the data (one image per class)
    is_val = {key: validation_mask(y, val_fraction, key[1], key[0]) for key in keys}
    steps = _class_steps(X, y)
    step = _median_step(steps)  # frame_step's
    audit = LeakageAudit(step if near is None else float(near), step=step)
    # The test images are compared with every split's training and validation images in one
    # pass over X; the validation images of each split with its training images; each image
    # with the other half of X (neighbour_distance; frame_step needs 2 images or more).
    pairs = (sum(int(is_val[key].sum()) * int((~is_val[key]).sum()) for key in keys)
             + len(X_test) * len(X) + 2 * (len(X) // 2) * (len(X) - len(X) // 2))
    with tqdm(total=pairs, disable=not progress, delay=PROGRESS_DELAY, unit="pair", unit_scale=True,
              desc="leakage audit") as bar:
        to_train = [_nearest_many(X, X, [~is_val[key]], rows=is_val[key], bar=bar)[0] for key in keys]
        test_to = _nearest_many(X_test, X, [m for key in keys for m in (~is_val[key], is_val[key])],
                                bar=bar)
        looked_up, neighbours = _neighbour_distances(X, bar=bar)
        audit.neighbour = float(np.median(neighbours))  # neighbour_distance's
    digests, test_digests = _digests(X, X.dtype), _digests(X_test, X_test.dtype)
    X_digests = digests if X.dtype == X_test.dtype else _digests(X, X_test.dtype)
    flipped = X_test[..., ::-1]
    audit.mirrored = _exact(flipped, X, _digests(flipped, X_test.dtype), X_digests)
    for k, key in enumerate(keys):
        val, train = is_val[key], ~is_val[key]
        exact = [_exact(X, X, digests, digests, val, train),
                 _exact(X_test, X, test_digests, X_digests, None, train),
                 _exact(X_test, X, test_digests, X_digests, None, val)]
        for pair, distances, found in zip(PAIRS, (to_train[k][0], test_to[2 * k][0], test_to[2 * k + 1][0]),
                                          exact):
            # an exact duplicate is at distance 0, which |a|^2 + |b|^2 - 2 a.b rounds to about 1e-7:
            # so it is a near duplicate however small ``near`` is (0 where most frames repeat)
            distances[found] = 0
            audit.distances[(*key, pair)], audit.exact[(*key, pair)] = distances, found
    # the test images' nearest in the whole training folder: in one split's training or validation part
    audit.test_neighbour = float(np.median(np.minimum(test_to[0][0], test_to[1][0])))
    # class by class, as train notes it (:func:`order_finding`, here of every image)
    audit.disordered = _judged_order(y, looked_up, neighbours, audit.test_neighbour, steps, classes)
    return audit
