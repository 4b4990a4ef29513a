"""Training LeNet-5: the report's loop, evaluation, the history and the best weights.

The loop of each epoch is the report's (``forward``, ``cost.get``, ``backward``,
``update_params``, ``set_params``) over the training split in an order drawn from
``(seed, epoch)``, its images randomly mirrored left-right (``TrainConfig.hflip``). After the
epoch's updates the model is *evaluated* on the training and the validation split alike
(forward passes only: no backward pass, no update on validation data), and that row goes
into the history; the weights with the best validation accuracy (ties: the lower validation
loss) are kept.

Typical use (a notebook)::

    config = TrainConfig(epochs=24)              # the report's Adam settings by default
    data = config.load_data()                    # hw3lib.data.Dataset, 70/30 split
    model = config.build_model(len(data.classes), data.image_size)
    result = fit(model, data, config, checkpoint_path="runs/lenet5/checkpoint.npz")
    result.history["val_acc"], result.evaluate(data.X_test, data.y_test)

From a terminal: ``python -m hw3lib train --epochs 24 --out runs/lenet5`` (:mod:`hw3lib.train_cli`).

After each epoch :func:`fit` can write a checkpoint (:mod:`hw3lib.checkpoint`); a run resumed
from it reaches the same weights, bit for bit, as an uninterrupted run with the same settings
(and ``threads``).
"""
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from tqdm import autonotebook, std  # after tqdm.auto, which imports autonotebook without a warning

from .checks import integer
from .checkpoint import (HISTORY_KEYS, Checkpoint, CheckpointError, TestRecord,
                         architecture_mismatch, engine_stamp, interrupts_deferred, load_checkpoint,
                         save_checkpoint, test_data_sha256)
from .config import TrainConfig
from .data import dataloader, normalize
from .images import TransparentPixels, read_image
from .losses import CrossEntropyLoss
from .model import LeNet5
from .parallel import SplitBatch, check_threads

EVAL_BATCH = 256


class TrainingError(ValueError):
    """Training cannot go on: the loss or the weights stopped being finite numbers."""


def evaluate(model, X, y, batch_size=EVAL_BATCH):
    """``(loss, accuracy)`` of ``model`` on normalised images ``X (N, C, H, W)`` with labels
    ``y (N,)``: the mean cross-entropy per sample and the fraction of correct predictions,
    over all N samples (batches of ``batch_size``, the last one weighted by its size).
    Forward passes only; the weights do not change."""
    if len(X) == 0 or len(X) != len(y):
        raise ValueError(f"evaluate needs as many labels as images (>= 1), got {len(X)} and {len(y)}")
    integer("batch_size", batch_size)
    cost, loss_sum, correct = CrossEntropyLoss(), 0.0, 0
    for i in range(0, len(X), batch_size):
        probs, yb = model.forward(X[i:i + batch_size]), y[i:i + batch_size]
        loss_sum += cost.get(probs, yb) * len(yb)
        correct += int((probs.argmax(axis=1) == yb).sum())
    return loss_sum / len(X), correct / len(X)


# the evidence a run must give to count as learning (learning_warning)
LEARNING_LEVEL = 0.001  # the chance of a validation score as high by guessing
FEW_STEPS = 100  # fewer optimizer steps, the loss having moved: a run too short, train longer
# fewer optimizer steps: too few for the loss to move measurably even at a good rate. On the
# fruits, 20 full-batch Adam steps take the loss 31% below chance at lr 5e-4, 3% at 1e-4 and
# 0.3% at 1e-5 (99 steps of batch 32 at 1e-7: 0.0%), while an untrained model's loss lies up
# to ~0.3% off chance level
VERY_FEW_STEPS = 20
STILL = 0.98  # a lowest training loss above STILL x chance: the loss did not move (under 2%)


def chance_of_score(correct, n, rate):
    """The chance that guessing right with probability ``rate`` on each of ``n`` images gets
    ``correct`` or more of them right: the one-sided binomial tail P(X >= correct), X ~
    Binomial(n, rate), summed in logarithms (any ``n``)."""
    if correct <= 0 or rate >= 1:
        return 1.0
    if correct > n or rate <= 0:
        return 0.0
    log_rate, log_miss = math.log(rate), math.log1p(-rate)
    log_n = math.lgamma(n + 1)
    terms = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_rate + (n - i) * log_miss
             for i in range(correct, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def _images_to_spare_one(rate):
    """The fewest validation images on which all but one right is unlikely enough by guessing
    right at ``rate`` (under ``LEARNING_LEVEL``), or None where no split up to 10**4 is."""
    return next((n for n in range(2, 10**4) if chance_of_score(n - 1, n, rate) < LEARNING_LEVEL),
                None)


def learning_warning(history, best_epoch, y_train, y_val, config):
    """A one-line warning (containing "chance") when a run did not learn, saying why and what to
    change, else None.

    A run learned when guessing right at the rate of always the validation split's largest
    class would get as many validation images right as its best epoch with a chance under
    ``LEARNING_LEVEL``, 0.001 (a one-sided binomial tail, :func:`chance_of_score`; on a split
    too small for any score to be that unlikely, when every image is right), and its training
    loss fell below chance level: the loss of always predicting the training split's class
    frequencies (their entropy, ln K for K balanced classes), about where an untrained model
    starts. (Chance level rather than the first epoch's loss: a good run can reach its lowest
    loss in epoch 1.) So 148 of 441 images right, against 147 for the largest class, is not
    learning: guessing does as well about half the time.

    The advice goes by the first cause that the training losses and ``config`` (a
    :class:`hw3lib.config.TrainConfig`: its ``batch_size`` and ``lr``) show, ``steps`` being
    the run's optimizer steps (epochs x batches per epoch):

    1. the loss went up: above 1.05 x chance, or, still near chance (above 0.9 x), ending above
       its first epoch's: a smaller learning rate (lr / 10);
    2. the loss fell well below chance (under 0.5 x, or under 0.9 x in ``FEW_STEPS`` steps or
       more) while validation did not follow: on a validation split too small for any score
       but a perfect one to count (even all but one right is as likely as ``LEARNING_LEVEL``
       by guessing), that the split is too small: more images; else the model fits training
       images it does not generalise from: more, or more varied, training images, or the
       classes may not be told apart from these images;
    3. fewer than ``VERY_FEW_STEPS`` (20) steps: train longer, with more epochs or a smaller
       batch size (so few steps move the loss too little, at any rate, to judge the rate by);
    4. the loss did not move: the lowest above ``STILL`` (0.98) x chance, whatever the number
       of steps (20 or more): a larger learning rate (lr x 10), as training longer at this one
       will not help;
    5. fewer than ``FEW_STEPS`` (100) steps, the loss having fallen: train longer;
    6. else the loss hardly fell (not under 0.9 x chance) over many steps: a larger learning
       rate (lr x 10).

    ``history`` and ``best_epoch`` are :func:`fit`'s; ``y_*`` int labels ``(N,)``. None when
    no epoch completed.
    """
    if not best_epoch:
        return None
    n_val, n_train = len(y_val), len(y_train)
    majority = np.bincount(y_val).max() / n_val
    freq = np.bincount(y_train) / n_train
    chance_loss = float(-(freq[freq > 0] * np.log(freq[freq > 0])).sum())
    best_acc, losses = history["val_acc"][best_epoch - 1], history["train_loss"]
    lowest = min(losses)
    correct = round(best_acc * n_val)
    odds = chance_of_score(correct, n_val, majority)
    beats_chance = odds < LEARNING_LEVEL or correct == n_val
    if beats_chance and lowest < chance_loss:
        return None
    steps = len(losses) * math.ceil(n_train / config.batch_size)
    found = f"best validation accuracy {best_acc:.3f} ({correct} of {n_val} images) "
    if beats_chance:
        found += (f"is above chance, but the training loss never fell below chance level (lowest "
                  f"{lowest:.4g} against {chance_loss:.4g})")
    else:
        found += (f"is not clearly above chance, {majority:.3f} for always the largest class "
                  f"(guessing does as well with probability {odds:.2g}, learning needs under "
                  f"{LEARNING_LEVEL:g}); lowest training loss {lowest:.4g} against {chance_loss:.4g} "
                  f"by chance")
    larger = f"learning rate {config.lr:g} is too small, try a larger one, e.g. {config.lr * 10:g}"
    if max(losses) > 1.05 * chance_loss or (lowest >= 0.9 * chance_loss and losses[-1] > losses[0]):
        advice = (f"the training loss went up (to {max(losses):.4g}): learning rate {config.lr:g} is "
                  f"too large, try a smaller one, e.g. {config.lr / 10:g}")
    elif lowest < 0.5 * chance_loss or (lowest < 0.9 * chance_loss and steps >= FEW_STEPS):
        if chance_of_score(n_val - 1, n_val, majority) >= LEARNING_LEVEL:
            enough = _images_to_spare_one(majority)
            advice = (f"the model fits its {n_train} training images, but the validation split of "
                      f"{n_val} images is too small to show learning unless every image is right: "
                      f"add images" + (f" (on {enough} or more validation images, one may be wrong)"
                                       if enough else ""))
        else:
            advice = (f"the model fits its {n_train} training images but does not generalise from "
                      f"them to the validation images: train on more, or more varied, images, or "
                      f"the classes may not be told apart from these images")
    elif steps < VERY_FEW_STEPS or (steps < FEW_STEPS and lowest <= STILL * chance_loss):
        per_epoch = steps // len(losses)
        advice = (f"only {steps} optimizer step(s) ({len(losses)} epoch(s) of {per_epoch} batch(es) of "
                  f"{config.batch_size}), too few to learn: train longer, with more epochs or a smaller "
                  f"batch size")
    elif lowest > STILL * chance_loss:
        advice = (f"the training loss stayed within {1 - STILL:.0%} of chance level in {steps} "
                  f"optimizer steps, so training longer will not help: {larger}")
    else:
        advice = f"the training loss hardly fell in {steps} optimizer steps: {larger}"
    return f"the model did not learn: {found}; {advice}"


def _copy(params):
    return {k: v.copy() for k, v in params.items()}


def _better(row, best_row):
    """Higher validation accuracy wins; equal accuracy, lower validation loss."""
    def key(r):
        return r["val_acc"], -r["val_loss"]
    return best_row is None or key(row) > key(best_row)


def _columns(rows):
    return {key: [row[key] for row in rows] for key in HISTORY_KEYS}


def _rows(history):
    return [dict(zip(HISTORY_KEYS, values)) for values in zip(*(history[k] for k in HISTORY_KEYS))]


def _check_fit_inputs(model, data, config):
    """Refuse data that cannot train ``model``: checked before any work starts."""
    expected = model.input_shape
    for split in ("train", "val"):
        X, y = getattr(data, f"X_{split}"), np.asarray(getattr(data, f"y_{split}"))
        if X.ndim != 4 or X.shape[1:] != expected:
            hint = (f"the data has {X.shape[1]} channel(s) and the model {expected[0]}: load both "
                    f"with the same mode (TrainConfig.mode, --channels)" if X.ndim == 4 and
                    X.shape[1] != expected[0] else "check the image size")
            raise ValueError(f"X_{split} has shape {X.shape}, the model expects (N, "
                             f"{', '.join(map(str, expected))}); {hint}")
        if len(X) == 0 or len(X) != len(y):
            raise ValueError(f"X_{split} and y_{split} must hold the same number (>= 1) of samples, "
                             f"got {len(X)} and {len(y)}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y_{split} must be 1-D integer labels, got dtype {y.dtype} "
                             f"shape {y.shape}")
        if y.min() < 0 or y.max() >= model.num_classes:
            raise ValueError(f"y_{split} holds labels from {y.min()} to {y.max()}, but the model has "
                             f"{model.num_classes} classes (labels 0 to {model.num_classes - 1})")
        if not np.isfinite(X).all():
            raise ValueError(f"X_{split} contains NaN or infinite values")
    if len(data.classes) != model.num_classes:
        raise ValueError(f"the data has {len(data.classes)} classes {list(data.classes)}, the model "
                         f"{model.num_classes} outputs; build it with "
                         f"config.build_model({len(data.classes)})")
    if np.shape(data.mean) != (expected[0],) or np.shape(data.std) != (expected[0],):
        raise ValueError(f"data.mean and data.std must have shape ({expected[0]},), got "
                         f"{np.shape(data.mean)} and {np.shape(data.std)}")
    if not (np.isfinite(data.mean).all() and np.isfinite(data.std).all() and (data.std > 0).all()):
        raise ValueError(f"data.mean {data.mean} and data.std {data.std} must be finite, std > 0: "
                         "take them from hw3lib.data.fit_normalizer(X_train)")


def check_resume(ckpt, model, data, config, data_sha256, source):
    """Refuse to resume the :class:`Checkpoint` ``ckpt`` (read from ``source``, named in the
    message) with ``model``, ``data``, ``config`` and the data stamp ``data_sha256``: a
    CheckpointError for other data, another architecture, other settings (``epochs`` aside)
    or another training split."""
    other = ("resume with the data it was trained on (the same --data), or train afresh into "
             "another checkpoint (another --out)")
    if data_sha256 and ckpt.data_sha256 and data_sha256 != ckpt.data_sha256:
        raise CheckpointError(f"{source} was trained on other data (SHA-256 {ckpt.data_sha256}, "
                              f"this data {data_sha256}): {other}")
    message = architecture_mismatch(model, ckpt.params, source, ckpt.model_config)
    if message:
        raise CheckpointError(message)
    ckpt.check_settings(config, source)
    if not (np.array_equal(ckpt.mean, data.mean) and np.array_equal(ckpt.std, data.std)):
        raise CheckpointError(f"{source} was trained on a training split with other statistics "
                              f"(mean/std differ), other data or another split: {other}")


def _raw_images(X):
    """``X``, refused unless it holds raw images: floats in [0, 1]. Integer pixels and values
    outside [0, 1] (8-bit ones, or images normalised already) would give answers at chance."""
    X = np.asarray(X)
    if X.dtype.kind != "f":
        raise ValueError(f"expected raw images as floats in [0, 1], got {X.dtype} values: divide "
                         "8-bit pixels by 255 (16-bit ones by 65535), or give the image files to "
                         "predict_files")
    if X.size and (X.min() < 0 or X.max() > 1):
        raise ValueError(f"expected raw images in [0, 1], got values from {X.min():.3g} to "
                         f"{X.max():.3g}: divide 8-bit pixels by 255; images normalised already go "
                         "to run.model.forward")
    return X


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``model`` holds the best validation weights (those of ``best_epoch``; 0 when no epoch
    completed: the initial weights); ``history`` maps each of ``epoch, train_loss, train_acc,
    val_loss, val_acc, seconds`` to one value per completed epoch (JSON-serialisable);
    ``stopped`` is ``None`` for a run that finished, ``"interrupted"`` (KeyboardInterrupt) or
    ``"stopped"`` (the ``stop`` flag); ``mean``/``std`` normalise inputs for :meth:`evaluate`;
    ``classes`` names the model's outputs and ``config`` is the run's :class:`TrainConfig`.
    :meth:`load` reads a run back from its checkpoint; :meth:`predict`, :meth:`predict_files`
    and :meth:`evaluate` take raw images and normalise them as in training (the bare ``model``
    expects normalised ones).

    The test split is for the end: :meth:`test` evaluates it once on the kept weights and
    records it (``test_record``), counting each real evaluation in ``test_evaluations``, also
    in the checkpoint at ``checkpoint_path``; a later call returns the record.
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

    @classmethod
    def from_checkpoint(cls, ckpt, path):
        """The run of :class:`Checkpoint` ``ckpt``, read from ``path``, with its kept weights."""
        return cls(ckpt.build_model(), ckpt.history, ckpt.best_epoch, None, ckpt.mean, ckpt.std,
                   Path(path), ckpt.test_evaluations, ckpt.test, list(ckpt.classes), ckpt.config)

    @classmethod
    def load(cls, path):
        """The run saved at ``path`` by :func:`fit` or ``python -m hw3lib train`` (its
        ``checkpoint.npz``), holding the weights it kept (:class:`CheckpointError` otherwise)."""
        return cls.from_checkpoint(load_checkpoint(path), path)

    def predict(self, X, batch_size=EVAL_BATCH):
        """Class probabilities ``(N, K)`` of the model for raw images ``X (N, C, H, W)`` in
        [0, 1], normalised with the training split's ``mean``/``std`` first."""
        X = normalize(_raw_images(X), self.mean, self.std)
        return np.concatenate([self.model.forward(X[i:i + batch_size])
                               for i in range(0, len(X), batch_size)])

    def predict_files(self, paths):
        """Class probabilities ``(N, K)`` for image files ``paths`` (or one path: ``(1, K)``)
        of any format, size and bit depth :func:`~hw3lib.images.read_image` reads, each read in
        the run's channel mode and resized to the model's input size;
        ``self.classes[probs.argmax(axis=1)]`` names them. DataError names a file that cannot be."""
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not paths:
            raise ValueError("predict_files needs at least one image file")
        mode, size = self.config.mode, self.model.input_shape[1:]
        try:
            X = np.stack([read_image(Path(p), mode, size) for p in paths]).transpose(0, 3, 1, 2)
        except TransparentPixels as err:
            raise TransparentPixels(f"{str(err).partition(', which')[0]}, which this run, trained on "
                                    f"mode {mode} images, cannot take. Fix: flatten the image onto "
                                    "a background (e.g. white, as the fruit images have) first") from None
        return self.predict(X)

    def test(self, X_test, y_test):
        """The :class:`TestRecord` of the kept weights on the test split ``X_test (N, C, H, W)``
        (raw, in [0, 1]), ``y_test (N,)``: evaluated once, then recorded.

        Only a new evaluation (none recorded yet for these weights and test data) adds 1 to
        ``test_evaluations`` and, when the run has a checkpoint, is written into it."""
        sha = test_data_sha256(X_test, y_test)
        record = self.test_record
        if record is not None and record.epoch == self.best_epoch and record.data_sha256 == sha:
            return record
        y_test = np.asarray(y_test)
        probs = self.predict(X_test)
        loss = CrossEntropyLoss().get(probs, y_test)
        accuracy = float((probs.argmax(axis=1) == y_test).mean())
        self.test_record = TestRecord(self.best_epoch, loss, accuracy, probs, sha)
        self.test_evaluations += 1
        if self.checkpoint_path is not None and self.checkpoint_path.is_file():
            ckpt = load_checkpoint(self.checkpoint_path)
            ckpt.test_evaluations, ckpt.test = self.test_evaluations, self.test_record
            with interrupts_deferred():
                save_checkpoint(self.checkpoint_path, ckpt)
        return self.test_record

    def evaluate(self, X, y, batch_size=EVAL_BATCH):
        """``(loss, accuracy)`` on raw images ``X (N, C, H, W)`` in [0, 1], normalised with the
        training split's ``mean``/``std`` first (:func:`evaluate`)."""
        return evaluate(self.model, normalize(_raw_images(X), self.mean, self.std), np.asarray(y),
                        batch_size)


def _stop_requested(stop):
    if stop is None:
        return False
    return stop.is_set() if hasattr(stop, "is_set") else bool(stop())


def fit(model, data, config, *, on_batch=None, on_epoch=None, stop=None, checkpoint_path=None,
        resume=None, data_sha256=None, progress=True, restore_best=True, threads=1):
    """Train ``model`` on ``data`` (a :class:`hw3lib.data.Dataset`) as ``config`` says.

    Inputs are normalised with ``data.mean``/``data.std`` (the training split's statistics).
    Each epoch runs the report's loop on ``config.batch_size`` batches of the training split,
    in the order of ``dataloader(..., seed=config.seed, epoch=epoch)``, with a ``tqdm.auto``
    bar showing the running loss and accuracy (the mean over the epoch's batches so far,
    before their updates). Then the history gets one row: the loss and accuracy of an
    evaluation pass (:func:`evaluate`) over the training and the validation split, and the
    epoch's seconds (training and evaluation).

    - ``on_batch(stats)`` after each batch, ``stats`` a dict of ``epoch, batch, batches,
      loss`` (this batch's) and ``running_loss, running_acc``; ``on_epoch(history)`` after
      each epoch with the history so far.
    - ``stop``: a ``threading.Event`` or a callable, checked after each batch; when set, the
      run ends (``stopped="stopped"``). A KeyboardInterrupt ends it the same way
      (``stopped="interrupted"``). Either way the unfinished epoch is dropped.
    - ``checkpoint_path``: after each epoch a :class:`Checkpoint` is written there atomically,
      stamped with the engine (:func:`~hw3lib.checkpoint.engine_stamp`; EngineChanged, a
      ValueError, when hw3lib's training code was edited after it was imported).
    - ``resume``: a checkpoint (path or :class:`Checkpoint`) of a run with the same settings
      (``config.epochs`` may be larger) to go on from; the result equals an uninterrupted
      run's bit for bit. ``data_sha256`` stamps the checkpoint (and must match on resume).
    - ``restore_best``: at the end the model holds the best validation weights.
    - ``threads``: split each batch over up to this many threads where that pays
      (:class:`hw3lib.parallel.SplitBatch`: large images or wide layers; the course's 32x32
      LeNet stays on one). A run is the same, bit for bit, every time with the same
      ``threads``; with other ``threads`` it differs in rounding.

    Bad settings or data (wrong channel count or image size, labels outside
    ``[0, num_classes)``, a checkpoint of another run) raise ValueError before any work.
    A loss or weight that is no longer finite raises :class:`TrainingError` at that batch,
    naming it; the model then holds the best weights, ``error.result`` the :class:`FitResult`
    so far, and the checkpoint file the last good epoch.
    """
    _check_fit_inputs(model, data, config)
    threads = check_threads(threads)
    engine = None
    if checkpoint_path is not None:  # now, not after the first epoch's work
        if Path(checkpoint_path).is_dir():
            raise ValueError(f"checkpoint_path {checkpoint_path} is a folder; give a file's path, "
                             "e.g. runs/lenet5/checkpoint.npz")
        engine = engine_stamp()  # the code this run is trained by (refused if edited since import)
        Path(checkpoint_path).parent.mkdir(parents=True, exist_ok=True)
    if resume is not None:
        ckpt = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
        check_resume(ckpt, model, data, config, data_sha256,
                     "the checkpoint" if isinstance(resume, Checkpoint) else str(resume))
    X_train, X_val = (normalize(X, data.mean, data.std) for X in (data.X_train, data.X_val))
    y_train, y_val = np.asarray(data.y_train), np.asarray(data.y_val)
    optimizer = config.build_optimizer(model.get_params())
    if resume is not None:
        model.set_params(ckpt.params)
        optimizer.load_state_dict(ckpt.optimizer)
        rows, best_epoch, best_params = _rows(ckpt.history), ckpt.best_epoch, _copy(ckpt.best_params)
        tested = (ckpt.test_evaluations, ckpt.test)  # what the run's test split has seen so far
    else:
        rows, best_epoch, best_params = [], 0, _copy(model.get_params())
        tested = (0, None)
    # One tuple, replaced whole at each epoch's end, so an interrupt never leaves it half-updated.
    state = (rows, best_epoch, best_params)
    model_config = {**getattr(model, "config", {}), "dtype": model.get_params()["W1"].dtype.name}
    first = len(rows) + 1
    batches = math.ceil(len(y_train) / config.batch_size)
    stopped = None

    def snapshot():
        rows, best_epoch, best_params = state
        if restore_best:
            model.set_params(best_params)
        return FitResult(model, _columns(rows), best_epoch, stopped, data.mean, data.std,
                         Path(checkpoint_path) if checkpoint_path else None, *tested,
                         list(data.classes), config)

    def diverged(what, epoch, batch):
        rows, best_epoch, _ = state
        kept = ("" if not restore_best else f", the model holds the weights of epoch {best_epoch} "
                "(best validation accuracy)" if best_epoch else ", no epoch completed: the model "
                "holds its initial weights")
        saved = ""
        if checkpoint_path is not None:
            saved = (f"; {checkpoint_path} keeps epoch {len(rows)}" if rows
                     else f"; nothing was saved to {checkpoint_path}")
        return TrainingError(f"{what} at epoch {epoch}, batch {batch}/{batches} with lr={config.lr:g}: "
                             f"training stopped{kept}{saved}. Try a smaller learning rate, e.g. "
                             f"lr={config.lr / 10:g}")

    bar, shown = _progress_bar(batches * max(config.epochs - first + 1, 0), progress)
    try:
        # Overflow shows up below as a non-finite loss or weight, reported with its batch.
        with np.errstate(over="ignore", invalid="ignore"), SplitBatch(model, threads) as net:
            for epoch in range(first, config.epochs + 1):
                bar.set_description(f"epoch {epoch}/{config.epochs}")
                start = time.perf_counter()
                loader = dataloader(X_train, y_train, config.batch_size, seed=config.seed, epoch=epoch)
                if config.hflip:
                    loader = _random_hflips(loader, np.random.default_rng((config.seed, epoch, 1)))
                if _train_epoch(net, optimizer, loader, epoch, batches, bar, on_batch, stop,
                                diverged):
                    stopped = "stopped"
                    break
                train_loss, train_acc = evaluate(net, X_train, y_train)
                val_loss, val_acc = evaluate(net, X_val, y_val)
                if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                    raise diverged("the evaluation loss became non-finite", epoch, batches)
                row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                           val_acc=val_acc, seconds=time.perf_counter() - start)
                rows, best_epoch, best_params = state
                if _better(row, rows[best_epoch - 1] if best_epoch else None):
                    best_epoch, best_params = epoch, _copy(model.get_params())
                history = _columns(rows + [row])
                with interrupts_deferred():  # the checkpoint and the state describe the same epoch
                    if checkpoint_path is not None:
                        save_checkpoint(checkpoint_path, Checkpoint(
                            config, model_config, model.get_params(), best_params,
                            optimizer.state_dict(), epoch, best_epoch, history, data.mean,
                            data.std, list(data.classes), data_sha256, *tested, engine))
                    state = (rows + [row], best_epoch, best_params)
                bar.set_postfix(val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.3f}")
                if on_epoch is not None:
                    on_epoch(history)
    except KeyboardInterrupt:
        stopped = "interrupted"
    except TrainingError as err:
        err.result = snapshot()
        raise
    finally:
        bar.close()
        if shown is not None:
            shown.update(bar.container)  # the saved text: how the run ended, not its start
    return snapshot()


def _progress_bar(total, progress):
    """tqdm.auto's bar over ``total`` batches, and in a notebook its display handle. There
    the bar is a widget, saved with the plain text it had when shown (0%) for viewers
    without widgets; updating the handle when the bar closes saves its end instead."""
    if not progress or autonotebook.tqdm is std.tqdm:  # no bar, or a text bar in a terminal
        return tqdm(total=total, disable=not progress, unit="batch"), None
    from IPython.display import display

    bar = tqdm(total=total, unit="batch", display=False)
    return bar, display(bar.container, display_id=True)


def _random_hflips(loader, rng):
    """The batches ``(X (N, C, H, W), y)`` of ``loader`` with each image mirrored left-right
    (along W) with probability 1/2."""
    for X, y in loader:
        flip = rng.random(len(y)) < 0.5
        yield np.where(flip[:, None, None, None], X[..., ::-1], X), y


def _train_epoch(model, optimizer, loader, epoch, batches, bar, on_batch, stop, diverged):
    """The report's loop over one epoch's batches; True when ``stop`` ended it early."""
    cost, seen, loss_sum, correct = CrossEntropyLoss(), 0, 0.0, 0
    for batch, (X_batch, y_batch) in enumerate(loader, start=1):
        y_pred = model.forward(X_batch)
        loss = cost.get(y_pred, y_batch)
        if not math.isfinite(loss):
            raise diverged(f"the loss became {loss}", epoch, batch)
        grads = model.backward(y_pred, y_batch)
        params = optimizer.update_params(grads, model.spread)
        model.set_params(params)
        if not all(np.isfinite(p).all() for p in params.values()):
            raise diverged("the weights stopped being finite", epoch, batch)
        seen += len(y_batch)
        loss_sum += loss * len(y_batch)
        correct += int((y_pred.argmax(axis=1) == y_batch).sum())
        bar.update()
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
        if on_batch is not None:
            on_batch(dict(epoch=epoch, batch=batch, batches=batches, loss=loss,
                          running_loss=loss_sum / seen, running_acc=correct / seen))
        if _stop_requested(stop):
            return True
    return False
