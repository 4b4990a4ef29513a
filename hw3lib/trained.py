"""A trained run, :class:`FitResult`: what :func:`~hw3lib.train.fit` returns and
:meth:`FitResult.load` reads back from its checkpoint; it predicts, evaluates and tests raw
images.

A run's test is counted into its checkpoint under the checkpoint's lock (:func:`checkpoint_lock`),
as fit writes its epochs; :func:`same_run` tells whether the checkpoint still holds this run.
"""
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import interrupts_deferred, locked
from .checks import integer
from .checkpoint import CheckpointError, TestRecord, load_checkpoint, save_checkpoint, test_data_sha256
from .config import TrainConfig
from .evaluation import (CHANNELS_LAST, CountedForward, checked_images, checked_labels, eval_batch,
                         evaluate, image_batches)
from .images import TransparentPixels, read_image, warnings_gathered
from .losses import CrossEntropyLoss
from .metrics import accuracy
from .model import LeNet5, batch_axis_fix, channels_last


def same_run(history, other):
    """Whether two histories (columns) are of the same run: equal in every column but the
    seconds, which differ when another process trained the same settings."""
    return ({key: values for key, values in history.items() if key != "seconds"}
            == {key: values for key, values in other.items() if key != "seconds"})


@dataclass
class FitResult:
    """What :func:`~hw3lib.train.fit` returns.

    ``model`` holds the best validation weights (those of ``best_epoch``; 0 when no epoch
    completed: the initial weights; the latest with ``fit(..., restore_best=False)``); ``history`` maps each of ``epoch, train_loss, train_acc,
    val_loss, val_acc, seconds`` to one value per completed epoch (JSON-serialisable);
    ``stopped`` is ``None`` for a run that finished, ``"interrupted"`` (KeyboardInterrupt) or
    ``"stopped"`` (the ``stop`` flag); ``mean``/``std`` normalise inputs for :meth:`evaluate`;
    ``classes`` names the model's outputs and ``config`` is the run's :class:`TrainConfig`.
    :meth:`load` reads a run back from its checkpoint; :meth:`predict`, :meth:`predict_files`
    and :meth:`evaluate` take raw images and normalise them as in training (the bare ``model``
    expects normalised ones).

    The test split is for the end: :meth:`test` evaluates it once on the kept weights and
    records it (``test_record``), counting each real evaluation in ``test_evaluations``, also
    in the checkpoint at ``checkpoint_path``; a later call returns the record. ``model_epoch``
    names the epoch whose weights ``model`` holds when they are not the kept ones (the latest,
    with ``restore_best=False``); such a run's test is refused, as its record would name the
    kept epoch. ``test_sha256`` names the test split (:func:`~hw3lib.checkpoint.test_data_sha256`)
    that :meth:`evaluate` hands to :meth:`test`: fit's ``data.X_test``, or a loaded run's (its
    checkpoint's ``test_sha256``, else its test record's; None: unknown, evaluated uncounted).
    """

    model: LeNet5
    history: dict
    best_epoch: int
    stopped: str | None
    mean: np.ndarray
    std: np.ndarray
    checkpoint_path: Path | None = None
    test_evaluations: int = 0
    test_record: TestRecord | None = None
    classes: list | None = None
    config: TrainConfig | None = None
    model_epoch: int | None = None  # the epoch whose weights ``model`` holds; None: best_epoch's
    test_sha256: str | None = None

    @property
    def best_row(self):
        """The history's row of the kept epoch, ``{"epoch": ..., "val_acc": ..., ...}`` (a
        value per history column), or None when no epoch completed."""
        if not self.best_epoch:
            return None
        return {key: values[self.best_epoch - 1] for key, values in self.history.items()}

    @classmethod
    def from_checkpoint(cls, ckpt, path):
        """The run of :class:`Checkpoint` ``ckpt``, read from ``path``, with its kept weights."""
        return cls(ckpt.build_model(), ckpt.history, ckpt.best_epoch, None, ckpt.mean, ckpt.std,
                   Path(path), ckpt.test_evaluations, ckpt.test, list(ckpt.classes), ckpt.config,
                   test_sha256=ckpt.test_sha256 or (ckpt.test.data_sha256 if ckpt.test else None))

    @classmethod
    def load(cls, path):
        """The run saved at ``path`` by :func:`~hw3lib.train.fit` or ``python -m hw3lib train``
        (its ``checkpoint.npz``, or the folder holding it: ``train``'s ``--out``, as ``predict``
        takes it), holding the weights it kept (FileNotFoundError for a missing file,
        :class:`CheckpointError` for one that is no checkpoint)."""
        path = Path(path)
        if path.is_dir() and (path / "checkpoint.npz").is_file():  # train --out's folder
            path = path / "checkpoint.npz"
        return cls.from_checkpoint(load_checkpoint(path), path)

    def predict(self, X, batch_size=None, progress=False):
        """Class probabilities ``(N, K)`` of the model for raw images ``X (N, C, H, W)`` in
        [0, 1], normalised batch by batch (``batch_size`` images, default
        :func:`~hw3lib.evaluation.eval_batch`) with the training split's ``mean``/``std``; with
        ``progress``, counted on a bar once that takes a while
        (:class:`~hw3lib.evaluation.CountedForward`)."""
        X = self.checked_images(X)
        batch_size = eval_batch(self.model) if batch_size is None else integer("batch_size", batch_size)
        batches = image_batches(X, batch_size, (self.mean, self.std))
        with CountedForward(self.model, len(X), "evaluating", progress) as model:
            return np.concatenate([model.forward(X_batch) for _, X_batch in batches])

    def predict_files(self, paths):
        """Class probabilities ``(N, K)`` for image files ``paths`` (or one path: ``(1, K)``)
        of any format, size and bit depth :func:`~hw3lib.images.read_image` reads, each read in
        the run's channel mode and resized to the model's input size;
        ``[self.classes[k] for k in probs.argmax(axis=1)]`` names them. DataError names a file
        that cannot be read."""
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not paths:
            raise ValueError("predict_files needs at least one image file")
        wrong = [p for p in paths if not isinstance(p, (str, os.PathLike))]
        if wrong:
            raise ValueError(f"predict_files takes paths of image files (str or pathlib.Path), got "
                             f"a {type(wrong[0]).__name__}: arrays of raw images go to predict")
        mode, size = self.config.mode, self.model.input_shape[1:]
        try:
            with warnings_gathered():
                X = np.stack([read_image(Path(p), mode, size) for p in paths]).transpose(0, 3, 1, 2)
        except TransparentPixels as err:
            raise TransparentPixels(f"{str(err).partition(', which')[0]}, which this run, trained on "
                                    f"mode {mode} images, cannot take. Fix: flatten the image onto "
                                    "a background (e.g. white, as the fruit images have) first") from None
        return self.predict(X)

    def test(self, X_test, y_test, progress=False):
        """The :class:`TestRecord` of the kept weights on the test split ``X_test (N, C, H, W)``
        (raw, in [0, 1]), ``y_test (N,)``: evaluated once (with ``progress``, on a bar once that
        takes a while, as :meth:`predict`), then recorded.

        Only a new evaluation (none recorded yet for these weights and test data, here or in
        the checkpoint) adds 1 to ``test_evaluations`` and, when the run has a checkpoint, is
        written into it first: a checkpoint that cannot be written (OSError) leaves the run as
        it was, no figures given, and one trained on since this run was loaded or trained, or
        holding another run now, is a CheckpointError. The checkpoint is read, counted in and
        written under its lock (:func:`~hw3lib.atomic.locked`), so processes testing or
        training the run at the same time never lose a count (LockTimeout where another held
        it for a minute)."""
        if self.model_epoch not in (None, self.best_epoch):
            raise ValueError(
                f"this run's model holds the weights of epoch {self.model_epoch} (fit(..., "
                f"restore_best=False)), not the kept weights of epoch {self.best_epoch}: the test "
                "split is evaluated on the weights kept on validation, and its record names them. "
                "Fix: test the run as fit returns it by default (restore_best=True), or load it "
                "from its checkpoint (FitResult.load)")
        X_test, y_test = self.checked_images(X_test), checked_labels(y_test, "y_test")  # before any work
        if len(X_test) != len(y_test):
            raise ValueError(f"test needs as many labels as images, got {len(X_test)} and {len(y_test)}")
        sha = test_data_sha256(X_test, y_test)

        def recorded(record):  # an evaluation of these weights on these images
            return record is not None and record.epoch == self.best_epoch and record.data_sha256 == sha

        if recorded(self.test_record):
            return self.test_record
        probs = self.predict(X_test, progress=progress)
        loss = CrossEntropyLoss().get(probs, y_test)
        record = TestRecord(self.best_epoch, loss, accuracy(y_test, probs.argmax(axis=1)), probs, sha)
        on_file = self.checkpoint_path is not None and self.checkpoint_path.is_file()
        with (checkpoint_lock(self.checkpoint_path if on_file else None),
              interrupts_deferred()):  # the checkpoint and this run count the same evaluations
            count = self.test_evaluations + 1
            if on_file:
                ckpt = self._own_checkpoint()
                if recorded(ckpt.test):  # another process's evaluation of the same: not a new one
                    record, count = ckpt.test, ckpt.test_evaluations
                else:
                    count = ckpt.test_evaluations + 1  # the file's: other processes count there too
                    ckpt.test_evaluations, ckpt.test = count, record
                    save_checkpoint(self.checkpoint_path, ckpt)
            self.test_record, self.test_evaluations = record, count
        return record

    def _own_checkpoint(self):
        """The :class:`Checkpoint` at ``checkpoint_path``, which must hold this run as it is (or
        as another process trained the same settings, :func:`same_run`): CheckpointError where
        it was trained on since, or holds another run now (one trained afresh into it)."""
        ckpt, epochs = load_checkpoint(self.checkpoint_path), len(self.history["epoch"])
        if not same_run({key: values[:epochs] for key, values in ckpt.history.items()}, self.history):
            raise CheckpointError(f"{self.checkpoint_path} holds another run now (its history differs "
                                  "from this run's): load it (FitResult.load) to test that run")
        if (ckpt.epoch, ckpt.best_epoch) != (epochs, self.best_epoch):
            raise CheckpointError(
                f"{self.checkpoint_path} was trained on since this run was loaded: it holds "
                f"{ckpt.epoch} epoch(s) now, this run {epochs}: load it again (FitResult.load) "
                "and test that")
        return ckpt

    def evaluate(self, X, y, batch_size=None):
        """``(loss, accuracy)`` on raw images ``X (N, C, H, W)`` in [0, 1] with labels ``y (N,)``,
        normalised with the training split's ``mean``/``std`` batch by batch (:func:`evaluate`).
        The run's test split (:attr:`test_sha256`) is :meth:`test`'s: evaluated once and
        counted, then its record's, and refused as :meth:`test` refuses it where ``model`` holds
        other weights than the kept epoch's (``fit(..., restore_best=False)``)."""
        X, y = self.checked_images(X), np.asarray(y)
        if batch_size is not None:  # checked before the test split's path, which takes none
            batch_size = integer("batch_size", batch_size)
        if self.test_sha256 is not None and test_data_sha256(X, y) == self.test_sha256:
            record = self.test(X, y)
            return record.loss, record.accuracy
        return evaluate(self.model, X, y, batch_size, (self.mean, self.std))

    def checked_images(self, X):
        """Raw images ``X (N, C, H, W)`` in [0, 1] of the run's mode and size, to be normalised
        as in training; ValueError naming the shape the run takes for any other."""
        X = checked_images(X, fix="; images normalised already go to run.model.forward, image "
                           "files to predict_files")
        if X.shape[1:] != self.model.input_shape:
            channels, height, width = self.model.input_shape
            if channels_last(X.shape, self.model.input_shape):
                raise ValueError(f"this run's model takes images (N, {channels}, {height}, {width}), got "
                                 f"{X.shape}: {CHANNELS_LAST.format('X')}")
            if fix := batch_axis_fix(X.shape, self.model.input_shape, "X"):
                raise ValueError(f"this run's model takes images (N, {channels}, {height}, {width}), got "
                                 f"{X.shape}: {fix}")
            raise ValueError(f"this run's model takes images (N, {channels}, {height}, {width}), got "
                             f"{X.shape}: load them in the run's mode and size, TrainConfig(mode="
                             f"{self.config.mode!r}) and TrainConfig(image_size='{height}x{width}'), "
                             "or give the image files to predict_files, which reads them so")
        return X


def checkpoint_lock(path):
    """The lock of the checkpoint ``path`` (:func:`~hw3lib.atomic.locked`), for a read-modify-write
    of it; none for no path. Taken before interrupts are deferred, so that Ctrl-C ends a wait."""
    return locked(path) if path is not None else contextlib.nullcontext()
