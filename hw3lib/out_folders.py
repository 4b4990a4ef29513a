"""The folder a command writes into (``--out``): refused where a file is in its way, where it
lies in the dataset or is a folder it would litter (the file system's root, the home folder),
created and tried for room before any work, and whether a train command is writing into it now.
"""
import os
import tempfile
from pathlib import Path

from .atomic import lock_path
from .checks import dead_link
from .folders import SPLIT_FOLDERS, SPLITS, VALIDATION_FOLDERS, resolve_root, split_folders
from .processes import process_running, start_seconds

RUN = "run"  # a train command holds OUT/.run.lock (hw3lib.atomic.claimed) for as long as it runs
# seconds by which a train may seem to have started after writing its lock file (training_into):
# the boot's time is in whole seconds, some file systems' times are coarse, and the clock's
# corrections since shift the two (NTP slews it up to 0.5 ms a second, ~2 s an hour); a process
# that got a killed train's number within this of the train's start is still taken for it
WRITER_SLACK = 60


def refuse_file_in_the_way(path, option, given=None):
    """ValueError when ``path``, a folder to write in (created if missing), or a folder above it
    is a file (or a link to nothing): the message names ``option`` as it was ``given``
    (default: ``path``) and the file. Creates nothing."""
    in_the_way = next((p for p in (path, *path.parents)
                       if (p.exists() or p.is_symlink()) and not p.is_dir()), None)
    if in_the_way is not None:
        what = dead_link(in_the_way) or "a file"
        raise ValueError(f"{option} {given or path}: {in_the_way} is {what}, not a folder; "
                         f"choose another {option}")


def split_folder_holding(path, data):
    """``(split, folder)`` where ``path`` is, or lies in, the split folder ``folder`` of the
    dataset at ``data`` (``--data``; None: ``$HW3_DATA``, then ``data/``), None where it lies in
    none: a file written there would become part of the dataset, which every later read of it
    refuses (or reads as a class)."""
    where = Path(path).resolve()
    return next(((split, folder) for split in SPLITS for folder in split_folders(resolve_root(data), split)
                 if where.is_relative_to(folder.resolve())), None)


def refuse_file_in_data(path, data, option, given=None):
    """ValueError when the file ``path`` that a command writes, given as ``option`` (audit's
    ``--list``, sweep's ``--storage``: its journal file, its SQLite database file) as ``given``
    (default: ``path``), would break the dataset at ``data``: where its folder, created if
    missing, is one that an ``--out`` may not be (:func:`refuse_out_in_data`'s rule). A file in
    the dataset's root itself, whatever its name, is fine. Creates nothing."""
    _refuse_in_data(path, data, f"{option} {given or path}", lambda folder: f"Give a file outside {folder}",
                    file=True)


def refuse_out(out, data, example):
    """The checks of an ``out`` given as ``--out`` (by train, sweep and report), before any work
    and creating nothing: :func:`refuse_file_in_the_way`, :func:`refuse_loose_files` (with
    ``example``) and :func:`refuse_out_in_data` (the dataset at ``data``). ValueError."""
    refuse_file_in_the_way(out, "--out")
    refuse_loose_files(out, example)
    refuse_out_in_data(out, data)


def refuse_loose_files(out, example):
    """ValueError when ``out`` is the file system's root or the home folder itself: every
    command writes its files straight into ``--out`` (train its checkpoint.npz and history.json,
    sweep its journal, checkpoints/ and figures, report its HTML and build/), not into a folder
    of their own, so they would lie loose among everything else there. ``example``: a folder to
    give instead."""
    where = Path(out).resolve()
    home = Path.home().resolve()
    what = ("the file system's root" if where == Path(where.anchor)
            else f"your home folder {home}" if where == home else None)
    if what:
        raise ValueError(f"--out {out} is {what}: the command writes its files straight into "
                         "--out, not into a folder of their own, so they would lie loose among "
                         f"everything else there. Give a folder for them alone, e.g. --out {example}")


def refuse_out_in_data(out, data):
    """ValueError when ``out`` (the folder given as ``--out``) is, or lies in, a split folder of
    the dataset at ``data`` (:func:`split_folder_holding`); or where it is, or lies in, the
    split's folder of the other name (``train/`` beside ``Data_train/``), which creating it would
    make a second folder of that split; or in a folder of the root's that a read of the dataset
    refuses (:func:`_refused_folder`). Creates nothing; a dataset that cannot be found is left
    for loading to name. The dataset's root itself, and any other folder in it, are fine: a
    read of the dataset looks at its split folders alone."""
    example = resolve_root(data) / "runs"
    _refuse_in_data(out, data, f"--out {out}", lambda folder: f"Choose an --out outside {folder} (e.g. {example})")


def _refuse_in_data(path, data, given, fix, file=False):
    """The rule of :func:`refuse_out_in_data` for the folder ``path``, or with ``file`` for the
    folder of the file ``path`` (the file itself where it is a split folder's), given as ``given``
    (e.g. "--out runs/x"): the ValueError says so, and ``fix`` (a function of the dataset's
    folder that it must stay out of, saying so)."""
    root, where = resolve_root(data), (Path(path).parent if file else Path(path)).resolve()
    files = "the file" if file else "the run's files"
    inside = split_folder_holding(path, data)
    if inside:
        split, held = inside
        raise ValueError(f"{given} is inside the dataset's {split} split folder {held}: {files} "
                         f"written there would become part of the dataset and break it. "
                         + fix(held))
    for split in SPLITS:
        found = split_folders(root, split)
        for other in (root / name for name in SPLIT_FOLDERS[split]):
            if found and other not in found and where.is_relative_to(other.resolve()):
                raise ValueError(f"{given} would create {other}, a second {split} split folder "
                                 f"beside the dataset's {found[0]}: a dataset holding both is "
                                 "refused by every later read of it. " + fix(other))
    if where != root.resolve() and where.is_relative_to(root.resolve()):
        top = root / where.relative_to(root.resolve()).parts[0]  # the root's folder that holds it
        why = _refused_folder(top.name, files)
        if why:
            raise ValueError(f"{given} would put {files} in {top}, {why}. " + fix(top))


def _refused_folder(name, files):
    """Why a folder ``name`` in a dataset's root, holding ``files``, breaks the dataset (None where it does not): a
    validation split's name, which every read of the dataset refuses as a split it would leave
    out (:func:`hw3lib.folders.dataset_files`), or a split folder's name in other letter case,
    which is that split folder where the file system ignores case (macOS's, Windows')."""
    if name.lower() in VALIDATION_FOLDERS:
        return ("a validation split's folder, which every later read of the dataset refuses (its "
                "images would be left out)")
    split = next((split for names in SPLIT_FOLDERS.values() for split in names
                  if split.lower() == name.lower() and split != name), None)
    if split:
        return (f"whose name is the split folder name {split} in other letter case: where the file "
                f"system ignores case (macOS's, Windows') it is that split folder, and {files} "
                "would become part of the dataset")
    return None


def try_writing(folder, nbytes=0):
    """Write and sync ``nbytes`` in a temporary file in ``folder``, then remove it: OSError
    when the folder cannot hold them (read-only; full, for ``nbytes`` > 0: an empty file fits
    on a full disk)."""
    with tempfile.TemporaryFile(dir=folder) as f:
        f.write(bytes(nbytes))
        f.flush()
        os.fsync(f.fileno())


def make_folder(folder, room=0, create=True):
    """Create the folder ``folder`` (and those above it) and write ``room`` bytes in it
    (:func:`try_writing`): the OSError where either fails. Without ``create``, that error but a
    full disk's, creating nothing (a check before the work that tells the room): an empty file
    tried in ``folder`` where it exists, else a folder made, and removed, in the nearest above."""
    if create:
        folder.mkdir(parents=True, exist_ok=True)
        try_writing(folder, room)
    elif folder.is_dir():
        try_writing(folder)
    else:
        os.rmdir(tempfile.mkdtemp(dir=next(p for p in folder.absolute().parents if p.is_dir())))


def create_out(out, room=0, purpose=None, create=True):
    """Create the folder ``out`` given as ``--out`` (and its parents) and write ``room`` bytes
    in it (:func:`make_folder`), before any work: ValueError naming it, and what the ``room``
    is for (``purpose``), when either fails; without ``create``, the same refusals but a full
    disk's, creating nothing."""
    try:
        make_folder(out, room, create)
    except OSError as err:
        if not out.is_dir():
            raise ValueError(f"cannot create --out {out}: {err.strerror}; choose a writable folder") from None
        free = f" with {room / 1e6:.1f} MB free for {purpose}" if room else ""
        raise ValueError(f"cannot write to --out {out}: {err.strerror}; choose a writable "
                         f"folder{free}") from None


def training_into(out):
    """The number of the process whose train command writes into ``out`` now, read from its
    ``.run.lock`` without taking the lock (which would refuse that command's own claim meanwhile):
    the file is there only while held, or naming a process gone where its holder was killed
    outright, or another that got its number since. A process that started after the file was
    written (by more than :data:`WRITER_SLACK`) cannot have written it; where its start cannot be
    told (no ``/proc``: macOS), any process of that number is taken for the train. None where no
    train is at it, or where that cannot be told (Windows keeps the file)."""
    if os.name != "posix":
        return None
    lock = lock_path(out / RUN)
    try:
        pid = int(lock.read_text())
        written = lock.stat().st_mtime  # after the read: a newer file's time never hides its writer
    except (OSError, ValueError):  # none, or one being written
        return None
    if not process_running(pid):
        return None
    started = start_seconds(pid)
    return None if started is not None and started > written + WRITER_SLACK else pid
