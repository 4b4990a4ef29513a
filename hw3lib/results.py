"""What notebooks 05 and 06 compute from trained models (cached by :mod:`hw3lib.runs`): the
comparison with the original report, seeds sweeps, predictions, the misclassified images,
feature maps.
"""
import warnings
from dataclasses import replace

import numpy as np

from .checkpoint import TestRecord
from .checks import check_history, integer, is_int
from .config import TrainConfig
from .conv import Conv2D
from .data import Dataset, frame_runs, normalize
from .file_order import order_finding, order_fix, order_sentence
from .layers import Flatten
from .metrics import bootstrap_interval
from .model import Sequential
from .runs import checkpoint_path, load_or_train
from .tables import Table
from .trained import FitResult

# The original report's figures (4-channel RGBA input, its own AdamGD without bias correction):
# split -> (accuracy, loss). Its losses were not computed alike: its validation loss is below
# what a mean cross-entropy per image can be at its validation accuracy (see notebook 06).
ORIGINAL = {"train": (0.995, 0.009), "val": (0.943, 0.0065), "test": (0.956, 1.066)}
# How quoted_figures begins when the text is stale: the report's export looks for it.
STALE_FIGURES = "The text quotes figures this run does not give"


def quoted_figures(figures):
    """One line saying whether the figures that a notebook's text quotes are still this run's:
    ``figures`` maps a name to ``(as the text writes it, as this run gives it)``, the latter
    text or a function returning it (a run without that figure, such as one of fewer epochs,
    gives "none in this run"). The narrative is written for the stored results; retrained with
    other code, data or settings, the runs may differ, and this line names each checked figure
    that the text must change."""
    if not (isinstance(figures, dict) and all(isinstance(pair, tuple) and len(pair) == 2
                                              for pair in figures.values())):
        raise ValueError("figures must map each figure's name to (as the text writes it, as this run "
                         "gives it), e.g. {'test accuracy': ('0.956', lambda: f'{acc:.3f}')}")

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
    return f"{STALE_FIGURES}; rewrite what it says about: " + "; ".join(stale)


def seeds_text(seeds):
    """Seeds as a text writes them: ``"0-4"`` for a run of two or more consecutive ones, else
    listed, ``"0, 3"`` (``"2"`` for one)."""
    seeds = [integer("a seed", seed, 0) for seed in seeds]
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def misclassified(y_true, probs, limit=None):
    """Indices ``(M,)``, in increasing order, of the samples whose most probable class in
    ``probs (N, K)`` differs from ``y_true (N,)``; at most ``limit`` of them."""
    probs, y_true = np.asarray(probs), np.asarray(y_true)
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs must be (N, K) for N = len(y_true) = {len(y_true)} labels, got "
                         f"{probs.shape}")
    if limit is not None:
        limit = integer("limit", limit, 0, "how many indices at most")
    return np.flatnonzero(probs.argmax(axis=1) != y_true)[:limit]


def one_per_class(y, num_classes):
    """The index of the first sample of each class ``0..num_classes-1`` in ``y (N,)``:
    ``(num_classes,)``."""
    y, num_classes = np.asarray(y), integer("num_classes", num_classes)
    if y.ndim != 1:
        raise ValueError(f"y must be labels (N,), got shape {y.shape}"
                         + (": one-hot labels? Fix: y.argmax(axis=1)" if y.ndim == 2 else ""))
    missing = [k for k in range(num_classes) if not (y == k).any()]
    if missing:
        raise ValueError(f"no sample of class(es) {missing} in y; pass labels holding every class")
    return np.array([np.flatnonzero(y == k)[0] for k in range(num_classes)])


def feature_maps(result, X, layers=2):
    """The activations ``(N, C', H', W')`` after the first ``layers`` layers of
    ``result.model`` (2: the first convolution and its activation) for raw images
    ``X (N, C, H, W)`` in [0, 1]."""
    if not isinstance(result, FitResult):
        raise ValueError(f"feature_maps takes a run, the FitResult that fit or load_or_train returns "
                         f"(its model, and the mean and std its images are normalised with), got a "
                         f"{type(result).__name__}")
    model = result.model
    if not (is_int(layers) and 1 <= layers <= len(model.layers)):
        raise ValueError(f"layers must lie in 1..{len(model.layers)}, an integer, got {layers!r}")
    out = normalize(result.checked_images(X), result.mean, result.std)  # raw images, as predict takes
    for layer in model.layers[:layers]:
        out = layer.forward(out)
    return out


def _check_model(name, model):
    if not isinstance(model, Sequential):
        raise ValueError(f"{name} takes a model (a Sequential such as LeNet5), got a "
                         f"{type(model).__name__}" + (": pass result.model" if isinstance(model, FitResult) else ""))


def summary_table(model):
    """:class:`Table` of ``model``'s layers (``model.summary()``): output shape per image and
    parameter count, then the total."""
    _check_model("summary_table", model)
    rows = [(layer, "x".join(map(str, shape)), count) for layer, shape, count in model.summary()]
    return Table(["layer", "output shape", "parameters"], rows + [("total", "", model.num_params())])


def maps_text(model):
    """What ``model``'s convolutions make of one image, as notebook 06 writes it: the first
    convolution's filters and their maps, then the size of the maps the dense layers take (after
    the last pooling), ``"6 filters 5x5, 6 maps 28x28, pooled down to 5x5"`` for LeNet-5 on 32x32
    images."""
    _check_model("maps_text", model)
    first = next((i for i, layer in enumerate(model.layers) if isinstance(layer, Conv2D)), None)
    flat = next((i for i, layer in enumerate(model.layers) if isinstance(layer, Flatten)), None)
    if first is None or flat is None or flat < first:
        raise ValueError("maps_text takes a model with a Conv2D and, after it, a Flatten, such as LeNet5")
    filters, _, height, width = model.layers[first].params["W"].shape
    maps, pooled = model.shapes[first + 1], model.shapes[flat]
    return (f"{filters} filters {height}x{width}, {maps[0]} maps {maps[1]}x{maps[2]}, pooled down to "
            + "x".join(map(str, pooled[1:])))


def errors_text(cm, classes):
    """The errors of a confusion matrix ``cm (K, K)`` (rows true, columns predicted class; the
    ``K`` names in ``classes``), the most frequent first, as ``"Pear as Lychee 14, Lychee as
    Pear 2"``; ``"none"`` without errors."""
    cm, classes = np.asarray(cm), list(classes)
    if cm.shape != (len(classes), len(classes)):
        raise ValueError(f"cm must be a (K, K) confusion matrix of the K = {len(classes)} classes "
                         f"{classes}, got shape {cm.shape}")
    cells = sorted(((i, j) for i, j in np.argwhere(cm) if i != j), key=lambda cell: -cm[cell])
    return ", ".join(f"{classes[i]} as {classes[j]} {cm[i, j]}" for i, j in cells) or "none"


def runs_text(y):
    """How :func:`~hw3lib.data.frame_runs` cuts labels ``y (N,)`` into runs of frames, as
    notebook 06 writes it: ``"166 per class, 10 runs each, 30 in all"`` (where classes differ,
    each class's count or runs, ``"160/166/172 per class"``)."""
    y = np.asarray(y)
    if y.ndim != 1 or not len(y):
        raise ValueError(f"y must be labels (N,), N >= 1, got shape {y.shape}")
    runs = frame_runs(y)
    classes = np.unique(y)

    def each(values):
        return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))

    return (f"{each([int((y == c).sum()) for c in classes])} per class, "
            f"{each([len(np.unique(runs[y == c])) for c in classes])} runs each, "
            f"{len(np.unique(runs))} in all")


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
    if not (isinstance(runs, dict) and all(isinstance(pair, tuple) and len(pair) == 2 and isinstance(
            pair[0], FitResult) and isinstance(pair[1], Dataset) for pair in runs.values())):
        raise ValueError("runs must map each run's label to the run and its data, (FitResult, "
                         "Dataset), e.g. {'chosen': (result, data)}")
    measured = {label: _measure(result, data) for label, (result, data) in runs.items()}
    rows = [(split, f"{orig_acc:g}", *(_fixed(measured[label][split][1], 3) for label in runs),
             f"{orig_loss:g}", *(f"{measured[label][split][0]:.1e}" for label in runs))
            for split, (orig_acc, orig_loss) in ORIGINAL.items()]
    columns = [f"{what} {label}" for what in ("acc", "loss") for label in ("original", *runs)]
    return Table(["split", *columns[:len(runs) + 1], *columns[len(runs) + 1:]], rows)


def history_table(history):
    """:class:`Table` of a run's ``history``, one row per epoch: accuracies with 3 decimals,
    losses with 4 (the seconds left out: they change from run to run)."""
    check_history(history)
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    rows = [(epoch, *(_fixed(v, 4 if k.endswith("loss") else 3) for k, v in zip(keys, values)))
            for epoch, *values in zip(*(history[k] for k in ("epoch", *keys)))]
    return Table(["epoch", "train loss", "train acc", "val loss", "val acc"], rows)


def _runs(config, seeds, root, folder, progress):
    """``{seed: (FitResult, Dataset)}``: ``config`` trained (or loaded) once per seed."""
    if is_int(seeds):
        raise ValueError(f"seeds must be the seeds to train, e.g. range({seeds}), got {seeds!r}")
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
    ``seeds``: an iterable such as ``range(5)``; ``root``: the data (default ``$HW3_DATA``,
    then ``data/``); ``folder``: where the runs are cached (default: the
    :func:`~hw3lib.runs.run_folder` of the data at ``root``; a sweep's ``checkpoints`` finds
    its runs), each at its :func:`~hw3lib.runs.checkpoint_path`; ``progress``: as
    :func:`~hw3lib.runs.load_or_train`'s. ValueError for ``configs`` other than a non-empty
    dict of them, and for ``seeds`` that are an int or empty.

    Returns ``(runs, table)``: ``runs[label][seed]`` is ``(FitResult, TestRecord)``; the
    :class:`Table` has one row per label: the seeds, the test accuracy's mean, sample standard
    deviation over the seeds (None for one seed), 95% bootstrap interval (runs of neighbouring
    test frames resampled, 10 per class, :func:`hw3lib.data.frame_runs`, as
    :func:`hw3lib.metrics.bootstrap_interval` says why), min and max, and the mean test loss.
    A warning where the test files are out of frame order (:func:`hw3lib.file_order.order_finding`):
    their runs are then no runs of near-copies, and the interval too narrow."""
    if not (isinstance(configs, dict) and configs and all(isinstance(c, TrainConfig) for c in configs.values())):
        got = ({label: type(c).__name__ for label, c in configs.items()} if isinstance(configs, dict)
               else f"a {type(configs).__name__}")
        raise ValueError(f"configs must map each setting's label to its TrainConfig, e.g. "
                         f"{{'chosen': config}}, got {got}")
    runs, rows = {}, []
    for label, config in configs.items():
        runs[label] = {}
        correct = []
        for seed, (result, data) in _runs(config, seeds, root, folder, progress).items():
            runs[label][seed] = result, result.test(data.X_test, data.y_test)
            correct.append(runs[label][seed][1].probs.argmax(axis=1) == data.y_test)
        records = [record for _, record in runs[label].values()]
        acc = np.array([record.accuracy for record in records])
        low, high = bootstrap_interval(correct, blocks=frame_runs(data.y_test))
        spread = float(acc.std(ddof=1)) if len(acc) > 1 else None  # as the sweep's tables
        rows.append((label, ",".join(map(str, runs[label])), acc.mean(), spread,
                     f"{low:.3f}-{high:.3f}", acc.min(), acc.max(),
                     float(np.mean([record.loss for record in records]))))
    order = order_finding(data.X_test, data.y_test, data.classes)
    if order:
        of, step, neighbour = order
        warnings.warn(f"{order_sentence(step, neighbour, of, 'test')}, so the 95% intervals, which "
                      "resample runs of consecutive test files as runs of near-copies right or wrong "
                      "together, come out too narrow (as if each image were an independent draw). "
                      f"Fix: {order_fix(neighbour)}", stacklevel=2)
    return runs, Table(["setting", "seeds", "test acc mean", "std", "95% interval", "min", "max",
                        "test loss"], rows)


def per_seed_table(runs):
    """One row per setting and seed of :func:`test_over_seeds`'s ``runs``: the validation
    accuracy at the kept epoch, the test accuracy and how many times the run's test split was
    evaluated in its life (1: once, as it should be), a :class:`Table`."""
    if not (isinstance(runs, dict) and all(isinstance(by_seed, dict) and all(
            isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], FitResult)
            and isinstance(pair[1], TestRecord) for pair in by_seed.values()) for by_seed in runs.values())):
        raise ValueError("runs must be test_over_seeds's runs, label -> {seed: (FitResult, TestRecord)}, "
                         "each run with the record of its test: pass the runs test_over_seeds returns "
                         "(a run of your own: (result, result.test(data.X_test, data.y_test)))")
    return Table(["setting", "seed", "val acc (kept epoch)", "test acc", "test evaluations"],
                 [(label, seed, result.best_row["val_acc"], record.accuracy, result.test_evaluations)
                  for label, by_seed in runs.items() for seed, (result, record) in by_seed.items()])
