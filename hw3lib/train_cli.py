"""``python -m hw3lib train``: a training run from the command line, its table and JSON summary."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import atomic_write, load_checkpoint
from .config import TrainConfig
from .data import MODES, SPLIT_METHODS
from .download import dataset_sha256
from .train import HISTORY_KEYS, TrainingError, fit


def _write_json(path, obj):
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=1, allow_nan=False) + "\n").encode()))


class _Parser(argparse.ArgumentParser):
    """Argument errors become one-line ValueErrors (the dispatcher prints them, exit 2)."""

    def error(self, message):
        raise ValueError(f"{message} (python -m hw3lib train --help lists the options)")


TABLE = "{:>5} {:>10} {:>9} {:>10} {:>9} {:>8}"


def main(argv=None):
    """``python -m hw3lib train``: train, write OUT/checkpoint.npz and OUT/history.json, print a
    per-epoch table and, as the last line, one JSON object of the best model's figures."""
    defaults = TrainConfig()
    parser = _Parser(prog="python -m hw3lib train",
                     description="Train LeNet5 on the fruit images: Data_train split 70/30 into "
                                 "training and validation, tested on Data_test.")
    parser.add_argument("--data", type=Path, help="folder holding Data_train/ and Data_test/ "
                                                  "(default: $HW3_DATA, then data/)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="default %(default)s")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="default %(default)s")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help="Adam's learning rate, default %(default)s")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seeds the split, the initial weights, the batch order and the flips; "
                             "default %(default)s")
    parser.add_argument("--split", choices=list(SPLIT_METHODS), default=defaults.split,
                        help="how validation is held out of Data_train: 'blocked' (whole runs of "
                             "neighbouring files, honest for video frames) or 'random' (the "
                             "original report's); default %(default)s")
    parser.add_argument("--channels", choices=list(MODES), default=defaults.mode,
                        help="image mode: 1 to 4 channels; default %(default)s")
    parser.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=defaults.hflip,
                        help="randomly mirror training images left-right; default %(default)s")
    parser.add_argument("--out", type=Path, default=Path("runs/lenet5"),
                        help="output folder, default %(default)s")
    parser.add_argument("--resume", action="store_true", help="go on from OUT/checkpoint.npz")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        return _train_command(args)
    except KeyboardInterrupt:  # outside fit (loading, testing): nothing to keep
        print("error: interrupted", file=sys.stderr)
        return 130


def _train_command(args):
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, mode=args.channels, hflip=args.hflip, split=args.split)
    checkpoint_path, history_path = args.out / "checkpoint.npz", args.out / "history.json"
    resume = None
    if args.resume:
        if not checkpoint_path.is_file():
            raise ValueError(f"--resume: no checkpoint at {checkpoint_path}; run without --resume "
                             "to start afresh")
        resume = load_checkpoint(checkpoint_path)
        resume.check_settings(config, str(checkpoint_path))  # before loading data or printing
    data = config.load_data(args.data)
    sha = dataset_sha256(args.data)
    model = config.build_model(len(data.classes))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"LeNet5 ({config.mode}, {config.channels} channel(s)) on {len(data.y_train)} training, "
          f"{len(data.y_val)} validation, {len(data.y_test)} test images; Adam lr={config.lr:g}, "
          f"batch {config.batch_size}, seed {config.seed}, {config.split} validation split, "
          f"flips {'on' if config.hflip else 'off'}"
          + (f"; resuming after epoch {resume.epoch}" if resume else ""))
    print(TABLE.format("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"))

    def on_epoch(history):
        _write_json(history_path, history)
        row = [history[k][-1] for k in HISTORY_KEYS]
        tqdm.write("{:>5} {:>10.4f} {:>9.4f} {:>10.4f} {:>9.4f} {:>8.2f}".format(*row))

    try:
        result = fit(model, data, config, on_epoch=on_epoch, checkpoint_path=checkpoint_path,
                     resume=resume, data_sha256=sha, progress=not args.no_progress)
    except TrainingError as err:
        _write_json(history_path, err.result.history)
        raise
    done = len(result.history["epoch"])
    if result.stopped:
        _write_json(history_path, result.history)
        print(f"error: interrupted after {done} epoch(s); {checkpoint_path} and {history_path} keep "
              "them: go on with --resume", file=sys.stderr)
        return 130
    best = {k: v[result.best_epoch - 1] for k, v in result.history.items()}
    test = result.test(data.X_test, data.y_test)  # once, at the end, on the weights kept on validation
    _write_json(history_path, {**result.history, "test": dict(
        epoch=test.epoch, loss=test.loss, accuracy=test.accuracy, evaluations=result.test_evaluations)})
    print(f"best validation accuracy at epoch {result.best_epoch}; test evaluated "
          f"{result.test_evaluations} time(s) in this run's life; wrote {checkpoint_path} and "
          f"{history_path}")
    print(json.dumps(dict(train_acc=round(best["train_acc"], 6), val_acc=round(best["val_acc"], 6),
                          test_acc=round(test.accuracy, 6), train_loss=round(best["train_loss"], 6),
                          val_loss=round(best["val_loss"], 6), test_loss=round(test.loss, 6),
                          split=config.split, test_evaluations=result.test_evaluations,
                          epochs=done, best_epoch=result.best_epoch,
                          seconds_per_epoch=round(float(np.mean(result.history["seconds"])), 3))))
    return 0
