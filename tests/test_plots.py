"""Every figure of hw3lib.plots on small inputs: a title, labelled axes and the expected artists."""
import io
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import font_manager, rcParams
from matplotlib.contour import QuadContourSet
from matplotlib.patches import Rectangle

from hw3lib import conv2d_naive, im2col, plots
from hw3lib.trajectories import quadratic

def assert_labelled(fig):
    """A figure title (or one per axes) and both axis labels on every axes."""
    title = fig._suptitle.get_text() if fig._suptitle else ""
    for ax in fig.axes:
        assert title or ax.get_title(), "missing title"
        assert ax.get_xlabel() and ax.get_ylabel(), f"unlabelled axes {ax.get_title()!r}"


def highlighted(ax):
    """The boolean mask a matrix panel colours."""
    return ax.images[0].get_array().astype(bool)


def test_plot_conv_example_colours_the_field_and_its_output():
    x, W = np.arange(16.0).reshape(4, 4), np.arange(9.0).reshape(3, 3)
    out = conv2d_naive(x[None, None], W[None, None], np.zeros(1))[0, 0]
    fig = plots.plot_conv_example(x, W, out, pixel=(1, 0), b=1.0)
    assert_labelled(fig)
    assert fig._suptitle.get_text() == ("y[1, 0] = the sum of the coloured patch of x times W, "
                                        "plus the bias b (here 1)")
    ax_x, ax_W, ax_out = fig.axes
    # named as in notebook 02's formulas: y[r, q] reads x[u, v] = x[r s + i, q s + j] with W[i, j]
    assert [(ax.get_ylabel(), ax.get_xlabel()) for ax in fig.axes] == [("u", "v"), ("i", "j"), ("r", "q")]
    # upright: turned, the kernel's "i" beside its tick label "1" read as "-1"
    assert [ax.yaxis.label.get_rotation() for ax in fig.axes] == [0, 0, 0]
    expected = np.zeros((4, 4), bool)
    expected[1:4, 0:3] = True
    np.testing.assert_array_equal(highlighted(ax_x), expected)
    np.testing.assert_array_equal(highlighted(ax_out), [[False, False], [True, False]])
    assert [len(ax.texts) for ax in fig.axes] == [16, 9, 4]
    assert ax_out.texts[2].get_text() == f"{out[1, 0]:g}"


def test_plot_im2col_colours_the_field_and_its_column():
    x = np.arange(25.0).reshape(5, 5)
    cols = im2col(x[None, None], 3, 3)
    fig = plots.plot_im2col(x, cols, 3, 3, pixel=(1, 2))
    assert_labelled(fig)
    ax_x, ax_cols = fig.axes
    mask = highlighted(ax_cols)
    assert mask[:, 5].all() and mask.sum() == 9
    np.testing.assert_array_equal(np.sort(x[highlighted(ax_x)]), np.sort(cols[:, 5]))
    assert len(ax_cols.texts) == cols.size
    assert ax_cols.get_ylabel() == "kernel offset (i, j) as i * kw + j"  # notebook 03's (i, j)
    assert [ax.yaxis.label.get_rotation() for ax in fig.axes] == [90, 90]  # words, turned


def test_the_worked_examples_refuse_an_output_their_geometry_does_not_give():
    """Notebooks 02 and 03 edited: a stride-2 output drawn without stride=2, an im2col with
    padding drawn over the unpadded x, or a pixel off the output coloured another field than
    the output's (or none) under a title naming that pixel."""
    x, W = np.arange(16.0).reshape(4, 4), np.ones((3, 3))
    strided = conv2d_naive(x[None, None], W[None, None], np.zeros(1), stride=2)[0, 0]
    with pytest.raises(ValueError, match=r"a 3x3 kernel with stride 1 over the 4x4 x gives out of shape "
                                         r"\(2, 2\), not \(1, 1\): pass the kernel and stride out was "
                                         r"computed with, and x padded if the convolution pads"):
        plots.plot_conv_example(x, W, strided)
    with pytest.raises(ValueError, match=r"pixel \(2, 0\) lies outside the 2x2 output"):
        plots.plot_conv_example(x, W, np.zeros((2, 2)), pixel=(2, 0))
    cols = im2col(x[None, None], 3, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match=r"gives cols of shape \(9, 1\), not \(9, 4\)"):
        plots.plot_im2col(x, cols, 3, 3, stride=2)
    with pytest.raises(ValueError, match=r"pixel \(-1, 1\) lies outside the 2x2 output"):
        plots.plot_im2col(np.pad(x, 1), cols, 3, 3, pixel=(-1, 1), stride=2)


def test_the_worked_examples_refuse_arrays_of_a_whole_batch_naming_the_channel_to_pass():
    """Notebook 02's (N, C, H, W) arrays passed whole failed in unpacking W.shape, or named the
    "input size" for x."""
    x, W = np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 3, 3))
    out = conv2d_naive(x, W, np.zeros(1))
    with pytest.raises(ValueError, match=r"plot_conv_example draws one channel of one image, 2-D "
                                         r"arrays, got x \(1, 1, 4, 4\), W \(1, 1, 3, 3\), out "
                                         r"\(1, 1, 2, 2\): pass e.g. x\[0, 0\]"):
        plots.plot_conv_example(x, W, out)
    with pytest.raises(ValueError, match=r"plot_im2col draws one channel .*got x \(1, 1, 4, 4\)"):
        plots.plot_im2col(x, im2col(x, 3, 3), 3, 3)


def test_plot_ladder_one_bar_per_row_on_a_log_axis():
    rungs = (("naive", 1e-2, 1.0), ("fast", 1e-4, 100.0))
    rows = [dict(shape=s, rung=r, per_image=t, speedup=up)
            for s in ("conv1", "conv2") for r, t, up in rungs]
    fig = plots.plot_ladder(rows)
    assert_labelled(fig)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert sorted(round(b.get_width(), 6) for b in bars) == [0.1, 0.1, 10.0, 10.0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["naive", "fast"]
    assert sorted(t.get_text().strip() for t in ax.texts) == ["100x", "100x", "1x", "1x"]


def test_plot_step_sizes_one_line_per_curve():
    curves = {"a": np.linspace(3, 1, 10), "b": np.ones(10)}
    fig = plots.plot_step_sizes(curves)
    assert_labelled(fig)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(1, 11))
    np.testing.assert_array_equal(lines[0].get_ydata(), curves["a"])
    [legend] = fig.legends  # below the axes, clear of the curves
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b"]


def test_plot_trajectories_paths_start_minimum_and_contours():
    objective = quadratic(4.0)
    paths = {"one": np.array([[-2.0, 1.0], [-1.0, 0.5], [0.0, 0.0]]),
             "two": np.array([[-2.0, 1.0], [-1.5, -0.5]])}
    fig = plots.plot_trajectories(objective, paths, (-3, 1, -2, 2))
    assert_labelled(fig)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 4  # two paths, the start, the minimum
    np.testing.assert_array_equal(lines[0].get_xydata(), paths["one"])
    assert lines[3].get_xydata().tolist() == [[0.0, 0.0]]
    assert any(isinstance(c, QuadContourSet) for c in ax.collections)
    assert "one (2 steps)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_figures_draw_chinese_with_the_cjk_font_where_it_is_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(rcParams, "font.family", ["sans-serif"])
    installed = font_manager.fontManager.ttflist
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [])  # not installed: left as it is
    plots.draw_chinese_too()
    assert rcParams["font.family"] == ["sans-serif"]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", installed)
    if not any(font.name == plots.CJK_FONT for font in installed) and os.environ.get("HW3_REQUIRE_PDF") != "1":
        pytest.skip(f"{plots.CJK_FONT} is not installed; `make system-deps` installs it")
    plots.draw_chinese_too()
    assert rcParams["font.family"] == ["sans-serif", plots.CJK_FONT]
    fig, ax = plt.subplots()
    ax.set_title("訓練 loss 曲線")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph 35347 ... missing from font(s) DejaVu Sans"
        fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
    monkeypatch.setitem(rcParams, "font.family", ["serif"])  # a family the user chose stays
    plots.draw_chinese_too()
    assert rcParams["font.family"] == ["serif"]
