"""The results figures of hw3lib.plots (notebook 06) on small synthetic inputs: titles, labels,
artists and the data they draw."""
import re

import numpy as np
import pytest

from hw3lib import plots

CLASSES = ["a", "b", "c"]


def history(scale):
    epochs = [1, 2, 3]
    return dict(epoch=epochs, train_loss=[scale, scale / 10, scale / 100],
                val_loss=[2 * scale, scale / 5, scale / 50], train_acc=[0.5, 0.9, 1.0],
                val_acc=[0.4, 0.8, 0.95], seconds=[1.0, 1.0, 1.0])


def test_plot_run_curves_one_solid_and_one_dashed_line_per_run_and_panel():
    runs = {"first": history(1.0), "second": history(0.5)}
    fig = plots.plot_run_curves(runs, title="two runs")
    ax_loss, ax_acc = fig.axes
    assert fig._suptitle.get_text() == "two runs"
    assert ax_loss.get_yscale() == "log" and ax_acc.get_yscale() == "linear"
    assert ax_loss.get_xlabel() == ax_acc.get_xlabel() == "epoch"
    assert "loss" in ax_loss.get_ylabel() and ax_acc.get_ylabel() == "fraction correct"
    for ax, quantity in ((ax_loss, "loss"), (ax_acc, "acc")):
        lines = {line.get_label(): line for line in ax.lines}
        assert sorted(lines) == ["first: training", "first: validation", "second: training",
                                 "second: validation"]
        for label, run in runs.items():
            train, val = lines[f"{label}: training"], lines[f"{label}: validation"]
            np.testing.assert_array_equal(train.get_ydata(), run[f"train_{quantity}"])
            np.testing.assert_array_equal(val.get_ydata(), run[f"val_{quantity}"])
            assert train.get_linestyle() == "-" and val.get_linestyle() == "--"
            assert train.get_color() == val.get_color()
        assert lines["first: training"].get_color() != lines["second: training"].get_color()


def test_plot_confusion_one_panel_per_matrix_errors_coloured():
    cm = np.array([[5, 0, 1], [0, 6, 0], [2, 0, 4]])
    fig = plots.plot_confusion({"run 1": cm, "run 2": np.diag([6, 6, 6])}, CLASSES)
    assert fig._suptitle.get_text() == "Confusion matrices on the test set"
    assert [ax.get_title() for ax in fig.axes] == ["run 1", "run 2"]
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    # every count is written in its cell: text at (column j, row i) is cm[i, j]
    written = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert written == {(i, j): str(v) for (i, j), v in np.ndenumerate(cm)}
    coloured = ax.images[0].get_array()
    np.testing.assert_array_equal(coloured, [[0, 0, 1], [0, 0, 0], [1, 0, 0]])
    assert not fig.axes[1].images[0].get_array().any()  # no errors, nothing coloured


def test_the_curves_refuse_what_is_no_history_naming_the_fix():
    """One run's history as plot_run_curves' histories failed on indexing a list by a name, a
    FitResult on .values() or subscripting, epochs of other lengths in matplotlib."""
    from types import SimpleNamespace
    run = SimpleNamespace(history=history(1.0))  # a FitResult's .history
    short = {**history(1.0), "val_acc": [0.5]}
    for call, match in (
            (lambda: plots.plot_run_curves(history(1.0)), r"pass \{label: history\}, e.g. \{'run': result.history\}"),
            (lambda: plots.plot_run_curves(run), r"histories must map each run's label to its history, got a SimpleNamespace"),
            (lambda: plots.plot_run_curves({"a": short}), r"histories\['a'\] must be a run's history, .*of one length"),
            (lambda: plots.plot_live_curves(run), r"history must be a run's history, got a SimpleNamespace: pass its .history"),
            (lambda: plots.plot_live_curves({"a": history(1.0)}), r"must be one run's history, got a dict of 1 runs' histories \('a'\)"),
            (lambda: plots.plot_live_curves(short), r"of one length")):
        with pytest.raises(ValueError, match=match):
            call()


def test_plot_confusion_refuses_a_matrix_that_does_not_fit_the_classes():
    # a non-square matrix failed in a broadcast, a 3x3 one with two names was labelled wrongly,
    # a bare matrix (not a dict) failed on .items()
    for matrices, classes, named in (({"run": np.ones((3, 2))}, CLASSES, "matrices['run']"),
                                     ({"run": np.eye(3)}, CLASSES[:2], "matrices['run']"),
                                     (np.eye(3), CLASSES, "dict"), ({}, CLASSES, "dict")):
        with pytest.raises(ValueError, match=re.escape(named)):
            plots.plot_confusion(matrices, classes)


def test_plot_confusion_refuses_class_names_as_one_string():
    """classes="ABC" labelled the three classes A, B and C without a word."""
    with pytest.raises(ValueError, match="classes must list the class names, e.g. data.classes"):
        plots.plot_confusion({"run": np.eye(3)}, "ABC")


@pytest.mark.parametrize("splits", [("test",), (), "val", ("train", "valid")])
def test_plot_run_curves_refuses_splits_it_cannot_draw(splits):
    """splits=("test",) drew empty panels without a word; "val", a string, worked by chance of
    substring tests."""
    with pytest.raises(ValueError, match=r"splits must name the curves to draw, \('train', 'val'\)"):
        plots.plot_run_curves({"run": history(1.0)}, splits=splits)


def test_plot_misclassified_refuses_indices_and_labels_that_do_not_fit():
    """A boolean mask as indices showed images 0 and 1 as the misclassified ones; an index past
    the images, labels past the classes and probabilities as y_pred failed inside."""
    X = np.zeros((5, 1, 4, 4))
    y_true, y_pred = np.array([0, 1, 2, 0, 1]), np.array([0, 2, 2, 1, 1])
    for args, match in (((y_true, y_pred, y_true != y_pred), r"a boolean mask\? pass np.flatnonzero"),
                        ((y_true, y_pred, [7]), r"indices must be 1-D integer indices into the 5 images"),
                        ((y_true, np.eye(3)[y_pred], [1]), r"y_pred must be 5 integer labels.*shape \(5, 3\)"),
                        ((y_true + 1, y_pred, [1]), r"y_true must be .*indexing the 3 classes.*from 1 to 3")):
        with pytest.raises(ValueError, match=match):
            plots.plot_misclassified(X, *args, CLASSES)


def test_plot_misclassified_captions_each_image():
    X = np.arange(5)[:, None, None, None] / 10 * np.ones((1, 1, 4, 4))
    y_true, y_pred = np.array([0, 1, 2, 0, 1]), np.array([0, 2, 2, 1, 1])
    conf = np.array([0.9, 0.61, 0.8, 0.55, 0.7])
    fig = plots.plot_misclassified(X, y_true, y_pred, [1, 3], CLASSES, confidence=conf, columns=3)
    assert fig._suptitle.get_text() == "Misclassified test images"
    assert "probability" in fig._supxlabel.get_text()
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_xlabel() for ax in shown] == ["#1 b\n-> c 0.61", "#3 a\n-> b 0.55"]
    np.testing.assert_array_equal(shown[1].images[0].get_array(), X[3, 0])
    assert len(fig.axes) == 3 and not fig.axes[2].axison  # one row of 3, the last empty
    no_conf = plots.plot_misclassified(X, y_true, y_pred, [1], CLASSES)
    assert no_conf.axes[0].get_xlabel() == "#1 b\n-> c"
    none = plots.plot_misclassified(X, y_true, y_true, [], CLASSES)  # a run with every image right
    assert none._suptitle.get_text() == "Misclassified test images" and not none.axes[0].axison
    assert [t.get_text() for t in none.axes[0].texts] == ["none: all 5 images are classified correctly"]
    with pytest.raises(ValueError, match=r"indices is empty, but 2 of the 5 images are misclassified"):
        plots.plot_misclassified(X, y_true, y_pred, [], CLASSES)  # not "all 5 ... correctly"


def test_plot_filters_one_panel_per_kernel_on_a_symmetric_scale():
    W = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(3, 2, 2, 2) - 5  # C_out 3, C_in 2, 2x2
    fig = plots.plot_filters(W)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6 and fig._suptitle.get_text() == "Learned filters of the first convolution"
    np.testing.assert_array_equal(panels[4].images[0].get_array(), W[1, 1])  # row: input 1, col: filter 2
    assert panels[4].get_xlabel() == "filter 2"
    assert panels[3].get_ylabel() == "input channel 2"
    assert all(ax.images[0].get_clim() == (-18, 18) for ax in panels)
    assert all(ax.get_aspect() == 1 for ax in panels)  # square pixels
    assert any(ax.get_ylabel() == "weight" for ax in fig.axes)  # the colour bar
    with pytest.raises(ValueError, match=r"\(C_out, C_in, kh, kw\)"):
        plots.plot_filters(W[0])


def test_plot_feature_maps_rows_of_input_then_maps():
    images = np.linspace(0, 1, 2 * 8 * 8).reshape(2, 1, 8, 8)
    maps = np.arange(2 * 3 * 4 * 4, dtype=float).reshape(2, 3, 4, 4)
    fig = plots.plot_feature_maps(images, maps, ["x", "y"])
    grid = np.reshape([ax for ax in fig.axes if ax.images], (2, 4))
    assert [row[0].get_ylabel() for row in grid] == ["x", "y"]
    np.testing.assert_array_equal(grid[1, 0].images[0].get_array(), images[1, 0])
    np.testing.assert_array_equal(grid[1, 2].images[0].get_array(), maps[1, 1])
    assert grid[1, 2].get_xlabel() == "map 2" and grid[1, 0].get_xlabel() == "input"
    assert all(ax.images[0].get_clim() == (0, 95) for ax in grid[:, 1:].ravel())
    assert fig._suptitle.get_text() == "Feature maps of the first convolution"
    with pytest.raises(ValueError, match="N labels"):
        plots.plot_feature_maps(images, maps, ["x"])
