"""The image dataset: loading the splits, the train/validation split, normalisation, batches.

Layout of a dataset root (never committed to the repository)::

    <root>/Data_train/<Class>/<Class>_train_<i>.png   490 per class
    <root>/Data_test/<Class>/<Class>_test_<i>.png     166 per class

Every file is a 32x32 PNG in mode ``LA`` whose alpha is 255 everywhere, so ``mode="L"``
loses nothing. The root is the ``root`` argument, else the environment variable
``HW3_DATA``, else ``data/`` at the repository root (:data:`DEFAULT_ROOT`).

Arrays are ``X`` float32 ``(N, C, 32, 32)`` in [0, 1] and ``y`` int64 ``(N,)`` holding
indices into the sorted class names.

Errors: problems with files on disk raise :class:`DataError` (its own class, deliberately
not a ``ValueError``) whose message names the file and the fix. Bad arguments (unknown
``mode``/``split``, ``val_fraction`` outside (0, 1), a bad ``batch_size``) raise ``ValueError``.

Neighbours: :mod:`hw3lib.download` fetches and verifies the course's copy;
:mod:`hw3lib.analysis` describes the files and arrays (notebook 01).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data"
SPLITS = {"train": "Data_train", "test": "Data_test"}
MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}  # Pillow mode -> number of channels C
IMAGE_SHAPE = (32, 32)  # (H, W)
# How Data_train is split into training and validation (see train_val_split).
SPLIT_METHODS = ("blocked", "random")
VAL_BLOCKS = 10  # "blocked": each class's files in natural order, cut into this many runs

FIX_WHERE = (
    "Fix: set HW3_DATA to a folder holding Data_train/ and Data_test/, put those two folders "
    f"under {DEFAULT_ROOT}, or fetch them with `python -m hw3lib download` "
    "(hw3lib.download.download(dest))."
)
_FIX_REFETCH = (
    "Fix: restore the original file (hw3lib.download.verify(root) lists what differs) "
    "or fetch a fresh copy with `python -m hw3lib download`."
)


class DataError(Exception):
    """A dataset file or folder is missing, unreadable, malformed, or fails its checksum."""


@dataclass(frozen=True)
class Dataset:
    """Train/validation/test arrays from :func:`load_dataset`.

    ``X_*`` are float32 ``(N, C, 32, 32)`` in [0, 1], not normalised; ``y_*`` int64 ``(N,)``.
    ``mean`` and ``std`` (float32 ``(C,)``) come from :func:`fit_normalizer` on ``X_train``
    only, so validation and test statistics never leak into the inputs:
    ``normalize(ds.X_val, ds.mean, ds.std)``.
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

    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train": (X_train, y_train), "val": (X_val, y_val), "test": (X_test, y_test)}``."""
        return {
            "train": (self.X_train, self.y_train),
            "val": (self.X_val, self.y_val),
            "test": (self.X_test, self.y_test),
        }


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``root``, else ``$HW3_DATA``, else :data:`DEFAULT_ROOT`."""
    if root is not None:
        return Path(root)
    env = os.environ.get("HW3_DATA")
    return Path(env) if env else DEFAULT_ROOT


def _natural_key(name: str) -> tuple[list[int | str], str]:
    """Sort key with digit runs compared as numbers: ``x_2`` before ``x_10``."""
    parts = re.split(r"(\d+)", name)
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], name


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read {path}: {exc.strerror or exc}. "
            "Fix: make the file readable (check its permissions) or replace it."
        ) from exc


def _entries(folder: Path, want_dirs: bool) -> list[Path]:
    """Non-hidden entries of ``folder``; each must be a folder (``want_dirs``) or a .png file."""
    try:
        names = [n for n in os.listdir(folder) if not n.startswith(".")]
    except OSError as exc:
        raise DataError(
            f"cannot list {folder}: {exc.strerror or exc}. "
            "Fix: make the folder readable (check its permissions)."
        ) from exc
    paths = [folder / n for n in names]
    for path in paths:
        is_dir = path.is_dir()
        if not (is_dir if want_dirs else not is_dir and path.suffix.lower() == ".png"):
            expected = "class folders" if want_dirs else ".png images"
            raise DataError(
                f"unexpected {'folder' if is_dir else 'file'} {path}: {folder} must hold "
                f"only {expected} (hidden files such as .DS_Store are skipped). "
                "Fix: move it out of the dataset folder."
            )
    return paths


def decode_png(path: Path) -> Image.Image:
    """Read and fully decode one PNG as stored; any failure becomes a DataError naming ``path``."""
    body = read_bytes(path)
    try:
        im = Image.open(io.BytesIO(body), formats=["PNG"])
        im.load()
        return im
    except Exception as exc:  # Pillow reports corrupt data with many exception types
        raise DataError(
            f"{path} is not a valid PNG image ({type(exc).__name__}: {exc}). {_FIX_REFETCH}"
        ) from exc


def _load_image(path: Path, mode: str, first: tuple[str, Path] | None = None) -> np.ndarray:
    """Decode one 32x32 PNG to uint8 ``(H, W, C)`` in Pillow ``mode``; DataError names ``path``.

    ``first`` is ``(stored mode, path)`` of the split's first image: every image of a split
    must be stored in the same mode (all "LA" here), so a stray colour or palette file is
    caught rather than silently converted.
    """
    im = decode_png(path)
    if first is not None and im.mode != first[0]:
        raise DataError(
            f"{path} is stored in mode {im.mode}, the other images in mode {first[0]} "
            f"(e.g. {first[1]}). Fix: save it in mode {first[0]} like the rest, or replace it."
        )
    if im.size[::-1] != IMAGE_SHAPE:
        raise DataError(
            f"{path} is {im.size[0]}x{im.size[1]} pixels, expected "
            f"{IMAGE_SHAPE[1]}x{IMAGE_SHAPE[0]}. {_FIX_REFETCH}"
        )
    return np.asarray(im.convert(mode)).reshape(*IMAGE_SHAPE, -1)


def split_files(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """``(files, labels, classes)`` of one split, in :func:`load_split` order; DataError as there."""
    split_dir = root / SPLITS[split]
    if not split_dir.is_dir():
        raise DataError(f"no dataset at {root}: folder {split_dir} does not exist. {FIX_WHERE}")
    classes = sorted(p.name for p in _entries(split_dir, want_dirs=True))
    if not classes:
        raise DataError(f"{split_dir} holds no class folders. {FIX_WHERE}")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        images = sorted(_entries(split_dir / name, want_dirs=False), key=lambda p: _natural_key(p.name))
        if not images:
            raise DataError(f"class folder {split_dir / name} holds no .png images. {_FIX_REFETCH}")
        files += images
        labels += [label] * len(images)
    return files, labels, classes


def load_split(
    root: str | os.PathLike | None = None, split: str = "train", mode: str = "L"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load one split as ``(X, y, classes)``.

    ``X`` float32 ``(N, C, 32, 32)`` in [0, 1] with C = 1, 2, 3, 4 for ``mode`` "L" (default;
    the alpha channel carries nothing), "LA", "RGB", "RGBA" (the original report's
    four-channel input); ``y`` int64 ``(N,)``; ``classes`` the sorted class-folder names.
    Samples are ordered by class, then by file name in natural order (``_2`` before ``_10``).
    ``split`` is "train" (``Data_train``) or "test" (``Data_test``).

    Hidden entries (names starting with ".", e.g. .DS_Store) are skipped; any other entry that
    is not a class folder, or not a .png file inside a class folder, raises DataError, as do a
    missing root, an empty class folder, an unreadable or corrupt PNG, an image that is not
    32x32 and an image stored in another mode than the split's first.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    files, labels, classes = split_files(resolve_root(root), split)
    pixels = np.empty((len(files), *IMAGE_SHAPE, MODES[mode]), dtype=np.uint8)
    first = (decode_png(files[0]).mode, files[0])
    for i, path in enumerate(files):
        pixels[i] = _load_image(path, mode, first)
    X = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
    X /= 255
    return X, np.array(labels, dtype=np.int64), classes


def train_val_split(
    X: np.ndarray, y: np.ndarray, val_fraction: float = 0.3, seed: int = 0, split: str = "blocked"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split into ``(X_train, y_train, X_val, y_val)``, deterministic for ``seed``.

    Each class with n samples sends ``round(n * val_fraction)`` of them to validation (147 of
    490 at 0.3); both parts keep the input order, which :func:`load_split` makes the files'
    natural order. ``split`` says which samples:

    - ``"blocked"`` (default): the class's samples, in input order, are cut into
      :data:`VAL_BLOCKS` contiguous runs of (nearly) equal length; runs drawn in a seeded order
      go to validation whole until the count is reached (the last one cut short if needed).
      The fruit images are frames of videos, so neighbouring files are near-copies: holding
      out whole runs keeps a validation image's neighbours out of training (10 runs of 49 per
      class at 0.3: 3 runs to validation).
    - ``"random"``: ``round(n * val_fraction)`` samples drawn at random, the original report's
      split. Nearly every validation frame then has its neighbour in training, so validation
      accuracy says little about unseen data (:mod:`hw3lib.leakage` measures it).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if split not in SPLIT_METHODS:
        raise ValueError(f"split must be one of {list(SPLIT_METHODS)}, got {split!r}")
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} != {len(y)}")
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        count = round(len(idx) * val_fraction)
        if split == "random":
            is_val[rng.permutation(idx)[:count]] = True
            continue
        runs = np.array_split(idx, min(VAL_BLOCKS, len(idx)))
        chosen = np.concatenate([runs[i] for i in rng.permutation(len(runs))])
        is_val[chosen[:count]] = True
    return X[~is_val], y[~is_val], X[is_val], y[is_val]


def fit_normalizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)``, float32 ``(C,)``, of ``X`` ``(N, C, H, W)``.

    Fit it on the training split only and apply it to every split with :func:`normalize`.
    A constant channel (the alpha of "LA"/"RGBA") gets std 1, so it normalises to 0, not NaN.
    """
    mean = X.mean(axis=(0, 2, 3), dtype=np.float64)
    std = X.std(axis=(0, 2, 3), dtype=np.float64)
    std[std == 0] = 1
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(X - mean) / std`` per channel, float32 ``(N, C, H, W)``; see :func:`fit_normalizer`."""
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    if X.ndim != 4 or X.shape[1] != mean.size or mean.shape != std.shape:
        raise ValueError(
            f"X {X.shape} must be (N, C, H, W) with C = len(mean) = len(std); "
            f"got mean {mean.shape}, std {std.shape}"
        )
    shape = (1, -1, 1, 1)
    return (np.asarray(X, dtype=np.float32) - mean.reshape(shape)) / std.reshape(shape)


def dataloader(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X_batch, y_batch)`` covering every sample exactly once, last partial batch included.

    With ``shuffle`` the order comes from ``np.random.default_rng((seed, epoch))``: the same
    for the same ``(seed, epoch)``, different from epoch to epoch. Arguments are checked when
    called, before the first batch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} != {len(y)}")
    order = np.random.default_rng((seed, epoch)).permutation(len(y)) if shuffle else np.arange(len(y))
    return ((X[idx], y[idx]) for idx in np.split(order, range(batch_size, len(y), batch_size)))


def load_dataset(
    root: str | os.PathLike | None = None,
    mode: str = "L",
    val_fraction: float = 0.3,
    seed: int = 0,
    split: str = "blocked",
) -> Dataset:
    """Load both splits, split train stratified into train/val (:func:`train_val_split` with
    ``split`` "blocked" or "random"), fit the normaliser on train.

    Raises DataError when the test split's class folders differ from the training split's.
    """
    root = resolve_root(root)
    X, y, classes = load_split(root, "train", mode)
    X_test, y_test, test_classes = load_split(root, "test", mode)
    if test_classes != classes:
        raise DataError(
            f"class folders differ between {root / SPLITS['train']} and {root / SPLITS['test']}: "
            f"missing from test: {sorted(set(classes) - set(test_classes))}, "
            f"only in test: {sorted(set(test_classes) - set(classes))}. "
            "Fix: give both splits the same class folders."
        )
    X_train, y_train, X_val, y_val = train_val_split(X, y, val_fraction, seed, split)
    mean, std = fit_normalizer(X_train)
    return Dataset(X_train, y_train, X_val, y_val, X_test, y_test, classes, mean, std)
