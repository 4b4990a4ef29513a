"""The data figures of hw3lib.plots (notebook 01) on small synthetic images: titles, labels, artists."""
import numpy as np
import pytest
from matplotlib.patches import StepPatch

from hw3lib import plots

CLASSES = ["a", "b", "c"]


@pytest.fixture
def images():
    """X (12, 1, 4, 4), constant per image (class / 4 + index / 100); 5, 4 and 3 images per class."""
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    X = (y / 4 + np.arange(12) / 100)[:, None, None, None] * np.ones((1, 1, 4, 4))
    return X.astype(np.float32), y


def shown_images(fig):
    return [(ax, im) for ax in fig.axes for im in ax.images]


def test_plot_samples_grid_rows_per_class(images):
    X, y = images
    fig = plots.plot_samples(X, y, CLASSES, per_class=4, seed=1)
    assert fig._suptitle.get_text() == "Sample images per class"
    assert fig._supxlabel.get_text() == "image index in X"
    assert len(fig.axes) == 12
    panels = shown_images(fig)
    assert len(panels) == 4 + 4 + 3  # class c holds only 3 images: its last panel is empty
    rows = np.reshape(fig.axes, (3, 4))
    assert [row[0].get_ylabel() for row in rows] == CLASSES
    assert not rows[2, 3].axison
    for c, row in enumerate(rows):
        for ax in row:
            for im in ax.images:
                index = int(ax.get_xlabel().lstrip("#"))  # each image is captioned with its index in X
                assert y[index] == c
                np.testing.assert_array_equal(im.get_array(), X[index, 0])
                assert im.get_clim() == (0, 1)
    assert len({ax.get_xlabel() for ax, _ in panels}) == len(panels)  # no image drawn twice
    named = plots.plot_samples(X, y, CLASSES, per_class=1, array_name="X_train")  # as the caller calls X
    assert named._supxlabel.get_text() == "image index in X_train"


def test_plot_samples_is_seeded(images):
    X, y = images
    labels = [[ax.get_xlabel() for ax in plots.plot_samples(X, y, CLASSES, per_class=2, seed=s).axes]
              for s in (0, 0, 3)]
    assert labels[0] == labels[1] and labels[0] != labels[2]


def test_plot_samples_rejects_zero_per_class(images):
    with pytest.raises(ValueError, match="per_class"):
        plots.plot_samples(*images, CLASSES, per_class=0)


def test_plot_class_means_one_panel_per_class_and_a_labelled_scale(images):
    X, y = images
    fig = plots.plot_class_means(X, y, CLASSES)
    assert fig._suptitle.get_text() == "Mean image per class"
    panels = shown_images(fig)
    assert [ax.get_title() for ax, _ in panels] == CLASSES
    assert [ax.get_xlabel() for ax, _ in panels] == [f"mean of {n} images" for n in (5, 4, 3)]
    for c, (_, im) in enumerate(panels):
        np.testing.assert_allclose(im.get_array(), X[y == c, 0].mean(axis=0))
    colorbar = fig.axes[-1]
    assert colorbar not in [ax for ax, _ in panels] and colorbar.get_ylabel().startswith("grey level")


def test_plot_pixel_histograms_one_normalised_line_per_class(images):
    X, y = images
    fig = plots.plot_pixel_histograms(X, y, CLASSES, bins=8)
    (ax,) = fig.axes
    assert ax.get_title() == "Grey levels per class"
    assert ax.get_xlabel().startswith("grey level") and ax.get_ylabel().startswith("share of pixels")
    assert ax.get_yscale() == "log"
    lines = [p for p in ax.patches if isinstance(p, StepPatch)]
    assert [p.get_label() for p in lines] == CLASSES
    assert [t.get_text() for t in ax.get_legend().get_texts()] == CLASSES
    # told apart by line style too, where one class's line lies on another's (the white bin)
    assert len({line.get_linestyle() for line in lines}) == len(CLASSES)
    for c, line in enumerate(lines):
        shares, edges = line.get_data().values, line.get_data().edges
        np.testing.assert_allclose(edges, np.linspace(0, 1, 9))
        assert shares.sum() == pytest.approx(1)
        expected = np.histogram(X[y == c], edges)[0] / X[y == c].size
        np.testing.assert_allclose(shares, expected)


@pytest.mark.parametrize("plot", [plots.plot_samples, plots.plot_class_means, plots.plot_pixel_histograms])
def test_data_figures_refuse_images_and_labels_that_do_not_fit(images, plot):
    # each was drawn without a word (images of a label left out, image rows drawn as images)
    # or failed in a boolean index
    X, y = images
    with pytest.raises(ValueError, match=r"y must be 12 integer labels.*shape \(8,\)"):
        plot(X, y[:8], CLASSES)
    with pytest.raises(ValueError, match=r"indexing the 2 classes.*from 0 to 2"):
        plot(X, y, CLASSES[:2])
    with pytest.raises(ValueError, match=r"channels last\? X.transpose\(0, 3, 1, 2\)"):
        plot(np.zeros((12, 8, 8, 1), np.float32), y, CLASSES)  # (N, H, W, C)
    with pytest.raises(ValueError, match=r"X must be images \(N, C, H, W\)"):
        plot(X[:, 0], y, CLASSES)
