"""What notebooks 05 and 06 compute from trained models: cached runs, the comparison with the
original report, seeds sweeps, predictions, the misclassified images, feature maps, the stamp.

Training is bit-deterministic on one machine (same settings, same data, same number of BLAS
threads: :func:`load_or_train` always trains on one), so a finished run is cached as a checkpoint under ``runs/notebooks/`` (git ignores
``runs/``), named after a hash of its :class:`~hw3lib.train.TrainConfig`, and reused only when
its settings, the data's SHA-256 and the engine that trained it
(:func:`~hw3lib.engine.engine_stamp`: hw3lib's training code, NumPy, BLAS) match::

    result = load_or_train(TrainConfig())       # trains once, then loads runs/notebooks/...
    result.evaluate(data.X_test, data.y_test)   # (mean cross-entropy, accuracy)
"""
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from .data import normalize, resolve_root
from .checkpoint import CheckpointError, load_checkpoint
from .download import dataset_sha256
from .engine import engine_stamp
from .metrics import bootstrap_interval
from .tables import Table
from .train import FitResult, fit

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = REPO_ROOT / "runs" / "notebooks"
# The original report's figures (4-channel RGBA input, its own AdamGD without bias correction):
# split -> (accuracy, loss). Its losses were not computed alike: its validation loss is below
# what a mean cross-entropy per image can be at its validation accuracy (see notebook 06).
ORIGINAL = {"train": (0.995, 0.009), "val": (0.943, 0.0065), "test": (0.956, 1.066)}


def one_blas_thread():
    """A context in which BLAS uses one thread: on a shared 2-core machine two threads on
    LeNet-5's small matrices stall at random (and runs on other thread counts differ in rounding)."""
    return threadpool_limits(limits=1, user_api="blas")


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


def load_or_train(config, path=None, *, data=None, root=None, progress=False, on_epoch=None, stop=None):
    """The :class:`~hw3lib.train.FitResult` of training with ``config`` on the data at
    ``root`` (default ``$HW3_DATA``, then ``data/``), its best weights in ``result.model``.

    The checkpoint at ``path`` (default :func:`checkpoint_path`) is reused when it finished
    ``config.epochs`` epochs with exactly ``config`` on data of the same SHA-256, trained by
    this engine (:func:`~hw3lib.engine.engine_stamp`); a run of the same settings, data and
    engine cut short is resumed (bit-exact); anything else (absent, other settings, other data,
    edited training code, another NumPy or BLAS, unreadable) is trained afresh with one BLAS
    thread and written there; but a ValueError where that would overwrite another run whose
    test split was evaluated.
    ``data``: the :class:`~hw3lib.data.Dataset` of ``config``, if already loaded (its folder
    is then the root; one built by hand must be of the data at ``root``);
    ``on_epoch`` and ``stop`` go to :func:`~hw3lib.train.fit` (a sweep reports and prunes there).
    A Ctrl-C or ``stop`` while training raises KeyboardInterrupt; the checkpoint keeps the
    finished epochs.
    """
    if data is not None and data.root is not None:  # the data's own folder names it
        if root is not None and Path(root).resolve() != data.root.resolve():
            raise ValueError(f"load_or_train was given data loaded from {data.root} and root "
                             f"{root}: give one, or the same folder")
        root = data.root
    sha = dataset_sha256(root)  # reads every file of the data: once
    path = Path(path) if path is not None else checkpoint_path(config, RUNS_DIR / run_key(sha))
    ckpt = None
    if path.is_file():
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError:
            ckpt = None
    if ckpt is not None and (ckpt.config, ckpt.data_sha256, ckpt.engine) != (config, sha, engine_stamp()):
        ckpt = None  # trained afresh; fit refuses to overwrite a run whose test split was evaluated
    if ckpt is not None and ckpt.epoch >= config.epochs:
        return FitResult.from_checkpoint(ckpt, path)
    data = data if data is not None else config.load_data(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with one_blas_thread():
        result = fit(config.build_model(len(data.classes), data.image_size), data, config, checkpoint_path=path,
                     resume=ckpt, data_sha256=sha, progress=progress, on_epoch=on_epoch, stop=stop)
    if result.stopped:
        raise KeyboardInterrupt(f"training {relative(path)} was {result.stopped} after "
                                f"{len(result.history['epoch'])} epoch(s); run again to resume")
    return result


def quoted_figures(figures):
    """One line saying whether the figures that a notebook's text quotes are still this run's:
    ``figures`` maps a name to ``(as the text writes it, as this run gives it)``, the latter
    text or a function returning it (a run without that figure, such as one of fewer epochs,
    gives "none in this run"). The narrative is written for the stored results; retrained with
    other code, data or settings, the runs may differ, and this line names each checked figure
    that the text must change."""
    def now(value):
        if callable(value):
            try:
                value = value()
            except (IndexError, KeyError, ValueError, StopIteration):
                return "none in this run"
        return str(value)

    stale = [f"{name} {written} (this run: {current})" for name, (written, value) in figures.items()
             if str(written) != (current := now(value))]
    if not stale:
        return f"The {len(figures)} figures of the text checked here are this run's."
    return ("The text quotes figures this run does not give; rewrite what it says about: "
            + "; ".join(stale))


def misclassified(y_true, probs, limit=None):
    """Indices ``(M,)``, in increasing order, of the samples whose most probable class in
    ``probs (N, K)`` differs from ``y_true (N,)``; at most ``limit`` of them."""
    probs, y_true = np.asarray(probs), np.asarray(y_true)
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs must be (N, K) for N = len(y_true) = {len(y_true)} labels, got "
                         f"{probs.shape}")
    return np.flatnonzero(probs.argmax(axis=1) != y_true)[:limit]


def one_per_class(y, num_classes):
    """The index of the first sample of each class ``0..num_classes-1`` in ``y (N,)``."""
    y = np.asarray(y)
    missing = [k for k in range(num_classes) if not (y == k).any()]
    if missing:
        raise ValueError(f"no sample of class(es) {missing} in y; pass labels holding every class")
    return np.array([np.flatnonzero(y == k)[0] for k in range(num_classes)])


def feature_maps(result, X, layers=2):
    """The activations ``(N, C', H', W')`` after the first ``layers`` layers of
    ``result.model`` (2: the first convolution and its activation) for raw images
    ``X (N, C, H, W)`` in [0, 1]."""
    model = result.model
    if not 1 <= layers <= len(model.layers):
        raise ValueError(f"layers must lie in 1..{len(model.layers)}, got {layers}")
    out = normalize(X, result.mean, result.std)
    for layer in model.layers[:layers]:
        out = layer.forward(out)
    return out


def summary_table(model):
    """:class:`Table` of ``model``'s layers (``model.summary()``): output shape per image and
    parameter count, then the total."""
    rows = [(layer, "x".join(map(str, shape)), count) for layer, shape, count in model.summary()]
    return Table(["layer", "output shape", "parameters"], rows + [("total", "", model.num_params())])


def _fixed(value, digits):
    return f"{value:.{digits}f}"


def _measure(result, data):
    """``{split: (loss, accuracy)}`` of a run on its own training and validation splits and,
    through its one test evaluation (:meth:`FitResult.test`), on the test split."""
    test = result.test(data.X_test, data.y_test)
    return {"train": result.evaluate(data.X_train, data.y_train),
            "val": result.evaluate(data.X_val, data.y_val), "test": (test.loss, test.accuracy)}


def comparison_table(runs):
    """:class:`Table` of the accuracy (3 decimals) and mean cross-entropy (2 significant
    digits: the last digits of small float32 losses vary with the CPU's BLAS kernels) on the
    training, validation and test splits: the original report's (:data:`ORIGINAL`, as it
    printed them) beside those of each run in ``runs`` (label -> ``(FitResult, Dataset)``,
    each run measured on its own data's splits)."""
    measured = {label: _measure(result, data) for label, (result, data) in runs.items()}
    rows = [(split, f"{orig_acc:g}", *(_fixed(measured[label][split][1], 3) for label in runs),
             f"{orig_loss:g}", *(f"{measured[label][split][0]:.1e}" for label in runs))
            for split, (orig_acc, orig_loss) in ORIGINAL.items()]
    columns = [f"{what} {label}" for what in ("acc", "loss") for label in ("original", *runs)]
    return Table(["split", *columns[:len(runs) + 1], *columns[len(runs) + 1:]], rows)


def history_table(history):
    """:class:`Table` of a run's ``history``, one row per epoch: accuracies with 3 decimals,
    losses with 4 (the seconds left out: they change from run to run)."""
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    rows = [(epoch, *(_fixed(v, 4 if k.endswith("loss") else 3) for k, v in zip(keys, values)))
            for epoch, *values in zip(*(history[k] for k in ("epoch", *keys)))]
    return Table(["epoch", "train loss", "train acc", "val loss", "val acc"], rows)


def _runs(config, seeds, root, folder, progress):
    """``{seed: (FitResult, Dataset)}``: ``config`` trained (or loaded) once per seed."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: pass e.g. range(3)")
    runs = {}
    for seed in seeds:
        cfg = replace(config, seed=seed)
        data = cfg.load_data(root)
        runs[seed] = load_or_train(cfg, checkpoint_path(cfg, folder, root), data=data, root=root,
                                   progress=progress), data
    return runs


def test_over_seeds(configs, seeds, *, root=None, folder=None, progress=False):
    """Train (or load) each :class:`TrainConfig` of ``configs`` (label -> config) once per
    seed and evaluate each run's kept weights on the test split, once (:meth:`FitResult.test`).

    Returns ``(runs, table)``: ``runs[label][seed]`` is ``(FitResult, TestRecord)``; the
    :class:`Table` has one row per label: the seeds, the test accuracy's mean, sample standard
    deviation over the seeds (None for one seed), 95% bootstrap interval (test images resampled,
    :func:`hw3lib.metrics.bootstrap_interval`), min and max, and the mean test loss."""
    runs, rows = {}, []
    for label, config in configs.items():
        runs[label] = {}
        correct = []
        for seed, (result, data) in _runs(config, seeds, root, folder, progress).items():
            runs[label][seed] = result, result.test(data.X_test, data.y_test)
            correct.append(runs[label][seed][1].probs.argmax(axis=1) == data.y_test)
        records = [record for _, record in runs[label].values()]
        acc = np.array([record.accuracy for record in records])
        low, high = bootstrap_interval(correct)
        spread = float(acc.std(ddof=1)) if len(acc) > 1 else None  # as the sweep's tables
        rows.append((label, ",".join(map(str, runs[label])), acc.mean(), spread,
                     f"{low:.3f}-{high:.3f}", acc.min(), acc.max(),
                     float(np.mean([record.loss for record in records]))))
    return runs, Table(["setting", "seeds", "test acc mean", "std", "95% interval", "min", "max",
                        "test loss"], rows)


def weights_sha256(model):
    """A SHA-256 over ``model``'s parameter arrays (names sorted, raw bytes): equal hashes,
    equal weights bit for bit."""
    digest = hashlib.sha256()
    for name, value in sorted(model.get_params().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _optimizer(config):
    """The optimizer of ``config`` in words."""
    if config.optimizer == "sgd":
        return f"SGD, learning rate {config.lr:g}, momentum {config.momentum:g}"
    kind = ("Adam with bias correction (AdamGD, as torch.optim.Adam)" if config.bias_correction
            else "the report's AdamGD (no bias correction)")
    return (f"{kind}, learning rate {config.lr:g}, betas {config.beta1:g}/{config.beta2:g}, "
            f"eps {config.eps:g}")


def _count(n, noun):
    """``"1 thread"``, ``"2 threads"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _blas():
    libs = [f"{lib['internal_api']} {lib['version']}, {lib.get('architecture') or 'generic'} "
            f"kernels, {_count(lib['num_threads'], 'thread')} by default"
            for lib in threadpool_info() if lib["user_api"] == "blas"]
    return "; ".join(libs) or "none found by threadpoolctl"


def stamp_table(result=None, config=None, *, environment=True, data_root=None):
    """The reproducibility stamp as a two-column :class:`Table`.

    With ``environment``: the rows the report's export writes itself
    (:func:`hw3lib.report.stamp_rows`: hw3lib version and git commit, Python and NumPy,
    platform, the SHA-256 of the data at ``data_root``, default ``$HW3_DATA``). With a
    ``result`` of :func:`~hw3lib.train.fit` and its ``config``: the run's own rows, its seed,
    settings, BLAS library and threads, and the SHA-256 of its kept weights (:func:`weights_sha256`)."""
    from .report import stamp_rows  # the export's own rows; report.py loads nbformat

    if (result is None) != (config is None) or (result is None and not environment):
        raise ValueError("stamp_table needs a result together with its config, or environment=True")
    rows = []
    if environment:
        rows += [row for row in stamp_rows(True, resolve_root(data_root))
                 if row[0] not in ("Notebooks", "Built")]
    if result is not None:
        rows += [("Seed", str(config.seed)),
                 ("Optimizer", _optimizer(config)),
                 ("Schedule", f"{config.epochs} epochs, batch {config.batch_size}, validation "
                              f"{config.val_fraction:g} ({config.split} split)"),
                 ("Images", f"mode {config.mode}, flips {'on' if config.hflip else 'off'}"),
                 ("BLAS", _blas()),
                 ("Threads", f"1 BLAS thread while training; {_count(os.cpu_count(), 'CPU core')}"),
                 ("Weights SHA-256", weights_sha256(result.model))]
    return Table(["item", "value"], rows)
