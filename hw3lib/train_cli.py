"""``python -m hw3lib train``: a training run from the command line, its table and JSON summary."""
import argparse
import contextlib
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .atomic import LockHeld, LockTimeout, claimed, remove_leftovers
from .checkpoint import CheckpointError, load_checkpoint
from .cli import (Parser, add_data_option, add_progress_option, announce_reading, folder, fraction, image_size,
                  int_at_least, print_error, show_progress)
from .config import TrainConfig
from .cores import more_than_cores
from .data import SPLIT_METHODS
from .download import course_copy_note, dataset_sha256
from .engine import engine_stamp
from .file_order import file_order_note
from .folders import dataset_files, resolve_root
from .history_file import diverged, diverged_advice, write_history
from .images import MODES, SUFFIXES, DataError
from .layers import DTYPES
from .learning import learning_warning, unvalidated_note
from .out_folders import RUN, create_out, refuse_out
from .parallel import one_blas_thread
from .phrasing import TRAIN_OPTIONS, phrased
from .train import HISTORY_KEYS, OneBatchWarning, TrainingError, check_resume, fit, one_batch_note

OWN_IMAGES = f"""\
Use your own images:
  --data DIR, where DIR holds train/ and test/ (or Data_train/ and Data_test/),
  each with one folder per class (2 or more, the same in both), e.g.
  DIR/train/cat/001.jpg.
  Files: {", ".join(SUFFIXES)}; hidden files (and
  Thumbs.db, desktop.ini, __MACOSX) are skipped, anything else is refused. Any
  size, grey or colour, 8- or 16-bit, palette. Images of different sizes need
  --image-size H[xW], which stretches each to that size (bilinear).
  --channels: L (grey) for grey images or when colour does not matter, RGB for
  colour photos, LA or RGBA to keep transparency. Flips (--no-hflip turns them
  off) suit the fruit images but hurt data whose mirror image means something
  else: digits, text.
  --val-fraction of each class of train/ (30% by default, drawn by --seed)
  validates, the rest trains; test/ tests. Example:
    python -m hw3lib train --data ~/digits --image-size 28 --no-hflip \\
        --out runs/digits

Exit status: 0 done; 2 an error (one line "error: ...": bad option, data or
--out); 3 the model did not learn (validation accuracy not clearly above
chance, or the training loss never below it; a "warning:" line says so, why,
and what to change, and the JSON line holds "learned": false); 130 interrupted
(Ctrl-C or a plain kill; the finished epochs are kept: go on with --resume).
"""


def as_option(name, value):
    """A setting (a name and value of ``TrainConfig.to_dict``) as this command takes it:
    ``--channels RGB``, ``--image-size 48x48``, ``--no-hflip``; ``name=value`` for one it has no
    option for."""
    if name == "hflip":
        return "--hflip" if value else "--no-hflip"
    if name == "image_size":
        return "no --image-size" if value is None else f"--image-size {value[0]}x{value[1]}"
    return f"{TRAIN_OPTIONS[name]} {value}" if name in TRAIN_OPTIONS else f"{name}={value!r}"


TABLE = "{:>5} {:>10} {:>9} {:>10} {:>9} {:>8}"


def main(argv=None):
    """``python -m hw3lib train``: train, write OUT/checkpoint.npz and OUT/history.json, print a
    per-epoch table and, as the last line, one JSON object of the best model's figures."""
    defaults = TrainConfig()
    parser = Parser(prog="python -m hw3lib train", epilog=OWN_IMAGES,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="Train LeNet5 on the fruit images, or on your own (see below):\n"
                                "--val-fraction (30%) of the training split validates, the rest\n"
                                "trains, the test split tests.")
    add_data_option(parser)
    parser.add_argument("--epochs", type=int_at_least(1), metavar="N", help=f"default {defaults.epochs}")
    parser.add_argument("--batch-size", type=int_at_least(1), metavar="B", help=f"default {defaults.batch_size}")
    parser.add_argument("--lr", type=float, help=f"Adam's learning rate, default {defaults.lr}")
    parser.add_argument("--seed", type=int_at_least(0), metavar="S",
                        help="seeds the split, the initial weights, the batch order and the flips; "
                             f"default {defaults.seed}")
    parser.add_argument("--split", choices=list(SPLIT_METHODS),
                        help="how validation is held out of the training split: 'blocked' "
                             "(whole runs of neighbouring files, honest for video frames) or "
                             f"'random' (the original report's); default {defaults.split}")
    parser.add_argument("--val-fraction", type=fraction, metavar="F",
                        help="the share of each class of the training split that validates; "
                             f"default {defaults.val_fraction}")
    parser.add_argument("--channels", choices=list(MODES),
                        help=f"image mode: 1 to 4 channels; default {defaults.mode}")
    parser.add_argument("--image-size", type=image_size, metavar="H[xW]",
                        help="resize every image to H x W pixels (H alone: square); default: the "
                             "images' own size, which all must share")
    parser.add_argument("--hflip", action=argparse.BooleanOptionalAction,
                        help="randomly mirror training images left-right (right for the fruit, "
                             f"wrong for digits or text); default {'on' if defaults.hflip else 'off'}")
    parser.add_argument("--dtype", choices=[dtype.name for dtype in DTYPES],
                        help="the weights' precision: float64 takes about twice the time, for "
                             f"numerical checks; default {defaults.dtype}")
    parser.add_argument("--out", type=folder, default=Path("runs/lenet5"),
                        help="output folder, default %(default)s; a fresh run refuses one that "
                             "holds a run's checkpoint.npz, and every run one that another train "
                             "command is writing to")
    parser.add_argument("--resume", action="store_true",
                        help="go on from OUT/checkpoint.npz with the run's own settings: an "
                             "option above (but --data) left out is the run's, one given must be "
                             "the run's (but --epochs, to go further)")
    parser.add_argument("--threads", type=int_at_least(1), metavar="N",
                        help="split each batch over up to N threads where that pays (large images, "
                             "wide layers; the course's 32x32 LeNet stays on one); default 1, on "
                             "--resume the run's own (other counts change its rounding); also "
                             "the threads reading the images, default one per core (up to 8)")
    add_progress_option(parser, reads_images=True)
    args = parser.parse_args(argv)
    try:
        with contextlib.ExitStack() as claim:
            try:
                return _train_command(args, claim)
            except BrokenPipeError as err:  # `| head -3`: --out (still held) keeps what was done
                note = _kept_note(args.out)
                if note:
                    err.add_note(note)
                raise
    except (DataError, ValueError) as err:  # the library names settings as TrainConfig(NAME=VALUE)
        err.args = (phrased(str(err)),)
        raise


def _check_out(out, files, data):
    """Refuse, before any work and creating nothing, an ``out`` that could not hold a run's
    ``files``, would leave them loose (the file system's root, the home folder) or would break
    the dataset at ``data`` (``--data``; :func:`~hw3lib.out_folders.refuse_out`), or that could
    not be created or written in (:func:`~hw3lib.out_folders.create_out`, which tries its room
    once the data tells it): ValueError naming ``out`` as given and the fix."""
    refuse_out(out, data, Path.home() / "runs" / "lenet5")
    for path in files:
        if path.is_dir():
            raise ValueError(f"{path} is a folder, where the run writes its {path.name}; move it "
                             "away or give another --out")
    create_out(out, create=False)


@contextlib.contextmanager
def _kept_when_writing_fails(out, checkpoint_path, history_path):
    """An OSError in the block (a full disk, a folder made read-only) as a ValueError naming
    the file: the checkpoint and history, written whole or not at all, keep the epochs before
    (none where no checkpoint was saved: the command is run again, not resumed).
    A LockTimeout (another process holding the checkpoint's lock) or a BrokenPipeError (the reader
    of the output gone, ``| head -1``) goes on as it is."""
    try:
        yield
    except (LockTimeout, BrokenPipeError):
        raise
    except OSError as err:
        kept, then = (f"{checkpoint_path} and {history_path} keep the epochs completed before",
                      "go on with --resume")
        if not _has_run(checkpoint_path):
            kept, then = "no epoch was saved", "run the same command again"
        raise ValueError(f"cannot write {err.filename or out}: {err.strerror}; {kept}. Free some "
                         f"space (or make the folder writable), then {then}") from None


def _kept_note(out):
    """What ``out`` keeps of this command's run, as the end of the error of a closed output
    (:mod:`hw3lib.__main__` adds it), and how to finish it; None where it keeps no checkpoint."""
    checkpoint_path, history_path = out / "checkpoint.npz", out / "history.json"
    try:
        ckpt = load_checkpoint(checkpoint_path)
    except (OSError, CheckpointError):  # none saved yet
        return None
    if ckpt.epoch >= ckpt.config.epochs and ckpt.test and ckpt.test.epoch == ckpt.best_epoch:
        return (f"the run had finished: {checkpoint_path} and {history_path} keep it; run the "
                "same command with --resume to print its results")
    return (f"{checkpoint_path} and {history_path} keep its {ckpt.epoch} finished epoch(s) of "
            f"{ckpt.config.epochs}: run the same command with --resume to finish the run")


def _has_run(checkpoint_path):
    """Whether there is a run's checkpoint at ``checkpoint_path`` (a link to nothing counts)."""
    return checkpoint_path.exists() or checkpoint_path.is_symlink()


def _holds_a_run(out, checkpoint_path):
    """The error of a fresh run into ``out``, which holds a run at ``checkpoint_path``: its
    checkpoint (and its count of test evaluations) would be lost. One that cannot be loaded
    (so not resumed either) is named as :func:`load_checkpoint` names it."""
    try:
        load_checkpoint(checkpoint_path)
    except CheckpointError as err:
        return ValueError(f"--out {out} already holds {checkpoint_path}, which a fresh run would "
                          f"write over and --resume cannot go on with ({err}). Move that file "
                          "away, or choose another --out")
    except OSError:  # gone meanwhile, or unreadable: refused as a run all the same
        pass
    return ValueError(f"--out {out} already holds a run ({checkpoint_path}): go on with it with "
                      "--resume, or choose another --out (or delete it)")


def _claim_out(claim, out):
    """Hold ``out`` for this command alone until ``claim`` (an ExitStack) closes, as the command
    ends (:func:`~hw3lib.atomic.claimed`, on ``out/.run.lock``), or refuse it at once naming the
    process whose run holds it: True once held. False where the lock cannot be made (a read-only
    folder), which :func:`~hw3lib.out_folders.create_out` refuses in its own words."""
    try:
        claim.enter_context(claimed(out / RUN))
    except LockHeld as err:
        raise ValueError(f"--out {out} is in use: {err.holder} is training a run into it (it holds "
                         f"{err.lock}); wait for it to end, or end it (Ctrl-C there keeps its "
                         "finished epochs), then go on with --resume; or choose another "
                         "--out") from None
    except OSError:
        return False
    return True


def _train_command(args, claim):
    """The train command of the parsed ``args``, holding ``--out`` in ``claim`` (an ExitStack,
    :func:`_claim_out`) to the end: from the start where it exists, else from its creation."""
    # the settings given as options; the others are the defaults, or on --resume the run's own
    given = {name: value for name, value in dict(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        mode=args.channels, image_size=args.image_size, split=args.split, hflip=args.hflip,
        val_fraction=args.val_fraction, dtype=args.dtype).items() if value is not None}
    config = TrainConfig(**given)
    checkpoint_path, history_path = args.out / "checkpoint.npz", args.out / "history.json"
    _check_out(args.out, (checkpoint_path, history_path), args.data)
    claimed_out = args.out.is_dir() and _claim_out(claim, args.out)  # before reading what it holds
    has_run = _has_run(checkpoint_path)
    resume = divergence = None  # a resumed run's recorded divergence, kept in its history.json
    if args.resume:
        if not has_run:
            raise ValueError(f"--resume: no checkpoint at {checkpoint_path}; run without --resume "
                             "to start afresh")
        resume = load_checkpoint(checkpoint_path)
        config = dataclasses.replace(resume.config, **{  # `--resume` alone finishes the run
            "epochs": max(resume.config.epochs, resume.epoch), **given})
        differences = resume.setting_differences(config)  # before loading data
        if differences:
            raise ValueError(
                f"--resume: {checkpoint_path} was trained with " + ", ".join(
                    f"{as_option(name, theirs)} (this command: {as_option(name, ours)})"
                    for name, theirs, ours in differences)
                + ": leave those options out to go on with the run's own, or train afresh into "
                  "another --out")
        if resume.epoch > config.epochs:  # equal: nothing to train, the run is finished (its test)
            raise ValueError(f"--resume: {checkpoint_path} has trained {resume.epoch} epoch(s) "
                             f"already, --epochs {config.epochs} asks for fewer. Give --epochs "
                             f"{resume.epoch} to finish it, above {resume.epoch} to go on")
        divergence = diverged(checkpoint_path, resume.epoch)
        if divergence and resume.epoch < config.epochs:
            raise ValueError(f"--resume: {checkpoint_path} diverged at --lr {config.lr:g} after "
                             f"{resume.epoch} epoch(s) ({history_path} says). "
                             f"{diverged_advice(config.lr)}; or give --epochs {resume.epoch} to "
                             "finish the run with the epochs it has (and test them)")
    elif has_run:
        raise _holds_a_run(args.out, checkpoint_path)
    try:  # listed once, for the line announcing the read and for the read itself
        files = dataset_files(resolve_root(args.data))
    except DataError:
        files = None  # loading lists them again, and names what is wrong
    if not args.no_progress:
        announce_reading(args.data, files)
    data = config.load_data(args.data, progress=show_progress(args), threads=args.threads, files=files)
    checks = time.monotonic()  # the checks after reading: their bars show within one PROGRESS_DELAY
    sha = dataset_sha256(args.data, progress=show_progress(args))
    model = config.build_model(len(data.classes), data.image_size)
    threads = args.threads or (resume and resume.threads) or 1
    order = config.split == "blocked" and file_order_note(
        data.X_train, data.y_train, data.X_test, data.classes, show_progress(args), quiet_since=checks)
    notes = [note for note in (course_copy_note(args.data, sha), unvalidated_note(data.classes, data.y_val), order,
                               more_than_cores("--threads", threads, "threads")) if note]
    if resume:
        check_resume(resume, model, data, config, sha, checkpoint_path)  # before printing
        current, trains_on = engine_stamp(), resume.epoch < config.epochs  # a finished run: no epoch
        if trains_on and resume.engine and resume.engine != current:  # files before the stamp have none
            notes.append(f"note: {checkpoint_path} was trained by other code ({resume.engine}); "
                         f"resuming goes on with this code ({current}), so the run mixes the two; "
                         "train afresh into another --out for a run of this code alone")
        if trains_on and resume.threads and resume.threads != threads:
            notes.append(f"note: {checkpoint_path} was trained with --threads {resume.threads}; "
                         f"going on with --threads {threads} splits its batches otherwise, so its "
                         "numbers differ in rounding from a run on one count throughout; leave "
                         "--threads out to go on with the run's own")
    # the checkpoint holds the latest and best weights and Adam's two moments: 4 copies
    create_out(args.out, 4 * sum(p.nbytes for p in model.get_params().values()) + 2**20, "the checkpoint")
    if not claimed_out:  # writable now; another run may have come to it since the checks above
        _claim_out(claim, args.out)
        if _has_run(checkpoint_path):
            raise _holds_a_run(args.out, checkpoint_path)
    height, width = data.image_size
    precision = "" if config.dtype == TrainConfig.dtype else f", {config.dtype}"
    print(f"LeNet5 ({config.mode}, {config.channels} channel(s), {height}x{width}{precision}, "
          f"{len(data.classes)} classes) on {len(data.y_train)} training, {len(data.y_val)} validation, "
          f"{len(data.y_test)} test images")
    print(f"Adam lr={config.lr:g}, batch {config.batch_size}, seed "
          f"{config.seed}, {config.split} validation split, flips {'on' if config.hflip else 'off'}"
          + (f", up to {threads} threads" if threads > 1 else "")
          + (f"; resuming after epoch {resume.epoch}" if resume else ""))
    for note in notes:
        print(note)
    one_batch = one_batch_note(config.batch_size, len(data.y_train), "--batch-size")
    if one_batch:
        print(f"note: {one_batch}")
    print(TABLE.format("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"))

    shown = resume.epoch if resume else 0  # epochs whose rows are on the screen
    tested = (resume.test_evaluations, resume.test) if resume else ()

    def show_rows(history):
        """The rows of ``history``'s epochs not shown yet (an interrupt held back while an
        epoch was saved ends the run before its ``on_epoch``)."""
        nonlocal shown
        for row in list(zip(*(history[k] for k in HISTORY_KEYS)))[shown:]:
            tqdm.write("{:>5} {:>10.4f} {:>9.4f} {:>10.4f} {:>9.4f} {:>8.2f}".format(*row))
        shown = len(history["epoch"])

    def on_epoch(history):
        write_history(history_path, history, *tested)
        show_rows(history)

    remove_leftovers(history_path)  # a killed run's half-written files (--out is held: no other writes)
    with _kept_when_writing_fails(args.out, checkpoint_path, history_path):
        try:
            # one BLAS thread: the notebooks' and sweeps' rounding, whatever the shell says
            with one_blas_thread(), warnings.catch_warnings():
                warnings.simplefilter("ignore", OneBatchWarning)  # noted above, in train's words
                result = fit(model, data, config, on_epoch=on_epoch, checkpoint_path=checkpoint_path,
                             resume=resume, data_sha256=sha, progress=show_progress(args),
                             threads=threads)
        except TrainingError as err:
            write_history(history_path, err.result.history, err.result.test_evaluations,
                          err.result.test_record, phrased(str(err)))
            if _has_run(checkpoint_path):  # which --resume goes on with at the run's own --lr
                err.args = (f"{err}, in a fresh run into another --out (--resume goes on with "
                            f"{checkpoint_path}'s own --lr {config.lr:g})",)
            raise
    show_rows(result.history)
    done = len(result.history["epoch"])
    if result.stopped:
        kept = "nothing was saved: run the same command again (without --resume)"
        if done:
            write_history(history_path, result.history, result.test_evaluations, result.test_record)
            kept = f"{checkpoint_path} and {history_path} keep them: go on with --resume"
        print_error(f"interrupted after {done} epoch(s); {kept}", lines=False)
        return 130
    best = result.best_row
    try:
        with _kept_when_writing_fails(args.out, checkpoint_path, history_path):
            test = result.test(data.X_test, data.y_test)  # once, at the end, on the weights kept on validation
            write_history(history_path, result.history, result.test_evaluations, test, divergence)
    except KeyboardInterrupt:
        print_error(f"interrupted at the test evaluation, after {done} epoch(s); {checkpoint_path} keeps "
                    "them: run the same command with --resume to finish the run", lines=False)
        return 130
    warning = learning_warning(result.history, result.best_epoch, data.y_train, data.y_val, config)
    # a finished run resumed: no epoch trained, its recorded test shown, its checkpoint not written
    wrote = (f"{history_path}; {checkpoint_path} was left as it was"
             if resume and done == resume.epoch and test is resume.test
             else f"{checkpoint_path} and {history_path}")
    print(f"best validation accuracy at epoch {result.best_epoch}; test evaluated "
          f"{result.test_evaluations} time(s) in this run's life; wrote {wrote}")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(dict(train_acc=round(best["train_acc"], 6), val_acc=round(best["val_acc"], 6),
                          test_acc=round(test.accuracy, 6), train_loss=round(best["train_loss"], 6),
                          val_loss=round(best["val_loss"], 6), test_loss=round(test.loss, 6),
                          split=config.split, test_evaluations=result.test_evaluations,
                          epochs=done, best_epoch=result.best_epoch,
                          seconds_per_epoch=round(float(np.mean(result.history["seconds"])), 3),
                          learned=warning is None)))
    return 3 if warning else 0
