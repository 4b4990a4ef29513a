"""Checkpoints: a run's state as an ``.npz`` file, written whole or not at all, read without pickles.

Checkpoints are ``.npz`` archives without pickled objects (loaded with ``allow_pickle=False``)
written to a temporary file in the target's folder and renamed over the target
(:func:`~hw3lib.atomic.atomic_write`), so a writer killed mid-write leaves the previous
checkpoint intact (and its temporary file, which :func:`hw3lib.train.fit` removes when it next
writes that checkpoint).
"""
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .checks import dead_link, is_int, is_number
from .config import TrainConfig
from .model import LeNet5, architecture

FORMAT = "hw3lib-checkpoint"
FORMAT_VERSION = 2  # 2 added TrainConfig.split and the test record; 1 is read as split "random"
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")


@dataclass(frozen=True)
class TestRecord:
    """The evaluation of a run's kept weights (those of ``epoch``) on the test split.

    ``loss`` is the mean cross-entropy per image, ``accuracy`` the fraction correct, ``probs``
    the class probabilities ``(N, K)``; ``data_sha256`` names the test images and labels it was
    computed on (:func:`test_data_sha256`)."""

    epoch: int
    loss: float
    accuracy: float
    probs: np.ndarray
    data_sha256: str
PICKLED = ("holds a pickled object, which checkpoints never unpickle (loaded with allow_pickle=False: "
           "unpickling runs whatever code the file names); give a checkpoint that `python -m hw3lib "
           "train` or fit wrote, or train afresh")


class CheckpointError(ValueError):
    """A checkpoint file is missing its target, empty, truncated, corrupt, pickled, not a
    checkpoint at all, or does not fit the model or run."""


@dataclass
class Checkpoint:
    """The state of a run after ``epoch`` completed epochs.

    ``params`` are the latest weights (to resume from), ``best_params`` those of
    ``best_epoch`` (0: none completed, the initial weights); ``optimizer`` is
    the optimizer's ``state_dict()`` (AdamGD's or SGD's); ``history`` the dict of lists of :func:`fit`; ``mean`` and
    ``std`` (``(C,)``) the training split's normalisation; ``model_config`` the
    :class:`LeNet5` arguments; ``data_sha256`` the dataset's stamp (or ``None``);
    ``test_evaluations`` how many times the test split was evaluated during the run's life,
    ``test`` the latest such evaluation (:class:`TestRecord`, or ``None``); ``engine`` the
    :func:`~hw3lib.engine.engine_stamp` of the code that trained it, ``threads`` the
    ``threads`` :func:`fit` last trained it with and ``test_sha256`` the
    :func:`test_data_sha256` of the test split :func:`fit` was given (each ``None`` in files
    written before it: unknown).
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
    test_evaluations: int = 0
    test: TestRecord | None = None
    engine: str | None = None
    threads: int | None = None
    test_sha256: str | None = None

    def setting_differences(self, config):
        """``(name, this run's value, config's value)`` for each setting in which ``config`` (a
        :class:`TrainConfig`) differs from this run's, ``epochs`` aside, as ``to_dict`` gives them."""
        theirs, ours = self.config.to_dict(), config.to_dict()
        return [(k, theirs[k], ours[k]) for k in ours if k != "epochs" and ours[k] != theirs[k]]

    def check_settings(self, config, source="the checkpoint"):
        """Raise :class:`CheckpointError` naming each setting in which ``config`` (a
        :class:`TrainConfig`) differs from this run's, ``epochs`` aside: resuming goes on with
        the same settings only."""
        diffs = [f"{k}={theirs!r} (this run: {ours!r})"
                 for k, theirs, ours in self.setting_differences(config)]
        if diffs:
            raise CheckpointError(f"{source} was trained with other settings: {', '.join(diffs)}; "
                                  "resume with the same settings (only epochs may change)")

    def build_model(self, best=True):
        """A :class:`LeNet5` holding the best (or, with ``best=False``, the latest) weights."""
        model = self._fresh_model()
        model.set_params(self.best_params if best else self.params)
        return model

    def _fresh_model(self):
        return model_of(self.model_config)

    def problem(self):
        """What makes this checkpoint unusable, in words, or None: a ``model_config`` of another
        architecture than ``config`` builds (its mode's channels, its ``model``), weights, optimizer state or
        normalisation that do not fit the model of ``model_config`` and the optimizer of
        ``config``, numbers that are not finite, a history that is not one row per epoch up to
        ``epoch`` (``best_epoch`` among them), classes or a test record that do not fit."""
        try:
            model = self._fresh_model()
        except (KeyError, TypeError, ValueError) as err:
            return (f"its model_config {self.model_config!r} builds no model "
                    f"({type(err).__name__}: {err})")
        try:
            differences = self.config.architecture_differences(model.config)
        except (KeyError, TypeError, ValueError) as err:  # e.g. its kernel too large for those inputs
            return ("its model_config and config disagree on the model: config builds none for "
                    f"model_config's inputs ({type(err).__name__}: {err})")
        if differences:  # fit refuses such a pair: the file was edited, or written by hand
            return ("its model_config and config disagree on the model: " + "; ".join(
                f"{key} {have!r} in model_config, {wanted!r} by config" for key, have, wanted
                in differences) + f" (config's mode {self.config.mode!r})" * any(
                key == "in_channels" for key, _, _ in differences))
        own, channels = model.get_params(), model.input_shape[0]
        normaliser = {"mean": np.zeros(channels), "std": np.ones(channels)}
        for prefix, arrays, expected, exact in (
                ("params.", self.params, own, True), ("best.", self.best_params, own, True),
                ("optim.", self.optimizer, self.config.build_optimizer(own).state_dict(), True),
                ("", {"mean": self.mean, "std": self.std}, normaliser, False)):
            problem = _arrays_problem(prefix, arrays, expected, exact)
            if problem:
                return problem
        if not (self.std > 0).all():
            return "its std holds a number <= 0"
        if self.optimizer["t"] < 0:
            return f"its optimizer step count optim.t is {self.optimizer['t']}, below 0"
        epoch, best, history = self.epoch, self.best_epoch, self.history
        if not (_is_count(epoch) and _is_count(best) and best <= epoch and (best == 0) == (epoch == 0)):
            return f"its epoch {epoch!r} and best_epoch {best!r} do not fit (1 <= best_epoch <= epoch)"
        if not (isinstance(history, dict) and all(
                isinstance(history.get(k), list) and len(history[k]) == epoch for k in HISTORY_KEYS)):
            return (f"its history does not hold one row of {', '.join(HISTORY_KEYS)} for each of "
                    f"its {epoch} epoch(s)")
        if history["epoch"] != list(range(1, epoch + 1)) or not all(
                _is_finite_number(v) for k in HISTORY_KEYS for v in history[k]):
            return f"its history is not epochs 1 to {epoch} with a finite number in every column"
        if not (isinstance(self.classes, list) and len(self.classes) == model.num_classes
                and all(isinstance(c, str) for c in self.classes)):
            return f"its classes {self.classes!r} are not {model.num_classes} names, one per output"
        for name in ("data_sha256", "engine", "test_sha256"):
            if not (getattr(self, name) is None or isinstance(getattr(self, name), str)):
                return f"its {name} {getattr(self, name)!r} is not a string"
        if not (self.threads is None or is_int(self.threads) and self.threads >= 1):
            return f"its threads {self.threads!r} is no count of threads (an integer >= 1)"
        return self._test_problem(model.num_classes)

    def _test_problem(self, num_classes):
        test, count = self.test, self.test_evaluations
        if not (_is_count(count) and (test is None or count >= 1)):
            return f"its test_evaluations {count!r} is no count of its test evaluations"
        if test is None:
            return None
        probs = test.probs
        if not (_is_count(test.epoch) and test.epoch <= self.epoch and isinstance(test.data_sha256, str)
                and _is_finite_number(test.loss) and _is_finite_number(test.accuracy)):
            return "its test record is not an epoch, a finite loss and accuracy and a data SHA-256"
        if not (probs.ndim == 2 and probs.shape[1] == num_classes and probs.dtype.kind == "f"
                and np.isfinite(probs).all()):
            return (f"its test.probs is {probs.dtype} {probs.shape}, not finite probabilities "
                    f"(N, {num_classes})")
        return None


def _is_count(value):
    return is_int(value) and value >= 0


def _is_finite_number(value):
    return is_number(value) and math.isfinite(value)


def _arrays_problem(prefix, arrays, expected, exact):
    """How the arrays ``arrays`` (named ``prefix`` + key in the file) differ from ``expected``:
    missing or extra names, another shape or kind of number, with ``exact`` another float dtype
    (float64 weights would be cast to a float32 model's), numbers that are not finite; or None."""
    missing = [key for key in expected if key not in arrays]
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        names = [prefix + k for k in missing or extra]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return (f"{'it lacks' if missing else 'it has the unexpected'} array(s) "
                f"{', '.join(names[:3])}{more}")
    for key, want in expected.items():
        got, name = arrays[key], prefix + key
        if got.shape != want.shape:
            return f"{name} has shape {got.shape}, where its model and optimizer need {want.shape}"
        if got.dtype.kind != want.dtype.kind:
            return f"{name} holds {got.dtype} values, where its model and optimizer need {want.dtype}"
        if exact and want.dtype.kind == "f" and got.dtype != want.dtype:
            return (f"{name} holds {got.dtype} values, where its model and optimizer are "
                    f"{want.dtype} (model_config's dtype): cast the arrays to {want.dtype}, or set "
                    f"model_config's dtype to {got.dtype} if all of them are")
        if got.dtype.kind == "f" and not np.isfinite(got).all():
            return f"{name} holds NaN or infinite numbers"
    return None


def test_data_sha256(X, y):
    """A SHA-256 over test images ``X (N, C, H, W)`` and labels ``y (N,)`` (their values as
    float32 and int64, and their shapes): the same split in another dtype (float64 images,
    int32 labels) is the same split. Arrays of other kinds (class names, fractional labels)
    are hashed as they are, for the checks of images and labels to name."""
    digest = hashlib.sha256()
    for array, kinds, dtype in ((X, "f", "<f4"), (y, "iu", "<i8")):
        array = np.asarray(array)
        array = np.ascontiguousarray(array, dtype if array.dtype.kind in kinds else None)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.data)  # the bytes in place: no copy of float32 images
    return digest.hexdigest()


def model_of(model_config):
    """The :class:`LeNet5` (fresh weights) of a checkpoint's ``model_config``."""
    kwargs = dict(model_config)
    return LeNet5(dtype=np.dtype(kwargs.pop("dtype")), **kwargs)


def _layout(layer):
    """What decides ``layer``'s computation besides its parameters' shapes: its kind and window
    (``None`` for no layer)."""
    return type(layer), *(getattr(layer, name, None) for name in ("kernel_size", "stride", "padding"))


def _layer_differences(model, theirs, most=3):
    """Words for the input shape and each layer in which ``model``, a ``Sequential`` of one's own
    (no ``config``), differs from ``theirs``, a checkpoint's :class:`LeNet5`: another activation
    or pooling, window or input size computes otherwise with weights of the same shapes. The
    first ``most`` layers that differ are named, the others counted."""
    words = [f"input {theirs.input_shape} in the file, {model.input_shape} in the model"
             ] if model.input_shape != theirs.input_shape else []
    name = lambda layer: "no layer" if layer is None else repr(layer)  # noqa: E731
    layers = [f"layer {i} {name(file)} in the file, {name(own)} in the model"
              for i, (file, own) in enumerate(itertools.zip_longest(theirs.layers, model.layers), 1)
              if _layout(file) != _layout(own)]
    more = [f"{len(layers) - most} more layer(s)"] if len(layers) > most else []
    return words + layers[:most] + more


def architecture_mismatch(model, params, source, model_config=None):
    """A message naming every parameter whose shape differs between ``model`` and ``params``
    and, given a checkpoint's ``model_config``, every setting of :func:`hw3lib.model.architecture`
    (activation, pooling, sizes; not seed) and the dtype in which it differs from the model's
    (weights of another dtype would be cast), or, for a ``Sequential`` of one's own, its input
    shape and each layer that differs from the checkpoint's LeNet5 in kind or window; None where
    nothing differs."""
    own = model.get_params()
    shapes = [f"{k}: file {params[k].shape if k in params else 'missing'} vs model "
              f"{own[k].shape if k in own else 'missing'}"
              for k in sorted(set(own) | set(params))
              if k not in own or k not in params or own[k].shape != params[k].shape]
    settings = []
    if model_config is not None:
        theirs, ours = {"dtype": model_config["dtype"]}, {"dtype": own["W1"].dtype.name if own else None}
        if hasattr(model, "config"):
            theirs, ours = {**architecture(model_config), **theirs}, {**architecture(model.config), **ours}
        else:
            settings = _layer_differences(model, model_of(model_config))
        settings = [f"{k} {theirs[k]!r} in the file, {ours[k]!r} in the model"
                    for k in ours if theirs[k] != ours[k]] + settings
    parts = [f"mismatched {what}: " + "; ".join(diffs)
             for what, diffs in (("settings", settings), ("parameters", shapes)) if diffs]
    if parts:
        return (f"{source} was saved from another architecture; " + "; ".join(parts)
                + ". Build the model with the checkpoint's settings (Checkpoint.build_model()) "
                "or train it afresh")
    return None


def save_checkpoint(path, checkpoint):
    """Write ``checkpoint`` to the ``.npz`` file ``path`` atomically
    (:func:`~hw3lib.atomic.atomic_write`).

    Arrays are stored as ``params.W1``, ``best.W1``, ``optim.m.W1``, ``mean``, ``std`` and
    ``test.probs``; all the rest as one JSON string ``meta``. Nothing is pickled. A
    checkpoint that :func:`load_checkpoint` would refuse (:meth:`Checkpoint.problem`: weights
    of other shapes, NaN in its history, ...) is a ValueError, and nothing is written."""
    if not isinstance(checkpoint, Checkpoint) or isinstance(path, Checkpoint):
        got = type(path if isinstance(path, Checkpoint) else checkpoint).__name__
        raise TypeError(f"save_checkpoint(path, checkpoint) takes a path and a Checkpoint, got a "
                        f"{got} where the {'path' if isinstance(path, Checkpoint) else 'Checkpoint'} "
                        "goes. A run's checkpoint is written by fit(..., checkpoint_path=...) or "
                        "`python -m hw3lib train`; model.get_params() gives a model's weights")
    problem = checkpoint.problem()
    if problem:
        raise ValueError(f"not saving {path}: load_checkpoint would refuse this checkpoint, as "
                         f"{problem}. Save what a run holds: its model's get_params(), its "
                         "optimizer's state_dict() and fit's history (fit and `python -m hw3lib "
                         "train` write checkpoints themselves)")
    ckpt = checkpoint
    meta = dict(format=FORMAT, version=FORMAT_VERSION, config=ckpt.config.to_dict(),
                model_config=ckpt.model_config, epoch=int(ckpt.epoch), best_epoch=int(ckpt.best_epoch),
                history=ckpt.history, classes=list(ckpt.classes), data_sha256=ckpt.data_sha256,
                test_evaluations=int(ckpt.test_evaluations), test=None, engine=ckpt.engine,
                threads=ckpt.threads, test_sha256=ckpt.test_sha256)
    test = {}
    if ckpt.test is not None:
        meta["test"] = dict(epoch=int(ckpt.test.epoch), loss=float(ckpt.test.loss),
                            accuracy=float(ckpt.test.accuracy), data_sha256=ckpt.test.data_sha256)
        test = {"test.probs": np.asarray(ckpt.test.probs)}
    arrays = {"meta": np.array(json.dumps(meta, allow_nan=False)), **test,
              "mean": np.asarray(ckpt.mean), "std": np.asarray(ckpt.std),
              **{f"params.{k}": v for k, v in ckpt.params.items()},
              **{f"best.{k}": v for k, v in ckpt.best_params.items()},
              **{f"optim.{k}": v for k, v in ckpt.optimizer.items()}}
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _corrupt(path, why):
    return CheckpointError(f"{path} is truncated or corrupt ({why}); use an earlier checkpoint or "
                           "train again")


def _check_file(path):
    """Refuse what is no checkpoint file by its kind and first bytes, naming what it is."""
    if dead := dead_link(path):
        raise CheckpointError(f"{path} is {dead}; point it at a checkpoint file or remove it")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; move it away or name "
                              "the checkpoint file inside it")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror}; check its permissions") from None
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint; use an earlier "
                              "checkpoint or train again")
    if head.startswith(b"\x80"):  # pickle protocol 2 and later
        raise CheckpointError(f"{path} {PICKLED}")
    if not head.startswith((b"PK", b"\x93NUMPY")):
        raise CheckpointError(f"{path} is not a checkpoint (an .npz archive written by `python -m "
                              f"hw3lib train` or fit; it starts with {head!r}); give the path of one")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):  # numpy's magic numbers
        raise _corrupt(path, f"it starts with {head!r}, no archive")


def _read_npz(path):
    """Every array of the ``.npz`` file ``path``, read without unpickling anything."""
    path = Path(path)
    _check_file(path)
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{path} is a single .npy array, not an .npz checkpoint")
        with npz:
            return {key: npz[key] for key in npz.files}
    except (CheckpointError, FileNotFoundError):
        raise
    except ValueError as err:
        if "Object arrays cannot be loaded" in str(err):  # numpy's words for a pickled array
            raise CheckpointError(f"{path} {PICKLED}") from None
        raise _corrupt(path, err) from None
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 -- whatever np.load and zipfile raise on bad bytes
        # (BadZipFile, EOFError, NotImplementedError for a zip version or method, RuntimeError
        # for an encryption flag, SyntaxError or tokenize's TokenError for an .npy header ...)
        raise _corrupt(path, f"{type(err).__name__}: {err}") from None


def _invalid(path, problem):
    """The error for a file that reads as an archive but holds no usable checkpoint."""
    return CheckpointError(f"{path} is not a valid checkpoint: {problem}. It cannot be resumed or "
                           "loaded: train afresh, into another --out (or delete it)")


def _read_meta(path, arrays):
    """The JSON object of the ``meta`` array of ``arrays``, of this format and a version read."""
    text = arrays.pop("meta", None)
    try:
        meta = json.loads(str(text)) if text is not None and text.ndim == 0 else None
    except ValueError:  # not JSON
        meta = None
    if not isinstance(meta, dict):
        raise _invalid(path, "it has no meta array holding a JSON object")
    version = meta.get("version")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} version {FORMAT_VERSION} file "
                              f"(format {meta.get('format')!r}, version {version!r}): another "
                              "program wrote it; give the path of a checkpoint that `python -m "
                              "hw3lib train` or fit wrote")
    if is_int(version) and version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer hw3lib (checkpoint format version "
                              f"{version}; this one reads versions 1 to {FORMAT_VERSION}): update "
                              "hw3lib to load it, or train afresh with this one")
    if version not in (1, FORMAT_VERSION):
        raise _invalid(path, f"its format version {version!r} is none that hw3lib writes")
    return meta


def load_checkpoint(path, model=None):
    """Read a checkpoint written by :func:`save_checkpoint`, never unpickling anything.

    Raises :class:`CheckpointError` naming what ``path`` is instead: a broken symbolic link (or
    one in a loop), a folder, an unreadable or empty file, a pickled object, a file that is no
    checkpoint at all, a truncated or corrupt one, one from another program or format version,
    one whose contents do not fit together (:meth:`Checkpoint.problem`). With ``model``, also checks that its
    architecture matches (the message lists the mismatched settings, such as the activation,
    and parameter shapes) and loads the best weights into it.
    """
    arrays = _read_npz(path)
    meta = _read_meta(path, arrays)
    try:
        if meta["version"] == 1:  # written before the blocked split existed
            meta["config"] = {**meta["config"], "split": "random"}
        test = meta.get("test")
        if test is not None:
            test = TestRecord(test["epoch"], test["loss"], test["accuracy"], arrays["test.probs"],
                              test["data_sha256"])
        groups = {"params": {}, "best": {}, "optim": {}}
        for key, value in arrays.items():
            group, _, name = key.partition(".")
            if group in groups:
                groups[group][name] = value
        # a file written before TrainConfig had a dtype records its model's alone
        config = TrainConfig(**{"dtype": meta["model_config"]["dtype"], **meta["config"]})
        ckpt = Checkpoint(config=config, model_config=meta["model_config"],
                          params=groups["params"], best_params=groups["best"],
                          optimizer=groups["optim"], epoch=meta["epoch"], best_epoch=meta["best_epoch"],
                          history=meta["history"], mean=arrays["mean"], std=arrays["std"],
                          classes=meta["classes"], data_sha256=meta["data_sha256"],
                          test_evaluations=meta.get("test_evaluations", 0), test=test,
                          engine=meta.get("engine"), threads=meta.get("threads"),
                          test_sha256=meta.get("test_sha256"))
    except KeyError as err:
        raise _invalid(path, f"it has no {err.args[0]!r} entry") from None
    except (TypeError, ValueError) as err:
        raise _invalid(path, f"its meta does not load ({type(err).__name__}: {err})") from None
    problem = ckpt.problem()
    if problem:
        raise _invalid(path, problem)
    if model is not None:
        message = architecture_mismatch(model, ckpt.best_params, path, ckpt.model_config)
        if message:
            raise CheckpointError(message)
        model.set_params(ckpt.best_params)
    return ckpt
