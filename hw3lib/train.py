"""Training LeNet-5: the report's loop, evaluation, the history and the best weights.

The loop of each epoch is the report's (``forward``, ``cost.get``, ``backward``,
``update_params``, ``set_params``) over the training split in an order drawn from
``(seed, epoch)``, its images randomly mirrored left-right (``TrainConfig.hflip``). After the
epoch's updates the model is *evaluated* on the training and the validation split alike
(forward passes only: no backward pass, no update on validation data), and that row goes
into the history; the weights with the best validation accuracy (ties: the lower validation
loss) are kept. The evaluation itself is :mod:`hw3lib.evaluation`'s, and the run that
:func:`fit` returns, :class:`~hw3lib.trained.FitResult`, :mod:`hw3lib.trained`'s.

Typical use (a notebook)::

    config = TrainConfig(epochs=24)              # the report's Adam settings, bias-corrected
    data = config.load_data()                    # hw3lib.data.Dataset, 70/30 split
    model = config.build_model(len(data.classes), data.image_size)
    result = fit(model, data, config, checkpoint_path="runs/lenet5/checkpoint.npz")
    result.history["val_acc"]                    # choose on validation; then, once:
    result.test(data.X_test, data.y_test)        # the kept weights on the test split, recorded

From a terminal: ``python -m hw3lib train --epochs 24 --out runs/lenet5`` (:mod:`hw3lib.train_cli`).

After each epoch :func:`fit` can write a checkpoint (:mod:`hw3lib.checkpoint`); a run resumed
from it reaches the same weights, bit for bit, as an uninterrupted run with the same settings
(and ``threads``, which the checkpoint records: :attr:`Checkpoint.threads`).
"""
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from tqdm import autonotebook, std  # after tqdm.auto, which imports autonotebook without a warning

from .atomic import interrupts_deferred, remove_leftovers
from .checks import check_array
from .checkpoint import (HISTORY_KEYS, Checkpoint, CheckpointError, architecture_mismatch,
                         load_checkpoint, save_checkpoint, test_data_sha256)
from .config import TrainConfig
from .data import Dataset, dataloader, normalize
from .engine import engine_stamp
from .evaluation import (CHANNELS_LAST, CountedForward, checked_images, checked_labels, eval_batch,
                         evaluate_checked)
from .losses import CrossEntropyLoss
from .model import LeNet5, batch_axis_fix, channels_last
from .parallel import SplitBatch, check_threads
from .trained import FitResult, checkpoint_lock, same_run


class TrainingError(ValueError):
    """Training cannot go on: the loss or the weights stopped being finite numbers."""


class OneBatchWarning(UserWarning):
    """:func:`fit`'s batch size is more than its training images (:func:`one_batch_note`)."""


def one_batch_note(batch_size, n_train, name="batch_size"):
    """Where ``batch_size`` is more than the ``n_train`` training images, a note saying that each
    epoch is then one batch of all of them, naming the setting as ``name`` (train's
    ``--batch-size``); else None."""
    if batch_size <= n_train:
        return None
    return (f"{name} {batch_size} is more than the {n_train} training images, so each epoch is one "
            f"batch of all of them (one optimizer step); a smaller {name} gives more steps per epoch")


def _copy(params):
    return {k: v.copy() for k, v in params.items()}


def epoch_rank(row):
    """How :func:`fit` ranks an epoch's ``row`` of history (a dict with ``val_acc`` and
    ``val_loss``), greater better: the higher validation accuracy, then the lower validation
    loss. Of equal epochs fit keeps the first."""
    return row["val_acc"], -row["val_loss"]


def _better(row, best_row):
    """Whether ``row`` ranks above ``best_row`` (None: no epoch yet) by :func:`epoch_rank`."""
    return best_row is None or epoch_rank(row) > epoch_rank(best_row)


def _columns(rows):
    return {key: [row[key] for row in rows] for key in HISTORY_KEYS}


def _rows(history):
    return [dict(zip(HISTORY_KEYS, values)) for values in zip(*(history[k] for k in HISTORY_KEYS))]


KINDS = {"data": (Dataset, "config.load_data(root), or hw3lib.data.Dataset(X_train=..., "
                           "y_train=..., ...) for arrays of your own"),
         "config": (TrainConfig, "TrainConfig(epochs=..., lr=...)")}


def check_kind(call, **arguments):
    """ValueError naming ``call`` unless each of ``arguments`` (``data``, ``config``) is of the
    kind :data:`KINDS` gives it (a Dataset, a TrainConfig), with the way to make one."""
    for name, value in arguments.items():
        kind, fix = KINDS[name]
        if not isinstance(value, kind):
            raise ValueError(f"{call} takes a {kind.__name__} as {name}, got a "
                             f"{type(value).__name__}. Fix: {fix}")


def _check_fit_inputs(model, data, config):
    """Refuse a ``model`` other than a LeNet5, and data that cannot train it: checked before
    any work starts."""
    if not isinstance(model, LeNet5):
        raise ValueError(f"fit trains a LeNet5 (checkpoints rebuild it from model.config), got a "
                         f"{type(model).__name__}; train another model with the report's loop over "
                         "batches (model.forward, model.backward, an optimizer's update_params; "
                         "README: The engine)")
    check_kind("fit(model, data, config)", data=data, config=config)
    loaded, ours = data.loaded_with, config.data_settings()
    if loaded is not None and loaded != ours:  # the run would record the config's settings
        differ = [k for k in ours if loaded[k] != ours[k]]
        words = lambda settings: ", ".join(f"{k}={settings[k]!r}" for k in differ)  # noqa: E731
        raise ValueError(f"the data was loaded with {words(loaded)}, the config says {words(ours)}: "
                         "the run would be recorded as trained on the config's data. Fix: load "
                         "the config's, data = config.load_data(root)")
    expected = model.input_shape
    for split in ("train", "val"):
        X, y = getattr(data, f"X_{split}"), checked_labels(getattr(data, f"y_{split}"), f"y_{split}")
        check_array(f"X_{split}", X, f"(N, {', '.join(map(str, expected))})")  # read by fancy indexing
        if X.ndim != 4 or X.shape[1:] != expected:
            hint = (CHANNELS_LAST.format(f"X_{split}") if channels_last(X.shape, expected) else
                    f"the data has {X.shape[1]} channel(s) and the model {expected[0]}: load both "
                    f"with the same mode (TrainConfig.mode, --channels)" if X.ndim == 4 and
                    X.shape[1] != expected[0] else batch_axis_fix(X.shape, expected, f"X_{split}")
                    or "check the image size")
            raise ValueError(f"X_{split} has shape {X.shape}, the model expects (N, "
                             f"{', '.join(map(str, expected))}); {hint}")
        if len(X) == 0 or len(X) != len(y):
            raise ValueError(f"X_{split} and y_{split} must hold the same number (>= 1) of samples, "
                             f"got {len(X)} and {len(y)}")
        if y.min() < 0 or y.max() >= model.num_classes:
            raise ValueError(f"y_{split} holds labels from {y.min()} to {y.max()}, but the model has "
                             f"{model.num_classes} classes (labels 0 to {model.num_classes - 1})")
        checked_images(X, f"X_{split}", fix=", or load the images with TrainConfig.load_data "
                       "(fit normalises them with data.mean and data.std)")  # as FitResult takes
    if len(data.classes) != model.num_classes:
        raise ValueError(f"the data has {len(data.classes)} classes {list(data.classes)}, the model "
                         f"{model.num_classes} outputs; build it with "
                         f"config.build_model({len(data.classes)})")
    if not all(isinstance(a, np.ndarray) and a.shape == (expected[0],) for a in (data.mean, data.std)):
        got = [f"shape {a.shape}" if isinstance(a, np.ndarray) else f"a {type(a).__name__}"
               for a in (data.mean, data.std)]
        raise ValueError(f"data.mean and data.std must be NumPy arrays of shape ({expected[0]},), "
                         f"one number per channel, got {got[0]} and {got[1]}: take them from "
                         "hw3lib.data.fit_normalizer(X_train)")
    if not (np.isfinite(data.mean).all() and np.isfinite(data.std).all() and (data.std > 0).all()):
        raise ValueError(f"data.mean {data.mean} and data.std {data.std} must be finite, std > 0: "
                         "take them from hw3lib.data.fit_normalizer(X_train)")
    if (data.mean < 0).any() or (data.mean > 1).any():  # the images are in [0, 1], checked above
        raise ValueError(f"data.mean {data.mean} lies outside [0, 1], where the raw images' pixels "
                         "lie: it was fitted on other pixels (8-bit ones, 0 to 255?), and would "
                         "normalise these to nearly constant inputs. Fix: take mean and std from "
                         "the images trained on, hw3lib.data.fit_normalizer(X_train)")


def _check_model_fits_config(model, config):
    """ValueError unless ``model`` has the architecture that ``config`` builds
    (:meth:`TrainConfig.build_model`; its seed aside, as the model's weights are its own): the
    checkpoint records both, and a run whose config says another model predicts its image
    files in the config's channel mode and cannot be resumed from ``config.build_model``."""
    differences = config.architecture_differences(model.config)
    params = model.get_params()
    if params and params["W1"].dtype != config.dtype:  # the run would record config.dtype
        differences.append(("dtype", params["W1"].dtype.name, config.dtype))
    if differences:
        differ = [f"{key} {have!r} (the config's {wanted!r})" for key, have, wanted in differences]
        mode = f", mode={config.mode!r}" if any(key == "in_channels" for key, _, _ in differences) else ""
        raise ValueError(f"the model differs from the one the config builds: {'; '.join(differ)}"
                         f"{mode}. The run would record the config's settings. Fix: build the model "
                         "with config.build_model(len(data.classes), data.image_size), or set "
                         "TrainConfig's mode, model and dtype to the model's")


def check_resume(ckpt, model, data, config, data_sha256, source):
    """Refuse to resume the :class:`Checkpoint` ``ckpt`` (read from ``source``, named in the
    message) with ``model``, ``data``, ``config`` and the data stamp ``data_sha256``: a
    CheckpointError for other data, other classes (names or order), another architecture,
    other settings (``epochs`` aside, but not fewer than it has trained), another training
    split or another test split than the one it records (:attr:`Checkpoint.test_sha256`)."""
    other = ("resume with the data it was trained on (the same --data: --resume does not keep "
             "it), or train afresh into another checkpoint (another --out)")
    this = f"this data, at {data.root}," if getattr(data, "root", None) is not None else "this data"
    if data_sha256 and ckpt.data_sha256 and data_sha256 != ckpt.data_sha256:
        raise CheckpointError(f"{source} was trained on other data (SHA-256 {ckpt.data_sha256}, "
                              f"{this} {data_sha256}): {other}")
    if list(ckpt.classes) != list(data.classes):
        raise CheckpointError(f"{source} was trained on the classes {list(ckpt.classes)}, {this} "
                              f"{list(data.classes)}: {other}")
    message = architecture_mismatch(model, ckpt.params, source, ckpt.model_config)
    if message:
        raise CheckpointError(message)
    ckpt.check_settings(config, source)
    if ckpt.epoch > config.epochs:  # equal: nothing to train, the run is finished
        raise CheckpointError(f"{source} has trained {ckpt.epoch} epoch(s) already, config.epochs "
                              f"{config.epochs} asks for fewer: give epochs={ckpt.epoch} to finish "
                              f"it, more to go on")
    if not (np.array_equal(ckpt.mean, data.mean) and np.array_equal(ckpt.std, data.std)):
        raise CheckpointError(f"{source} was trained on a training split with other statistics "
                              f"(mean/std differ), other data or another split: {other}")
    if ckpt.test_sha256 and ckpt.test_sha256 != (digest := test_data_sha256(data.X_test, data.y_test)):
        raise CheckpointError(f"{source} was trained with another test split (SHA-256 "
                              f"{ckpt.test_sha256}, {this} {digest}), which its test evaluations "
                              f"count: {other}")


def _held_run(path):
    """The :class:`Checkpoint` at ``path``, or None where there is no readable one (nothing to
    lose by writing there)."""
    try:
        return load_checkpoint(path) if path.is_file() else None
    except CheckpointError:
        return None


def _refuse_to_overwrite_a_tested_run(path):
    """ValueError when ``path`` holds a run whose test split was evaluated: a fresh run written
    there would lose the record that the test-once rule counts on. Checked before any work; each
    write checks again (:func:`_tests_to_keep`)."""
    held = _held_run(path)
    if held is not None and held.test_evaluations:
        raise ValueError(f"{path} holds another run whose test split was evaluated "
                         f"{held.test_evaluations} time(s); training a fresh one there would lose "
                         "that record: give another path, or resume that run")


def _file_version(path):
    """What changes whenever ``path`` is written (its inode, size and modification time; each
    write replaces the file), or None for no file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _tests_to_keep(path, rows, tested, written=None):
    """``(test_evaluations, test)`` to write into the checkpoint ``path`` with the epoch after
    ``rows`` (the run's rows so far), the run holding ``tested``; read under the checkpoint's
    lock. Where ``path`` holds this run (its history the start of ``rows``) tested more often,
    those of the file: another process tested it since this one read it. ValueError where it
    holds another run whose test split was evaluated: writing over it would lose that record.
    Not read where it is still the version ``written`` (:func:`_file_version`) by this run."""
    if written is not None and _file_version(path) == written:
        return tested  # as this run wrote it: no other process wrote since
    held = _held_run(path)
    if held is None or not held.test_evaluations:
        return tested
    if not (held.epoch <= len(rows) and same_run(held.history, _columns(rows[:held.epoch]))):
        raise ValueError(f"{path} holds another run now (or this one, trained on by another "
                         f"process), whose test split was evaluated {held.test_evaluations} "
                         f"time(s); saving this run's epoch {len(rows) + 1} there would lose that "
                         "record: train into another path")
    return tested if tested[0] >= held.test_evaluations else (held.test_evaluations, held.test)


def stop_requested(stop):
    """Whether ``stop`` (as :func:`fit` takes it: None, a ``threading.Event`` or a callable)
    asks to stop."""
    if stop is None:
        return False
    return stop.is_set() if hasattr(stop, "is_set") else bool(stop())


def fit(model, data, config, *, on_batch=None, on_epoch=None, stop=None, checkpoint_path=None,
        resume=None, data_sha256=None, progress=True, restore_best=True, threads=1):
    """Train ``model``, a :class:`LeNet5`, on ``data`` (a :class:`hw3lib.data.Dataset`) as
    ``config`` says.

    Inputs are normalised with ``data.mean``/``data.std`` (the training split's statistics),
    batch by batch as they are read.
    Each epoch runs the report's loop on ``config.batch_size`` batches of the training split,
    in the order of ``dataloader(..., seed=config.seed, epoch=epoch)``, with (``progress``, the
    default) a ``tqdm.auto`` bar showing the running loss and accuracy (the mean per image over
    the epoch's batches so far, each before its update). Then the history gets one row: the
    loss and accuracy of an evaluation pass (:func:`~hw3lib.evaluation.evaluate`) over the
    training and the validation split, and the epoch's seconds (training and evaluation). With
    ``progress``, a second bar counts the images evaluated once the evaluation has taken
    :data:`~hw3lib.data.PROGRESS_DELAY` seconds (seconds each epoch at 16,000 RGB 64x64 images),
    and goes when it ends.

    - ``on_batch(stats)`` after each batch, ``stats`` a dict of ``epoch, batch, batches,
      loss`` (this batch's) and ``running_loss, running_acc``; ``on_epoch(history)`` after
      each epoch with the history so far.
    - ``stop``: a ``threading.Event`` or a callable, checked after each batch; when set, the
      run ends (``stopped="stopped"``). A KeyboardInterrupt ends it the same way
      (``stopped="interrupted"``). Either way the unfinished epoch is dropped.
    - ``checkpoint_path``: after each epoch a :class:`Checkpoint` is written there atomically,
      stamped with the engine (:func:`~hw3lib.engine.engine_stamp`; EngineChanged, a
      ValueError, when hw3lib's training code was edited after it was imported). A fresh run
      (no ``resume``) refuses a path holding a run whose test split was evaluated: ValueError,
      before any work and at each write, made under the checkpoint's lock, which also keeps
      the test evaluations another process counted into this run's checkpoint meanwhile.
    - ``resume``: a checkpoint (path or :class:`Checkpoint`) of a run with the same settings
      (``config.epochs`` may be larger) to go on from; the result equals an uninterrupted
      run's bit for bit. ``data_sha256`` stamps the checkpoint (and must match on resume).
    - ``restore_best``: at the end the model holds the best validation weights.
    - ``threads``: split each batch over up to this many threads where that pays
      (:class:`hw3lib.parallel.SplitBatch`: large images or wide layers; the course's 32x32
      LeNet stays on one). A run is the same, bit for bit, every time with the same
      ``threads``; with other ``threads`` it differs in rounding. The checkpoint records them.

    A ``config.batch_size`` larger than the training split warns once (:class:`OneBatchWarning`):
    each epoch is then one batch, one optimizer step.
    Bad settings or data (wrong channel count or image size, labels outside
    ``[0, num_classes)``, a checkpoint of another run) raise ValueError before any work.
    A loss or weight that is no longer finite raises :class:`TrainingError` at that batch,
    naming it (an optimizer state that overflowed, at the end of its epoch); the model then
    holds the best weights (with ``restore_best``; else the latest ones), ``error.result``
    the :class:`FitResult` so far, and the checkpoint file the last good epoch.
    """
    _check_fit_inputs(model, data, config)
    for name, hook in (("on_batch", on_batch), ("on_epoch", on_epoch), ("stop", stop)):
        if not (hook is None or callable(hook) or name == "stop" and hasattr(hook, "is_set")):
            event = ", or a threading.Event" if name == "stop" else ""
            raise ValueError(f"{name} must be a function (or None){event}, called during the run, "
                             f"got {hook!r}: pass the function itself, not its result")
    if resume is None:  # a resumed run's checkpoint names a difference first (check_resume)
        _check_model_fits_config(model, config)
    threads = check_threads(threads)
    engine = None
    if checkpoint_path is not None:  # now, not after the first epoch's work
        if Path(checkpoint_path).is_dir():
            raise ValueError(f"checkpoint_path {checkpoint_path} is a folder; give a file's path, "
                             "e.g. runs/lenet5/checkpoint.npz")
        engine = engine_stamp()  # the code this run is trained by (refused if edited since import)
        if resume is None:
            _refuse_to_overwrite_a_tested_run(Path(checkpoint_path))
        Path(checkpoint_path).parent.mkdir(parents=True, exist_ok=True)
    if resume is not None:
        ckpt = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
        check_resume(ckpt, model, data, config, data_sha256,
                     "the checkpoint" if isinstance(resume, Checkpoint) else str(resume))
        _check_model_fits_config(model, config)
    normalizer = (data.mean, data.std)  # applied batch by batch: no normalised copy of the data
    test_sha256 = test_data_sha256(data.X_test, data.y_test)  # the split FitResult.evaluate counts
    y_train, y_val = np.asarray(data.y_train), np.asarray(data.y_val)
    eval_size = eval_batch(model)
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
    written = None  # the version of the checkpoint this run last wrote (_file_version)
    model_config = {**getattr(model, "config", {}), "dtype": model.get_params()["W1"].dtype.name}
    first = len(rows) + 1
    batches = math.ceil(len(y_train) / config.batch_size)
    note = one_batch_note(config.batch_size, len(y_train))
    if note:
        warnings.warn(note, OneBatchWarning, stacklevel=2)
    stopped = None

    def snapshot():
        rows, best_epoch, best_params = state
        if restore_best:
            model.set_params(best_params)
        return FitResult(model, _columns(rows), best_epoch, stopped, data.mean, data.std,
                         Path(checkpoint_path) if checkpoint_path else None, *tested,
                         list(data.classes), config, None if restore_best else len(rows), test_sha256)

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
                             f"TrainConfig(lr={config.lr / 10:g})")

    bar, shown = _progress_bar(batches * max(config.epochs - first + 1, 0), progress)
    try:
        # Overflow shows up below as a non-finite loss or weight, reported with its batch.
        with np.errstate(over="ignore", invalid="ignore"), SplitBatch(model, threads) as net:
            for epoch in range(first, config.epochs + 1):
                bar.set_description(f"epoch {epoch}/{config.epochs}")
                start = time.perf_counter()
                loader = ((normalize(X, *normalizer), y) for X, y in dataloader(
                    data.X_train, y_train, config.batch_size, seed=config.seed, epoch=epoch))
                if config.hflip:
                    loader = _random_hflips(loader, np.random.default_rng((config.seed, epoch, 1)))
                if _train_epoch(net, optimizer, loader, epoch, batches, bar, on_batch, stop,
                                diverged):
                    stopped = "stopped"
                    break
                bar.refresh()  # its last batches, drawn within tqdm's interval, shown while evaluating
                if not all(np.isfinite(a).all() for a in optimizer.state_dict().values()):
                    raise diverged("the optimizer's state (its gradient moments) overflowed", epoch,
                                   batches)
                with CountedForward(net, len(y_train) + len(y_val), f"evaluating epoch {epoch}",
                                    progress) as counted:
                    train_loss, train_acc = evaluate_checked(counted, data.X_train, y_train, eval_size,
                                                             normalizer)
                    val_loss, val_acc = evaluate_checked(counted, data.X_val, y_val, eval_size, normalizer)
                if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                    raise diverged("the evaluation loss became non-finite", epoch, batches)
                row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                           val_acc=val_acc, seconds=time.perf_counter() - start)
                rows, best_epoch, best_params = state
                if _better(row, rows[best_epoch - 1] if best_epoch else None):
                    best_epoch, best_params = epoch, _copy(model.get_params())
                history = _columns(rows + [row])
                with (checkpoint_lock(checkpoint_path),
                      interrupts_deferred()):  # the checkpoint and the state describe the same epoch
                    if checkpoint_path is not None:
                        remove_leftovers(checkpoint_path)  # a killed run's half-written files
                        tested = _tests_to_keep(Path(checkpoint_path), rows, tested, written)
                        save_checkpoint(checkpoint_path, Checkpoint(
                            config, model_config, model.get_params(), best_params,
                            optimizer.state_dict(), epoch, best_epoch, history, data.mean,
                            data.std, list(data.classes), data_sha256, *tested, engine,
                            threads, test_sha256))
                        written = _file_version(checkpoint_path)
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
        if stop_requested(stop):
            return True
    return False
