"""The notebooks' run cache: a run trained once, kept as a checkpoint, loaded when asked again.

Training is bit-deterministic on one machine (same settings, same data, same number of BLAS
threads: :func:`load_or_train` always trains on one), so a finished run is cached as a
checkpoint under ``runs/notebooks/`` (git ignores ``runs/``), named after a hash of its
:class:`~hw3lib.config.TrainConfig`, and reused only when its settings, the data's SHA-256 and
the engine that trained it (:func:`~hw3lib.engine.engine_stamp`: hw3lib's training code,
NumPy, Pillow, BLAS) match::

    result = load_or_train(TrainConfig())           # trains once, then loads runs/notebooks/...
    record = result.test(data.X_test, data.y_test)  # the test split: evaluated once, and counted
    record.loss, record.accuracy                    # (mean cross-entropy, accuracy)
"""
import contextlib
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from .atomic import LockHeld, claimed
from .checkpoint import CheckpointError, load_checkpoint
from .download import dataset_sha256, files_stamp
from .engine import engine_stamp, stamp_differences
from .folders import REPO_ROOT, resolve_root
from .parallel import one_blas_thread
from .train import check_kind, fit, stop_requested
from .trained import FitResult

RUNS_DIR = REPO_ROOT / "runs" / "notebooks"
TURN_POLL = 1.0  # seconds between looks at a run another process trains
_KNOWN = {}  # known_data's last read: the files' stamp and SHA-256, the images read, the Dataset
# known_data keeps a read's decoded images for the next split only up to this size: beside a
# run's Dataset they hold the training images twice (25,000 RGB 64x64 images: 1.2 GB, in every
# worker); larger ones are read again for each split, as each was before
KEEP_IMAGES_BYTES = 2**30


def config_key(config):
    """12 hex digits naming ``config``: a SHA-256 of its settings as sorted JSON."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_folder(root=None):
    """Where the notebooks keep the runs of the data at ``root`` (default ``$HW3_DATA``, then
    ``data/``) trained by this engine, and their sweeps: ``runs/notebooks/<12 hex digits>``,
    named after the data's SHA-256 and :func:`~hw3lib.engine.engine_stamp`. Other data
    or edited training code get a folder of their own, so that their runs and sweep scores
    never stand in for (or overwrite, test counts and all) those of this data and code, and
    going back finds these again."""
    return RUNS_DIR / run_key(dataset_sha256(root))


def run_key(data_sha256):
    """12 hex digits naming data (its :func:`~hw3lib.download.dataset_sha256`) and this engine
    together: a SHA-256 of the two, the data's and :func:`~hw3lib.engine.engine_stamp`."""
    return hashlib.sha256(f"{data_sha256} {engine_stamp()}".encode()).hexdigest()[:12]


def checkpoint_path(config, folder=None, root=None):
    """Where the run of ``config`` is cached: ``folder/lenet5-<config_key>.npz``, ``folder``
    (created if missing) by default :func:`run_folder` of the data at ``root``."""
    folder = Path(folder if folder is not None else run_folder(root))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"lenet5-{config_key(config)}.npz"


def relative(path):
    """``path`` as a POSIX path relative to the repository (for printing), else its name."""
    path = Path(path).resolve()
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name


def _differences(ckpt, config, data_sha256):
    """What differs between the run of checkpoint ``ckpt`` and one of ``config`` on the data of
    ``data_sha256`` trained by this engine, in words: ``"other settings, other data"``..."""
    said = [what for what, same in (("other settings", ckpt.config == config),
                                    ("other data", ckpt.data_sha256 == data_sha256)) if not same]
    return ", ".join(said + stamp_differences(ckpt.engine, engine_stamp()))


def why_trained(config, path, data_sha256, ckpt=None, unreadable=None):
    """Why :func:`load_or_train` trains ``config`` at ``path`` instead of loading it, in one
    line for the person waiting: ``ckpt`` is the checkpoint there (None: none, or unreadable,
    ``unreadable`` then the :class:`~hw3lib.checkpoint.CheckpointError` that says why).
    A notebook's run (``path`` under :data:`RUNS_DIR`) absent from this data's and code's
    folder is looked for in the other folders, and what made it stale is named."""
    here = relative(path)
    if unreadable is not None:  # not "no run yet": the file there is written over
        said = str(unreadable).removeprefix(f"{path} ").split("; ")[0].split(". It cannot")[0]
        return f"training {here} afresh, writing over the file there, which {said}"
    if ckpt is not None and not _differences(ckpt, config, data_sha256):
        return f"resuming {here}, cut short after epoch {ckpt.epoch} of {config.epochs}"
    if ckpt is not None:
        return f"training {here} afresh: it held a run of {_differences(ckpt, config, data_sha256)}"
    path = Path(path).resolve()
    if path.parent.parent == RUNS_DIR.resolve():
        for other in sorted(RUNS_DIR.glob(f"*/{path.name}")):
            try:
                found = load_checkpoint(other)
            except CheckpointError:
                continue
            if found.config == config:
                return (f"training {here}: {relative(other)} holds this run, trained with "
                        f"{_differences(found, config, data_sha256)}")
    return f"training {here}: no run of these settings on this data yet"


def known_data(config, root=None):
    """``(data, sha)``: the :class:`~hw3lib.data.Dataset` of ``config`` at ``root`` and its
    :func:`~hw3lib.download.dataset_sha256`, for :func:`load_or_train` (``data=``,
    ``data_sha256=``). A sweep's worker trains run after run on one folder: the files are read
    and hashed once, and again only once their :func:`~hw3lib.download.files_stamp` changes
    (a file added, removed or written), so that a run never pairs data with the SHA-256 of other
    files. Kept in this process: the SHA-256; the images of the last read setting
    (:meth:`~hw3lib.config.TrainConfig.read_images`: runs that differ only in ``seed``,
    ``val_fraction`` or ``split``, a sweep's seeds, are read once and split each), while they
    take at most :data:`KEEP_IMAGES_BYTES`; and the Dataset of the last data setting
    (:meth:`~hw3lib.config.TrainConfig.data_settings`), their arrays read-only (each run trains
    on the images as read)."""
    files = (resolve_root(root).resolve(), files_stamp(root))  # taken before any file is read
    if _KNOWN.get("files") != files:
        _KNOWN.clear()  # the images freed before others are read
        _KNOWN.update(files=files, sha=dataset_sha256(root))
    known = _KNOWN.get("data")  # looked at first: kept also where its images were not
    if known is not None and known.loaded_with == config.data_settings():
        config.check_fit(known.image_size)  # as splitting checks it, for this config's model
        return known, _KNOWN["sha"]
    del known  # with _KNOWN's, freed before others are read or split
    _KNOWN.pop("data", None)
    images = _KNOWN.get("images")
    if images is None or not config.reads_like(images):
        _KNOWN.pop("images", None)  # freed before others are read (a read that fails leaves none)
        images = _KNOWN["images"] = _read_only(config.read_images(root))
    data = _KNOWN["data"] = _read_only(config.split_images(images))
    if not worth_keeping(images):
        del _KNOWN["images"]  # the training images held once, by the Dataset
    return data, _KNOWN["sha"]


def worth_keeping(images):
    """Whether the decoded ``images`` (a :class:`~hw3lib.data.DecodedImages`) are kept for the
    next split, by :func:`known_data` and the playground: while they take at most
    :data:`KEEP_IMAGES_BYTES`."""
    return images.X.nbytes + images.X_test.nbytes <= KEEP_IMAGES_BYTES


def _read_only(arrays):
    """``arrays`` (a DecodedImages or a Dataset), its arrays made read-only."""
    for array in vars(arrays).values():
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return arrays


def load_or_train(config, path=None, *, data=None, data_sha256=None, root=None, progress=False, on_epoch=None,
                  stop=None):
    """The :class:`~hw3lib.trained.FitResult` of training with ``config`` on the data at
    ``root`` (default ``$HW3_DATA``, then ``data/``), its best weights in ``result.model``.

    The checkpoint at ``path`` (default :func:`checkpoint_path`) is reused when it finished
    ``config.epochs`` epochs with exactly ``config`` on data of the same SHA-256, trained by
    this engine (:func:`~hw3lib.engine.engine_stamp`); a run of the same settings, data and
    engine cut short is resumed (bit-exact); anything else (absent, other settings, other data,
    edited training code, another NumPy or BLAS, unreadable) is trained afresh with one BLAS
    thread and written there; but a ValueError where that would overwrite another run whose
    test split was evaluated.
    ``data``: the :class:`~hw3lib.data.Dataset` of ``config``, if already loaded (its folder
    is then the root; one built by hand must be of the data at ``root``; :func:`fit` refuses
    one loaded with other settings than ``config``'s); ``data_sha256``: its files'
    :func:`~hw3lib.download.dataset_sha256`, given with ``data`` (:func:`known_data`), else
    they are read again to hash them;
    ``on_epoch`` and ``stop`` go to :func:`~hw3lib.train.fit` (a sweep reports and prunes there);
    with ``progress``, a line says why it trains (:func:`why_trained`) above the progress bar.
    A Ctrl-C or ``stop`` while training (or waiting for another process that trains it) raises
    KeyboardInterrupt; the checkpoint keeps the finished epochs.
    """
    check_kind("load_or_train(config, path, data=...)", config=config,
               **({} if data is None else {"data": data}))
    if data is not None and data.root is not None:  # the data's own folder names it
        if root is not None and Path(root).resolve() != data.root.resolve():
            raise ValueError(f"load_or_train was given data loaded from {data.root} and root "
                             f"{root}: give one, or the same folder")
        root = data.root
    if data_sha256 is not None and data is None:
        raise ValueError("load_or_train was given data_sha256 without data: give the data it "
                         "is the SHA-256 of, e.g. data, data_sha256 = known_data(config, root)")
    sha = data_sha256 or dataset_sha256(root)  # reads every file of the data: once
    path = Path(path) if path is not None else checkpoint_path(config, RUNS_DIR / run_key(sha))
    ckpt, _, _ = _run_at(path, config, sha)
    if ckpt is not None and ckpt.epoch >= config.epochs:  # loaded as it is, a read-only folder too
        return FitResult.from_checkpoint(ckpt, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _turn_to_train(path, stop):
        ckpt, loaded, unreadable = _run_at(path, config, sha)  # as a process waited for left it
        if ckpt is not None and ckpt.epoch >= config.epochs:
            return FitResult.from_checkpoint(ckpt, path)
        if progress:
            print(why_trained(config, path, sha, loaded, unreadable))
        data = data if data is not None else config.load_data(root)
        with one_blas_thread():
            result = fit(config.build_model(len(data.classes), data.image_size), data, config, checkpoint_path=path,
                         resume=ckpt, data_sha256=sha, progress=progress, on_epoch=on_epoch, stop=stop)
    if result.stopped:
        raise KeyboardInterrupt(f"training {relative(path)} was {result.stopped} after "
                                f"{len(result.history['epoch'])} epoch(s); run again to resume")
    return result


def _run_at(path, config, data_sha256):
    """``(ckpt, loaded, unreadable)``: the checkpoint at ``path`` where it is a run of ``config``
    on the data of ``data_sha256`` by this engine, finished or not (else None, to train afresh:
    :func:`~hw3lib.train.fit` refuses to overwrite a run whose test split was evaluated); what
    the file holds, for :func:`why_trained`; the CheckpointError where it cannot be read."""
    loaded = unreadable = None
    if path.is_file():
        try:
            loaded = load_checkpoint(path)
        except CheckpointError as err:
            unreadable = err
    same = loaded is not None and (loaded.config, loaded.data_sha256, loaded.engine) == (
        config, data_sha256, engine_stamp())
    return (loaded if same else None), loaded, unreadable


@contextlib.contextmanager
def _turn_to_train(path, stop=None):
    """Hold the run at ``path`` for this process through the block: where another process (two
    notebooks run at once, a notebook beside ``make report``) trains it now, wait, saying so,
    until it ends, so that its finished run is loaded rather than trained twice into one file;
    ``stop`` (as :func:`~hw3lib.train.fit` takes it) set meanwhile raises KeyboardInterrupt.
    The lock (:func:`~hw3lib.atomic.claimed`, on ``path`` with ``.training`` added) ends with its
    holder."""
    turn, waiting = path.with_name(path.name + ".training"), False
    with contextlib.ExitStack() as held:
        while True:
            try:
                held.enter_context(claimed(turn))
                break
            except OSError as err:
                if not isinstance(err, LockHeld):  # no lock can be made there (a read-only
                    break  # folder): fit then says why it cannot write the checkpoint
                if stop_requested(stop):  # a sweep's worker told to stop: not after that run
                    raise KeyboardInterrupt(f"stopped while {err.holder} trained {relative(path)}; "
                                            "run again to load or resume it") from None
                if not waiting:
                    print(f"waiting: {err.holder} is training {relative(path)}; its run is loaded "
                          "when it ends", flush=True)
                    waiting = True
                time.sleep(TURN_POLL)
        yield

