"""A leakage audit: how close validation and test images sit to the images a model trains on.

A validation split is only worth choosing settings on if its images are as new to the model
as the test images are. Frames of one video are near-copies of their neighbours, so a random
split leaves a neighbouring frame of most validation images in training (of about 90% in the
fruit data's 70/30 split). The audit measures
this for each split method of :func:`hw3lib.data.train_val_split` and several seeds:

- the Euclidean distance from each validation (and test) image to its nearest training image,
  over all ``C*H*W`` pixel values in [0, 1] (:func:`hw3lib.distances.nearest`);
- **exact duplicates**: images whose pixels equal a training image's, value for value;
- **near duplicates**: images closer to a training image than the ``near`` distance. By
  default ``near`` is :func:`~hw3lib.distances.frame_step`, the median distance between
  consecutive files of a class in the training folder: a near duplicate is closer to a training
  image than a video's typical next frame is to the frame before it. On data that is not video
  the step is simply a typical distance between two images of a class; pass ``near`` to use
  another threshold;
- whether the training folder's files come in frame order, as the blocked split needs to hold
  near-identical images out together (:mod:`hw3lib.file_order`).

Typical use (notebook 01)::

    audit = leakage_audit(X, y, X_test)          # Data_train and Data_test as load_split gives them
    print(audit.table())
    plots.plot_leakage(audit)
"""
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .data import PROGRESS_DELAY, SPLIT_METHODS, validation_mask
from .distances import (check_shapes, class_steps, duplicates_by_digest, image_digests, median_step, nearest_many,
                        neighbour_distances, neighbour_pairs)
from .file_order import files_out_of_order, judged_order, order_consequence, order_fix, order_sentence
from .tables import Table

# (images, reference): each image is compared with its nearest image in the reference
PAIRS = ("validation -> training", "test -> training", "test -> validation")

# A split's validation images count as less new to the model than its test images (and its
# validation accuracy as too kind) when their share of near duplicates of training images
# exceeds the test images' by more than this; the test images as less new than validation's
# (and test accuracy as too kind) when theirs exceeds validation's by more than this. Frames at
# the two ends of a blocked split's held-out runs have a neighbour in training, which on video
# makes about a tenth of its validation images near duplicates where none of the test images
# may be (the fruit data: random split 0.68 against 0.11 of the test images, blocked 0.11
# against 0.10).
NEAR_MARGIN = 0.15


@dataclass
class LeakageAudit:
    """What :func:`leakage_audit` measured.

    ``distances[(method, seed, pair)]`` holds each image's distance to its nearest reference
    image ``(N,)`` (0 for an exact duplicate, which is therefore always a near one too),
    ``exact[(method, seed, pair)]`` whether it is an exact duplicate (bool ``(N,)``); ``pair`` is
    one of :data:`PAIRS`. ``near`` is the near-duplicate threshold; ``step`` the
    :func:`~hw3lib.distances.frame_step` of the training folder and ``neighbour`` the median
    distance from one of its images to the nearest image of the other half of it (a seeded
    random half), which
    :meth:`findings` compare to tell whether the files come in frame order (None: not measured).
    ``test_nearest`` is ``(distances, indices)``, both ``(M,)``: each test image's distance to
    its nearest image of the training folder (any split's training or validation part; 0 for an
    exact copy) and that image's index in the folder (None: not measured); ``test_neighbour`` is
    the median of those distances (None: not measured).
    ``mirrored`` (bool ``(M,)``, None: not measured) says which test images equal a training-folder
    image flipped left-right, as training with flips shows it. ``disordered`` is
    :func:`~hw3lib.file_order.order_finding` of the training folder, ``(of, step, neighbour)``:
    its files out of frame order judged class by class, as ``train`` notes them (None: in order,
    or not measured).
    """

    near: float
    distances: dict = field(default_factory=dict)
    exact: dict = field(default_factory=dict)
    step: float | None = None
    neighbour: float | None = None
    test_nearest: tuple | None = None
    test_neighbour: float | None = None
    mirrored: np.ndarray | None = None
    disordered: tuple | None = None

    def out_of_order(self):
        """:func:`~hw3lib.file_order.files_out_of_order` of :attr:`step`, :attr:`neighbour` and
        :attr:`test_neighbour` (False where not measured)."""
        return self.step is not None and files_out_of_order(self.step, self.neighbour, self.test_neighbour)

    def near_too_large(self):
        """Whether :attr:`near` is the step between files that are out of frame order
        (:meth:`out_of_order`): a threshold that counts unrelated images as near."""
        return self.out_of_order() and self.near == self.step

    def no_runs(self):
        """Whether the files do not come in runs of near-identical images (e.g. independent
        photos): the blocked split's validation images no farther from their nearest training
        image than :attr:`near`, the step between files, so that a near duplicate is only an
        image nearer a training image than two neighbouring files are. False where the blocked
        split was not audited, a threshold was given (``near=``) or the files are out of frame
        order (:meth:`near_too_large`)."""
        stepped = self.step is None or self.near == self.step  # None: an audit made by hand
        measured = any(key[0] == "blocked" for key in self.distances)
        if not (stepped and measured) or self.near_too_large():
            return False
        return self.summary("blocked", PAIRS[0])[0] <= self.near

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

    def test_near_copies(self):
        """The test images within :attr:`near` of an image of the training folder (near
        duplicates, exact copies among them at 0), the nearest first: ``(test indices, their
        nearest training-folder images' indices, distances)``, each ``(K,)``; empty where
        :attr:`test_nearest` is None."""
        if self.test_nearest is None:
            return np.empty(0, int), np.empty(0, int), np.empty(0)
        distances, indices = self.test_nearest
        near = np.flatnonzero(distances <= self.near)
        near = near[np.argsort(distances[near], kind="stable")]  # ties in file order
        return near, indices[near], distances[near]

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
        images have an exact copy (or a mirror image) in the training folder (:meth:`copy_findings`)."""
        # out of order, the frame step is no near threshold; a threshold given (near=) still is
        stepped = self.step is None or self.near == self.step  # None: an audit made by hand
        lines, shuffled = [], self.near_too_large()
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
            elif val_high:  # than test, or only than the newest validation (test as near as it)
                than = ("test accuracy" if val > test + NEAR_MARGIN else "accuracy on new images "
                        f"({newest:.0%} of the {other} split's validation images are near duplicates)")
                lines.append(f"{method} split: {shares}: validation accuracy will read higher than "
                             f"{than}, and settings chosen on it may not hold; {fix}")
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
        elif self.no_runs():
            held_out = self.summary("blocked", PAIRS[0])[0]
            lines.append(f"consecutive files of a class are no nearer each other ({self.near:.3g}) "
                         "than the blocked split's validation images are to their nearest "
                         f"training image ({held_out:.3g}): the files do not come in runs of "
                         "near-identical images (video frames, bursts), so a near duplicate "
                         "here is only an image nearer a training image than two neighbouring "
                         "files are")
        return lines + [sentence for sentence, _ in self.copy_findings()]

    def copy_findings(self):
        """The last of :meth:`findings`, each with the test images it counts: ``(sentence,
        indices (K,))`` for the exact copies of training-folder images (a sentence even when
        there are none), then, where there are any, for the mirror images."""
        copies, mirrors = self.test_copies(), self.test_mirrors()
        found = [(f"{len(copies)} test image(s) have an exact copy in the training folder: the "
                  "test accuracy counts them as unseen; remove them from the test folder (or their "
                  "copies from the training folder)" if len(copies) else
                  "no test image has an exact copy in the training folder", copies)]
        if len(mirrors):
            found.append((f"{len(mirrors)} test image(s) are the mirror image (flipped left-right) "
                          "of an image in the training folder: training with flips (--hflip, the "
                          "default) shows the model that very image, so test accuracy counts it as "
                          "unseen; remove them from the test folder (or train with --no-hflip)", mirrors))
        return found

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
    order (natural file order, which the "blocked" split and
    :func:`~hw3lib.distances.frame_step` rely on);
    ``X_test (M, C, H, W)``: the test folder. For every method and seed, the validation and
    the test images are compared with that split's training part, and the test images with
    its validation part (:data:`PAIRS`).
    ``near``: the near-duplicate distance, by default :func:`~hw3lib.distances.frame_step` of
    ``X, y``.
    ``classes``: the names of the labels, which the findings name (default the labels).
    ``progress``: a ``tqdm.auto`` bar of the image pairs compared, shown once the audit has run
    :data:`PROGRESS_DELAY` seconds (time grows as the number of pairs: minutes at 24,000 images).
    """
    if not len(seeds):
        raise ValueError("seeds is empty: pass e.g. (0, 1, 2)")
    y = np.asarray(y)
    X_test, X = check_shapes(X_test, X, names=("X_test", "X"))
    if not len(X_test):  # its tables would take medians of nothing
        raise ValueError(f"X_test {X_test.shape} holds no images: pass the test folder's, "
                         "load_split(split='test')[0]")
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} != {len(y)}")
    keys = [(method, seed) for method in methods for seed in seeds]
    # the splits first: their errors name what is wrong with the data (one image per class)
    is_val = {key: validation_mask(y, val_fraction, key[1], key[0]) for key in keys}
    steps = class_steps(X, y)
    step = median_step(steps)  # frame_step's
    audit = LeakageAudit(step if near is None else float(near), step=step)
    # The test images are compared with every split's training and validation images in one
    # pass over X; the validation images of each split with its training images; each image
    # with the other half of X (neighbour_distance; frame_step needs 2 images or more).
    pairs = (sum(int(is_val[key].sum()) * int((~is_val[key]).sum()) for key in keys)
             + len(X_test) * len(X) + neighbour_pairs(len(X)))
    with tqdm(total=pairs, disable=not progress, delay=PROGRESS_DELAY, unit="pair", unit_scale=True,
              desc="leakage audit") as bar:
        to_train = [nearest_many(X, X, [~is_val[key]], rows=is_val[key], bar=bar)[0] for key in keys]
        test_to = nearest_many(X_test, X, [m for key in keys for m in (~is_val[key], is_val[key])],
                               bar=bar)
        looked_up, neighbours = neighbour_distances(X, bar=bar)
        audit.neighbour = float(np.median(neighbours))  # neighbour_distance's
    digests, test_digests = image_digests(X, X.dtype), image_digests(X_test, X_test.dtype)
    X_digests = digests if X.dtype == X_test.dtype else image_digests(X, X_test.dtype)
    flipped = X_test[..., ::-1]
    audit.mirrored = duplicates_by_digest(flipped, X, image_digests(flipped, X_test.dtype), X_digests)
    for k, key in enumerate(keys):
        val, train = is_val[key], ~is_val[key]
        exact = [duplicates_by_digest(X, X, digests, digests, val, train),
                 duplicates_by_digest(X_test, X, test_digests, X_digests, None, train),
                 duplicates_by_digest(X_test, X, test_digests, X_digests, None, val)]
        for pair, distances, found in zip(PAIRS, (to_train[k][0], test_to[2 * k][0], test_to[2 * k + 1][0]),
                                          exact):
            # an exact duplicate is at distance 0, which |a|^2 + |b|^2 - 2 a.b rounds to about 1e-7:
            # so it is a near duplicate however small ``near`` is (0 where most frames repeat)
            distances[found] = 0
            audit.distances[(*key, pair)], audit.exact[(*key, pair)] = distances, found
    # the test images' nearest in the whole training folder: in the first split's training or
    # validation part (an exact copy's distance set to 0 above), indices counted in the folder
    (train_d, train_i), (val_d, val_i), val = test_to[0], test_to[1], is_val[keys[0]]
    in_val = val_d < train_d
    audit.test_nearest = (np.where(in_val, val_d, train_d),
                          np.where(in_val, np.flatnonzero(val)[val_i], np.flatnonzero(~val)[train_i]))
    audit.test_neighbour = float(np.median(audit.test_nearest[0]))
    # class by class, as train notes it (order_finding, here of every image)
    audit.disordered = judged_order(y, looked_up, neighbours, audit.test_neighbour, steps, classes)
    return audit
