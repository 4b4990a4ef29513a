"""Every figure the notebooks and the report show: plain functions, each returning a
matplotlib ``Figure`` with a title and labelled axes. Show one with ``plt.show()``."""
import itertools
import math
import re

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager, rcParams
from matplotlib.colors import ListedColormap
from matplotlib.ticker import NullFormatter

from .checks import check_history, is_number
from .im2col import conv_output_size
from .tables import value_text

HIGHLIGHT = "tab:orange"
# The report (hw3lib.export) prints a figure at most PRINTED_WIDTH inches wide: its text column,
# 50em of 13 CSS px = 650 px, under A4's 180 mm between the margins. A wider figure is shrunk to
# that width, its text with it; every text must still print at MIN_PRINTED_PT or more. Hence
# figures at most about 8 inches wide, their smallest text (captions under images, legends,
# numbers in cells, small tick labels) SMALL points: 9 pt shrunk by 6.77 / 8 prints at 7.6 pt.
PRINTED_WIDTH = 650 / 96
MIN_PRINTED_PT = 7.0
SMALL = 9
# Colours for lines and bars told apart by colour alone (classes, rungs, optimizers): four tab10
# colours that stay apart for colour-blind readers too. tab10's default order does not: its
# orange, green and red (C1, C2, C3) look alike under protanopia or deuteranopia
# (tests/test_plots_colours.py simulates both, and tritanopia).
SERIES_COLOURS = ("C0", "C1", "C3", "C9")
LINE_STYLES = ("-", "--", ":")  # for lines that may lie on one another (the grey-level histograms)
# Each optimizer keeps its colour in every figure (notebook 04's step sizes and paths): the
# colour of a label's first word.
OPTIMIZER_COLOURS = {"AdamGD": "C0", "Adam": "C1", "SGD": "C3", "momentum": "C9"}
# a legend below a figure's panels (legend_below): the inches of one line of its text
LEGEND_LINE_INCHES = 0.19
CJK_FONT = "Noto Sans CJK TC"  # Chinese, the original report's language (fonts-noto-cjk: make system-deps)


def draw_chinese_too():
    """Let figures draw Chinese text: :data:`CJK_FONT` after the default sans-serif font, each
    glyph drawn from the first font that has it (DejaVu Sans has no Chinese: matplotlib
    warned "Glyph ... missing", which the report refuses). Done on import, only while the
    font family is matplotlib's default and the font is installed (a family named but missing
    would be warned about at every figure). Text inside ``$...$`` gets no fallback."""
    if rcParams["font.family"] == ["sans-serif"] and any(
            font.name == CJK_FONT for font in font_manager.fontManager.ttflist):
        rcParams["font.family"] = ["sans-serif", CJK_FONT]


draw_chinese_too()


def series_colours(labels, fixed=None):
    """A colour per label, in order: ``fixed[first word of the label]`` where ``fixed`` has it
    (e.g. :data:`OPTIMIZER_COLOURS`), else the next of :data:`SERIES_COLOURS` (then tab10's
    others) that no label of the figure has yet."""
    fixed = fixed or {}
    first = [(re.match(r"\w*", str(label)).group(), label) for label in labels]
    taken = {fixed[word] for word, _ in first if word in fixed}
    tab10 = dict.fromkeys((*SERIES_COLOURS, *(f"C{k}" for k in range(10))))
    spare = itertools.cycle([c for c in tab10 if c not in taken] or list(tab10))
    return {label: fixed[word] if word in fixed else next(spare) for word, label in first}


def _matrix(ax, values, title, highlight, xlabel, ylabel):
    """Draw a 2-D array as a grid of numbers; cells where ``highlight`` (None: none) is True
    are coloured. A y label of one letter (an index: "i") stands upright: turned, beside a
    tick label it read as a sign ("i 1" as "-1")."""
    values = np.asarray(values)
    mask = np.zeros(values.shape, bool) if highlight is None else highlight
    ax.imshow(mask, cmap=ListedColormap(["white", HIGHLIGHT]), vmin=0, vmax=1, aspect="equal")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=SMALL + 1)
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.set_xticks(np.arange(values.shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(values.shape[0] + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.7", linewidth=0.8)
    ax.tick_params(which="both", length=0, labelsize=SMALL)
    ax.set(title=title, xlabel=xlabel)
    upright = dict(rotation=0, ha="right", va="center", labelpad=10) if len(ylabel) == 1 else {}
    ax.set_ylabel(ylabel, **upright)


def _window_mask(shape, top, left, kh, kw):
    mask = np.zeros(shape, bool)
    mask[top:top + kh, left:left + kw] = True
    return mask


def _planes(figure, **arrays):
    """The ``arrays`` as NumPy arrays; ValueError naming ``figure`` unless each is 2-D (one
    channel of one image: ``x[0, 0]`` of an ``(N, C, H, W)`` batch)."""
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    if any(a.ndim != 2 for a in arrays.values()):
        got = ", ".join(f"{name} {a.shape}" for name, a in arrays.items())
        raise ValueError(f"{figure} draws one channel of one image, 2-D arrays, got {got}: pass e.g. "
                         "x[0, 0] and W[0, 0] of (N, C, H, W) and (F, C, kh, kw) arrays")
    return arrays.values()


def _example_output(x, kh, kw, stride, pixel, name, given, expected):
    """``(OH, OW)`` of a ``kh x kw`` window with ``stride`` over ``x (H, W)``; ValueError when
    the shape ``given`` of the array ``name`` is not ``expected(OH, OW)`` or ``pixel`` lies
    outside the output: the figure would colour another field than the output's, or none."""
    oh, ow = conv_output_size(x.shape, (kh, kw), stride)
    if tuple(given) != expected(oh, ow):
        raise ValueError(f"a {kh}x{kw} kernel with stride {stride} over the {x.shape[0]}x{x.shape[1]} x "
                         f"gives {name} of shape {expected(oh, ow)}, not {tuple(given)}: pass the kernel "
                         f"and stride {name} was computed with, and x padded if the convolution pads")
    if not (0 <= pixel[0] < oh and 0 <= pixel[1] < ow):
        raise ValueError(f"pixel {tuple(pixel)} lies outside the {oh}x{ow} output")
    return oh, ow


def plot_conv_example(x, W, out, pixel=(0, 0), stride=1, b=None):
    """One channel's convolution with numbers: ``x (H, W)`` (already padded, if the convolution
    pads), kernel ``W (kh, kw)``, bias ``b`` (a number, named in the title when given) and
    ``out (OH, OW)``; the receptive field of output ``pixel = (row, col)`` and that output are
    coloured."""
    x, W, out = _planes("plot_conv_example", x=x, W=W, out=out)
    kh, kw = W.shape
    r, q = pixel
    _example_output(x, kh, kw, stride, pixel, "out", out.shape, lambda oh, ow: (oh, ow))
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 3.2), width_ratios=[x.shape[1], kw, out.shape[1]])
    # the axes named as in notebook 02's formulas: input pixel (u, v) = (r s + i, q s + j)
    _matrix(axes[0], x, "input x", _window_mask(x.shape, r * stride, q * stride, kh, kw), "v", "u")
    _matrix(axes[1], W, "kernel W", None, "j", "i")
    _matrix(axes[2], out, "output y", _window_mask(out.shape, r, q, 1, 1), "q", "r")
    bias = "" if b is None else f" (here {float(b):g})"
    fig.suptitle(f"y[{r}, {q}] = the sum of the coloured patch of x times W, plus the bias b{bias}")
    fig.tight_layout()
    return fig


def plot_im2col(x, cols, kh, kw, pixel=(0, 0), stride=1, label="input x"):
    """im2col of one image with one channel: ``x (H, W)`` (already padded, if the convolution
    pads) and its ``cols (kh * kw, OH * OW)``; the receptive field of output
    ``pixel = (row, col)`` and the column it becomes are coloured."""
    x, cols = _planes("plot_im2col", x=x, cols=cols)
    r, q = pixel
    _, ow = _example_output(x, kh, kw, stride, pixel, "cols", cols.shape,
                            lambda oh, ow: (kh * kw, oh * ow))
    column = np.zeros(cols.shape, bool)
    column[:, r * ow + q] = True
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.4), width_ratios=[x.shape[1] + 1, cols.shape[1]])
    _matrix(axes[0], x, f"{label} ({x.shape[0]}x{x.shape[1]}),\nfield of output ({r}, {q})",
            _window_mask(x.shape, r * stride, q * stride, kh, kw), "column", "row")
    _matrix(axes[1], cols, f"im2col(x): column {r * ow + q}\n= that field, read row by row", column,
            "output pixel p = r * OW + q", "kernel offset (i, j) as i * kw + j")
    fig.suptitle(f"Each {kh}x{kw} receptive field becomes one column of the im2col matrix")
    fig.tight_layout()
    return fig


def plot_ladder(rows):
    """The performance ladder from :func:`hw3lib.ladder.time_ladder`: milliseconds per image
    of each rung, one group of bars per layer, log scale, speed-ups written at the bars."""
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    rungs = list(dict.fromkeys(r["rung"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.35 * len(rows) + 0.3 * len(shapes)))
    height = 0.8 / len(rungs)
    colours = series_colours(rungs)
    for k, rung in enumerate(rungs):
        mine = {r["shape"]: r for r in rows if r["rung"] == rung}
        ys = [i + k * height for i, s in enumerate(shapes) if s in mine]
        ms = [1e3 * mine[s]["per_image"] for s in shapes if s in mine]
        ax.barh(ys, ms, height, label=rung, color=colours[rung])
        for y, v, s in zip(ys, ms, [s for s in shapes if s in mine]):
            ax.text(v, y, f" {mine[s]['speedup']:.0f}x", va="center", fontsize=SMALL)
    ax.set_xscale("log")
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(shapes))], shapes)
    ax.invert_yaxis()
    ax.set(title="One convolution layer, forward + backward, 1 thread (speed-up vs naive loops)",
           xlabel="milliseconds per image (log scale)", ylabel="layer")
    ax.legend(fontsize=SMALL, loc="lower right")
    fig.tight_layout()
    return fig


def plot_step_sizes(curves, title="Adam's first steps under a constant gradient"):
    """Step sizes over the first steps: ``curves`` maps a label to ``(T,)`` values for steps
    ``t = 1..T`` (e.g. ``|p_t - p_{t-1}| / lr``); log-scaled step axis. An optimizer's curve has
    its colour in :func:`plot_trajectories` too (:data:`OPTIMIZER_COLOURS`, by the label's first word)."""
    fig, ax = plt.subplots(figsize=(7, 4.3), layout="constrained")
    colours = series_colours(curves, OPTIMIZER_COLOURS)
    for label, values in curves.items():
        values = np.asarray(values)
        ax.plot(np.arange(1, len(values) + 1), values, label=label, color=colours[label])
    ax.set_xscale("log")
    ax.set(title=title, xlabel="step t (log scale)", ylabel="step size / learning rate")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2, fontsize=SMALL)  # below: clear of every curve
    return fig


def plot_trajectories(objective, paths, extent, levels=20):
    """Optimizer paths on a 2-D function. ``objective`` is a
    :class:`hw3lib.trajectories.Objective`, ``paths`` maps a label to a ``(K + 1, 2)`` path,
    ``extent = (xmin, xmax, ymin, ymax)``; contours are log-spaced. The paths share their start.
    An optimizer's path has its colour in :func:`plot_step_sizes` too (:data:`OPTIMIZER_COLOURS`)."""
    xmin, xmax, ymin, ymax = extent
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, 300), np.linspace(ymin, ymax, 300))
    fz = objective.f(gx, gy)
    low = max(float(fz.min()), 1e-3 * float(fz.max()), 1e-12)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.contour(gx, gy, fz, levels=np.geomspace(low, float(fz.max()), levels), colors="0.75",
               linewidths=0.7)
    colours = series_colours(paths, OPTIMIZER_COLOURS)
    for label, path in paths.items():
        path = np.asarray(path)
        ax.plot(path[:, 0], path[:, 1], "o-", color=colours[label], markersize=2.5, linewidth=1.2,
                label=f"{label} ({len(path) - 1} steps)")
    first = np.asarray(next(iter(paths.values())))[0]
    ax.plot(*first, "ks", markersize=6, label="start")
    ax.plot(*objective.minimum, "k*", markersize=12, label="minimum")
    ax.set(xlim=(xmin, xmax), ylim=(ymin, ymax), title=f"Optimizer paths on the {objective.name}",
           xlabel="x", ylabel="y")
    ax.legend(fontsize=SMALL, loc="best")
    fig.tight_layout()
    return fig


def _image_panel(ax, image, xlabel, ylabel=""):
    """One grey image in [0, 1], pixels shown as squares, without ticks."""
    shown = ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(xlabel, fontsize=SMALL)
    ax.set_ylabel(ylabel)
    return shown


def _labelled_images(X, y, classes, name="y"):
    """``(X, y)`` as NumPy arrays; ValueError unless ``X`` holds images ``(N, C, H, W)`` (C of 1
    to 4, the modes L to RGBA) and ``y`` ``N`` integer labels indexing ``classes``: else images
    of a label would be left out, or rows of pixels drawn as images, without a word."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 4 or not 1 <= X.shape[1] <= 4:
        last = " (channels last? X.transpose(0, 3, 1, 2))" if X.ndim == 4 and X.shape[3] <= 4 else ""
        raise ValueError(f"X must be images (N, C, H, W) with C of 1-4 channels, got shape "
                         f"{X.shape}{last}")
    if y.shape != (len(X),) or not (y.dtype.kind in "iu" and y.min(initial=0) >= 0
                                     and y.max(initial=0) < len(classes)):
        raise ValueError(f"{name} must be {len(X)} integer labels, one per image of X, each indexing the "
                         f"{len(classes)} classes, got dtype {y.dtype} shape {y.shape}"
                         + (f" from {y.min()} to {y.max()}" if y.size and y.dtype.kind in "iu" else ""))
    return X, y


def plot_samples(X, y, classes, per_class=8, seed=0, title="Sample images per class", array_name="X"):
    """A grid of images, one row per class: ``per_class`` of each class drawn at random
    (``seed``) from ``X (N, C, H, W)`` in [0, 1], channel 0 in grey, with labels ``y (N,)``
    indexing ``classes``. Each image is captioned with its index in ``X``, which the figure
    calls ``array_name`` (the caller's name for it, e.g. ``"X_train"``)."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class!r}")
    X, y = _labelled_images(X, y, classes)
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(classes), per_class, squeeze=False,
                             figsize=(0.85 * per_class + 0.6, 1.1 * len(classes) + 0.8))
    for c, (name, row) in enumerate(zip(classes, axes)):
        members = np.flatnonzero(y == c)
        picks = np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False))
        for k, ax in enumerate(row):
            if k < len(picks):
                _image_panel(ax, X[picks[k], 0], f"#{picks[k]}", name if k == 0 else "")
            else:
                ax.set_axis_off()
    fig.suptitle(title)
    fig.supxlabel(f"image index in {array_name}", fontsize=SMALL)
    fig.tight_layout()
    return fig


def plot_class_means(X, y, classes, title="Mean image per class"):
    """The mean of each class's images, ``X (N, C, H, W)`` in [0, 1] (channel 0) with labels
    ``y (N,)`` indexing ``classes``: one panel per class on one grey scale."""
    X, y = _labelled_images(X, y, classes)
    fig, axes = plt.subplots(1, len(classes), squeeze=False, figsize=(2.2 * len(classes) + 1.0, 3.0),
                             layout="constrained")
    for c, (name, ax) in enumerate(zip(classes, axes[0])):
        members = X[y == c, 0]
        shown = _image_panel(ax, members.mean(axis=0), f"mean of {len(members)} images")
        ax.set_title(name)
    fig.colorbar(shown, ax=axes[0].tolist(), label="grey level (0 black, 1 white)")
    fig.suptitle(title)
    return fig


def plot_pixel_histograms(X, y, classes, bins=32, title="Grey levels per class"):
    """Share of pixels in each of ``bins`` equal grey-level bins over [0, 1], one step line per
    class, from ``X (N, C, H, W)`` (all channels) with labels ``y (N,)`` indexing ``classes``;
    log-scaled shares, so the white background and the fruit both show."""
    X, y = _labelled_images(X, y, classes)
    edges = np.linspace(0, 1, bins + 1)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    colours = series_colours(range(len(classes)))
    for c, name in enumerate(classes):
        values = X[y == c].ravel()
        counts, _ = np.histogram(values, edges)
        # line styles too, so that a line drawn over another where they agree still shows
        ax.stairs(counts / max(values.size, 1), edges, label=name, linewidth=1.6, color=colours[c],
                  linestyle=LINE_STYLES[c % len(LINE_STYLES)])
    ax.set_yscale("log")
    ax.set(title=title, xlabel="grey level (0 black, 1 white)", ylabel="share of pixels (log scale)",
           xlim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def legend_below(figure, handles, labels, lines, **options):
    """Put the legend of ``handles`` and ``labels`` below the panels of ``figure``, which grows by
    ``lines`` lines of text to hold it (inside a panel, a legend covers the curves that run
    there); ``options`` go to ``Figure.legend``. Lays the figure out (``tight_layout``)."""
    width, height = figure.get_size_inches()
    room = LEGEND_LINE_INCHES * lines
    figure.set_size_inches(width, height + room)
    legend = figure.legend(handles, labels, **{"loc": "lower left", "fontsize": 8, "frameon": False, **options})
    figure.tight_layout(rect=(0, room / (height + room), 1, 1))
    return legend


def plot_live_curves(history, batches=(), title="Loss and accuracy", figure=None):
    """Loss and accuracy of one training run, drawn while it runs (the playground's curves).

    ``history`` is :func:`hw3lib.train.fit`'s dict of lists (``epoch, train_loss, train_acc,
    val_loss, val_acc``), one value per completed epoch; ``batches`` holds rows
    ``(position, running_loss, running_acc)`` per batch, ``position`` in epochs (batch 5 of
    20 in epoch 2 is 1.25). ``figure``: draw into this ``matplotlib.figure.Figure`` (one made
    without pyplot, which is safe in a background thread); by default a new pyplot figure. The
    legend stands below the panels (:func:`legend_below`), clear of a run's low accuracies."""
    check_history(history)
    fig = figure if figure is not None else plt.figure(figsize=(9, 3.4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    if not history["epoch"] and not len(batches):
        _no_run_hint((ax_loss, ax_acc))
        ax_loss.set(title="cross-entropy loss")
        ax_acc.set(title="accuracy")
        fig.suptitle(title)
        return fig
    trace = np.asarray(batches, dtype=float).reshape(-1, 3)
    right = max([1, *history["epoch"], *trace[:, 0]])
    # the running means restart with each epoch: a gap (NaN row) before each epoch's first batch
    trace = np.insert(trace, np.flatnonzero(np.diff(np.ceil(trace[:, 0] - 1e-9))) + 1, np.nan, axis=0)
    for ax, column, name in ((ax_loss, 1, "loss"), (ax_acc, 2, "acc")):
        ax.plot(trace[:, 0], trace[:, column], color="C0", alpha=0.45, linewidth=1,
                label="training: running mean of the epoch's batches")
        ax.plot(history["epoch"], history[f"train_{name}"], "o-", color="C0",
                label="training: after each epoch")
        ax.plot(history["epoch"], history[f"val_{name}"], "s-", color="C1",
                label="validation: after each epoch")
        ax.set_xlim(0, 1.03 * right)  # room for the last epoch's markers
        ax.grid(alpha=0.3)
    ax_loss.set(title="cross-entropy loss", xlabel="epoch", ylabel="loss (mean per image)")
    ax_acc.set(title="accuracy", xlabel="epoch", ylabel="fraction correct", ylim=(0, 1.05))
    fig.suptitle(title)
    legend_below(fig, *ax_acc.get_legend_handles_labels(), lines=1, ncols=3)  # clear of low accuracies
    return fig


def _no_run_hint(axes, text="No run yet: press Train"):
    """Say on empty axes what fills them, instead of showing a blank -0.04..0.04 frame."""
    for ax in axes:
        ax.set(xlim=(0, 1), ylim=(0, 1), xticks=[], yticks=[])
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def plot_run_curves(histories, title="Training and validation, per epoch", splits=("train", "val"),
                    figure=None):
    """Finished runs side by side: ``histories`` maps a run's label to :func:`hw3lib.train.fit`'s
    history (``epoch, train_loss, train_acc, val_loss, val_acc``). Loss on a log scale (left),
    accuracy (right); one colour per run, solid training, dashed validation (``splits`` says
    which of the two to draw). ``figure``: draw into this ``Figure`` (see
    :func:`plot_live_curves`); by default a new pyplot figure."""
    if not isinstance(histories, dict) or "epoch" in histories:
        one = " (one run's? pass {label: history}, e.g. {'run': result.history})" if (
            isinstance(histories, dict) or hasattr(histories, "history")) else ""
        raise ValueError(f"histories must map each run's label to its history, got a "
                         f"{type(histories).__name__}{one}")
    for label, history in histories.items():
        check_history(history, f"histories[{label!r}]")
    if isinstance(splits, str) or not splits or not set(splits) <= {"train", "val"}:
        raise ValueError(f"splits must name the curves to draw, ('train', 'val') or one of them "
                         f"as ('val',), got {splits!r}")
    fig = figure if figure is not None else plt.figure(figsize=(7.5, 3.6))
    ax_loss, ax_acc = fig.subplots(1, 2)
    if not any(h["epoch"] for h in histories.values()):
        _no_run_hint((ax_loss, ax_acc), "No finished epoch yet:\npress Train, then compare")
        fig.suptitle(title)
        return fig
    colours = series_colours(range(len(histories)))  # the playground compares up to 4 apart
    for k, (label, history) in enumerate(histories.items()):
        for split, style in (("train", "-"), ("val", "--")):
            if split not in splits:
                continue
            name = "training" if split == "train" else "validation"
            ax_loss.plot(history["epoch"], history[f"{split}_loss"], style, color=colours[k],
                         marker="o", markersize=2.5, label=f"{label}: {name}")
            ax_acc.plot(history["epoch"], history[f"{split}_acc"], style, color=colours[k],
                        marker="o", markersize=2.5, label=f"{label}: {name}")
    ax_loss.set_yscale("log")
    ax_loss.set(title="cross-entropy loss", xlabel="epoch", ylabel="loss, mean per image (log scale)")
    ax_acc.set(title="accuracy", xlabel="epoch", ylabel="fraction correct")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=SMALL, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(matrices, classes, title="Confusion matrices on the test set"):
    """One panel per confusion matrix: ``matrices`` maps a label to ``(K, K)`` counts (rows the
    true class, columns the predicted one, :func:`hw3lib.metrics.confusion_matrix`), ``classes``
    names the K classes. Cells off the diagonal that hold errors are coloured."""
    if not (isinstance(matrices, dict) and matrices):
        raise ValueError(f"matrices must be a non-empty dict of label -> (K, K) confusion matrix, "
                         f"e.g. {{'LeNet5': cm}}, got a {type(matrices).__name__}")
    if isinstance(classes, str):
        raise ValueError(f"classes must list the class names, e.g. data.classes, got the string "
                         f"{classes!r}")
    k = len(classes)
    for label, cm in matrices.items():
        if np.shape(cm) != (k, k):
            raise ValueError(f"matrices[{label!r}] must be ({k}, {k}) counts, one row and column "
                             f"per class of classes ({k}), got shape {np.shape(cm)}: pass "
                             "hw3lib.metrics.confusion_matrix(y_true, y_pred, num_classes) and the "
                             "class names it counts")
    fig, axes = plt.subplots(1, len(matrices), squeeze=False,
                             figsize=(3.6 * len(matrices) + 0.6, 3.8))
    for ax, (label, cm) in zip(axes[0], matrices.items()):
        cm = np.asarray(cm)
        _matrix(ax, cm, label, (cm > 0) & ~np.eye(len(cm), dtype=bool), "predicted class",
                "true class")
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes, rotation=90, va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_misclassified(X, y_true, y_pred, indices, classes, confidence=None, columns=6,
                       title="Misclassified test images"):
    """The images ``X[indices]`` (``X (N, C, H, W)`` in [0, 1], channel 0 in grey), each
    captioned with its index, its true and predicted class (labels ``(N,)`` indexing
    ``classes``) and, given ``confidence (N,)``, the predicted class's probability. No
    ``indices`` give a small figure saying every image is right, a ValueError where
    ``y_pred`` differs from ``y_true``."""
    X, y_true = _labelled_images(X, y_true, classes, "y_true")
    y_pred = _labelled_images(X, y_pred, classes, "y_pred")[1]
    indices = np.asarray(indices)
    if indices.ndim != 1 or indices.size and not (
            indices.dtype.kind in "iu" and 0 <= indices.min() and indices.max() < len(X)):
        mask = " (a boolean mask? pass np.flatnonzero(mask))" if indices.dtype == bool else ""
        raise ValueError(f"indices must be 1-D integer indices into the {len(X)} images of X, got "
                         f"{indices.tolist() if indices.size <= 8 else indices.shape}{mask}")
    indices = indices.astype(int)
    if len(indices) == 0:
        wrong = int(np.sum(np.asarray(y_true) != np.asarray(y_pred)))
        if wrong:
            raise ValueError(f"no images to show: indices is empty, but {wrong} of the {len(y_true)} "
                             "images are misclassified; pass their indices, "
                             "hw3lib.results.misclassified(y_true, probs)")
        fig, ax = plt.subplots(figsize=(1.25 * columns + 0.4, 1.2))
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"none: all {len(y_true)} images are classified correctly",
                ha="center", va="center")
        fig.suptitle(title)
        return fig
    rows = -(-len(indices) // columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False,
                             figsize=(1.25 * columns + 0.4, 1.5 * rows + 0.7))
    for ax in axes.flat[len(indices):]:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, indices):
        note = "" if confidence is None else f" {confidence[i]:.2f}"
        _image_panel(ax, X[i, 0], f"#{i} {classes[y_true[i]]}\n-> {classes[y_pred[i]]}{note}")
    fig.suptitle(title)
    fig.supxlabel("index in the test set, true class -> predicted class"
                  + ("" if confidence is None else " and its probability"), fontsize=SMALL)
    fig.tight_layout()
    return fig


def plot_filters(W, title="Learned filters of the first convolution"):
    """The kernels ``W (C_out, C_in, kh, kw)`` of a convolution, one panel per (output, input)
    channel pair (rows: input channels), on one colour scale symmetric about 0."""
    W = np.asarray(W)
    if W.ndim != 4:
        raise ValueError(f"W must be (C_out, C_in, kh, kw), got shape {W.shape}")
    c_out, c_in = W.shape[:2]
    limit = float(np.abs(W).max()) or 1.0
    fig, axes = plt.subplots(c_in, c_out, squeeze=False, figsize=(0.95 * c_out + 1.3, 1.1 * c_in + 0.9),
                             layout="constrained")
    for (i, o), ax in np.ndenumerate(axes):
        shown = ax.imshow(W[o, i], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                          aspect="equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"filter {o + 1}", fontsize=SMALL)
        ax.set_ylabel(f"input channel {i + 1}" if o == 0 and c_in > 1 else "")
    fig.colorbar(shown, ax=axes.ravel().tolist(), label="weight")
    fig.suptitle(title)
    return fig


def plot_feature_maps(images, maps, labels, title="Feature maps of the first convolution"):
    """One row per image: ``images (N, C, H, W)`` in [0, 1] (channel 0 in grey) labelled
    ``labels`` (N strings), then its maps ``maps (N, F, h, w)`` (e.g.
    :func:`hw3lib.results.feature_maps`) on one colour scale shared by all rows."""
    images, maps = np.asarray(images), np.asarray(maps)
    if maps.ndim != 4 or len(maps) != len(images) or len(labels) != len(images):
        raise ValueError(f"need maps (N, F, h, w) and N labels for N = {len(images)} images, got "
                         f"maps {maps.shape} and {len(labels)} labels")
    n, f = maps.shape[:2]
    low, high = float(maps.min()), float(maps.max())
    fig, axes = plt.subplots(n, f + 1, squeeze=False, figsize=(0.9 * (f + 1) + 1.3, 1.05 * n + 0.9),
                             layout="constrained")
    for r, row in enumerate(axes):
        _image_panel(row[0], images[r, 0], "input" if r == n - 1 else "", labels[r])
        for c, ax in enumerate(row[1:]):
            shown = ax.imshow(maps[r, c], cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == n - 1:
                ax.set_xlabel(f"map {c + 1}", fontsize=SMALL)
    fig.colorbar(shown, ax=axes[:, 1:].ravel().tolist(), label="activation")
    fig.suptitle(title)
    return fig


def plot_leakage(audit, title="How close held-out images are to training images, and test images "
                              "to validation images"):
    """The leakage audit (:func:`hw3lib.leakage.leakage_audit`): left, the distribution of the
    distance from each validation image to its nearest training image under each split
    method, and from each test image (all audited seeds pooled), with the near-duplicate
    threshold ``audit.near`` marked; right, the share of near duplicates per method and pair
    (:data:`hw3lib.leakage.PAIRS`, test -> validation too)."""
    methods = sorted({method for method, _, _ in audit.distances})
    pairs = list(dict.fromkeys(pair for _, _, pair in audit.distances))
    pooled = {(m, p): np.concatenate([d for (m2, _, p2), d in audit.distances.items()
                                      if (m2, p2) == (m, p)]) for m in methods for p in pairs}
    fig, (ax_hist, ax_bar) = plt.subplots(1, 2, figsize=(8, 3.4), width_ratios=[3, 2])
    edges = np.linspace(0, max(d.max() for d in pooled.values()) * 1.02, 41)
    for k, method in enumerate(methods):
        for pair, style in ((pairs[0], "-"), (pairs[1], ":")):
            values = pooled[method, pair]
            ax_hist.stairs(np.histogram(values, edges)[0] / len(values), edges, color=f"C{k}",
                           linestyle=style, linewidth=1.8, label=f"{method}: {pair}")
    ax_hist.set_ylim(0, 1.8 * ax_hist.get_ylim()[1])  # room above the curves for the legend
    ax_hist.axvline(audit.near, color="0.3", linewidth=1, label="near-duplicate threshold")
    ax_hist.set(title="distance to the nearest training image", xlabel="Euclidean distance "
                "(pixel values in [0, 1])", ylabel="share of images")
    ax_hist.legend(fontsize=SMALL, loc="upper right", title="split: images -> nearest in",
                   title_fontsize=SMALL)
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        shares = [100 * np.mean(pooled[method, pair] <= audit.near) for pair in pairs]
        bars = ax_bar.bar(np.arange(len(pairs)) + (k - (len(methods) - 1) / 2) * width, shares,
                          width, color=f"C{k}", label=f"{method} split")
        ax_bar.bar_label(bars, fmt="%.0f%%", fontsize=SMALL)
    ax_bar.set_xticks(range(len(pairs)), [p.replace(" -> ", "\nnear\n") for p in pairs], fontsize=SMALL)
    ax_bar.set(title="near duplicates", ylabel="% of images", ylim=(0, 105))
    ax_bar.legend(fontsize=SMALL)
    for ax in (ax_hist, ax_bar):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _axis_values(values):
    """Positions for ``values`` on an axis: the numbers themselves when all are numbers
    (booleans not), else 0, 1, ... in sorted order of their text, with the tick labels."""
    if all(is_number(v) for v in values):
        return {v: v for v in values}, None
    labels = sorted({value_text(v) for v in values})
    return {v: labels.index(value_text(v)) for v in values}, labels


def _log_ticks(values, inches=2.8, char_inches=0.08):
    """Ticks for a log axis of ``values`` about ``inches`` wide whose labels
    (:func:`value_text`, about ``char_inches`` a character) do not overlap: the values
    themselves when few and far enough apart, else 1-2-5, 1-3 or 1 times the powers of ten
    within their range (the two ends, or the lowest alone, when fewer than two fall there)."""
    low, high = min(values), max(values)
    if low == high:
        return [low]
    span = 1.1 * max(math.log10(high / low), 0.3)  # about what matplotlib shows, margins and all

    def readable(ticks):
        return all(math.log10(b / a) / span * inches
                   >= char_inches * (len(value_text(a)) + len(value_text(b))) / 2 + 0.1
                   for a, b in zip(ticks, ticks[1:]))

    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    nice = [[m * 10.0 ** k for k in decades for m in subs if low <= m * 10.0 ** k <= high]
            for subs in ((1, 2, 5), (1, 3), (1,))]
    for ticks in (sorted(set(values)), *nice, [low, high]):
        if len(ticks) >= 2 and readable(ticks):
            return ticks
    return [low]


def plot_sweep(params, values, names, log=(), title=None, labels=None, pruned=None):
    """Validation accuracy against each swept setting, one panel per name in ``names``.

    ``params[i]`` is a setting (dict name -> value) and ``values[i]`` its runs' validation
    accuracies (one per seed): each run is a dot at its setting's value (hollow where
    ``pruned[i][k]``, default all False: a run stopped early, its best epoch's accuracy so
    far), and a line joins the mean over every run that shares that value. Names in ``log``
    get a log-scale axis, its ticks chosen not to overlap (:func:`_log_ticks`); ``labels``
    maps a name to its axis label (default: the name)."""
    fig, axes = plt.subplots(1, len(names), squeeze=False, figsize=(3.6 * len(names) + 0.6, 3.7),
                             sharey=True, layout="constrained")
    pruned = pruned or [[False] * len(v) for v in values]
    for ax, name in zip(axes[0], names):
        position, ticks = _axis_values([p[name] for p in params])
        runs = [(position[p[name]], a, cut) for p, v, cuts in zip(params, values, pruned)
                for a, cut in zip(v, cuts)]
        for stopped, style in ((False, dict(label="a run (one seed)")),
                               (True, dict(label="a run pruned (stopped early)", markerfacecolor="none"))):
            chosen = [(x, a) for x, a, cut in runs if cut == stopped]
            if chosen or not stopped:
                ax.plot([x for x, _ in chosen], [a for _, a in chosen], "o", color="C0", alpha=0.5, **style)
        by_x = {}
        for p, v in zip(params, values):
            by_x.setdefault(position[p[name]], []).extend(v)
        line = sorted((x, np.mean(v)) for x, v in by_x.items() if v)
        ax.plot([x for x, _ in line], [m for _, m in line], "s-", color="C1", label="mean of its runs")
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks)
        elif name in log:
            ax.set_xscale("log")
            ticks = _log_ticks(list(position))
            ax.set_xticks(ticks, [value_text(float(t)) for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())  # matplotlib labels them in a short range
        label = (labels or {}).get(name, name)
        ax.set(xlabel=label, title=label)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("best validation accuracy")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=2,
               fontsize=SMALL)  # below the panels: clear of every run
    fig.suptitle(title or "Validation accuracy against each swept setting")
    return fig


def plot_sweep_heatmap(params, means, x, y, title=None, labels=None, floor=0.95, partial=None):
    """The mean validation accuracy over two swept settings ``x`` and ``y`` as a heat map:
    ``params[i]`` is a setting (dict name -> value), ``means[i]`` its mean over seeds (None: no
    run of it scored); where other settings vary too, each cell shows the best of their means.
    Each cell is written with its value; cells with no score are blank. ``partial[i]`` (default
    all False) marks a setting whose runs did not all train every epoch (pruned, failed, still
    to run): its cell's value gets an asterisk, explained under the figure, where a note also
    names the other settings that vary. ``labels`` maps a name to its label (default: the name). The
    colours span ``min(floor, lowest mean)`` to 1, so that a few thousandths do not look like
    a large difference."""
    xs = sorted({p[x] for p in params}, key=lambda v: (isinstance(v, str), v))
    ys = sorted({p[y] for p in params}, key=lambda v: (isinstance(v, str), v))
    grid = np.full((len(ys), len(xs)), np.nan)
    marked = np.zeros(grid.shape, bool)
    for p, m, part in zip(params, means, partial or [False] * len(params)):
        i, j = ys.index(p[y]), xs.index(p[x])
        if m is not None and (np.isnan(grid[i, j]) or m > grid[i, j]):
            grid[i, j], marked[i, j] = m, part
    scored = grid[~np.isnan(grid)]
    low = min(floor, float(scored.min())) if scored.size else floor
    labels = labels or {}
    others = [labels.get(name, name) for name in dict.fromkeys(name for p in params for name in p)
              if name not in (x, y) and len({p.get(name) for p in params}) > 1]
    notes = [f"each cell: the best mean over the {' and '.join(others)}, which "
             f"{'vary' if len(others) > 1 else 'varies'} too (the table has each)"] if others else []
    notes += ["* not every run of it trained all its epochs (pruned, failed or still to run): the "
              "mean of those that trained"] if marked.any() else []
    fig, ax = plt.subplots(figsize=(1.1 * len(xs) + 2.4, 0.7 * len(ys) + 1.8 + 0.3 * len(notes)))
    image = ax.imshow(grid, cmap="viridis", vmin=low, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):  # white on viridis's dark lower half
            ax.text(j, i, f"{value:.3f}" + ("*" if marked[i, j] else ""), ha="center", va="center",
                    fontsize=SMALL, color="white" if value < (low + 1.0) / 2 else "black")
    ax.set_xticks(range(len(xs)), [value_text(v) for v in xs])
    ax.set_yticks(range(len(ys)), [value_text(v) for v in ys])
    ax.set(xlabel=labels.get(x, x), ylabel=labels.get(y, y),
           title=title or "Mean validation accuracy over the seeds")
    fig.colorbar(image, ax=ax, label="validation accuracy")
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, 0.3 * len(notes) / height, 1, 1))
    for k, note in enumerate(reversed(notes)):  # the first the highest
        fig.text(0.01, (0.08 + 0.3 * k) / height, note, fontsize=SMALL - 1, wrap=True)
    return fig
