"""What the commands share: an argument parser whose errors are one line, the --data option,
argument types, the line announcing a long read of images, whether to show progress bars, the
checks and creation of an output folder (not inside the dataset), the wording of settings in
messages (as train's options, too), whether a train command is writing into a folder, and the
printing of errors.

``python -m hw3lib`` (:mod:`hw3lib.__main__`) prints a command's ValueError as one line
``error: ...`` (:func:`print_error`) with exit status 2.
"""
import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from .atomic import lock_path
from .checks import dead_link
from .data import DataError
from .folders import DEFAULT_ROOT, SPLIT_FOLDERS, SPLITS, resolve_root, split_files, split_folders
from .images import parse_image_size
from .model import KERNEL_ADVICE
from .processes import process_running, start_seconds
from .tables import escaped

# how the library's messages name a setting to change: TrainConfig(image_size=64), TrainConfig(mode='LA')
SETTING = re.compile(r"TrainConfig\((\w+)=([^)]*)\)")
# the option of the train command (and of audit, which shares some) that gives each setting
TRAIN_OPTIONS = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed",
                 "split": "--split", "val_fraction": "--val-fraction", "mode": "--channels",
                 "image_size": "--image-size"}
RUN = "run"  # a train command holds OUT/.run.lock (hw3lib.atomic.claimed) for as long as it runs
# seconds by which a train may seem to have started after writing its lock file (training_into):
# the boot's time is in whole seconds, some file systems' times are coarse, and the clock's
# corrections since shift the two (NTP slews it up to 0.5 ms a second, ~2 s an hour); a process
# that got a killed train's number within this of the train's start is still taken for it
WRITER_SLACK = 60


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose argument errors raise one ValueError naming the option, instead
    of printing the usage and exiting; a negative number in exponent form (``--lr -1e-3``) is
    read as the option's value, to be refused for what it is, not taken for an option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message):
        raise ValueError(f"{message} ({self.prog} --help lists the options)")


def print_error(message, lines=True):
    """Print ``message`` on stderr as ``error: MESSAGE``, its control characters escaped
    (:func:`hw3lib.tables.escaped`: a file name's tab or escape code as ``\\t``, ``\\x1b``) but
    its newlines, or with ``lines=False`` its newlines too (a message that must stay one line)."""
    print(f"error: {escaped(message, lines=lines)}", file=sys.stderr)


def parse_given(parser, argv, names):
    """``(args, given)``: ``parser``'s arguments from ``argv``, and the set of the options
    ``names`` (their destinations) given on the command line, at their default value too, so
    that a command can refuse one that it would ignore; those left out take their defaults."""
    # argparse sets a default only where the namespace lacks the name: a mark left there is an
    # option left out; the arguments themselves come from a plain parse (defaults as argparse
    # gives them, a string default through its type too)
    left_out = object()
    marked = parser.parse_args(argv, argparse.Namespace(**dict.fromkeys(names, left_out)))
    return parser.parse_args(argv), {name for name in names if getattr(marked, name) is not left_out}


def add_data_option(parser):
    """Add ``--data``, the dataset's folder, to ``parser``, its default named as
    :func:`~hw3lib.folders.resolve_root` finds it (the repository's ``data/``, wherever the
    command runs)."""
    parser.add_argument("--data", type=folder, metavar="DIR",
                        help="folder holding Data_train/ and Data_test/ (or train/ and test/); "
                             f"default: $HW3_DATA, then {DEFAULT_ROOT}")


def int_at_least(low):
    """An argparse ``type``: an integer >= ``low``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value
    return parse


def folder(text):
    """An argparse ``type``: a folder's path, never empty (``Path("")`` is the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError("must name a folder, got an empty string")
    return Path(text)


def fraction(text):
    """An argparse ``type``: a number strictly between 0 and 1 (``--val-fraction``)."""
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0 < value < 1:  # nan too
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, e.g. 0.3, got {text!r}")
    return value


def image_size(text):
    """An argparse ``type``: ``H[xW]`` as ``(H, W)`` (:func:`hw3lib.images.parse_image_size`)."""
    try:
        return parse_image_size(text)
    except ValueError as err:
        # argparse names the option already: "argument --image-size: must be ...", as for the others
        raise argparse.ArgumentTypeError(str(err).removeprefix("image_size ")) from None


def parse_seeds(text, most, what):
    """``--seeds`` given as ``0-4`` or ``0,1,2``, as a list of seeds; more than ``most`` seeds,
    in a range or a list, are refused as more than ``what`` (e.g. "a sweep") takes."""
    try:
        if "-" in text:
            first, last = (int(v) for v in text.split("-"))
            count = last - first + 1
        else:
            seeds = [int(v) for v in text.split(",")]
            first, count = seeds[0], len(seeds)
    except ValueError:
        raise ValueError(f"--seeds {text!r}: give FIRST-LAST (0-4) or a list (0,1,2)") from None
    if count < 1:
        raise ValueError(f"--seeds {text!r}: the range is reversed (no seed from {first} up to "
                         f"{last}); give FIRST-LAST with FIRST <= LAST, e.g. {last}-{first}")
    if count > most:
        raise ValueError(f"--seeds {text!r}: {count} seeds, more than {what} takes "
                         f"(at most {most:,}); give fewer, e.g. {first}-{first + 4}")
    return list(range(first, last + 1)) if "-" in text else seeds


def announce_reading(root):
    """Say on stderr how many images are about to be read from ``root``: reading a large folder
    of photos takes minutes, before the first line on stdout. Nothing when the folders cannot be
    listed: loading names that."""
    try:
        root = resolve_root(root)
        counts = [len(split_files(root, split)[0]) for split in ("train", "test")]
    except DataError:
        return
    print(f"reading {counts[0]} training and {counts[1]} test images from {root} ...",
          file=sys.stderr, flush=True)


def add_progress_option(parser, reads_images=False):
    """Add ``--no-progress`` to ``parser`` (:func:`show_progress` reads it); ``reads_images``:
    the command also announces its read of the images (:func:`announce_reading`), hidden too."""
    hidden = ("the line saying how many images are being read, and the progress bars" if reads_images
              else "the progress bar")
    parser.add_argument("--no-progress", action="store_true",
                        help=f"hide {hidden} (shown only when stderr is a terminal)")


def show_progress(args):
    """Whether a command with ``--no-progress`` shows its progress bars: not with it, and only
    on a terminal; redirected to a file (``2> err.log``), a bar's updates, ten a second, would
    fill it."""
    return not args.no_progress and sys.stderr.isatty()


def usable_cores():
    """The number of cores this process may use (its CPU affinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def more_than_cores(option, count, what):
    """A note when ``count``, given as ``option``, is more than :func:`usable_cores`: ``what``
    shares them and runs no faster than with one per core; None otherwise."""
    cores = usable_cores()
    if count > cores:
        return (f"note: {option} {count} on the {cores} core(s) this process may use: the {what} "
                f"share them, so it runs no faster than with {option} {cores}")
    return None


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


def refuse_out_in_data(out, data):
    """ValueError when ``out`` (the folder given as ``--out``) is, or lies in, a split folder of
    the dataset at ``data`` (``--data``; None: ``$HW3_DATA``, then ``data/``): the files written
    there would become part of the dataset, which every later read of it refuses (or reads as a
    class); or where it is, or lies in, the split's folder of the other name (``train/`` beside
    ``Data_train/``), which creating it would make a second folder of that split. Creates
    nothing; a dataset that cannot be found is left for loading to name."""
    root, where = resolve_root(data), Path(out).resolve()
    for split in SPLITS:
        found = split_folders(root, split)
        for folder in found:
            if where.is_relative_to(folder.resolve()):
                raise ValueError(f"--out {out} is inside the dataset's {split} split folder "
                                 f"{folder}: the run's files written there would become part of "
                                 f"the dataset and break it. Choose an --out outside {folder} "
                                 f"(e.g. {root / 'runs'})")
        for folder in (root / name for name in SPLIT_FOLDERS[split]):
            if found and folder not in found and where.is_relative_to(folder.resolve()):
                raise ValueError(f"--out {out} would create {folder}, a second {split} split "
                                 f"folder beside the dataset's {found[0]}: a dataset holding both "
                                 "is refused by every later read of it. Choose an --out "
                                 f"outside {folder} (e.g. {root / 'runs'})")


def try_writing(folder, nbytes=0):
    """Write and sync ``nbytes`` in a temporary file in ``folder``, then remove it: OSError
    when the folder cannot hold them (read-only; full, for ``nbytes`` > 0: an empty file fits
    on a full disk)."""
    with tempfile.TemporaryFile(dir=folder) as f:
        f.write(bytes(nbytes))
        f.flush()
        os.fsync(f.fileno())


def create_out(out, room=0, purpose=None):
    """Create the folder ``out`` given as ``--out`` (and its parents) and write ``room`` bytes
    in it (:func:`try_writing`), before any work: ValueError naming it, and what the ``room``
    is for (``purpose``), when either fails."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create --out {out}: {err.strerror}; choose a writable folder") from None
    try:
        try_writing(out, room)
    except OSError as err:
        free = f" with {room / 1e6:.1f} MB free for {purpose}" if room else ""
        raise ValueError(f"cannot write to --out {out}: {err.strerror}; choose a writable "
                         f"folder{free}") from None


def phrase_settings(message, option):
    """``message`` with each setting it names as the library does, ``TrainConfig(NAME=VALUE)``,
    put as a command gives it: ``option(NAME, VALUE)`` (e.g. ``--image-size 64``), or as it
    was where ``option`` gives None (a setting the command has no option for)."""
    return SETTING.sub(lambda m: option(m[1], m[2].strip("'")) or m[0], message)


def phrased(message):
    """``message`` with the settings it names put as train's options (others as they are):
    ``TrainConfig(NAME=VALUE)`` as ``--option VALUE``, and a leading ``NAME must ...``
    (TrainConfig's check of a value) as ``--option must ...``; advice of a smaller kernel, which
    train has no option for (the model's settings are the sweep's and Python's), left out."""
    message = re.sub(r"^(\w+)(?= must )", lambda m: TRAIN_OPTIONS.get(m[1], m[1]), message)
    message = message.replace(KERNEL_ADVICE, "")
    return phrase_settings(message, lambda name, value: name in TRAIN_OPTIONS
                           and f"{TRAIN_OPTIONS[name]} {value}" or None)


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
