"""``python -m hw3lib predict``: a trained run's classes for image files, one line per image."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, test_data_sha256
from .checks import dead_link
from .cli import Parser, add_progress_option, file_or_folder, int_at_least, print_error, show_progress
from .data import load_split
from .evaluation import eval_batch
from .folders import files_under, natural_key, test_splits_holding
from .history_file import diverged, diverged_advice
from .images import SUFFIXES, DataError, warnings_gathered
from .out_folders import training_into
from .tables import Table, display_width, escaped
from .trained import FitResult

# the image column fits paths up to this many terminal columns, or twice the median path's if more
PATH_COLUMNS = 40


def images_under(folder):
    """Every image file under ``folder`` (a name ending as in :data:`hw3lib.images.SUFFIXES`)
    as :func:`hw3lib.folders.files_under` finds them (links to folders followed; hidden and system
    entries left out), in natural order of their paths."""
    return in_natural_order([path for path in files_under(folder) if path.suffix.lower() in SUFFIXES],
                            folder)


def in_natural_order(paths, folder):
    """``paths`` under ``folder`` sorted by their paths relative to it, folder by folder in
    natural order (:func:`~hw3lib.folders.natural_key`), not in the order the file system lists them."""
    return sorted(paths, key=lambda p: [natural_key(part) for part in p.relative_to(folder).parts])


def image_files(paths):
    """The image files that ``paths`` name, in order: a file (or a broken link, which reading
    names) as given, a folder as :func:`images_under` it; ValueError for a path that does not
    exist or a folder that holds no image (naming one of its other files, if any)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = images_under(path)
            if not found:
                others = in_natural_order(files_under(path), path)  # a phone's HEIC photos, say
                held = (f": its {len(others)} file(s) have other names, e.g. "
                        f"{others[0].relative_to(path)} (convert images of other formats to PNG or "
                        "JPEG)" if others else "")
                raise ValueError(f"{path} holds no image ({', '.join(SUFFIXES)}){held}; give image "
                                 "files or a folder that holds some")
            files += found
        elif path.exists() or path.is_symlink():  # a broken link, a pipe: reading names them
            files.append(path)
        else:
            raise ValueError(f"no file or folder {path}: check the path")
    return files


def widest_fitting(names):
    """The widest of ``names`` (a path each, as the table shows it) that the image column fits:
    up to :data:`PATH_COLUMNS` wide, or twice the median's width if more. A wider one (a very
    deep path) pushes the rest of its own row right, not of every row."""
    widths = sorted(map(display_width, names))
    fits = max(PATH_COLUMNS, 2 * widths[len(widths) // 2])
    return max((name for name in names if display_width(name) <= fits), key=display_width)


def classified(run, files):
    """``(path, probabilities (K,) or the DataError that reading it raised)`` for each of
    ``files``, in order, read as many at a time as a batch of the model's evaluation takes
    (:func:`~hw3lib.evaluation.eval_batch`), so that memory grows neither with the files nor
    with the run's image size: a file that cannot be read is named and passed over, the others
    are classified."""
    step = eval_batch(run.model)
    for start in range(0, len(files), step):
        batch = files[start:start + step]
        try:
            yield from zip(batch, run.predict_files(batch))
        except DataError:  # which file: each of the batch alone, their warnings gathered as one
            with warnings_gathered():
                results = [_classify_one(run, path) for path in batch]
            yield from zip(batch, results)


def _classify_one(run, path):
    """``path``'s probabilities ``(K,)``, or the DataError that reading it raised."""
    try:
        return run.predict_files([path])[0]
    except DataError as err:
        return err


def count_test_split(run, files, progress=False):
    """Where ``files`` touch the run's own test split (a dataset's test split folder holds one of
    them, and its images and labels, read in the run's mode and size, are the ones its checkpoint
    names, :attr:`~hw3lib.trained.FitResult.test_sha256`), evaluate it as
    :meth:`~hw3lib.trained.FitResult.test` does, before any image is classified: the kept weights'
    first look at the test split is counted into the checkpoint, a later one not. A note on
    stderr names a new count, or why the checkpoint could not take it (read-only, or trained on
    since it was loaded: the images are classified all the same); a run that knows no test split
    (an old checkpoint), or whose kept weights it records tested on it, reads nothing. With
    ``progress``, a bar counts the split's images as :func:`~hw3lib.data.load_split` reads them,
    and another as they are evaluated, once that takes a while."""
    record = run.test_record  # the kept weights tested on this split already: nothing to count
    if run.test_sha256 is None or (record is not None and record.epoch == run.best_epoch
                                   and record.data_sha256 == run.test_sha256):
        return
    for root, folder in test_splits_holding(files).items():
        try:
            X, y, _ = load_split(root, "test", run.config.mode, run.config.image_size, progress=progress)
        except DataError:  # no split that the run was tested on: it would have read
            continue
        if test_data_sha256(X, y) != run.test_sha256:  # another dataset's, or resized otherwise
            continue
        before = run.test_evaluations
        try:
            run.test(X, y, progress=progress)
        except (OSError, CheckpointError) as err:  # read-only, or its train wrote an epoch since the load
            print(f"note: {folder} is this run's test split, but this look at it could not be counted in "
                  f"{run.checkpoint_path}: {err}. Its images are classified uncounted.", file=sys.stderr)
            return
        if run.test_evaluations > before:
            print(f"note: {folder} is this run's test split: predicting its images is a test evaluation "
                  f"of the weights of epoch {run.best_epoch}, counted in {run.checkpoint_path}; test "
                  f"evaluated {run.test_evaluations} time(s) in this run's life", file=sys.stderr)
        return


def run_path(path):
    """The checkpoint of a run: ``path`` itself, or ``path/checkpoint.npz`` for the folder that
    ``train --out`` wrote (whatever is there, for loading to name); ValueError naming what is
    missing."""
    checkpoint = path / "checkpoint.npz" if path.is_dir() else path
    if checkpoint != path and (checkpoint.exists() or checkpoint.is_symlink()):
        return checkpoint  # a folder or a broken link there: load_checkpoint names it
    if not checkpoint.is_file():
        if (path / "checkpoints").is_dir():  # a sweep's --out: one checkpoint per run under it
            raise ValueError(f"no run at {path}: it is a sweep's --out, which keeps one checkpoint "
                             f"per run under {path / 'checkpoints'}; give one of those .npz files "
                             "(the sweep's output names the best setting's)")
        dead = dead_link(path)
        what = ("it holds no checkpoint.npz (train writes it as each epoch ends)" if path.is_dir()
                else f"it is {dead}" if dead else "no such file or folder")
        raise ValueError(f"no run at {path}: {what}; give the folder `train --out` wrote, or its "
                         "checkpoint.npz")
    return checkpoint


def main(argv=None):
    """Print each image's most likely classes and their probabilities, one row per image, or
    with ``--json`` one JSON object per image; a note on stderr says when the run stopped before
    its last epoch (and how to go on: ``train --resume``, or where it diverged a smaller
    ``--lr`` afresh). A file that cannot be read is named on stderr and the rest classified; the
    exit status is then 1."""
    parser = Parser(prog="python -m hw3lib predict",
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="Classify image files with a run that `train` wrote: each image\n"
                                "is read in the run's channel mode and resized to its input size.\n"
                                "A file that cannot be read is named on stderr and the others are\n"
                                "classified; the exit status is then 1. Images of the run's own\n"
                                "test split are a test evaluation, counted into the run's\n"
                                "checkpoint the first time its kept weights see them (a note says so).",
                    epilog="Example:\n  python -m hw3lib predict runs/lenet5 my_pear.png photos/")
    parser.add_argument("run", type=file_or_folder, metavar="RUN",
                        help="the folder `train --out` wrote, or its checkpoint.npz")
    parser.add_argument("images", nargs="+", type=file_or_folder, metavar="IMAGE",
                        help="image files, or folders: every image under them")
    parser.add_argument("--top", type=int_at_least(1), default=1, metavar="K",
                        help="show the K most likely classes of each image; default 1")
    parser.add_argument("--json", action="store_true", help="one JSON object per image instead of a table")
    add_progress_option(parser)
    args = parser.parse_args(argv)
    checkpoint = run_path(args.run)
    if checkpoint.is_file():  # a linked checkpoint: its run's own file, folder and lock, which a count writes
        checkpoint = checkpoint.resolve()
    run = FitResult.load(checkpoint)
    trained, training = len(run.history["epoch"]), training_into(checkpoint.parent)
    if trained < run.config.epochs and training:
        print(f"note: this run is being trained (by process {training}): {trained} of its "
              f"{run.config.epochs} epochs so far; it predicts with the weights of epoch "
              f"{run.best_epoch}, the best so far", file=sys.stderr)
    elif trained < run.config.epochs and diverged(checkpoint, trained):
        lr = run.config.lr
        print(f"note: this run diverged after {trained} of its {run.config.epochs} epochs (its loss "
              f"or weights stopped being finite at --lr {lr:g}, {checkpoint.with_name('history.json')} "
              f"says); it predicts with the weights of epoch {run.best_epoch}. {diverged_advice(lr)}",
              file=sys.stderr)
    elif trained < run.config.epochs:  # interrupted, or pruned by a sweep
        print(f"note: this run stopped after {trained} of its {run.config.epochs} epochs; it predicts "
              f"with the weights of epoch {run.best_epoch} (`train --resume` trains it on)", file=sys.stderr)
    files, top = image_files(args.images), min(args.top, len(run.classes))
    count_test_split(run, files, progress=show_progress(args))
    names = ["class", "probability"] if top == 1 else [
        name for i in range(1, top + 1) for name in (f"class {i}", f"p {i}")]
    # a row as wide as any to come (but for very long paths), so that each row prints as its
    # image is classified
    widest = (widest_fitting([escaped(str(path)) for path in files]),
              *(max(run.classes, key=display_width), 1.0) * top)
    header, line = Table(["image", *names], [widest]).line_format()
    unread, printed_header = 0, False
    for path, p in classified(run, files):
        if isinstance(p, DataError):  # one line, the name's control characters escaped as in the table
            print_error(str(p), lines=False)
            unread += 1
            continue
        best = np.argsort(-p, kind="stable")[:top]
        classes, probabilities = [run.classes[k] for k in best], [float(p[k]) for k in best]
        if args.json:
            print(json.dumps({"file": str(path), "classes": classes,
                              "probabilities": [round(q, 6) for q in probabilities]}), flush=True)
            continue
        if not printed_header:
            print(header)
            printed_header = True
        print(line((str(path), *(value for pair in zip(classes, probabilities) for value in pair))),
              flush=True)
    if unread:
        print(f"error: {unread} of {len(files)} image(s) could not be read (each named above); "
              f"{len(files) - unread} classified", file=sys.stderr)
        return 1
    return 0
