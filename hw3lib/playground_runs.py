"""The playground's runs (:mod:`hw3lib.widgets`), without the widgets: a run's settings, one
field per control of the panel (:class:`RunSettings`), what each control can hold and the
checks of a combination before any work (:func:`prepare`), training it
(:meth:`PreparedRun.train`) into a :class:`RunRecord`, and the table of a session's runs.
"""
import re
import time
from dataclasses import dataclass, field, fields, replace

import numpy as np

from .checks import is_int
from .config import TrainConfig
from .data import Dataset
from .images import MODES
from .learning import learning_warning
from .parallel import one_blas_thread
from .phrasing import phrase_settings
from .tables import Table
from .train import TrainingError, fit, one_batch_note

BATCH_SIZES = (8, 16, 32, 64, 128, 256)
# the learning rates of the panel's slider, 1e-5 to 1, ten a decade (the rounded Renard series):
# exact decimals, as `train --lr` reads them. A logarithmic slider steps its exponent: its
# 10**-3.3 = 0.000501 read 5.0e-4 and trained another rate than 5e-4, which no step reached
LR_MANTISSAS = ("1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "8")
LEARNING_RATES = tuple(float(f"{m}e{e}") for e in range(-5, 0) for m in LR_MANTISSAS) + (1.0,)


def size_label(image_size):
    """An ``image_size`` as the panel's control shows it: "as stored" for None, else "28 x 28"."""
    return "as stored" if image_size is None else f"{image_size} x {image_size}"


IMAGE_SIZES = tuple((size_label(size), size) for size in (None, 16, 28, 32, 64))
VAL_SPLITS = (("blocked (runs of frames)", "blocked"), ("random (the report's)", "random"))

# the panel's optimizer choices, as TrainConfig fields
OPTIMIZERS = {
    "AdamGD": dict(optimizer="adam"),
    "AdamGD, no bias correction": dict(optimizer="adam", bias_correction=False),
    "SGD": dict(optimizer="sgd"),
    "SGD, momentum 0.9": dict(optimizer="sgd", momentum=0.9),
}


@dataclass(frozen=True)
class RunSettings:
    """One run's hyperparameters, one field per control of the panel.

    ``conv1``/``conv2`` are the two convolutions' output channels, ``mode`` the images' channel
    mode (``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"``), ``image_size`` the size ``S`` (S x S) to
    resize every image to (``None``: as stored), ``train_size`` how many images of the
    training split the run trains on (drawn by ``seed``), ``split`` how validation is held out
    (``"blocked"`` or ``"random"``), ``hflip`` whether training images are mirrored at random
    (:class:`TrainConfig`)."""

    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 3
    optimizer: str = "AdamGD"
    conv1: int = 6
    conv2: int = 16
    kernel_size: int = 5
    activation: str = "relu"
    pooling: str = "max"
    mode: str = "L"
    seed: int = 0
    train_size: int = 600
    split: str = TrainConfig.split
    hflip: bool = TrainConfig.hflip
    image_size: int | None = None

    def config(self):
        """The run's :class:`TrainConfig`; ValueError names a setting that cannot work (an
        unknown optimizer, a kernel larger than its feature map, a bad learning rate, ...)."""
        if not (isinstance(self.optimizer, str) and self.optimizer in OPTIMIZERS):
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           **OPTIMIZERS[self.optimizer], seed=self.seed, mode=self.mode,
                           image_size=self.image_size, split=self.split, hflip=self.hflip,
                           model=dict(conv_channels=[self.conv1, self.conv2], kernel_size=self.kernel_size,
                                      activation=self.activation, pooling=self.pooling))


def control_ranges(train_max):
    """What each control can hold, by :class:`RunSettings` field: ``(low, high)`` for an
    integer slider or number box, a list of the choices otherwise (the learning rate's slider
    too: :data:`LEARNING_RATES`). ``train_max``: the training split's size."""
    return {"lr": list(LEARNING_RATES), "batch_size": list(BATCH_SIZES), "epochs": (1, 30),
            "optimizer": list(OPTIMIZERS), "train_size": (min(10, train_max), train_max),
            "seed": (0, 2**31 - 1), "conv1": (1, 32), "conv2": (1, 64), "kernel_size": (1, 15),
            "activation": ["relu", "tanh"], "pooling": ["max", "avg"], "mode": list(MODES),
            "image_size": [size for _, size in IMAGE_SIZES], "split": [value for _, value in VAL_SPLITS],
            "hflip": [False, True]}


def check_settings(settings, train_max):
    """ValueError naming the first field of ``settings`` that the panel's control cannot hold
    (:func:`control_ranges`): a slider would clamp it (or move it to its nearest step), and Train
    run other settings than asked."""
    for name, allowed in control_ranges(train_max).items():
        value = getattr(settings, name)
        if isinstance(allowed, list):
            if value not in allowed:
                choices = (f"one of the slider's steps, {', '.join(LR_MANTISSAS[:-1])} or {LR_MANTISSAS[-1]} "
                           f"times a power of ten from {min(allowed):g} to {max(allowed):g}"
                           if name == "lr" else f"one of {allowed}")
                raise ValueError(f"{name} must be {choices} in the playground, got {value!r}")
        else:
            low, high = allowed
            if not (is_int(value) and low <= value <= high):
                raise ValueError(f"{name} must be an integer from {low} to {high} in the playground"
                                 + " (the training split's size)" * (name == "train_size")
                                 + f", got {value!r}")


# the labels of the panel's controls that set a TrainConfig field of the same name as is
CONTROL_LABELS = {"lr": "learning rate", "batch_size": "batch size", "epochs": "epochs"}


def panel_phrasing(message):
    """``message`` with each setting it names as the library does, ``TrainConfig(NAME=VALUE)``,
    put as the panel's controls set it: ``image size 64 x 64`` (the smallest size offered that
    is at least as large, else the largest), ``input channels LA``, ``learning rate 0.1`` (and
    the others of :data:`CONTROL_LABELS`); others stay as they are."""
    def option(name, value):
        need = re.match(r"\d+", value)
        if name == "image_size" and need:
            sizes = [size for _, size in IMAGE_SIZES if size]
            size = min((size for size in sizes if size >= int(need[0])), default=max(sizes))
            return f"image size {size} x {size}"
        if name == "mode":
            return f"input channels {value}"
        if name in CONTROL_LABELS:  # a slider of the panel: "learning rate 0.1", not TrainConfig(lr=0.1)
            return f"{CONTROL_LABELS[name]} {value}"
        return f"TrainConfig({name}={value})"
    return phrase_settings(message, option)


def differences(settings, names=None, most=3):
    """For each :class:`RunSettings` of ``settings``, the fields in which they differ (or only
    those of ``names``), as ``"lr=0.01, image_size=28"``: ``most`` of them, first those that
    tell the most settings apart, then the first in field order, shown in field order, and "..."
    for more (the runs table has them all); "" where all are equal. The image size is said as
    the panel's control says it (:func:`size_label`): ``image_size=as stored``, not None."""
    varying = [f.name for f in fields(RunSettings) if (names is None or f.name in names)
               and len({getattr(one, f.name) for one in settings}) > 1]

    def told_apart(chosen):
        return len({tuple(getattr(one, name) for name in chosen) for one in settings})

    chosen = []
    while len(chosen) < most and told_apart(chosen) < told_apart(varying):
        chosen.append(max((name for name in varying if name not in chosen),
                          key=lambda name: told_apart([*chosen, name])))
    chosen += [name for name in varying if name not in chosen][:most - len(chosen)]
    def said(one, name):
        value = getattr(one, name)
        return f"{value:.2g}" if name == "lr" else size_label(value) if name == "image_size" else repr(value)

    return [", ".join([f"{name}={said(one, name)}" for name in varying if name in chosen]
                      + ["..."] * (len(varying) > most))
            for one in settings]


def subset(data, size, seed):
    """``data`` (a :class:`hw3lib.data.Dataset`) with ``size`` of its training images, drawn
    at random by ``seed`` and kept in their order; validation, test and the normaliser (the
    whole training split's ``mean``/``std``) stay as they are."""
    n = len(data.y_train)
    if not (is_int(size) and 1 <= size <= n):
        raise ValueError(f"train_size must be an integer from 1 to {n} (the training split's size), "
                         f"got {size!r}")
    if size == n:
        return data
    keep = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    return replace(data, X_train=data.X_train[keep], y_train=data.y_train[keep])


@dataclass
class RunRecord:
    """One finished run: its ``settings``, fit's ``history`` (dict of lists, one value per
    completed epoch), ``best_epoch`` (0: none completed, or no weights kept), wall-clock
    ``seconds`` of training, ``status`` (``"done"``, ``"stopped"``, ``"interrupted"``,
    ``"diverged"`` or ``"failed"``: an error ended it), when it diverged fit's ``message`` (when
    it failed, the error's), when it did not learn the ``warning`` of
    :func:`hw3lib.learning.learning_warning`, its ``note`` where each epoch was one batch
    (:func:`~hw3lib.train.one_batch_note`), and what :meth:`test` needs: fit's ``result`` (its
    model holding the kept weights only, not the activations of its last batch) and the run's
    ``test_split`` ``(X_test, y_test)``, not its training images: a session keeps every run, and
    those held megabytes a run. ``test_acc`` is None until :meth:`test` is called. ``data``
    names the data it trained on (the panel's: a stamp of its folder's files as read; None:
    not known)."""

    settings: RunSettings
    history: dict
    best_epoch: int
    seconds: float
    status: str
    message: str | None = None
    warning: str | None = None
    note: str | None = None
    result: object = field(default=None, repr=False, compare=False)
    test_split: tuple | None = field(default=None, repr=False, compare=False)
    test_acc: float | None = None
    data: object = field(default=None, repr=False)

    @property
    def best_val_acc(self):
        """The validation accuracy at :attr:`best_epoch`; None where that is 0."""
        return self.history["val_acc"][self.best_epoch - 1] if self.best_epoch else None

    def test(self):
        """The test accuracy of the kept weights, evaluated once (:meth:`FitResult.test`)."""
        if not self.best_epoch:
            raise ValueError(f"the run failed ({self.message}): there are no kept weights to test"
                             if self.status == "failed" else
                             "the run ended before its first epoch: there are no kept weights to test")
        if self.test_acc is None:
            self.test_acc = self.result.test(*self.test_split).accuracy
        return self.test_acc


@dataclass(frozen=True)
class PreparedRun:
    """A run whose settings passed every check: its ``config`` and its ``data`` (training
    split cut to ``settings.train_size``)."""

    settings: RunSettings
    config: TrainConfig
    data: Dataset

    def train(self, *, on_batch=None, on_epoch=None, stop=None):
        """Train a fresh model with :func:`fit` (``on_batch``, ``on_epoch``, ``stop`` as
        there) on one BLAS thread, as the sweep's workers and the notebooks' runs train (other
        thread counts round otherwise: the panel's run of a sweep's settings and seed gave
        other accuracies than the sweep's), and return its :class:`RunRecord`. A run that
        diverges is recorded, not raised."""
        start = time.perf_counter()
        model = self.config.build_model(len(self.data.classes), self.data.image_size)
        message = None
        try:
            with one_blas_thread():
                result = fit(model, self.data, self.config, on_batch=on_batch, on_epoch=on_epoch, stop=stop,
                             progress=False)
        except TrainingError as err:
            result, message = err.result, str(err)
        warning = learning_warning(result.history, result.best_epoch, self.data.y_train, self.data.y_val,
                                   self.config)
        kept = self.config.build_model(len(self.data.classes), self.data.image_size)  # no activations
        kept.set_params(result.model.get_params())
        return RunRecord(self.settings, result.history, result.best_epoch, time.perf_counter() - start,
                         "diverged" if message else result.stopped or "done", message, warning,
                         one_batch_note(self.config.batch_size, len(self.data.y_train), "batch size"),
                         replace(result, model=kept), (self.data.X_test, self.data.y_test))


def prepare(settings, load):
    """Check ``settings`` and load its data with ``load(config) -> Dataset``, before any
    training. Raises ValueError naming what cannot work (the model against the images' own size
    too: a kernel larger than images loaded as stored), or DataError from ``load``."""
    config = settings.config()
    data = load(config)
    config.check_fit(data.image_size)  # the model at the images' own size (image_size None)
    return PreparedRun(settings, config, subset(data, settings.train_size, settings.seed))


def runs_table(runs):
    """One row per :class:`RunRecord`: the hyperparameters (the image size in the panel's words,
    :func:`size_label`), the epochs done of those asked,
    the best validation accuracy, the test accuracy of those weights ("-" until tested),
    seconds of training and status ("did not learn" for a finished run with a learning warning:
    the warning said once in the panel's message line, the table keeps it); and, once they
    trained on more than one data (a folder's files changed between runs), which data each
    trained on, numbered 1, 2, ... in the order of the runs."""
    numbers = {}
    for run in runs:
        numbers.setdefault(run.data, len(numbers) + 1)
    data = len(numbers) > 1
    rows = []
    for number, run in enumerate(runs, start=1):
        s = run.settings
        epochs = f"{len(run.history['epoch'])}/{s.epochs}"
        rows.append((number, s.optimizer, f"{s.lr:.2g}", s.batch_size, epochs, f"{s.conv1}-{s.conv2}",
                     s.kernel_size, s.activation, s.pooling, s.mode, size_label(s.image_size), s.seed,
                     s.train_size, *[numbers[run.data]] * data, s.split, s.hflip, run.best_val_acc, run.test_acc,
                     run.seconds, "did not learn" if run.status == "done" and run.warning else run.status))
    return Table(["run", "optimizer", "lr", "batch", "epochs", "conv", "kernel", "act", "pool", "mode",
                  "size", "seed", "images", *["data"] * data, "split", "flips", "best val acc", "test acc",
                  "seconds", "status"], rows)
