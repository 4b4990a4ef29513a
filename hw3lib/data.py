"""The image dataset: its folders, loading the splits, the train/validation split, normalisation, batches.

Layout of a dataset root (never committed to the repository)::

    <root>/Data_train/<Class>/<any name>.png     or  <root>/train/<Class>/...
    <root>/Data_test/<Class>/<any name>.png      or  <root>/test/<Class>/...

The course's fruit images use the first names (490 and 166 images per class, 32x32 PNGs in mode
``LA`` whose alpha is 255 everywhere, so ``mode="L"`` loses nothing); one's own data may use
either. Two or more class folders, the same in both splits, each holding images in any format,
size, bit depth and channel mode that :mod:`hw3lib.images` reads: every image is converted to
the requested ``mode`` by the rules stated there (16-bit grey scaled exactly, palettes through their
palette, colour to grey by luma), so a split may mix them. Without ``image_size`` all images must
have one size; with it each is resized as it loads. The root is the ``root`` argument, else the
environment variable ``HW3_DATA``, else ``data/`` at the repository root (:data:`DEFAULT_ROOT`).

Arrays are ``X`` float32 ``(N, C, H, W)`` in [0, 1] and ``y`` int64 ``(N,)`` holding
indices into the sorted class names.

Errors: problems with files on disk raise :class:`DataError` (its own class, deliberately
not a ``ValueError``) whose message names the file (every file of a split that cannot be
used, in one error) and the fix: the course's fixes (restore a
file, download a fresh copy) for the course's data (:func:`is_course_data`), other advice for
one's own. Bad arguments (unknown ``mode``/``split``, ``val_fraction`` outside (0, 1), a bad
``image_size`` or ``batch_size``) raise ``ValueError``.

Neighbours: :mod:`hw3lib.images` reads one file; :mod:`hw3lib.download` fetches and verifies
the course's copy; :mod:`hw3lib.analysis` describes the files and arrays (notebook 01).
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm.auto import tqdm

from .checks import check_array, dead_link, integer, is_number
from .images import (MODES, SUFFIXES, DataError, check_mode, open_file, parse_image_size,
                     read_image, rename_suffix, sniff, warnings_gathered)

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout: hw3lib/, data/, notebooks/, runs/
DEFAULT_ROOT = REPO_ROOT / "data"
SPLITS = {"train": "Data_train", "test": "Data_test"}  # the course's split folders
SPLIT_FOLDERS = {split: (course, split) for split, course in SPLITS.items()}  # the names accepted
# a validation split's folder, which a dataset may hold beside train/ and test/ (refused: unread)
VALIDATION_FOLDERS = ("val", "valid", "validation", "data_val", "data_valid", "data_validation")
MANIFEST_PATH = Path(__file__).with_name("fruits.sha256")  # the course's files (hw3lib.download)
MAX_BYTES = 2**31  # the largest split (as float32) loaded without image_size
MAX_NAMED_PROBLEMS = 20  # images that cannot be used, named in one DataError: reading stops there
# How Data_train is split into training and validation (see train_val_split).
SPLIT_METHODS = ("blocked", "random")
NORMALIZE_BLOCK_BYTES = 2**26  # fit_normalizer's float64 deviations, at most this much at once
VAL_BLOCKS = 10  # "blocked": each class's files in natural order, cut into this many runs
# Entries that operating systems put into folders by themselves (lower case): skipped as hidden ones are
SYSTEM_ENTRIES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx"})
PROGRESS_DELAY = 2.0  # seconds of reading images before a progress bar shows

FIX_WHERE = (
    "Fix: set HW3_DATA to a folder holding Data_train/ and Data_test/, put those two folders "
    f"under {DEFAULT_ROOT}, or fetch them with `python -m hw3lib download` "
    "(hw3lib.download.download(dest))."
)
_FIX_REFETCH = (
    "Fix: restore the original file (hw3lib.download.verify(root) lists what differs) "
    "or fetch a fresh copy with `python -m hw3lib download`."
)
_LAYOUT = (
    "a dataset folder holds train/ and test/ (or Data_train/ and Data_test/), each with one "
    "folder of images per class (README: Use your own images)"
)


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


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``root``, else ``$HW3_DATA``, else :data:`DEFAULT_ROOT`; a leading
    ``~`` is the home folder, as in a shell (a notebook's ``root="~/photos"`` has no shell)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("HW3_DATA")
    return Path(env).expanduser() if env else DEFAULT_ROOT


@functools.cache
def _course_paths() -> tuple[frozenset[str], frozenset[str]]:
    """The course's files and class folders, relative POSIX paths from :data:`MANIFEST_PATH`."""
    files = frozenset(line.partition("  ")[2]
                      for line in MANIFEST_PATH.read_text(encoding="utf-8").splitlines())
    return files, frozenset(str(PurePosixPath(f).parent) for f in files)


def is_course_data(root: Path, path: Path | None = None) -> bool:
    """Whether a problem with the file or class folder ``path`` under ``root`` (None: with the
    root's folders) concerns the course's fruit data, which gets the course's fixes (restore
    the file, download a fresh copy); everything else is one's own data, with advice of its own.

    A file or class folder (``Data_train/Carambula``, ...) is the course's when its path
    relative to ``root`` is in the packaged manifest (:data:`MANIFEST_PATH`); the root's
    folders are when ``root`` is :data:`DEFAULT_ROOT` or holds one of the course's class folders.
    """
    files, folders = _course_paths()
    if path is not None:
        rel = path.relative_to(root).as_posix()
        return rel in files or rel in folders
    return root.resolve() == DEFAULT_ROOT or any((root / f).is_dir() for f in folders)


def split_folders(root: Path, split: str) -> list[Path]:
    """The folders of ``split`` ("train" or "test") that exist under ``root``, course name first;
    DataError when ``root`` cannot be looked into (its permissions)."""
    try:
        return [root / name for name in SPLIT_FOLDERS[split] if (root / name).is_dir()]
    except OSError as exc:  # is_dir is False for a missing folder, raises for one it may not look into
        raise DataError(f"cannot look into {root}: {exc.strerror or exc}. Fix: make the folder "
                        "readable (check its permissions), or give another one (--data, root= or "
                        "HW3_DATA).") from exc


def split_dir(root: Path, split: str) -> Path:
    """The folder of ``split``: ``Data_train``/``Data_test`` or ``train``/``test`` under ``root``.

    DataError when neither exists (or the root does not), or both do.
    """
    found = split_folders(root, split)
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"{root} holds both {found[0].name}/ and {found[1].name}/: which is the "
                        f"{split} split? Fix: merge them into one of the two.")
    if is_course_data(root):
        missing = (f"folder {root / SPLITS[split]} does not exist" if root.is_dir()
                   else "the folder does not exist")
        raise DataError(f"no dataset at {root}: {missing}. {FIX_WHERE}")
    if not root.is_dir():
        what = "it is a file, not a folder" if root.exists() else "the folder does not exist"
        raise DataError(f"no dataset at {root}: {what}. Fix: check the path (given as --data, root= "
                        f"or HW3_DATA); {_LAYOUT}.")
    held = sorted(p.name for p in root.iterdir() if p.is_dir() and not is_skipped(p.name))
    cased = [name for name in held if name.lower() in (split, SPLITS[split].lower())]
    if cased:  # Train/ for train/: folder names are case-sensitive here
        right = SPLITS[split] if cased[0].lower() == SPLITS[split].lower() else split
        raise DataError(f"no {split} split in {root}: it holds {cased[0]}/, but the name must be "
                        f"{right}/ (folder names are case-sensitive). Fix: rename {root / cased[0]} "
                        f"to {root / right}.")
    if len(held) > 6:  # a home folder given as --data: name a few, not a hundred
        held = [f"{', '.join(held[:5])} and {len(held) - 5} other folders"]
    if root.name in (name for names in SPLIT_FOLDERS.values() for name in names):
        raise DataError(f"no dataset at {root}: it is itself a split folder. Fix: give the folder "
                        f"that holds it, {root.parent}, as the dataset.")
    raise DataError(
        f"no {split} split in {root}: neither {root / SPLITS[split]}/ nor {root / split}/ exists"
        + (f" (it holds {', '.join(held)})" if held else "") + f". Fix: {_LAYOUT}"
        + ("; keep some images of each class apart for testing, e.g. one in five." if split == "test" else ".")
    )


def split_dirs(root: Path) -> dict[str, Path]:
    """The folder of each split, ``{"train": ..., "test": ...}`` (:func:`split_dir`); DataError
    naming what ``root`` lacks, as loading names it."""
    return {split: split_dir(root, split) for split in SPLITS}


def natural_key(name: str) -> tuple[list[int | str], str]:
    """Sort key with digit runs compared as numbers: ``x_2`` before ``x_10``; letters in Unicode's
    composed form, so a name sorts alike however its accents are stored (macOS: decomposed)."""
    parts = re.split(r"(\d+)", unicodedata.normalize("NFC", name))
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], name


def is_skipped(name: str) -> bool:
    """Whether a folder entry named ``name`` is left out of a dataset: hidden (``.DS_Store``,
    ``._*``) or an operating system's own (:data:`SYSTEM_ENTRIES`: ``Thumbs.db``, ``desktop.ini``,
    ``__MACOSX``)."""
    return name.startswith(".") or name.lower() in SYSTEM_ENTRIES


def files_under(folder: Path) -> Iterator[Path]:
    """Every file under ``folder`` but those :func:`is_skipped` leaves out (or in a folder it
    leaves out), following symbolic links to folders as :func:`load_split` does, but not a link
    back to a folder above it (a loop); DataError for a folder that cannot be listed."""
    def refuse(exc):  # os.walk's onerror: an unreadable folder is named, not left out
        raise _cannot_list(exc.filename, exc) from exc

    above = {os.fspath(folder): {os.path.realpath(folder)}}  # each folder's real path and its parents'
    for dirpath, dirnames, filenames in os.walk(folder, onerror=refuse, followlinks=True):
        reals = above.pop(dirpath)
        dirnames[:] = [d for d in dirnames if not is_skipped(d)
                       and os.path.realpath(os.path.join(dirpath, d)) not in reals]
        above.update({os.path.join(dirpath, d): reals | {os.path.realpath(os.path.join(dirpath, d))}
                      for d in dirnames})
        yield from (Path(dirpath, name) for name in filenames if not is_skipped(name))


def _cannot_list(folder: Path, exc: OSError) -> DataError:
    """The DataError for a ``folder`` that cannot be listed (``exc``)."""
    return DataError(f"cannot list {folder}: {exc.strerror or exc}. "
                     "Fix: make the folder readable (check its permissions).")


def _entries(folder: Path, want_dirs: bool) -> list[Path]:
    """The entries of ``folder`` but the skipped ones (:func:`is_skipped`); each must be a folder
    (``want_dirs``) or an image file (a name ending as in :data:`hw3lib.images.SUFFIXES`)."""
    try:
        names = [n for n in os.listdir(folder) if not is_skipped(n)]
    except OSError as exc:
        raise _cannot_list(folder, exc) from exc
    paths = [folder / n for n in names]
    for path in paths:
        # a dead link named as an image is named so when it is read, among the split's problems
        if (dead := dead_link(path)) and (want_dirs or path.suffix.lower() not in SUFFIXES):
            raise DataError(f"{path} is {dead}. Fix: point it at an existing "
                            f"{'folder' if want_dirs else 'file'} or remove it.")
        is_dir = path.is_dir()
        if not (is_dir if want_dirs else not is_dir and path.suffix.lower() in SUFFIXES):
            expected = "class folders" if want_dirs else f"images ({', '.join(SUFFIXES)})"
            if want_dirs:
                fix = "move it out of the dataset folder."
            elif is_dir:  # a class's images sorted into subfolders: they are not read there
                fix = (f"move the images in it up into {folder} (a class folder's subfolders are not "
                       "read), then remove it; or move it out of the dataset folder.")
            else:
                fix = _fix_for(path)
            raise DataError(
                f"unexpected {'folder' if is_dir else 'file'} {path}: {folder} must hold "
                f"only {expected} (hidden files such as .DS_Store, and Thumbs.db, are skipped). "
                f"Fix: {fix}"
            )
    return paths


def _fix_for(path: Path) -> str:
    """The advice for a file whose name does not end as an image's: renaming it where its first
    bytes are of a format hw3lib reads (a ``.jfif`` or ``.jpe`` JPEG, a suffix-less PNG),
    else moving it out or converting it."""
    try:
        with open_file(path) as f:  # a named pipe is not waited on
            found = sniff(f.read(16))
    except (OSError, DataError):
        found = None
    if found is None:
        return "move it out of the dataset folder, or convert it to PNG or JPEG if it is an image."
    return (f"it is a {found} image: rename it to end in {rename_suffix(found)}, or move it out "
            "of the dataset folder.")


def split_files(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """``(files, labels, classes)`` of one split, in :func:`load_split` order; DataError as there."""
    folder = split_dir(root, split)
    # class names in Unicode's composed form: macOS and archives made there may store "Ä" as
    # "A" + a combining mark, and a class is the same class however its folder is spelled
    folders = sorted(_entries(folder, want_dirs=True), key=lambda p: unicodedata.normalize("NFC", p.name))
    classes = [unicodedata.normalize("NFC", p.name) for p in folders]
    if not classes:
        raise DataError(f"{folder} holds no class folders. "
                        + (FIX_WHERE if is_course_data(root) else f"Fix: {_LAYOUT}."))
    twins = sorted({name for name in classes if classes.count(name) > 1})
    if twins:
        raise DataError(f"{folder} holds class folders whose names differ only in how their letters "
                        f"are encoded (Unicode), which read the same: {twins[0]}. Fix: merge them.")
    files: list[Path] = []
    labels: list[int] = []
    for label, class_folder in enumerate(folders):
        images = sorted(_entries(class_folder, want_dirs=False), key=lambda p: natural_key(p.name))
        if not images:
            course = is_course_data(root) and is_course_data(root, class_folder)  # not a class of one's own
            # removed from one split alone, the class would be missing from the other one
            other = "test" if split == "train" else "train"
            namesakes = [f / class_folder.name for f in split_folders(root, other)
                         if (f / class_folder.name).is_dir()]
            fix = _FIX_REFETCH if course else "Fix: add its images or remove the folder" + (
                f" and {namesakes[0]}, the class's folder in the {other} split." if namesakes else ".")
            raise DataError(f"class folder {class_folder} holds no images. {fix}")
        files += images
        labels += [label] * len(images)
    return files, labels, classes


def _shared_files(train: list[Path], test: list[Path]) -> str | None:
    """The message for files listed twice, in both splits or in the training split (the same file
    through a symbolic or hard link, e.g. a test/ linked to train/), else None: such an image
    would be trained on and tested or validated on. A file that cannot be looked at is left to
    loading, which names it."""
    seen, twice = {}, []
    for path in (*train, *test):
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not st.st_ino:  # a file system without file numbers (some on Windows): nothing to compare
            return None
        first = seen.setdefault((st.st_dev, st.st_ino), path)
        if first != path:
            twice.append((first, path))
    if not twice:
        return None
    first, path = twice[0]
    return (f"{len(twice)} image file(s) are listed twice, e.g. {path} is {first} (a symbolic or hard "
            "link to the same file): the image would be trained on and also validated or tested "
            "on. Fix: remove the link, and give the test split images of its own, none of the "
            "training split's (no test/ yet? move about one image in five of each class there).")


def _sizes_differ(sizes: dict[tuple[int, int], tuple[int, Path]]) -> str:
    """The message for images of different sizes: ``sizes`` maps each size ``(H, W)`` to
    ``(images of it, the first of them)``, the first size first."""
    counts = ", ".join(f"{count} of {h}x{w} (e.g. {path})" for (h, w), (count, path) in sizes.items())
    h, w = next(iter(sizes))
    return (f"images of different sizes (height x width): {counts}. Fix: resize them as they "
            f"load, e.g. with TrainConfig(image_size='{h}x{w}').")


def _unreadable(problems: list[DataError], total: int, folder: Path, stopped: bool) -> str:
    """The message naming each of ``problems`` (the DataErrors of a split's images, each with
    its fix) among its ``total`` images under ``folder``; ``stopped``: reading stopped at them."""
    more = f" (reading stopped at {len(problems)}: more may follow)" if stopped else ""
    return "\n".join([f"{len(problems)} of the {total} images under {folder} cannot be used{more}, "
                      "each named here with its fix:", *(f"- {p}" for p in problems)])


def load_split(
    root: str | os.PathLike | None = None, split: str = "train", mode: str = "L", image_size=None,
    check_size=None, progress: bool = False,
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
    :data:`PROGRESS_DELAY` seconds.

    Hidden entries (names starting with ".", e.g. .DS_Store) and an operating system's own
    (``Thumbs.db``, ``desktop.ini``, ``__MACOSX``: :func:`is_skipped`) are skipped; any other entry that
    is not a class folder, or not an image file inside a class folder, raises DataError, as do
    a missing root or split, a split without class folders, an empty class folder, an unreadable,
    empty, corrupt or misnamed image, images of different sizes without ``image_size``, and a
    split too large for memory (over :data:`MAX_BYTES` as float32) without ``image_size``.
    The images that cannot be used are all named in one DataError, each with its fix (reading
    stops at :data:`MAX_NAMED_PROBLEMS`); one alone raises its own error; different sizes are
    counted, one file of each named.
    """
    # Pillow's warnings about the split's files: one per kind
    with warnings_gathered(), tqdm(disable=not progress, unit="image", desc="reading",
                                   delay=PROGRESS_DELAY, leave=False) as bar:
        (X,), y, classes = _load(root, split, mode, image_size, check_size, bar=bar)
    return X, y, classes


def _load(root, split, mode, image_size, check_size, parts=None, listing=None, bar=None):
    """:func:`load_split` with its images loaded straight into one array per part: ``parts``
    (None: one part of all) a boolean mask over the files per part, so parting them costs no
    copy of the images; ``listing`` :func:`split_files`'s answer, when already at hand; ``bar``
    a tqdm bar that counts the files read (given no total, it is given theirs). Returns
    ``(arrays, y, classes)``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    check_mode(mode)
    size = parse_image_size(image_size)
    root = resolve_root(root)
    files, labels, classes = listing or split_files(root, split)
    if bar is not None and bar.total is None:
        bar.reset(total=len(files))
    y = np.array(labels, dtype=np.int64)
    masks = [np.ones(len(y), dtype=bool)] if parts is None else parts
    part = np.zeros(len(y), dtype=np.int64)  # the part of each file, and its place there
    place = np.zeros(len(y), dtype=np.int64)
    for k, mask in enumerate(masks):
        part[mask], place[mask] = k, np.arange(int(mask.sum()))
    course_root = is_course_data(root)
    arrays, problems, sizes = None, [], {}  # sizes: (H, W) -> (images of it, the first of them)
    for i, path in enumerate(files):
        if bar is not None:
            bar.update()
        course = course_root and is_course_data(root, path)
        try:
            pixels = read_image(path, mode, size, fix=_FIX_REFETCH if course else None)
            if course and arrays is not None and pixels.shape[:2] != shape[1:]:
                raise DataError(f"{path} is {pixels.shape[0]}x{pixels.shape[1]} pixels (height x "
                                f"width), the course's images {shape[1]}x{shape[2]}. {_FIX_REFETCH}")
        except DataError as err:  # named with the others once all are read (or too many are bad)
            problems.append(err)
            if len(problems) == MAX_NAMED_PROBLEMS:
                break
            continue
        if arrays is None:
            need = len(files) * pixels.size * 4
            if need > MAX_BYTES:
                raise DataError(f"{len(files)} images of {pixels.shape[0]}x{pixels.shape[1]} pixels "
                                f"(e.g. {path}) take {need / 2**30:.1f} GiB as float32. Fix: shrink them "
                                "as they load, e.g. with TrainConfig(image_size=64).")
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
        raise DataError("\n".join(messages))
    return arrays, y, classes


def train_val_split(
    X: np.ndarray, y: np.ndarray, val_fraction: float = 0.3, seed: int = 0, split: str = "blocked"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split into ``(X_train, y_train, X_val, y_val)``, deterministic for ``seed``.

    Each class with n samples sends ``round(n * val_fraction)`` of them to validation (147 of
    490 at 0.3), at most ``n - 1``: every class keeps a training image (a class of one only
    trains); both parts keep the input order, which :func:`load_split` makes the files'
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
        runs = np.array_split(idx, min(VAL_BLOCKS, len(idx)))
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


def frame_runs(y: np.ndarray, runs: int = VAL_BLOCKS) -> np.ndarray:
    """A run label ``(N,)`` per sample of ``y (N,)`` in :func:`load_split` order: each class's
    samples, in order, cut into ``runs`` contiguous runs of (nearly) equal length, as the
    "blocked" split cuts them (:func:`train_val_split`); the labels count up from 0, class by
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


def fit_normalizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)``, float32 ``(C,)``, of ``X`` ``(N, C, H, W)``.

    Fit it on the training split only and apply it to every split with :func:`normalize`.
    A constant channel (the alpha of "LA"/"RGBA") gets std 1, so it normalises to 0, not NaN.
    """
    # NumPy's X.std(axis=(0, 2, 3), dtype=np.float64), step by step, without its float64 copy
    # of all of X: the deviations are squared and summed NORMALIZE_BLOCK_BYTES at a time (one
    # block, the same bits as NumPy's; more, the sums of the blocks' sums).
    check_array("X", X, "of images (N, C, H, W)")
    if X.ndim != 4:
        raise ValueError(f"X must be images (N, C, H, W), got shape {X.shape}")
    axes, n = (0, 2, 3), X.size // X.shape[1] if X.shape[1] else 0
    mean = X.mean(axis=axes, dtype=np.float64, keepdims=True)
    step = max(1, NORMALIZE_BLOCK_BYTES // (8 * max(X[:1].size, 1)))
    block = np.empty((min(step, len(X)), *X.shape[1:]))  # one float64 block, reused
    squares = 0
    for start in range(0, max(len(X), 1), step):
        part = X[start:start + step]
        deviation = np.subtract(part, mean, out=block[:len(part)])
        np.multiply(deviation, deviation, out=deviation)
        squares = squares + deviation.sum(axis=axes, dtype=np.float64, keepdims=True)
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
    """Yield ``(X_batch, y_batch)`` covering every sample exactly once, last partial batch included.

    With ``shuffle`` the order comes from ``np.random.default_rng((seed, epoch))``: the same
    for the same ``(seed, epoch)``, different from epoch to epoch. Arguments are checked when
    called, before the first batch.
    """
    integer("batch_size", batch_size)
    check_array("X", X, "(N, ...)")  # batches are read by fancy indexing
    check_array("y", y, "(N,)")
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
    image_size=None,
    check_size=None,
    progress: bool = False,
) -> Dataset:
    """Load both splits, split train stratified into train/val (:func:`train_val_split` with
    ``split`` "blocked" or "random"), fit the normaliser on train.

    ``image_size`` (``S`` or ``(H, W)``) resizes every image as it loads, and ``check_size`` sees
    the first training image's size (:func:`load_split`). With ``progress``, a ``tqdm.auto``
    bar counts the images read once reading has taken :data:`PROGRESS_DELAY` seconds.
    Raises DataError when the training split holds fewer than 2 classes, or the test split's
    class folders (compared, like both splits' listings, before any image is read) or image
    size differ from the training split's, or one file is listed twice (a symbolic or hard link,
    e.g. a test folder linked to the training one). Both splits are read before their images that cannot
    be used are named, in one DataError (see :func:`load_split`).
    """
    root = resolve_root(root)
    listing = split_files(root, "train")
    classes = listing[2]
    if len(classes) < 2:
        raise DataError(f"{split_dir(root, 'train')} holds only the class folder {classes[0]}: a "
                        "classifier needs 2 or more. Fix: add one folder of images per class.")
    # both splits' folders are listed, and their classes compared, before any image is decoded:
    # a missing or empty test class is named at once, not after minutes of reading images
    test_listing = split_files(root, "test")
    test_classes = test_listing[2]
    if test_classes != classes:
        raise DataError(
            f"class folders differ between {split_dir(root, 'train')} and {split_dir(root, 'test')}: "
            f"missing from test: {sorted(set(classes) - set(test_classes))}, "
            f"only in test: {sorted(set(test_classes) - set(classes))}. "
            "Fix: give both splits the same class folders."
        )
    shared = _shared_files(listing[0], test_listing[0])
    if shared:
        raise DataError(shared)
    for name in sorted(os.listdir(root)):  # a validation folder beside them would be left out
        if name.lower() in VALIDATION_FOLDERS and (root / name).is_dir():
            raise DataError(
                f"{root / name} would be left out: hw3lib reads only the train and test splits, and "
                f"validates on a share of the training split (val_fraction, --val-fraction). Fix: "
                f"move its images into {split_dir(root, 'train')}'s class folders (or "
                f"{split_dir(root, 'test')}'s), or move the folder out of {root}."
            )
    # straight into the training and validation parts (a split of the loaded array would copy
    # it); a split that cannot be made is refused before minutes of reading a large folder
    is_val = validation_mask(np.array(listing[1]), val_fraction, seed, split)
    problems = []  # both splits' bad images, named in one error: a folder is mended in one round
    with tqdm(total=len(listing[0]) + len(test_listing[0]), disable=not progress, unit="image",
              desc="reading", delay=PROGRESS_DELAY, leave=False) as bar:
        try:
            with warnings_gathered():
                Xs, y, classes = _load(root, "train", mode, image_size, check_size, [~is_val, is_val],
                                       listing, bar)
        except DataError as err:
            problems.append(err)
        try:
            with warnings_gathered():
                (X_test,), y_test, _ = _load(root, "test", mode, image_size, None, listing=test_listing,
                                             bar=bar)
        except DataError as err:
            problems.append(err)
    if problems:
        raise problems[0] if len(problems) == 1 else DataError("\n".join(map(str, problems)))
    if X_test.shape[2:] != Xs[0].shape[2:]:
        raise DataError(_sizes_differ({Xs[0].shape[2:]: (len(y), listing[0][0]),
                                       X_test.shape[2:]: (len(y_test), test_listing[0][0])}))
    (X_train, X_val), y_train, y_val = Xs, y[~is_val], y[is_val]
    mean, std = fit_normalizer(X_train)
    return Dataset(X_train, y_train, X_val, y_val, X_test, y_test, classes, mean, std, root,
                   dict(mode=mode, image_size=parse_image_size(image_size), val_fraction=val_fraction,
                        seed=seed, split=split))
