"""Training LeNet-5 on the fruit data: the report's loop, a history, checkpoints, a command.

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
    model = config.build_model(len(data.classes))
    result = fit(model, data, config, checkpoint_path="runs/lenet5/checkpoint.npz")
    result.history["val_acc"], result.evaluate(data.X_test, data.y_test)

From a terminal: ``python -m hw3lib train --epochs 24 --out runs/lenet5``.

Checkpoints are ``.npz`` archives without pickled objects (loaded with ``allow_pickle=False``)
written to a temporary file in the target's folder and renamed over the target, so a writer
killed mid-write leaves the previous checkpoint intact. A run resumed from a checkpoint
reaches the same weights, bit for bit, as an uninterrupted run with the same settings.
"""
import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .data import MODES, dataloader, dataset_sha256, load_dataset, normalize
from .losses import CrossEntropyLoss
from .model import LeNet5
from .optim import SGD, AdamGD

HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
EVAL_BATCH = 256
FORMAT = "hw3lib-checkpoint"
FORMAT_VERSION = 1
# LeNet5 arguments that TrainConfig.model may set; the rest come from the data and the seed.
MODEL_KEYS = ("input_size", "conv_channels", "kernel_size", "hidden", "activation", "pooling")
OPTIMIZERS = ("adam", "sgd")


class TrainingError(ValueError):
    """Training cannot go on: the loss or the weights stopped being finite numbers."""


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupt, pickled, or does not fit the model or run."""


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run, checked when created.

    Defaults are the report's, ``AdamGD(lr=0.0005, beta1=0.9, beta2=0.999, epsilon=1e-8)``
    for 24 epochs with batch size 32, plus random left-right flips of the training images.

    - ``hflip``: mirror each training image left-right with probability 1/2, drawn from
      ``(seed, epoch)`` (validation and test images never change). The test split shows a
      pear unlike the training pears; flips took the worst test accuracy of seeds 0-9 from
      0.968 to 1.000. ``False`` runs the report's loop exactly.
    - ``optimizer``: ``"adam"`` (:class:`hw3lib.AdamGD` with ``beta1``, ``beta2``, ``eps`` and
      ``bias_correction``) or ``"sgd"`` (:class:`hw3lib.SGD` with ``momentum``).
    - ``bias_correction``: ``True`` is ``torch.optim.Adam``, ``False`` the report's formula
      (see :class:`hw3lib.AdamGD`).
    - ``seed`` draws the train/validation split, the initial weights, every epoch's batch
      order and flips.
    - ``mode``: the images' channel mode, ``"L"``, ``"LA"``, ``"RGB"`` or ``"RGBA"`` (C = 1 to 4).
    - ``model``: further :class:`LeNet5` arguments (``conv_channels``, ``kernel_size``,
      ``hidden``, ``activation``, ``pooling``, ``input_size``).
    """

    epochs: int = 24
    batch_size: int = 32
    lr: float = 5e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    bias_correction: bool = True
    optimizer: str = "adam"
    momentum: float = 0.0
    seed: int = 0
    mode: str = "L"
    val_fraction: float = 0.3
    hflip: bool = True
    model: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if isinstance(self.lr, bool):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        self.build_optimizer(params={})  # checks lr, betas, eps, momentum
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0 < self.val_fraction < 1):
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction!r}")
        for name in ("bias_correction", "hflip"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.model, dict) or set(self.model) - set(MODEL_KEYS):
            raise ValueError(f"model must be a dict of LeNet5 arguments among {list(MODEL_KEYS)}, got "
                             f"{self.model!r}")
        try:  # stored as JSON in checkpoints: tuples become lists here already
            object.__setattr__(self, "model", json.loads(json.dumps(self.model)))
        except TypeError as err:
            raise ValueError(f"model arguments must be numbers, strings or lists ({err})") from None
        self.build_model(num_classes=2)  # refuses a kernel larger than its input, a bad activation

    @property
    def channels(self):
        """The number of input channels C of ``mode``."""
        return MODES[self.mode]

    def build_optimizer(self, params):
        """The run's optimizer over the model's ``params`` dict."""
        if self.optimizer == "sgd":
            return SGD(self.lr, params, momentum=self.momentum)
        return AdamGD(self.lr, self.beta1, self.beta2, self.eps, params,
                      bias_correction=self.bias_correction)

    def build_model(self, num_classes=3):
        """A fresh :class:`LeNet5` for ``(N, C, H, W)`` images of this ``mode``, seeded by ``seed``."""
        return LeNet5(in_channels=self.channels, num_classes=num_classes, seed=self.seed, **self.model)

    def load_data(self, root=None):
        """The fruit data in this ``mode``, split ``1 - val_fraction : val_fraction`` by ``seed``
        (:func:`hw3lib.data.load_dataset`; ``root`` defaults to ``$HW3_DATA``, then ``data/``)."""
        return load_dataset(root, mode=self.mode, val_fraction=self.val_fraction, seed=self.seed)

    def to_dict(self):
        return asdict(self)


def evaluate(model, X, y, batch_size=EVAL_BATCH):
    """``(loss, accuracy)`` of ``model`` on normalised images ``X (N, C, H, W)`` with labels
    ``y (N,)``: the mean cross-entropy per sample and the fraction of correct predictions,
    over all N samples (batches of ``batch_size``, the last one weighted by its size).
    Forward passes only; the weights do not change."""
    if len(X) == 0 or len(X) != len(y):
        raise ValueError(f"evaluate needs as many labels as images (>= 1), got {len(X)} and {len(y)}")
    cost, loss_sum, correct = CrossEntropyLoss(), 0.0, 0
    for i in range(0, len(X), batch_size):
        probs, yb = model.forward(X[i:i + batch_size]), y[i:i + batch_size]
        loss_sum += cost.get(probs, yb) * len(yb)
        correct += int((probs.argmax(axis=1) == yb).sum())
    return loss_sum / len(X), correct / len(X)


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


@dataclass
class Checkpoint:
    """The state of a run after ``epoch`` completed epochs.

    ``params`` are the latest weights (to resume from), ``best_params`` those of
    ``best_epoch`` (0: none completed, the initial weights); ``optimizer`` is
    :meth:`AdamGD.state_dict`; ``history`` the dict of lists of :func:`fit`; ``mean`` and
    ``std`` (``(C,)``) the training split's normalisation; ``model_config`` the
    :class:`LeNet5` arguments; ``data_sha256`` the dataset's stamp (or ``None``).
    """

    config: TrainConfig
    model_config: dict
    params: dict
    best_params: dict
    optimizer: dict
    epoch: int
    best_epoch: int
    history: dict
    mean: np.ndarray
    std: np.ndarray
    classes: list
    data_sha256: str | None = None

    def build_model(self, best=True):
        """A :class:`LeNet5` holding the best (or, with ``best=False``, the latest) weights."""
        kwargs = dict(self.model_config)
        model = LeNet5(dtype=np.dtype(kwargs.pop("dtype")), **kwargs)
        model.set_params(self.best_params if best else self.params)
        return model


def _architecture_mismatch(model, params, source):
    """A message listing every parameter whose shape differs between ``model`` and ``params``."""
    own = model.get_params()
    diffs = [f"{k}: file {params[k].shape if k in params else 'missing'} vs model "
             f"{own[k].shape if k in own else 'missing'}"
             for k in sorted(set(own) | set(params))
             if k not in own or k not in params or own[k].shape != params[k].shape]
    if diffs:
        return (f"{source} was saved from another architecture; mismatched parameters: "
                + "; ".join(diffs) + ". Build the model with the checkpoint's settings "
                "(Checkpoint.build_model()) or train it afresh")
    return None


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file next to ``path``, flush it to disk, then rename
    it over ``path``: readers see the old file or the new one, never a part. On any failure
    (KeyboardInterrupt included) the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_checkpoint(path, checkpoint):
    """Write ``checkpoint`` to the ``.npz`` file ``path`` atomically (see :func:`atomic_write`).

    Arrays are stored as ``params.W1``, ``best.W1``, ``optim.m.W1``, ``mean``, ``std``; all the
    rest as one JSON string ``meta``. Nothing is pickled."""
    ckpt = checkpoint
    meta = dict(format=FORMAT, version=FORMAT_VERSION, config=ckpt.config.to_dict(),
                model_config=ckpt.model_config, epoch=int(ckpt.epoch), best_epoch=int(ckpt.best_epoch),
                history=ckpt.history, classes=list(ckpt.classes), data_sha256=ckpt.data_sha256)
    arrays = {"meta": np.array(json.dumps(meta, allow_nan=False)),
              "mean": np.asarray(ckpt.mean), "std": np.asarray(ckpt.std),
              **{f"params.{k}": v for k, v in ckpt.params.items()},
              **{f"best.{k}": v for k, v in ckpt.best_params.items()},
              **{f"optim.{k}": v for k, v in ckpt.optimizer.items()}}
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _read_npz(path):
    """Every array of the ``.npz`` file ``path``, read without unpickling anything."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{path} is a single .npy array, not an .npz checkpoint")
        with npz:
            return {key: npz[key] for key in npz.files}
    except (CheckpointError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ValueError as err:
        if "pickle" in str(err):
            raise CheckpointError(f"{path} holds a pickled object; checkpoints are loaded with "
                                  f"allow_pickle=False and never unpickle ({err})") from None
        raise CheckpointError(f"{path} is not a readable checkpoint ({err})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as err:
        raise CheckpointError(f"{path} is truncated or corrupt ({type(err).__name__}: {err}); "
                              "use an earlier checkpoint or train again") from None


def load_checkpoint(path, model=None):
    """Read a checkpoint written by :func:`save_checkpoint`, never unpickling anything.

    Raises :class:`CheckpointError` for a truncated or corrupt file, a pickled object, a file
    from another program or format version. With ``model``, also checks that its architecture
    matches (the message lists the mismatched shapes) and loads the best weights into it.
    """
    arrays = _read_npz(path)
    try:
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise CheckpointError(f"{path} is not a {FORMAT} version {FORMAT_VERSION} file "
                                  f"(format {meta.get('format')!r}, version {meta.get('version')!r})")
        groups = {"params": {}, "best": {}, "optim": {}}
        for key, value in arrays.items():
            group, _, name = key.partition(".")
            if group in groups:
                groups[group][name] = value
        ckpt = Checkpoint(config=TrainConfig(**meta["config"]), model_config=meta["model_config"],
                          params=groups["params"], best_params=groups["best"],
                          optimizer=groups["optim"], epoch=meta["epoch"], best_epoch=meta["best_epoch"],
                          history=meta["history"], mean=arrays["mean"], std=arrays["std"],
                          classes=meta["classes"], data_sha256=meta["data_sha256"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not a valid checkpoint ({type(err).__name__}: {err})"
                              ) from None
    if set(ckpt.params) != set(ckpt.best_params):
        raise CheckpointError(f"{path} is inconsistent: latest and best weights have different names")
    if model is not None:
        message = _architecture_mismatch(model, ckpt.best_params, path)
        if message:
            raise CheckpointError(message)
        model.set_params(ckpt.best_params)
    return ckpt


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
    if data.classes and len(data.classes) != model.num_classes:
        raise ValueError(f"the data has {len(data.classes)} classes {list(data.classes)}, the model "
                         f"{model.num_classes} outputs; build it with "
                         f"config.build_model({len(data.classes)})")
    if np.shape(data.mean) != (expected[0],) or np.shape(data.std) != (expected[0],):
        raise ValueError(f"data.mean and data.std must have shape ({expected[0]},), got "
                         f"{np.shape(data.mean)} and {np.shape(data.std)}")


def _check_resume(ckpt, model, data, config, data_sha256, source):
    message = _architecture_mismatch(model, ckpt.params, source)
    if message:
        raise CheckpointError(message)
    ours, theirs = config.to_dict(), ckpt.config.to_dict()
    diffs = [f"{k}={theirs[k]!r} (this run: {ours[k]!r})"
             for k in ours if k != "epochs" and ours[k] != theirs[k]]
    if diffs:
        raise CheckpointError(f"{source} was trained with other settings: {', '.join(diffs)}; "
                              "resume with the same settings (only epochs may change)")
    if data_sha256 and ckpt.data_sha256 and data_sha256 != ckpt.data_sha256:
        raise CheckpointError(f"{source} was trained on other data (SHA-256 {ckpt.data_sha256}, "
                              f"this data {data_sha256})")
    if not (np.array_equal(ckpt.mean, data.mean) and np.array_equal(ckpt.std, data.std)):
        raise CheckpointError(f"{source} was trained on a training split with other statistics "
                              "(mean/std differ): other data or another split")


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``model`` holds the best validation weights (those of ``best_epoch``; 0 when no epoch
    completed: the initial weights); ``history`` maps each of ``epoch, train_loss, train_acc,
    val_loss, val_acc, seconds`` to one value per completed epoch (JSON-serialisable);
    ``stopped`` is ``None`` for a run that finished, ``"interrupted"`` (KeyboardInterrupt) or
    ``"stopped"`` (the ``stop`` flag); ``mean``/``std`` normalise inputs for :meth:`evaluate`.
    """

    model: LeNet5
    history: dict
    best_epoch: int
    stopped: str | None
    mean: np.ndarray
    std: np.ndarray
    checkpoint_path: Path | None = None

    def evaluate(self, X, y, batch_size=EVAL_BATCH):
        """``(loss, accuracy)`` on raw images ``X (N, C, H, W)`` in [0, 1], normalised with the
        training split's ``mean``/``std`` first (:func:`evaluate`)."""
        return evaluate(self.model, normalize(X, self.mean, self.std), np.asarray(y), batch_size)


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold a Ctrl-C (SIGINT, also the notebook's stop button) back until the block has run,
    then raise it. Signals reach only the main thread; in other threads this does nothing."""
    if threading.current_thread() is not threading.main_thread() or not callable(
            signal.getsignal(signal.SIGINT)):
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        previous(signal.SIGINT, received[0])


def _stop_requested(stop):
    if stop is None:
        return False
    return stop.is_set() if hasattr(stop, "is_set") else bool(stop())


def fit(model, data, config, *, on_batch=None, on_epoch=None, stop=None, checkpoint_path=None,
        resume=None, data_sha256=None, progress=True, restore_best=True):
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
    - ``checkpoint_path``: after each epoch a :class:`Checkpoint` is written there atomically.
    - ``resume``: a checkpoint (path or :class:`Checkpoint`) of a run with the same settings
      (``config.epochs`` may be larger) to go on from; the result equals an uninterrupted
      run's bit for bit. ``data_sha256`` stamps the checkpoint (and must match on resume).
    - ``restore_best``: at the end the model holds the best validation weights.

    Bad settings or data (wrong channel count or image size, labels outside
    ``[0, num_classes)``, a checkpoint of another run) raise ValueError before any work.
    A loss or weight that is no longer finite raises :class:`TrainingError` at that batch,
    naming it; the model then holds the best weights, ``error.result`` the :class:`FitResult`
    so far, and the checkpoint file the last good epoch.
    """
    _check_fit_inputs(model, data, config)
    if resume is not None:
        ckpt = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
        _check_resume(ckpt, model, data, config, data_sha256,
                      "the checkpoint" if isinstance(resume, Checkpoint) else str(resume))
    X_train, X_val = (normalize(X, data.mean, data.std) for X in (data.X_train, data.X_val))
    y_train, y_val = np.asarray(data.y_train), np.asarray(data.y_val)
    optimizer = config.build_optimizer(model.get_params())
    if resume is not None:
        model.set_params(ckpt.params)
        optimizer.load_state_dict(ckpt.optimizer)
        rows, best_epoch, best_params = _rows(ckpt.history), ckpt.best_epoch, _copy(ckpt.best_params)
    else:
        rows, best_epoch, best_params = [], 0, _copy(model.get_params())
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
                         Path(checkpoint_path) if checkpoint_path else None)

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

    bar = tqdm(total=batches * max(config.epochs - first + 1, 0), disable=not progress, unit="batch")
    try:
        # Overflow shows up below as a non-finite loss or weight, reported with its batch.
        with np.errstate(over="ignore", invalid="ignore"):
            for epoch in range(first, config.epochs + 1):
                bar.set_description(f"epoch {epoch}/{config.epochs}")
                start = time.perf_counter()
                loader = dataloader(X_train, y_train, config.batch_size, seed=config.seed, epoch=epoch)
                if config.hflip:
                    loader = _random_hflips(loader, np.random.default_rng((config.seed, epoch, 1)))
                if _train_epoch(model, optimizer, loader, epoch, batches, bar, on_batch, stop,
                                diverged):
                    stopped = "stopped"
                    break
                train_loss, train_acc = evaluate(model, X_train, y_train)
                val_loss, val_acc = evaluate(model, X_val, y_val)
                if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                    raise diverged("the evaluation loss became non-finite", epoch, batches)
                row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                           val_acc=val_acc, seconds=time.perf_counter() - start)
                rows, best_epoch, best_params = state
                if _better(row, rows[best_epoch - 1] if best_epoch else None):
                    best_epoch, best_params = epoch, _copy(model.get_params())
                history = _columns(rows + [row])
                with _interrupts_deferred():  # the checkpoint and the state describe the same epoch
                    if checkpoint_path is not None:
                        save_checkpoint(checkpoint_path, Checkpoint(
                            config, model_config, model.get_params(), best_params,
                            optimizer.state_dict(), epoch, best_epoch, history, data.mean,
                            data.std, list(data.classes), data_sha256))
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
    return snapshot()


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
        params = optimizer.update_params(grads)
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
                         seed=args.seed, mode=args.channels, hflip=args.hflip)
    checkpoint_path, history_path = args.out / "checkpoint.npz", args.out / "history.json"
    resume = None
    if args.resume:
        if not checkpoint_path.is_file():
            raise ValueError(f"--resume: no checkpoint at {checkpoint_path}; run without --resume "
                             "to start afresh")
        resume = load_checkpoint(checkpoint_path)
    data = config.load_data(args.data)
    sha = dataset_sha256(args.data)
    model = config.build_model(len(data.classes))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"LeNet5 ({config.mode}, {config.channels} channel(s)) on {len(data.y_train)} training, "
          f"{len(data.y_val)} validation, {len(data.y_test)} test images; Adam lr={config.lr:g}, "
          f"batch {config.batch_size}, seed {config.seed}, flips {'on' if config.hflip else 'off'}"
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
    _write_json(history_path, result.history)
    done = len(result.history["epoch"])
    if result.stopped:
        print(f"error: interrupted after {done} epoch(s); {checkpoint_path} and {history_path} keep "
              "them: go on with --resume", file=sys.stderr)
        return 130
    best = {k: v[result.best_epoch - 1] for k, v in result.history.items()}
    test_loss, test_acc = result.evaluate(data.X_test, data.y_test)
    print(f"best validation accuracy at epoch {result.best_epoch}; wrote {checkpoint_path} and "
          f"{history_path}")
    print(json.dumps(dict(train_acc=round(best["train_acc"], 6), val_acc=round(best["val_acc"], 6),
                          test_acc=round(test_acc, 6), train_loss=round(best["train_loss"], 6),
                          val_loss=round(best["val_loss"], 6), test_loss=round(test_loss, 6),
                          epochs=done, best_epoch=result.best_epoch,
                          seconds_per_epoch=round(float(np.mean(result.history["seconds"])), 3))))
    return 0
