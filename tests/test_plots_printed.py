"""Every figure of hw3lib.plots, made as the notebooks make it, keeps its text legible in the
PDF: the report prints a figure wider than its text column shrunk to that width, text and all,
so each text's size in points times that factor must stay at or above plots.MIN_PRINTED_PT."""
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image

from hw3lib import im2col, plots
from hw3lib.leakage import PAIRS, LeakageAudit
from hw3lib.trajectories import quadratic

CLASSES = ["Carambula", "Lychee", "Pear"]
RNG = np.random.default_rng(0)
IMAGES = RNG.random((40, 1, 32, 32)).astype(np.float32)
LABELS = np.arange(40) % 3


def width_inches(fig):
    """The width the figure is printed from: its own, or its PNG's where text sticks out of it
    (the notebooks store figures as ``bbox_inches="tight"`` PNGs)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return max(fig.get_figwidth(), Image.open(buffer).width / 100)


def printed_sizes(fig):
    """``(points on paper, text)`` of every visible, non-empty text of ``fig``, smallest first."""
    fig.canvas.draw()
    scale = min(1.0, plots.PRINTED_WIDTH / width_inches(fig))
    return sorted((text.get_fontsize() * scale, text.get_text()) for text in fig.findobj(Text)
                  if text.get_visible() and text.get_text().strip())


def history(epochs=24):
    t = np.arange(1, epochs + 1)
    return dict(epoch=list(t), train_loss=list(1 / t), val_loss=list(1.2 / t),
                train_acc=list(1 - 0.5 / t), val_acc=list(1 - 0.6 / t), seconds=[1.0] * epochs)


def leakage_audit():
    audit = LeakageAudit(near=1.3)
    for method in ("blocked", "random"):
        for seed in (0, 1, 2):
            for pair in PAIRS:
                audit.distances[method, seed, pair] = RNG.random(300) * 7
    return audit


def ladder_rows():
    rungs = ["naive loops", "fancy index + np.add.at", "hw3lib Conv2D", "PyTorch CPU"]
    return [dict(shape=shape, rung=rung, per_image=10.0 ** -k, speedup=10.0 ** k)
            for shape in ("conv1 (1x32x32)", "conv1 (4x32x32)", "conv2 (6x14x14)")
            for k, rung in enumerate(rungs)]


def sweep_params():
    return [dict(lr=lr, hflip=flip) for flip in (False, True) for lr in (2.5e-4, 5e-4, 1e-3, 2e-3)]


x5 = np.arange(25.0).reshape(5, 5)
x4 = np.arange(16.0).reshape(1, 1, 4, 4)
kernel = np.array([[1.0, 0, -1], [0, 1, 0], [-1, 0, 1]])
maps = RNG.random((3, 6, 28, 28))
wrong = np.arange(14)
FIGURES = {  # name -> the figure as a notebook makes it (notebook 01, 02, ...); the playground's
    # live curves (notebook 07) are drawn on screen only, never printed
    "leakage (01)": lambda: plots.plot_leakage(leakage_audit()),
    "samples (01)": lambda: plots.plot_samples(IMAGES, LABELS, CLASSES, per_class=8, seed=0,
                                               array_name="X_train"),
    "class means (01)": lambda: plots.plot_class_means(IMAGES, LABELS, CLASSES),
    "pixel histograms (01)": lambda: plots.plot_pixel_histograms(IMAGES, LABELS, CLASSES),
    "conv example (02)": lambda: plots.plot_conv_example(
        x4[0, 0], kernel, np.zeros((2, 2)), pixel=(1, 0), b=1.0),
    "im2col (03)": lambda: plots.plot_im2col(x5, im2col(x5[None, None], 3, 3), 3, 3, pixel=(1, 2)),
    "im2col padded (03)": lambda: plots.plot_im2col(
        np.pad(x4[0, 0], 1), im2col(x4, 3, 3, stride=2, padding=1), 3, 3, pixel=(0, 1), stride=2,
        label="padded x"),
    "ladder (03)": lambda: plots.plot_ladder(ladder_rows()),
    "step sizes (04)": lambda: plots.plot_step_sizes(
        {"AdamGD (report), no bias correction": np.linspace(3, 1, 100),
         "Adam, bias-corrected (torch.optim.Adam)": np.ones(100)}),
    "trajectories (04)": lambda: plots.plot_trajectories(
        quadratic(25.0), {name: np.linspace([-4.0, 1.0], [0.0, 0.0], 51) for name in
                          ("SGD, lr 0.075", "momentum 0.9, lr 0.01", "AdamGD (report), lr 0.1",
                           "Adam (bias-corrected), lr 0.1")}, extent=(-4.5, 2.0, -1.5, 1.5)),
    "run curves (06)": lambda: plots.plot_run_curves(
        {"report's loop": history()},
        title="The report's loop: training and (random-split) validation, per epoch"),
    "sweep (06)": lambda: plots.plot_sweep(sweep_params(), [[0.98, 0.99, 1.0]] * 8, ["lr", "hflip"],
                                           log=["lr"]),
    "heat map (06)": lambda: plots.plot_sweep_heatmap(
        sweep_params(), [0.98, 0.995, 0.979, 0.998, 1.0, 1.0, 1.0, 1.0], "lr", "hflip",
        title="Mean validation accuracy (blocked split, seeds 0-2)",
        labels={"lr": "learning rate", "hflip": "random flips"}, partial=[True] + [False] * 7),
    "confusion (06)": lambda: plots.plot_confusion(
        {"report's loop": np.diag([30, 30, 30]), "chosen": np.diag([30, 30, 30])}, CLASSES),
    "misclassified (06)": lambda: plots.plot_misclassified(
        IMAGES, LABELS, (LABELS + 1) % 3, wrong, CLASSES, confidence=np.full(40, 0.51),
        title="Misclassified test images of the report's loop"),
    "filters (06)": lambda: plots.plot_filters(RNG.normal(size=(6, 1, 5, 5))),
    "feature maps (06)": lambda: plots.plot_feature_maps(IMAGES[:3], maps, CLASSES),
}


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_prints_below_the_smallest_legible_size(name):
    fig = FIGURES[name]()
    too_small = [(round(size, 1), text) for size, text in printed_sizes(fig) if size < plots.MIN_PRINTED_PT]
    plt.close(fig)
    assert not too_small, f"{name}: text printed under {plots.MIN_PRINTED_PT} pt: {too_small[:5]}"


def test_the_measure_counts_the_shrinking():
    """A 10 pt title on a figure twice the text's width prints at 5 pt."""
    fig = plt.figure(figsize=(2 * plots.PRINTED_WIDTH, 2))
    fig.suptitle("wide", fontsize=10)
    assert printed_sizes(fig) == [(pytest.approx(5.0), "wide")]
    narrow = plt.figure(figsize=(3, 2))
    narrow.text(0.5, 0.5, "at its size", fontsize=6)
    narrow.text(0.5, 0.2, "", fontsize=1)  # empty: nothing prints
    assert printed_sizes(narrow) == [(6.0, "at its size")]
