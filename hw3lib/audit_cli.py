"""``python -m hw3lib audit``: the leakage audit of a data folder (:mod:`hw3lib.leakage`), as
notebook 01 runs it on the fruit images: is each split's validation as new to a model as test?"""
import argparse
import csv
import io
import os
import textwrap

import numpy as np

from .atomic import atomic_write
from .cli import (Parser, add_data_option, add_progress_option, announce_reading, file_or_folder, fraction,
                  image_size, parse_seeds, show_progress)
from .config import TrainConfig
from .data import read_images, validation_mask
from .folders import dataset_files, resolve_root, split_dir
from .images import MODES, DataError
from .leakage import leakage_audit
from .learning import unvalidated_note
from .out_folders import refuse_file_in_data, refuse_file_in_the_way, try_writing
from .phrasing import phrased
from .tables import Table

DEFAULTS = TrainConfig()  # train's settings: the audit's defaults are theirs, as its splits are
MAX_SEEDS = 20  # the audit's time grows with each seed; a few show the spread
SHOWN = 10  # the test images with a copy (or a near one) in training named, at most
WIDTH = 79  # the sentences of the audit wrapped to fit an 80-column terminal

DESCRIPTION = """\
Audit a data folder for leakage: for each way of holding out validation
(--split blocked and random) and each seed, how close the validation images and
the test images sit to the images that train. An exact duplicate has a training
image's pixels; a near duplicate is closer to a training image than the median
distance between consecutive files of a class (a video's next frame).
Validation chooses the epoch and the settings honestly only when its images are
as new to the model as the test images; the last lines say whether they are,
name the test images that have an exact copy in the training folder, and list
the test images that are near duplicates of a training image, each beside its
nearest training image, the nearest first (--list FILE writes them all). Takes
the options of `train` that decide what the images are (--data, --channels,
--image-size, --val-fraction)."""


def main(argv=None):
    """``python -m hw3lib audit``: print the audit's summary table and what it means."""
    parser = Parser(prog="python -m hw3lib audit", description=DESCRIPTION,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_option(parser)
    parser.add_argument("--channels", choices=list(MODES), default=DEFAULTS.mode,
                        help="image mode the distances are measured in; default %(default)s")
    parser.add_argument("--image-size", type=image_size, metavar="H[xW]",
                        help="resize every image to H x W pixels (H alone: square) first; default: "
                             "their own size")
    parser.add_argument("--val-fraction", type=fraction, default=DEFAULTS.val_fraction, metavar="F",
                        help="the share of each class that validates; default %(default)s")
    parser.add_argument("--seeds", default="0-2",
                        help="the seeds of the splits audited, FIRST-LAST or a list; default %(default)s")
    parser.add_argument("--list", type=_list_file, metavar="FILE",
                        help="write every test image that is a near duplicate of a training image, "
                             "its nearest training image and their distance, to FILE (CSV, the "
                             "nearest first)")
    add_progress_option(parser, reads_images=True)
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds, MAX_SEEDS, "an audit")
        if args.list:
            _check_list(args.list, args.data)
        return _audit(args, seeds)
    except (DataError, ValueError) as err:  # TrainConfig(NAME=VALUE) as --option VALUE
        err.args = (phrased(str(err)),)
        raise


def _audit(args, seeds):
    root, progress = resolve_root(args.data), show_progress(args)
    listing = dataset_files(root)  # refused as train refuses it
    (files, labels, classes), (test_files, _, _) = listing
    # a split that cannot be made (a too small --val-fraction) is refused before minutes of reading
    is_val = validation_mask(labels, args.val_fraction)
    if not args.no_progress:
        announce_reading(root, listing)
    # the files listed are the ones read: the names printed are those of the images measured;
    # read as train reads them, on one bar, the training images unsplit
    images = read_images(root, args.channels, args.image_size, progress=progress, files=listing)
    X, y, X_test = images.X, images.y, images.X_test
    audit = leakage_audit(X, y, X_test, seeds=seeds, val_fraction=args.val_fraction,
                          classes=classes, progress=progress)
    print(f"{root}: {len(X)} images in the training folder, {len(X_test)} in the test folder, "
          f"{'x'.join(map(str, X.shape[1:]))} (C x H x W); seeds {args.seeds}")
    # each class holds out as many images (none, for a class of one) under every method and seed
    note = unvalidated_note(classes, np.asarray(labels)[is_val])
    if note:
        print(note)
    print(_wrapped(f"near duplicate: closer to a training image than {audit.near:.3g}, the median "
                   "distance between consecutive files of a class"), end="\n\n")
    print(audit.summary_table(), end="\n\n")
    copy_findings = audit.copy_findings()
    for line in audit.findings()[:-len(copy_findings)]:
        print(_wrapped(line))
    for line, found in copy_findings:  # each count of test images followed by their names
        print(_wrapped(line))
        for i in found[:SHOWN]:
            print(f"  {test_files[i]}")
        if len(found) > SHOWN:
            print(f"  and {len(found) - SHOWN} more")
    near = [(test_files[i], files[j], d) for i, j, d in zip(*audit.test_near_copies())]
    if args.list:
        _write_list(args.list, near)
    print(_wrapped(_near_copies_sentence(audit, len(near), args.list)))
    if near:  # paths in their split folders, which the columns name: a row fits 80 columns
        folders = [split_dir(root, split) for split in ("test", "train")]
        print(Table(["distance", f"test image ({folders[0].name}/)", f"nearest training image ({folders[1].name}/)"],
                    [(d, test.relative_to(folders[0]), train.relative_to(folders[1]))
                     for test, train, d in near[:SHOWN]]))
    if len(near) > SHOWN:
        print(f"and {len(near) - SHOWN} more" + ("" if args.list else " (--list FILE writes them all)"))
    return 0


def _near_copies_sentence(audit, count, listed):
    """The sentence that counts the test images within ``audit.near`` of a training image and
    says how they are listed (in the CSV file ``listed``, or None)."""
    if not count:
        return "no test image is a near duplicate of an image in the training folder"
    unfit = (", against a threshold that the file order makes too large (above): most may be no copies"
             if audit.near_too_large() else
             ", by a threshold that the files' lack of runs makes a typical distance (above): most "
             "may be no copies" if audit.no_runs() else "")
    written = f"; {listed} lists all {count}" if listed else ""
    return (f"{count} test image(s) are near duplicates of an image in the training folder{unfit}; "
            f"each beside its nearest training image, the nearest first{written}:")


def _list_file(text):
    """``--list``'s argparse ``type``: :func:`~hw3lib.cli.file_or_folder`, but a name ending in
    ``/`` (a folder's, which a Path drops) is refused: it wrote a file of the folder's name."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text!r} names a folder (its trailing /): give the name of a "
                                         f"file to write, e.g. {text}near.csv")
    return file_or_folder(text)


def _check_list(path, data):
    """Refuse, before any image is read, a ``--list`` ``path`` that cannot be written: in a
    folder that does not exist, is a file or cannot be written in, a folder itself, or inside
    the dataset (``--data`` ``data``), which it would break."""
    refuse_file_in_data(path, data, "--list")
    if path.is_dir():
        raise ValueError(f"--list {path} is a folder: give the name of a file to write, e.g. {path / 'near.csv'}")
    refuse_file_in_the_way(path.parent, "--list", path)  # not "the folder ... does not exist"
    if not path.parent.is_dir():
        raise ValueError(f"--list {path}: the folder {path.parent} does not exist; create it or give "
                         "another file")
    try:
        try_writing(path.parent)
    except OSError as err:
        raise ValueError(f"--list {path}: cannot write in {path.parent} ({err.strerror}); give a "
                         "file in a folder you can write in") from None


def _write_list(path, near):
    """Write ``near``, ``(test file, its nearest training file, distance)`` tuples, to the CSV
    file ``path`` (a header row, one row each), whole or not at all."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["test_image", "nearest_training_image", "distance"])
    writer.writerows((test, train, f"{d:.6g}") for test, train, d in near)
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def _wrapped(sentence):
    """``sentence`` in lines of at most :data:`WIDTH` columns, each after the first indented
    (a path or number never broken)."""
    return textwrap.fill(sentence, WIDTH, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)
