"""What the commands share: an argument parser whose errors are one line, the --data option,
argument types, the line announcing a long read of images, whether to show progress bars, and
the printing of errors. The checks of the output folder are :mod:`hw3lib.out_folders`', the
wording of settings in messages :mod:`hw3lib.phrasing`'s, the note of more threads than cores
:mod:`hw3lib.cores`'.

``python -m hw3lib`` (:mod:`hw3lib.__main__`) prints a command's ValueError as one line
``error: ...`` (:func:`print_error`) with exit status 2.
"""
import argparse
import os
import re
import sys

from .folders import DEFAULT_ROOT, home_path, resolve_root, split_files
from .images import DataError, parse_image_size
from .tables import escaped


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


def file_or_folder(text):
    """An argparse ``type``: a path, a leading ``~`` (or ``~USER``) the home folder as a shell
    makes it, for every path option of every command alike: one quoted (``--out '~/runs'``) or
    given from Python has no shell to expand it, and would be a folder named ``~`` in the current
    one. A ``~USER`` of no known user is refused, rather than taken for such a folder, and a
    file named with a trailing ``/`` (a folder's), as a shell says "Not a directory"
    (:func:`hw3lib.folders.home_path`, the rule of ``HW3_DATA`` and ``root=`` too)."""
    try:
        path = home_path(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if text.endswith(("/", os.sep)) and path.exists() and not path.is_dir():  # a Path drops the /
        raise argparse.ArgumentTypeError(f"{text!r}: {path} is a file, not a folder, as its trailing / "
                                         f"says; give {text.rstrip('/' + os.sep)}")
    return path


def folder(text):
    """An argparse ``type``: a folder's :func:`file_or_folder` path, never empty (``Path("")`` is the current
    folder)."""
    if not text:
        raise argparse.ArgumentTypeError("must name a folder, got an empty string")
    return file_or_folder(text)


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


def announce_reading(root, files=None):
    """Say on stderr how many images are about to be read from ``root``: reading a large folder
    of photos takes minutes, before the first line on stdout. ``files``: its
    :func:`~hw3lib.folders.dataset_files`, where listed already (None: listed here). Nothing
    when the folders cannot be listed: loading names that."""
    try:
        root = resolve_root(root)
        counts = ([len(split[0]) for split in files] if files else
                  [len(split_files(root, split)[0]) for split in ("train", "test")])
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
