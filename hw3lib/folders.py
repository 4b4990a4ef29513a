"""A dataset folder's layout: where its splits are, which class folders and image files they
hold, in what order, and what is skipped and what refused.

Layout of a dataset root (never committed to the repository)::

    <root>/Data_train/<Class>/<any name>.png     or  <root>/train/<Class>/...
    <root>/Data_test/<Class>/<any name>.png      or  <root>/test/<Class>/...

The course's fruit images use the first names (490 and 166 images per class, 32x32 PNGs in mode
``LA`` whose alpha is 255 everywhere, so ``mode="L"`` loses nothing); one's own data may use
either. Two or more class folders, the same in both splits, each holding image files (a name
ending as in :data:`hw3lib.images.SUFFIXES`). The root is the ``root`` argument, else the
environment variable ``HW3_DATA``, else ``data/`` at the repository root (:data:`DEFAULT_ROOT`).

Errors: a folder that is missing, unreadable or holds what it should not raises
:class:`hw3lib.images.DataError` naming it and the fix: the course's fixes (restore a file,
download a fresh copy) for the course's data (:func:`is_course_data`), other advice for one's own.

Neighbours: :mod:`hw3lib.data` loads the files listed here into arrays; :mod:`hw3lib.download`
fetches and verifies the course's copy (:data:`MANIFEST_PATH`).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import unicodedata
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .checks import dead_link
from .images import SUFFIXES, DataError, open_file, other_format, rename_suffix, sniff

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout: hw3lib/, data/, notebooks/, runs/
DEFAULT_ROOT = REPO_ROOT / "data"
SPLITS = {"train": "Data_train", "test": "Data_test"}  # the course's split folders
SPLIT_FOLDERS = {split: (course, split) for split, course in SPLITS.items()}  # the names accepted
# a validation split's folder, which a dataset may hold beside train/ and test/ (refused: unread)
VALIDATION_FOLDERS = ("val", "valid", "validation", "data_val", "data_valid", "data_validation")
MANIFEST_PATH = Path(__file__).with_name("fruits.sha256")  # the course's files (hw3lib.download)
# Entries that operating systems put into folders by themselves (lower case): skipped as hidden ones are
SYSTEM_ENTRIES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx"})

FIX_WHERE = (
    "Fix: set HW3_DATA to a folder holding Data_train/ and Data_test/, put those two folders "
    f"under {DEFAULT_ROOT}, or fetch them with `python -m hw3lib download` "
    "(hw3lib.download.download(dest))."
)
_LAYOUT = (
    "a dataset folder holds train/ and test/ (or Data_train/ and Data_test/), each with one "
    "folder of images per class (README: Use your own images)"
)


def fix_refetch(root: Path, first: str | None = None) -> str:
    """The fix for a damaged or missing file of the course's data under ``root``: the download
    named with ``root``, which a ``--data`` or ``root=`` other than ``$HW3_DATA`` is not;
    ``first``: a step to take before it (a rename)."""
    restore = f"{first}, then restore" if first else "restore"
    return (f"Fix: {restore} the original files (hw3lib.download.verify(root) lists what differs) "
            f"or fetch a fresh copy with `python -m hw3lib download {shlex.quote(os.fspath(root))}`.")


def home_path(path: str | os.PathLike, given: str | None = None) -> Path:
    """``path`` with a leading ``~`` (or ``~USER``) made the home folder, as a shell makes it;
    ValueError where no home folder is known for it (a ``~USER`` of no user this machine knows,
    or a ``~`` that neither ``$HOME`` nor the user database names), naming it as ``given``
    (default: the path quoted) and the fix, rather than taking it for a folder named ``~USER``."""
    text = os.fspath(path)
    expanded = os.path.expanduser(text)
    if not expanded.startswith("~"):
        return Path(expanded)
    user = Path(text).parts[0][1:]
    given = given or repr(text)
    if not user:
        raise ValueError(f"{given}: a leading ~ is your home folder, which neither $HOME nor the user "
                         "database names; give the path in full")
    # in full: a relative ~USER/... would be expanded again where it is read (resolve_root)
    raise ValueError(f"{given}: this machine has no user {user!r}, whose home folder a leading ~{user} "
                     f"is; for a folder named ~{user}, give its full path {os.path.abspath(text)}")


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``root``, else ``$HW3_DATA``, else :data:`DEFAULT_ROOT`; a leading
    ``~`` is the home folder, as in a shell (a notebook's ``root="~/photos"`` has no shell):
    ValueError for one of no known home folder (:func:`home_path`)."""
    if root is not None:
        return home_path(Path(root), f"the dataset folder {os.fspath(root)!r} (--data or root=)")
    env = os.environ.get("HW3_DATA")
    return home_path(Path(env), f"HW3_DATA={env!r}") if env else DEFAULT_ROOT


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


def test_splits_holding(paths) -> dict[Path, Path]:
    """``{root: its test split folder}`` of each dataset whose test split folder (``Data_test/``
    or ``test/`` beside a training split folder) holds one of ``paths``, as given or with its
    links resolved (a folder linked to the test split is the split), in the order found."""
    found, looked = {}, {}

    def test_folder(folder):  # whether ``folder`` is a dataset's test split folder, each folder looked at once
        if folder not in looked:
            looked[folder] = folder.name in SPLIT_FOLDERS["test"] and bool(split_folders(folder.parent, "train"))
        return looked[folder]

    parents = dict.fromkeys(form.parent for path in map(Path, paths)
                            for form in (Path(os.path.abspath(path)), path.resolve()))
    for parent in parents:
        for folder in (parent, *parent.parents):
            if test_folder(folder):
                found.setdefault(folder.parent, folder)
    return found


def _relative(root):
    """Where a relative ``root`` was looked for, said after "does not exist": from the working
    folder, which for a notebook is the notebook's own (``HW3_DATA=data/fruits`` set in the
    repository does not reach from ``notebooks/``); nothing for an absolute one."""
    return "" if root.is_absolute() else (f" (a relative path, looked for in the working folder "
                                          f"{Path.cwd()}: give an absolute path)")


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
    held = (sorted(p.name for p in root.iterdir() if p.is_dir() and not is_skipped(p.name))
            if root.is_dir() else [])
    cased = [name for name in held if name.lower() in (split, SPLITS[split].lower())]
    if cased:  # Train/ for train/ (the course's data too, Data_Train/): names are case-sensitive here
        right = SPLITS[split] if cased[0].lower() == SPLITS[split].lower() else split
        raise DataError(f"no {split} split in {root}: it holds {cased[0]}/, but the name must be "
                        f"{right}/ (folder names are case-sensitive). Fix: rename {root / cased[0]} "
                        f"to {root / right}.")
    if is_course_data(root):
        missing = (f"folder {root / SPLITS[split]} does not exist" if root.is_dir()
                   else f"the folder does not exist{_relative(root)}")
        cut_short = any((root / name).is_dir() for name in SPLITS.values())  # the other split is here
        raise DataError(f"no dataset at {root}: {missing}. {fix_refetch(root) if cut_short else FIX_WHERE}")
    if not root.is_dir():
        what = "it is a file, not a folder" if root.exists() else f"the folder does not exist{_relative(root)}"
        raise DataError(f"no dataset at {root}: {what}. Fix: check the path (given as --data, root= "
                        f"or HW3_DATA); {_LAYOUT}.")
    if root.name in (name for names in SPLIT_FOLDERS.values() for name in names):
        raise DataError(f"no dataset at {root}: it is itself a split folder. Fix: give the folder "
                        f"that holds it, {root.parent}, as the dataset.")
    if held and all(_holds_images(root / name) for name in held):  # DIR/<class>/..., no splits
        shown = ", ".join(held[:5]) + (" ..." if len(held) > 5 else "")
        raise DataError(f"no {split} split in {root}: it holds class folders of images ({shown}) "
                        f"directly. Fix: move them into {root / 'train'}/, then move about one image "
                        f"in five of each class into {root / 'test'}/<class>/ (the test split), "
                        f"e.g. {root / 'test' / held[0]}/.")
    if len(held) > 6:  # a home folder given as --data: name a few, not a hundred
        held = [f"{', '.join(held[:5])} and {len(held) - 5} other folders"]
    raise DataError(
        f"no {split} split in {root}: neither {root / SPLITS[split]}/ nor {root / split}/ exists"
        + (f" (it holds {', '.join(held)})" if held else "") + f". Fix: {_LAYOUT}"
        + ("; keep some images of each class apart for testing, e.g. one in five." if split == "test" else ".")
    )


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image file directly (a name ending as in
    :data:`hw3lib.images.SUFFIXES`, not :func:`is_skipped`); False where it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return any(Path(e.name).suffix.lower() in SUFFIXES and not is_skipped(e.name)
                       for e in entries)
    except OSError:
        return False


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
    leaves out), following symbolic links to folders as :func:`hw3lib.data.load_split` does, but not a link
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
        # in natural order, so that a folder holding two wrong entries names the same one
        # however the file system lists them
        names = sorted((n for n in os.listdir(folder) if not is_skipped(n)), key=natural_key)
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
            if want_dirs and path.suffix.lower() in SUFFIXES:  # a split's images not sorted by class
                fix = (f"move it into the folder of its class, {folder / '<class>' / path.name}: "
                       f"an image directly in {folder} has no class.")
            elif want_dirs:
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
    converting it where they are of another image format (:func:`hw3lib.images.other_format`),
    else moving it out or converting it."""
    try:
        with open_file(path) as f:  # a named pipe is not waited on
            head = f.read(16)
    except (OSError, DataError):
        head = b""
    found = sniff(head)
    if other := other_format(head):
        return (f"it is an image in the {other} format, which hw3lib does not read: convert it to "
                "PNG or JPEG, or move it out of the dataset folder.")
    if found is None:
        return "move it out of the dataset folder, or convert it to PNG or JPEG if it is an image."
    return (f"it is a {found} image: rename it to end in {rename_suffix(found)}, or move it out "
            "of the dataset folder.")


def split_files(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """``(files, labels, classes)`` of one split, in :func:`hw3lib.data.load_split` order; DataError as there."""
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
            fix = fix_refetch(root) if course else "Fix: add its images or remove the folder" + (
                f" and {namesakes[0]}, the class's folder in the {other} split." if namesakes else ".")
            raise DataError(f"class folder {class_folder} holds no images. {fix}")
        files += images
        labels += [label] * len(images)
    return files, labels, classes


def dataset_files(root: Path) -> tuple[tuple, tuple]:
    """Both splits' :func:`split_files` (train's, test's) of the dataset at ``root``, once they
    make a dataset: DataError where the training split holds fewer than 2 classes, the test
    split's class folders differ from it, a file is listed twice (:func:`shared_files`) or a
    validation folder stands beside the splits. Only listed, no image read: a missing test
    class is named at once, not after minutes of reading images."""
    listing = split_files(root, "train")
    classes = listing[2]
    if len(classes) < 2:
        raise DataError(f"{split_dir(root, 'train')} holds only the class folder {classes[0]}: a "
                        "classifier needs 2 or more. Fix: add one folder of images per class.")
    test_listing = split_files(root, "test")
    test_classes = test_listing[2]
    if test_classes != classes:
        train_dir, test_dir = split_dir(root, "train"), split_dir(root, "test")
        missing, extra = sorted(set(classes) - set(test_classes)), sorted(set(test_classes) - set(classes))
        cased = _in_another_case(missing, extra)
        missing = [name for name in missing if name not in cased]
        extra = [name for name in extra if name not in cased.values()]
        found, fixes = [], []
        if cased:  # lychee/ in train, Lychee/ in test: one class, the rename to the course's name or train's
            found.append(f"in another case in test: {list(cased.values())} for {list(cased)} in train "
                         "(class names are case-sensitive)")
            fixes.append("rename " + " and ".join(
                f"{train_dir / name} to {train_dir / other} (the course's name)"
                if is_course_data(root, train_dir / other) else
                f"{test_dir / other} to {test_dir / name} (the training split's name)"
                for name, other in cased.items()))
        if missing:
            found.append(f"missing from test: {missing}")
            fixes.append("move about one image in five of each missing class into its own folder in "
                         f"{test_dir}, e.g. {test_dir / missing[0]}")
        if extra:
            found.append(f"only in test: {extra}")
            fixes.append("give each class only in test its training images, e.g. in "
                         f"{train_dir / extra[0]}, or remove its test folder")
        # a class folder of the course's gone from one split: fetched, not made of the other's images
        course = bool(missing or extra) and is_course_data(root) and all(
            is_course_data(root, folder / name) for folder, names in ((test_dir, missing), (train_dir, extra))
            for name in names)
        raise DataError(f"class folders differ between {train_dir} and {test_dir}: {', '.join(found)}. "
                        + (fix_refetch(root, fixes[0] if cased else None) if course else
                           f"Fix: give both splits the same class folders: {'; '.join(fixes)}."))
    shared = shared_files(listing[0], test_listing[0])
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
    return listing, test_listing


def _in_another_case(train: list[str], test: list[str]) -> dict[str, str]:
    """``{train's class name: test's}`` for each class of one split alone whose name is one of
    the other's in another case (``lychee`` and ``Lychee``): one class, under two names."""
    by_case = {name.casefold(): name for name in test}
    return {name: by_case.pop(name.casefold()) for name in train if name.casefold() in by_case}


def shared_files(train: list[Path], test: list[Path]) -> str | None:
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
