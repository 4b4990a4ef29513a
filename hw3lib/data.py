"""The image dataset as arrays: loading the splits, the train/validation split, normalisation, batches.

Which files a dataset holds, in what order, and what is skipped and refused is
:mod:`hw3lib.folders` (the layout of a dataset root, where the root is). Each class folder's images
may be in any format, size, bit depth and channel mode that :mod:`hw3lib.images` reads: every
image is converted to the requested ``mode`` by the rules stated there (16-bit grey scaled exactly,
palettes through their palette, colour to grey by luma), so a split may mix them. Without
``image_size`` all images must have one size; with it each is resized as it loads.

Arrays are ``X`` float32 ``(N, C, H, W)`` in [0, 1] and ``y`` int64 ``(N,)`` holding
indices into the sorted class names.

Loading is two steps: :func:`read_images` reads and decodes both splits
(:class:`DecodedImages`), :func:`split_images` splits the training images into training and
validation images and fits the normaliser (:class:`Dataset`); :func:`load_dataset` does both
in one call. Runs that differ only in the split (``val_fraction``, ``seed``, ``split``) are read
once and split each (:func:`hw3lib.runs.known_data`).

Errors: problems with files on disk raise :class:`DataError` (its own class, deliberately
not a ``ValueError``) whose message names the file (every file of a split that cannot be
used, in one error) and the fix: the course's fixes (restore a
file, download a fresh copy) for the course's data (:func:`hw3lib.folders.is_course_data`), other
advice for one's own. Bad arguments (unknown ``mode``/``split``, ``val_fraction`` outside (0, 1), a
bad ``image_size`` or ``batch_size``) raise ``ValueError``.

Neighbours: :mod:`hw3lib.folders` lists the files; :mod:`hw3lib.images` reads one file;
:mod:`hw3lib.download` fetches and verifies the course's copy; :mod:`hw3lib.analysis` describes the
files and arrays (notebook 01).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .checks import check_array, integer, is_number
from .cores import usable_cores
from .folders import (SPLITS, dataset_files, fix_refetch, is_course_data, resolve_root, split_dir,
                      split_files)
from .images import (DataError, check_mode, gather_warnings, parse_image_size, read_image, read_on_thread,
                     warnings_gathered, warnings_on_threads)
from .tables import escaped

MAX_BYTES = 2**31  # the largest split (as float32) loaded without image_size
MAX_NAMED_PROBLEMS = 20  # images that cannot be used, named in one DataError: reading stops there
# How Data_train is split into training and validation (see train_val_split).
SPLIT_METHODS = ("blocked", "random")
NORMALIZE_BLOCK_BYTES = 2**26  # fit_normalizer's float64 deviations, at most this much at once
VAL_BLOCKS = 10  # "blocked": each class's files in natural order, cut into this many runs,
MIN_RUN = 5  # but none shorter than this many files: a small class is cut into fewer, longer runs
PROGRESS_DELAY = 2.0  # seconds of a step's work (reading images, fitting their mean) before its bar shows
MAX_THREADS = 8  # the most threads reading images by default (one per usable core up to this)
AHEAD = 2  # images read or being read ahead of the one used, per thread: memory stays bounded
# A split whose first file is smaller is read on one thread: handing a file to a thread costs
# about 0.1 ms. Measured on two cores, 600 JPEGs (4:3) resized to 32x32, two threads against one:
# 2.7 KB (64 pixels high) 1.35 times as slow, 7.8 KB (128) 1.1 times, 26 KB (256) 1.3 times as
# fast, 95 KB (512) 1.7 times; the course's 32x32 PNGs (1 KB) 1.8 times as slow.
MIN_THREADED_BYTES = 2**15

@dataclass(frozen=True)
class Dataset:
    """Train/validation/test arrays from :func:`load_dataset`.

    ``X_*`` are float32 ``(N, C, H, W)`` in [0, 1], not normalised; ``y_*`` int64 ``(N,)``.
    ``mean`` and ``std`` (float32 ``(C,)``) come from :func:`fit_normalizer` on ``X_train``
    only, so validation and test statistics never leak into the inputs:
    ``normalize(ds.X_val, ds.mean, ds.std)``. ``root`` is the folder it was loaded from
    (None for one built by hand); ``loaded_with`` the settings it was loaded with, as
    :meth:`hw3lib.config.TrainConfig.data_settings` gives them (None for one built by hand).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray
    root: Path | None = None
    loaded_with: dict | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        return tuple(self.X_train.shape[2:])

    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train": (X_train, y_train), "val": (X_val, y_val), "test": (X_test, y_test)}``."""
        return {
            "train": (self.X_train, self.y_train),
            "val": (self.X_val, self.y_val),
            "test": (self.X_test, self.y_test),
        }


@dataclass(frozen=True)
class DecodedImages:
    """Both splits' images from :func:`read_images`, before the training images are split into
    training and validation images (:func:`split_images`): what runs that differ only in the
    split (``val_fraction``, ``seed``, ``split``) share.

    ``X`` float32 ``(N, C, H, W)`` in [0, 1] and ``y`` int64 ``(N,)``: all the training split's
    images, in :func:`load_split` order; ``X_test``, ``y_test``: the test split's; ``classes``
    the sorted class names; ``root`` the folder read; ``read_with`` the settings read with,
    ``mode`` and ``image_size`` (``(H, W)`` or None), as
    :meth:`hw3lib.config.TrainConfig.read_settings` gives them.
    """

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    root: Path
    read_with: dict

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        return tuple(self.X.shape[2:])


def _sizes_differ(sizes: dict[tuple[int, int], tuple[int, Path]]) -> str:
    """The message for images of different sizes: ``sizes`` maps each size ``(H, W)`` to
    ``(images of it, the first of them)``, the first size first."""
    counts = ", ".join(f"{count} of {h}x{w} (e.g. {path})" for (h, w), (count, path) in sizes.items())
    h, w = next(iter(sizes))
    return (f"images of different sizes (height x width): {counts}. Fix: resize them as they "
            f"load, e.g. with TrainConfig(image_size='{h}x{w}').")


class _SplitTooLarge(DataError):
    """A split too large for memory without ``image_size``: its fix holds for the other split too."""


class _ListedError(DataError):
    """A DataError of several lines (:func:`_listed`), each with its control characters escaped."""


def _listed(parts) -> _ListedError:
    """One DataError of ``parts``, each a message of one line or a :class:`_ListedError`, whose
    lines it keeps: a line's control characters escaped (:func:`hw3lib.tables.escaped`), so that
    a newline in a path it names is written ``\\n``, not taken for the start of another line."""
    return _ListedError("\n".join(line for part in parts for line in (
        str(part).split("\n") if isinstance(part, _ListedError) else [escaped(str(part))])))


def _unreadable(problems: list[DataError], total: int, folder: Path, stopped: bool) -> _ListedError:
    """The error naming each of ``problems`` (the DataErrors of a split's images, each with
    its fix) among its ``total`` images under ``folder``; ``stopped``: reading stopped at them."""
    more = f" (reading stopped at {len(problems)}: more may follow)" if stopped else ""
    return _listed([f"{len(problems)} of the {total} images under {folder} cannot be used{more}, "
                    "each named here with its fix:", *(f"- {p}" for p in problems)])


def load_split(
    root: str | os.PathLike | None = None, split: str = "train", mode: str = "L", image_size=None,
    check_size=None, progress: bool = False, threads: int | None = None, files: tuple | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load one split as ``(X, y, classes)``.

    ``X`` float32 ``(N, C, H, W)`` in [0, 1] with C = 1, 2, 3, 4 for ``mode`` "L" (default;
    the course's alpha channel carries nothing), "LA", "RGB", "RGBA"; ``y`` int64 ``(N,)``;
    ``classes`` the sorted class-folder names. Samples are ordered by class, then by file name
    in natural order (``_2`` before ``_10``). ``split`` is "train" (``Data_train`` or ``train``)
    or "test" (``Data_test`` or ``test``). ``image_size`` (``S`` or ``(H, W)``, see
    :func:`hw3lib.images.parse_image_size`) resizes every image to ``(H, W)``; without it, (H, W) is
    the images' own size, which all must share. ``check_size``, when given, is called with the
    first image's ``(H, W)`` before the others load, to refuse a size at once by raising. With
    ``progress``, a ``tqdm.auto`` bar counts the images read once reading has taken
    :data:`PROGRESS_DELAY` seconds. ``threads`` read the images (:func:`reading_threads`; the
    arrays, order and errors are the same for any count). ``files``: the split's
    :func:`~hw3lib.folders.split_files`, where the caller listed it already (None: listed here),
    so that the images read are the files it names.

    Hidden entries (names starting with ".", e.g. .DS_Store) and an operating system's own
    (``Thumbs.db``, ``desktop.ini``, ``__MACOSX``: :func:`hw3lib.folders.is_skipped`) are skipped; any other entry that
    is not a class folder, or not an image file inside a class folder, raises DataError, as do
    a missing root or split, a split without class folders, an empty class folder, an unreadable,
    empty, corrupt or misnamed image, images of different sizes without ``image_size``, and a
    split too large for memory (over :data:`MAX_BYTES` as float32) without ``image_size``.
    The images that cannot be used are all named in one DataError, each with its fix (reading
    stops at :data:`MAX_NAMED_PROBLEMS`); one alone raises its own error; different sizes are
    counted, one file of each named.
    """
    if split not in SPLITS:  # the settings are checked before the disk is touched
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    check_mode(mode)
    size = parse_image_size(image_size)
    threads = reading_threads(threads)
    root = resolve_root(root)
    listing = split_files(root, split) if files is None else files
    # the bar is given its total as it is made: tqdm's reset(total=) would show it at once, not
    # after its delay; Pillow's warnings about the split's files: one per kind
    with warnings_gathered(), tqdm(total=len(listing[0]), disable=not progress, unit="image",
                                   desc="reading", delay=PROGRESS_DELAY, leave=False) as bar:
        (X,), y, classes = _load(root, split, mode, size, check_size, listing, bar, threads)
    return X, y, classes


def reading_threads(threads=None) -> int:
    """How many threads read a split's images: ``threads`` (an integer >= 1), or by default (None)
    one per core this process may use, up to :data:`MAX_THREADS`; ValueError otherwise. Pillow
    lets go of Python's lock while it decodes and resizes, so large photos load side by side."""
    if threads is None:
        return min(usable_cores(), MAX_THREADS)
    return integer("threads", threads, 1, "the threads that read the images; None: one per core")


def _read_all(files, fixes, mode, size, threads):
    """Each of ``files`` read (:func:`hw3lib.images.read_image` with its ``fixes``) as float32
    ``(H, W, C)`` pixels, or the DataError why not, in file order; a generator, to be closed.
    On ``threads`` threads, up to :data:`AHEAD` files per thread are read ahead of the one
    taken, and Pillow's warnings are gathered in file order; closed early (or on Ctrl-C) it
    cancels those not begun and waits for those being read. Small files
    (:data:`MIN_THREADED_BYTES`) are read on one thread."""
    if threads == 1 or _small(files[0]):
        for path, fix in zip(files, fixes):
            try:
                yield read_image(path, mode, size, fix)
            except DataError as err:
                yield err
        return
    with warnings_on_threads(), ThreadPoolExecutor(threads, "hw3lib-read") as pool:
        pending = deque()
        try:
            for path, fix in zip(files, fixes):
                pending.append(pool.submit(read_on_thread, path, mode, size, fix))
                if len(pending) == AHEAD * threads:
                    yield _taken(pending.popleft())
            while pending:
                yield _taken(pending.popleft())
        finally:
            for future in pending:
                future.cancel()


def _small(path) -> bool:
    """Whether the file at ``path`` is under :data:`MIN_THREADED_BYTES` (or cannot be looked at:
    its error is named as it is read)."""
    try:
        return os.stat(path).st_size < MIN_THREADED_BYTES
    except OSError:
        return True


def _taken(future):
    """The pixels or DataError of a :func:`hw3lib.images.read_on_thread` ``future``, its Pillow
    warnings gathered."""
    pixels, gathered = future.result()
    gather_warnings(gathered)
    return pixels


def _load(root, split, mode, size, check_size, listing, bar, threads, parts=None):
    """:func:`load_split` of the resolved ``root``, a checked ``mode`` and ``size`` (``(H, W)``
    or None), with its images loaded straight into one array per part: ``listing`` is
    :func:`hw3lib.folders.split_files`'s answer, ``bar`` a tqdm bar that counts the files read,
    ``threads`` (checked) read them, ``parts`` (None: one part of all) a boolean mask over the
    files per part, so parting them costs no copy of the images. Returns ``(arrays, y, classes)``."""
    files, labels, classes = listing
    y = np.array(labels, dtype=np.int64)
    masks = [np.ones(len(y), dtype=bool)] if parts is None else parts
    part = np.zeros(len(y), dtype=np.int64)  # the part of each file, and its place there
    place = np.zeros(len(y), dtype=np.int64)
    for k, mask in enumerate(masks):
        part[mask], place[mask] = k, np.arange(int(mask.sum()))
    course_root = is_course_data(root)
    course = [course_root and is_course_data(root, path) for path in files]
    arrays = shape = None  # one array per part, of images (C, H, W), made at the first image
    problems, sizes = [], {}  # sizes: (H, W) -> (images of it, the first of them)
    fix = fix_refetch(root)
    fixes = [fix if c else None for c in course]
    with contextlib.closing(_read_all(files, fixes, mode, size, threads)) as read:
        for i, (path, pixels) in enumerate(zip(files, read)):
            bar.update()
            try:
                if isinstance(pixels, DataError):
                    raise pixels
                if course[i] and arrays is not None and pixels.shape[:2] != shape[1:]:
                    raise DataError(f"{path} is {pixels.shape[0]}x{pixels.shape[1]} pixels (height x "
                                    f"width), the course's images {shape[1]}x{shape[2]}. {fix}")
            except DataError as err:  # named with the others once all are read (or too many are bad)
                problems.append(err)
                if len(problems) == MAX_NAMED_PROBLEMS:
                    break
                continue
            if arrays is None:
                need = len(files) * pixels.size * 4
                if need > MAX_BYTES:
                    raise _SplitTooLarge(f"{len(files)} images of {pixels.shape[0]}x{pixels.shape[1]} pixels "
                                    f"(e.g. {path}) take {need / 2**30:.1f} GiB as float32. Fix: shrink "
                                    "them as they load, e.g. with TrainConfig(image_size=64).")
                if check_size is not None:
                    check_size(pixels.shape[:2])
                shape = (pixels.shape[2], *pixels.shape[:2])
                arrays = [np.empty((int(mask.sum()), *shape), dtype=np.float32) for mask in masks]
            count, first = sizes.get(pixels.shape[:2], (0, path))
            sizes[pixels.shape[:2]] = (count + 1, first)
            if len(sizes) == 1:
                arrays[part[i]][place[i]] = pixels.transpose(2, 0, 1)
    stopped = len(problems) == MAX_NAMED_PROBLEMS  # then the sizes are not all counted: left out
    if len(problems) == 1 and len(sizes) <= 1:
        raise problems[0]
    messages = [_unreadable(problems, len(files), split_dir(root, split), stopped)] if problems else []
    if len(sizes) > 1 and not stopped:
        messages.append(_sizes_differ(sizes))
    if messages:
        raise _listed(messages)
    return arrays, y, classes


def train_val_split(
    X: np.ndarray, y: np.ndarray, val_fraction: float = 0.3, seed: int = 0, split: str = "blocked"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split of ``X (N, C, H, W)``, ``y (N,)`` into ``(X_train, y_train, X_val,
    y_val)``, deterministic for ``seed``.

    Each class with n samples sends ``round(n * val_fraction)`` of them to validation (147 of
    490 at 0.3), at most ``n - 1``: every class keeps a training image (a class of one only
    trains); both parts keep the input order, which :func:`load_split` makes the files'
    natural order. ``split`` says which samples:

    - ``"blocked"`` (default): the class's samples, in input order, are cut into
      :data:`VAL_BLOCKS` contiguous runs of (nearly) equal length (fewer where runs would be
      shorter than :data:`MIN_RUN`: :func:`run_count`, starting then at a seeded file, a run
      going on from the class's last file to its first); runs drawn in a seeded order go to
      validation whole until the count is reached (the last one cut short if needed).
      The fruit images are frames of videos, so neighbouring files are near-copies: holding
      out whole runs keeps a validation image's neighbours out of training (10 runs of 49 per
      class at 0.3: 3 runs to validation), but for the images at a run's two ends: a class of
      12 in 10 runs of 1 or 2 would hold out 4 images that all sit at a run's end, as a random
      split's do; in 2 runs of 6, at most 2 of them do.
    - ``"random"``: ``round(n * val_fraction)`` samples drawn at random, the original report's
      split. Nearly every validation frame then has its neighbour in training, so validation
      accuracy says little about unseen data (:mod:`hw3lib.leakage` measures it).
    """
    is_val = validation_mask(y, val_fraction, seed, split)
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} != {len(y)}")
    return X[~is_val], y[~is_val], X[is_val], y[is_val]


def check_validation_split(val_fraction: float, split: str) -> None:
    """ValueError unless ``val_fraction`` is a number in (0, 1) and ``split`` one of
    :data:`SPLIT_METHODS`."""
    if not (is_number(val_fraction) and 0 < val_fraction < 1):
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if split not in SPLIT_METHODS:
        raise ValueError(f"split must be one of {list(SPLIT_METHODS)}, got {split!r}")


def validation_mask(y: np.ndarray, val_fraction: float = 0.3, seed: int = 0,
                    split: str = "blocked") -> np.ndarray:
    """A boolean ``(N,)``: which samples of ``y (N,)`` :func:`train_val_split` sends to
    validation (the rest train), with its arguments and its errors; computed from the labels
    alone, so it costs no copy of the images."""
    check_validation_split(val_fraction, split)
    y = np.asarray(y)
    integer("seed", seed, 0)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        count = min(round(len(idx) * val_fraction), len(idx) - 1)
        if split == "random":
            is_val[rng.permutation(idx)[:count]] = True
            continue
        runs = run_count(len(idx))
        if runs < VAL_BLOCKS:  # a small class's few runs start at a seeded file: seeds hold out others
            idx = np.roll(idx, -int(rng.integers(len(idx))))
        runs = np.array_split(idx, runs)
        chosen = np.concatenate([runs[i] for i in rng.permutation(len(runs))])
        is_val[chosen[:count]] = True
    if not is_val.any():
        counts = np.unique(y, return_counts=True)[1].tolist()
        if max(counts) < 2:  # no val_fraction helps
            raise ValueError("one image per class leaves the validation split empty: each class's one "
                             "image trains. Fix: add training images, 2 or more per class (dozens, for "
                             "a model to learn)")
        # named as TrainConfig(...), so each command names its own option (--val-fraction 0.001)
        raise ValueError(f"TrainConfig(val_fraction={val_fraction}) of {counts} images per class leaves the "
                         "validation split empty (each class sends round(images * fraction) of them, "
                         "none here). Fix: choose one that sends some images to each split, e.g. "
                         "TrainConfig(val_fraction=0.3)")  # 0.3 does, for 2 or more in a class
    return is_val


def run_count(n: int) -> int:
    """How many contiguous runs the "blocked" split cuts a class of ``n`` samples into:
    :data:`VAL_BLOCKS`, or fewer where each would hold under :data:`MIN_RUN` samples (at least
    one run)."""
    return max(1, min(VAL_BLOCKS, n // MIN_RUN))


def frame_runs(y: np.ndarray, runs: int = VAL_BLOCKS) -> np.ndarray:
    """A run label ``(N,)`` per sample of ``y (N,)`` in :func:`load_split` order: each class's
    samples, in order, cut into ``runs`` contiguous runs of (nearly) equal length (a class of
    fewer samples, one run each), as the "blocked" split cuts a class of ``runs *``
    :data:`MIN_RUN` or more (:func:`train_val_split`); the labels count up from 0, class by
    class. For video frames, a run holds neighbouring near-copies: the unit to resample
    (:func:`hw3lib.metrics.bootstrap_interval`)."""
    y = np.asarray(y)
    integer("runs", runs)
    labels, first = np.empty(len(y), dtype=np.int64), 0
    for c in np.unique(y):
        parts = np.array_split(np.flatnonzero(y == c), min(runs, int((y == c).sum())))
        for k, part in enumerate(parts):
            labels[part] = first + k
        first += len(parts)
    return labels


def fit_normalizer(X: np.ndarray, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)``, float32 ``(C,)``, of ``X`` ``(N, C, H, W)``.

    Fit it on the training split only and apply it to every split with :func:`normalize`.
    A constant channel (the alpha of "LA"/"RGBA") gets std 1, so it normalises to 0, not NaN.
    With ``progress``, a ``tqdm.auto`` bar counts the images done once the fit has taken
    :data:`PROGRESS_DELAY` seconds (about 0.4 s at 16,000 RGB 64x64 images).
    """
    # NumPy's X.std(axis=(0, 2, 3), dtype=np.float64), step by step, without its float64 copy
    # of all of X: the deviations are squared and summed NORMALIZE_BLOCK_BYTES at a time (one
    # block, the same bits as NumPy's; more, the sums of the blocks' sums).
    check_array("X", X, "of images (N, C, H, W)")
    if X.ndim != 4:
        raise ValueError(f"X must be images (N, C, H, W), got shape {X.shape}")
    axes, n = (0, 2, 3), X.size // X.shape[1] if X.shape[1] else 0
    with tqdm(total=len(X), disable=not progress, unit="image", desc="fitting mean and std",
              delay=PROGRESS_DELAY, leave=False) as bar:  # made first: the mean's pass counts
        mean = X.mean(axis=axes, dtype=np.float64, keepdims=True)
        step = max(1, NORMALIZE_BLOCK_BYTES // (8 * max(X[:1].size, 1)))
        block = np.empty((min(step, len(X)), *X.shape[1:]))  # one float64 block, reused
        squares = 0
        for start in range(0, max(len(X), 1), step):
            part = X[start:start + step]
            deviation = np.subtract(part, mean, out=block[:len(part)])
            np.multiply(deviation, deviation, out=deviation)
            squares = squares + deviation.sum(axis=axes, dtype=np.float64, keepdims=True)
            bar.update(len(part))
    std = np.sqrt(squares / n).ravel()
    std[std == 0] = 1
    return mean.ravel().astype(np.float32), std.astype(np.float32)


def normalize(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(X - mean) / std`` per channel, float32 ``(N, C, H, W)``; see :func:`fit_normalizer`."""
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    check_array("X", X, "of images (N, C, H, W)")
    if X.ndim != 4 or X.shape[1] != mean.size or mean.shape != std.shape:
        raise ValueError(
            f"X {X.shape} must be (N, C, H, W) with C = len(mean) = len(std); "
            f"got mean {mean.shape}, std {std.shape}"
        )
    shape = (1, -1, 1, 1)
    out = np.subtract(X, mean.reshape(shape), dtype=np.float32)  # one new array, divided in place
    return np.divide(out, std.reshape(shape), out=out)


def dataloader(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X_batch (B, C, H, W), y_batch (B,))`` from ``X (N, C, H, W)``, ``y (N,)``, ``B``
    at most ``batch_size``, covering every sample exactly once, last partial batch included.

    With ``shuffle`` the order comes from ``np.random.default_rng((seed, epoch))``: the same
    for the same ``(seed, epoch)``, different from epoch to epoch. Arguments are checked when
    called, before the first batch.
    """
    integer("batch_size", batch_size)
    integer("seed", seed, 0, "with epoch, draws the order")  # else NumPy's words, from inside it
    integer("epoch", epoch, 0, "with seed, draws the order")
    check_array("X", X, "(N, ...)")  # batches are read by fancy indexing
    check_array("y", y, "(N,)")
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} != {len(y)}")
    order = np.random.default_rng((seed, epoch)).permutation(len(y)) if shuffle else np.arange(len(y))
    return ((X[idx], y[idx]) for idx in np.split(order, range(batch_size, len(y), batch_size)))


def read_images(
    root: str | os.PathLike | None = None,
    mode: str = "L",
    image_size=None,
    check_size=None,
    progress: bool = False,
    threads: int | None = None,
    files: tuple | None = None,
) -> DecodedImages:
    """The read step of :func:`load_dataset`: both splits' images, read and decoded but not yet
    split into training and validation images, which :func:`split_images` does for each
    ``val_fraction``, ``seed`` and ``split`` without reading the files again.

    The arguments, errors and reading bar are :func:`load_dataset`'s, but a ``val_fraction``
    that leaves a class's validation images empty is refused by :func:`split_images`, after
    the reading, which fits the mean and std without a bar.
    """
    root, size, threads, files = _reading(root, mode, image_size, threads, files)
    (X,), y, classes, X_test, y_test = _read_both(root, mode, size, check_size, files, progress, threads)
    return DecodedImages(X, y, X_test, y_test, classes, root, dict(mode=mode, image_size=size))


def split_images(images: DecodedImages, val_fraction: float = 0.3, seed: int = 0,
                 split: str = "blocked") -> Dataset:
    """The split step of :func:`load_dataset`: the :class:`Dataset` of ``images``
    (:func:`read_images`) with their training images split stratified into train/val
    (:func:`train_val_split`), the normaliser fitted on train; the same arrays, bit for bit, as
    :func:`load_dataset` with the same settings gives. ``images``' arrays are not copied but
    for the two parts of the training images, so a Dataset's ``X_test`` is ``images.X_test``."""
    check_decoded(images)
    is_val = validation_mask(images.y, val_fraction, seed, split)
    parts = images.X[~is_val], images.X[is_val]
    return _dataset(parts, images.y, is_val, images.X_test, images.y_test, images.classes, images.root,
                    dict(**images.read_with, val_fraction=val_fraction, seed=seed, split=split))


def check_decoded(images) -> None:
    """ValueError unless ``images`` is a :class:`DecodedImages` (of :func:`read_images`)."""
    if not isinstance(images, DecodedImages):
        split = ": a Dataset is split already" if isinstance(images, Dataset) else ""
        raise ValueError(f"split_images takes the images that read_images returns (a DecodedImages), "
                         f"got a {type(images).__name__}{split}")


def load_dataset(
    root: str | os.PathLike | None = None,
    mode: str = "L",
    val_fraction: float = 0.3,
    seed: int = 0,
    split: str = "blocked",
    image_size=None,
    check_size=None,
    progress: bool = False,
    threads: int | None = None,
    files: tuple | None = None,
) -> Dataset:
    """Load both splits, split train stratified into train/val (:func:`train_val_split` with
    ``split`` "blocked" or "random"), fit the normaliser on train: :func:`read_images`, then
    :func:`split_images`, in one call that reads the training images straight into their two
    parts, so that none is held twice (runs that differ only in the split read once and split
    the images each: :func:`hw3lib.runs.known_data`).

    ``image_size`` (``S`` or ``(H, W)``) resizes every image as it loads, and ``check_size`` sees
    the first training image's size (:func:`load_split`). With ``progress``, a ``tqdm.auto``
    bar counts the images read once reading has taken :data:`PROGRESS_DELAY` seconds, and
    another the training images whose mean and std are fitted (:func:`fit_normalizer`) once
    that has; ``threads`` read them (:func:`reading_threads`). ``files``: ``root``'s
    :func:`~hw3lib.folders.dataset_files`, where the caller listed them already (None: listed
    here).
    Raises DataError where the folders are no dataset (:func:`hw3lib.folders.dataset_files`,
    before any image is read) or the test split's image size differs from the training
    split's. Both splits are read before their images that cannot be used are named, in one
    DataError (see :func:`load_split`). A split that cannot be made (:func:`validation_mask`)
    is refused before any image is read.
    """
    root, size, threads, files = _reading(root, mode, image_size, threads, files)
    # straight into the training and validation parts (a split of the loaded array would copy
    # it); a split that cannot be made is refused before minutes of reading a large folder
    is_val = validation_mask(np.array(files[0][1]), val_fraction, seed, split)
    parts, y, classes, X_test, y_test = _read_both(root, mode, size, check_size, files, progress, threads,
                                                   [~is_val, is_val])
    return _dataset(parts, y, is_val, X_test, y_test, classes, root, dict(
        mode=mode, image_size=size, val_fraction=val_fraction, seed=seed, split=split), progress)


def _reading(root, mode, image_size, threads, files):
    """``(root, size, threads, files)``: the settings of :func:`read_images` and
    :func:`load_dataset` checked, the root resolved and its files listed where not given."""
    check_mode(mode)
    size = parse_image_size(image_size)
    threads = reading_threads(threads)
    root = resolve_root(root)
    return root, size, threads, dataset_files(root) if files is None else files


def _read_both(root, mode, size, check_size, files, progress, threads, parts=None):
    """Both splits of ``root`` read with checked settings (:func:`_reading`) on one bar:
    ``(arrays, y, classes, X_test, y_test)``, the training images in one array per mask of
    ``parts`` (:func:`_load`). The errors are :func:`load_dataset`'s."""
    listing, test_listing = files
    problems = []  # both splits' bad images, named in one error: a folder is mended in one round
    with tqdm(total=len(listing[0]) + len(test_listing[0]), disable=not progress, unit="image",
              desc="reading", delay=PROGRESS_DELAY, leave=False) as bar:
        try:
            with warnings_gathered():
                Xs, y, classes = _load(root, "train", mode, size, check_size, listing, bar, threads, parts)
        except _SplitTooLarge:
            raise  # its fix, a smaller image_size, is the test split's too: not read for nothing
        except DataError as err:
            problems.append(err)
        try:
            with warnings_gathered():
                (X_test,), y_test, _ = _load(root, "test", mode, size, None, test_listing, bar, threads)
        except DataError as err:
            problems.append(err)
    if problems:
        raise problems[0] if len(problems) == 1 else _listed(problems)
    if X_test.shape[2:] != Xs[0].shape[2:]:
        raise DataError(_sizes_differ({Xs[0].shape[2:]: (len(y), listing[0][0]),
                                       X_test.shape[2:]: (len(y_test), test_listing[0][0])}))
    return Xs, y, classes, X_test, y_test


def _dataset(parts, y, is_val, X_test, y_test, classes, root, loaded_with, progress=False):
    """The :class:`Dataset` of the training images' two ``parts`` ``(X_train, X_val)``, split
    from labels ``y`` by the mask ``is_val``, and the test split, its normaliser fitted on
    ``X_train`` (with ``progress``, :func:`fit_normalizer`'s bar)."""
    X_train, X_val = parts
    mean, std = fit_normalizer(X_train, progress)
    return Dataset(X_train, y[~is_val], X_val, y[is_val], X_test, y_test, classes, mean, std, root,
                   loaded_with)
