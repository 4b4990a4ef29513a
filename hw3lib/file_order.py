"""Whether a folder's files come in frame order: near-identical images (frames of a video,
bursts) that are neighbours in file-name order, as the blocked split of
:func:`hw3lib.data.train_val_split` needs to hold them out together.

Consecutive files of a class (:func:`~hw3lib.distances.frame_step`) that sit far farther apart than
an image sits from its nearest image in the folder (:func:`~hw3lib.distances.neighbour_distance`),
while the test images sit far from the folder, are out of order (random names, several videos
interleaved). ``train`` and ``sweep`` note it before training (:func:`file_order_note`), the leakage
audit (:mod:`hw3lib.leakage`) and the results (:mod:`hw3lib.results`) say it in words.
"""
import time

import numpy as np
from tqdm.auto import tqdm

from .data import PROGRESS_DELAY
from .distances import class_steps, nearest, neighbour_distances, neighbour_pairs

# The files of a class are taken as out of order (near-identical images that are not neighbours
# in file-name order: random names, several videos interleaved) when consecutive files sit this
# many times farther apart than an image sits from its nearest image in the training folder
# (:attr:`hw3lib.leakage.LeakageAudit.neighbour`). In frame order the two are alike (the fruit
# data: 1.28 and 1.20); independent images (random smooth patterns) came within 1.7 of it;
# shuffled frames 6-7 (two shuffles).
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


def files_out_of_order(step, neighbour, test):
    """Whether consecutive files of a class sit over :data:`ORDER_RATIO` times farther apart (``step``,
    :func:`~hw3lib.distances.frame_step`) than an image from its nearest image (``neighbour``,
    :func:`~hw3lib.distances.neighbour_distance`), and the test images over :data:`ORDER_TEST_RATIO`
    times farther from their nearest training image (``test``, a median): near-identical images that
    are not neighbours in file-name order, and that new images are not near."""
    return step > ORDER_RATIO * neighbour and test > ORDER_TEST_RATIO * neighbour


def order_sentence(step, neighbour, of="a class", folder="training"):
    """The start of a sentence saying that consecutive files of ``of`` sit ``step`` apart
    (:func:`~hw3lib.distances.frame_step`), far more than an image from its nearest image
    (``neighbour``, :func:`~hw3lib.distances.neighbour_distance`) in the ``folder`` folder:
    near-identical images are not neighbours in file-name order."""
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


def file_order_note(X, y, X_test, classes=None, progress=False, quiet_since=None):
    """A note when the images ``X (N, C, H, W)`` of labels ``y (N,)``, in file order (the
    training part of :func:`~hw3lib.data.load_dataset`'s blocked split keeps it), are out of
    frame order (:func:`order_finding` with the test images ``X_test (M, C, H, W)``): the
    blocked split then holds out images whose near-copies train. None otherwise.
    With ``progress``, a ``tqdm.auto`` bar counts the image pairs compared (4 s at 16,000 RGB
    64x64 images) once the screen has been silent :data:`~hw3lib.data.PROGRESS_DELAY` seconds:
    from ``quiet_since`` (a :func:`time.monotonic`, where other work without a bar went before
    the check, e.g. hashing), else from the check's start."""
    pairs = neighbour_pairs(len(X), ORDER_SAMPLE) + min(ORDER_SAMPLE, len(X_test)) * len(X)
    silent = 0.0 if quiet_since is None else time.monotonic() - quiet_since
    with tqdm(total=pairs, disable=not progress, unit="pair", unit_scale=True, desc="checking file order",
              delay=max(0.0, PROGRESS_DELAY - silent), leave=False) as bar:
        found = order_finding(X, y, classes, X_test, bar)
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


def order_finding(X, y, classes=None, X_test=None, bar=None):
    """``(of, step, neighbour)`` where the images ``X (N, C, H, W)`` of labels ``y (N,)``, in
    file order, are out of frame order (:func:`files_out_of_order`), None where not: ``of`` names
    the classes out of order ("class A (and of B)", by ``classes``, the names by label, default
    the labels) or "a class" (the folder as a whole), ``step`` and ``neighbour`` are the first's.
    Judged class by class where :data:`ORDER_CLASS_SAMPLE` of a class's images were looked up,
    and over the whole folder; the nearest images of :data:`ORDER_SAMPLE` images per half looked
    up, and of as many test images ``X_test (M, C, H, W)`` (None: by the step alone, as for the
    order of the test folder itself). ``bar`` (a tqdm bar, or None) counts the image pairs
    compared."""
    y = np.asarray(y)
    if len(y) < 2:
        return None
    looked_up, distances = neighbour_distances(X, ORDER_SAMPLE, bar)
    test = np.inf
    if X_test is not None:
        X_test = np.asarray(X_test)
        tests = np.random.default_rng(0).permutation(len(X_test))[:ORDER_SAMPLE]
        test = np.median(nearest(X_test[np.sort(tests)], X, bar=bar)[0])
    return judged_order(y, looked_up, distances, test, class_steps(X, y), classes)


def judged_order(y, looked_up, distances, test, steps, classes):
    """:func:`order_finding` from its measurements, for the labels ``y (N,)``: ``looked_up,
    distances``, both ``(L,)``, as :func:`~hw3lib.distances.neighbour_distances` gives them,
    ``test`` the test images' median distance to their nearest image of the folder, ``steps``
    :func:`~hw3lib.distances.class_steps` (``{label: (n - 1,)}``), ``classes`` the names by label
    (None: the labels)."""
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

