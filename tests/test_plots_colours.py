"""Colours that carry meaning in the figures of hw3lib.plots: every legend's colours stay apart
for colour-blind readers, and the same thing has the same colour in every figure."""
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from hw3lib import plots
from hw3lib.trajectories import quadratic
from test_plots_printed import FIGURES

# Machado, Oliveira and Fernandes (2009), full severity, on linear RGB.
DEFICIENCIES = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}
APART = 15  # CIELAB distance (CIE76) below which two thin lines or two bars are easily confused


def lab(colour, deficiency=None):
    """CIELAB (D65) of a matplotlib colour, as seen with ``deficiency`` (None: normal vision)."""
    srgb = np.array(to_rgb(colour))
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    if deficiency:
        linear = np.clip(np.array(DEFICIENCIES[deficiency]) @ linear, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ linear / [0.95047, 1.0, 1.08883]
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def legend_colours(fig):
    """``(label, colour)`` of every legend entry of ``fig`` (lines, bars, steps)."""
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [(text.get_text(), handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor())
            for legend in legends for text, handle in zip(legend.get_texts(), legend.legend_handles)]


def test_the_simulation_confuses_what_colour_blind_readers_confuse():
    """tab10's green and red (C2, C3) look alike to a deuteranope, blue and orange to nobody."""
    assert np.linalg.norm(lab("C2", "deuteranopia") - lab("C3", "deuteranopia")) < APART
    assert np.linalg.norm(lab("C1", "protanopia") - lab("C2", "protanopia")) < APART
    for deficiency in DEFICIENCIES:
        assert np.linalg.norm(lab("C0", deficiency) - lab("C1", deficiency)) > 4 * APART


@pytest.mark.parametrize("name", FIGURES)
def test_legend_colours_stay_apart_for_colour_blind_readers(name):
    """Two legend entries of different colours (entries of one colour differ in line style)
    must differ for a protanope, a deuteranope and a tritanope too: in the pixel histograms,
    the ladder and the optimizer paths, colour alone tells the lines and bars apart."""
    fig = FIGURES[name]()
    entries = legend_colours(fig)
    plt.close(fig)
    confused = [(a, b, deficiency) for (a, ca), (b, cb) in itertools.combinations(entries, 2)
                if not np.allclose(to_rgb(ca), to_rgb(cb)) for deficiency in DEFICIENCIES
                if np.linalg.norm(lab(ca, deficiency) - lab(cb, deficiency)) < APART]
    assert not confused, f"legend entries that look alike (label, label, deficiency): {confused}"


def test_each_optimizer_has_one_colour_in_the_step_sizes_and_the_paths():
    """Notebook 04 draws the report's AdamGD and Adam in both figures: the same colour in each."""
    steps = plots.plot_step_sizes({"AdamGD (report), no bias correction": np.linspace(3, 1, 10),
                                   "Adam, bias-corrected (torch.optim.Adam)": np.ones(10)})
    start = np.array([[-4.0, 1.0], [-3.0, 0.5]])
    paths = plots.plot_trajectories(quadratic(25.0), {
        "SGD, lr 0.075": start, "momentum 0.9, lr 0.01": start, "AdamGD (report), lr 0.1": start,
        "Adam (bias-corrected), lr 0.1": start}, (-4.5, 2.0, -1.5, 1.5))
    step_colours = {label.split()[0].rstrip(","): to_rgb(c) for label, c in legend_colours(steps)}
    path_colours = {label.split()[0].rstrip(","): to_rgb(c) for label, c in legend_colours(paths)}
    plt.close("all")
    assert step_colours == {"AdamGD": to_rgb("C0"), "Adam": to_rgb("C1")}
    assert {k: path_colours[k] for k in step_colours} == step_colours
    assert len({path_colours[k] for k in ("SGD", "momentum", "AdamGD", "Adam")}) == 4


def test_series_colours_fixed_by_first_word_then_the_spare_ones_in_order():
    assert plots.series_colours(["a", "b", "c"]) == {"a": "C0", "b": "C1", "c": "C3"}
    assert plots.series_colours(["x", "Adam, lr 1"], plots.OPTIMIZER_COLOURS) == {
        "x": "C0", "Adam, lr 1": "C1"}
    assert plots.series_colours(["Adam", "x", "y"], {"Adam": "C0"}) == {"Adam": "C0", "x": "C1", "y": "C3"}
    colours = plots.series_colours(range(12))
    assert len(set(colours.values())) == 10 and colours[10] == "C0"  # tab10 spent: over again


def test_the_playground_compares_four_runs_in_colours_that_stay_apart():
    """Notebook 07's "compare runs" draws each run's validation curves in its own colour."""
    epochs = list(range(1, 6))
    history = dict(epoch=epochs, train_loss=[1.0] * 5, val_loss=[1.0] * 5, train_acc=[0.5] * 5,
                   val_acc=[0.5] * 5)
    fig = plots.plot_run_curves({f"run {n}": history for n in range(1, 5)}, splits=("val",))
    entries = legend_colours(fig)
    plt.close(fig)
    assert len({to_rgb(c) for _, c in entries}) == 4
    for (a, ca), (b, cb) in itertools.combinations(entries, 2):
        for deficiency in DEFICIENCIES:
            assert np.linalg.norm(lab(ca, deficiency) - lab(cb, deficiency)) >= APART, (a, b, deficiency)
