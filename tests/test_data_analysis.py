"""Tests for hw3lib.analysis (notebook 01): Table, inspect_pngs, channel_stats,
class_balance, pixel_stats, Dataset.splits. Real-data tests need HW3_DATA (or data/)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hw3lib import analysis, data, download
from hw3lib.images import DataError
from hw3lib.tables import Table

DATA = Path(os.environ.get("HW3_DATA", Path(__file__).parents[1] / "data"))
needs_data = pytest.mark.skipif(
    not (DATA / "Data_train").is_dir(),
    reason=f"real dataset not found at {DATA}: set HW3_DATA to the folder holding Data_train/ and Data_test/",
)


def save(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")


# ---------------------------------------------------------------- Table


def test_table_formats_and_aligns():
    rows = [("a", 3, 0.12345, True), ("bbb", np.int64(12), np.float32(-2.5), False)]
    table = Table(["name", "n", "x", "ok"], rows)
    assert str(table) == (
        "name   n       x  ok\n"
        "a      3   0.123  yes\n"
        "bbb   12  -2.500  no"
    )


def test_table_prints_rounded_negative_zero_as_zero_and_none_as_dash():
    table = Table(["v", "w"], [(-0.0001, None), (np.float64(-0.0), 1.0)], digits=2)
    assert str(table).splitlines() == ["   v     w", "0.00     -", "0.00  1.00"]


def test_table_without_rows_prints_header():
    assert str(Table(["a", "b"], [])) == "a  b"


# ---------------------------------------------------------------- inspect_pngs


@pytest.fixture
def mixed_root(tmp_path):
    """Files of several formats; each class folder is sorted naturally (_2 before _10)."""
    ramp = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)
    grey = Image.fromarray(ramp)
    save(tmp_path / "Data_train/A/A_10.png", Image.merge("LA", [grey, Image.new("L", (32, 32), 255)]))
    save(tmp_path / "Data_train/A/A_2.png", Image.merge("LA", [grey, Image.fromarray(ramp // 2 + 3)]))
    save(tmp_path / "Data_train/B/B_0.png", grey)  # no alpha stored: opaque
    save(tmp_path / "Data_test/A/A_0.png", Image.new("RGBA", (16, 8), (1, 2, 3, 40)))
    return tmp_path


def test_inspect_pngs_records_each_file_in_load_order(mixed_root):
    report = analysis.inspect_pngs(mixed_root)
    assert report.files == [
        "Data_train/A/A_2.png", "Data_train/A/A_10.png", "Data_train/B/B_0.png", "Data_test/A/A_0.png"
    ]
    assert report.modes == ["LA", "LA", "L", "RGBA"]
    assert report.sizes == [(32, 32), (32, 32), (32, 32), (16, 8)]  # odd sizes reported, not rejected
    assert report.alpha_min.dtype == np.uint8
    assert report.alpha_min.tolist() == [3, 255, 255, 40]
    assert report.alpha_max.tolist() == [130, 255, 255, 40]  # 255 // 2 + 3


def test_inspect_pngs_summary_counts_files(mixed_root):
    assert str(analysis.inspect_pngs(mixed_root)).splitlines() == [
        "4 files",
        "mode L: 1 files",
        "mode LA: 2 files",
        "mode RGBA: 1 files",
        "size 16x8: 1 files",
        "size 32x32: 3 files",
        "alpha min 255, max 255: 2 files",
        "alpha min 3, max 130: 1 files",
        "alpha min 40, max 40: 1 files",
    ]


def test_inspect_pngs_reads_root_from_env(mixed_root, monkeypatch):
    monkeypatch.setenv("HW3_DATA", str(mixed_root))
    assert len(analysis.inspect_pngs().files) == 4


def test_inspect_pngs_corrupt_file_names_it(mixed_root):
    bad = mixed_root / "Data_train/B/B_1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="B_1.png is a truncated or corrupt PNG file"):
        analysis.inspect_pngs(mixed_root)


def test_inspect_pngs_missing_root(tmp_path):
    with pytest.raises(DataError, match="HW3_DATA"):
        analysis.inspect_pngs(tmp_path / "nowhere")


@needs_data
def test_inspect_pngs_real_data_is_grey_plus_constant_alpha():
    report = analysis.inspect_pngs(DATA)
    assert len(report.files) == 1968 and set(report.files) == set(download.read_manifest())
    assert set(report.modes) == {"LA"} and set(report.sizes) == {(32, 32)}
    assert np.all(report.alpha_min == 255) and np.all(report.alpha_max == 255)


# ---------------------------------------------------------------- channel_stats


def test_channel_stats_flags_copies_and_constants():
    rng = np.random.default_rng(0)
    grey = rng.random((5, 1, 4, 3), dtype=np.float32)
    other = grey.copy()
    other[2, 0, 1, 1] += 0.5
    X = np.concatenate([grey, grey, other, np.ones_like(grey)], axis=1)
    table = analysis.channel_stats(X, "RGBA")
    assert table.columns == ["channel", "min", "max", "mean", "std", "same as R"]
    assert [row[0] for row in table.rows] == list("RGBA")
    assert [row[-1] for row in table.rows] == [True, True, False, False]
    name, lo, hi, mean, std, _ = table.rows[2]
    assert (lo, hi) == (other.min(), other.max())
    np.testing.assert_allclose([mean, std], [other.mean(dtype=np.float64), other.std(dtype=np.float64)])
    assert table.rows[3][1:5] == (1, 1, 1, 0)


def test_channel_stats_checks_names_against_channels():
    with pytest.raises(ValueError, match=r"C = len\(names\) = 3"):
        analysis.channel_stats(np.zeros((2, 4, 3, 3)), "RGB")


# ---------------------------------------------------------------- class_balance, pixel_stats


def splits_of(*label_lists):
    """{"s0": (X, y), ...} with X (N, 1, 2, 2) holding pixel value label / 10 + sample index / 100."""
    out = {}
    for k, labels in enumerate(label_lists):
        y = np.array(labels, dtype=np.int64)
        values = (y / 10 + np.arange(len(y)) / 100).astype(np.float32)
        X = values[:, None, None, None] * np.ones((1, 1, 2, 2), np.float32)
        out[f"s{k}"] = (X, y)
    return out


def test_class_balance_counts_per_split_with_totals():
    table = analysis.class_balance(splits_of([0, 0, 2, 1], [2, 2]), ["a", "b", "c"])
    assert table.columns == ["split", "a", "b", "c", "total"]
    assert table.rows == [("s0", 2, 1, 1, 4), ("s1", 0, 0, 2, 2), ("all", 2, 1, 3, 6)]


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_class_balance_rejects_labels_outside_classes(labels):
    with pytest.raises(ValueError, match="labels of split 's0' span"):
        analysis.class_balance(splits_of(labels), ["a", "b", "c"])


def test_class_balance_rejects_no_splits():
    with pytest.raises(ValueError, match="splits is empty"):
        analysis.class_balance({}, ["a"])


def test_pixel_stats_per_class_and_split():
    splits = splits_of([0, 1, 0], [1])
    table = analysis.pixel_stats(splits, ["a", "b"])
    assert table.columns == ["split", "class", "images", "min", "max", "mean", "std"]
    assert [row[:3] for row in table.rows] == [
        ("s0", "a", 2), ("s0", "b", 1), ("s0", "all", 3), ("s1", "a", 0), ("s1", "b", 1), ("s1", "all", 1)
    ]
    X, y = splits["s0"]
    for row, part in zip(table.rows[:3], [X[y == 0], X[y == 1], X]):
        np.testing.assert_allclose(row[3:], [part.min(), part.max(), part.mean(), part.std()], rtol=1e-6)
    assert table.rows[3][3:] == (None, None, None, None)  # a class the split lacks
    assert "s1     a           0      -      -      -      -" in str(table)


def test_pixel_stats_per_split_only_without_classes():
    splits = splits_of([0, 1, 0], [1])
    table = analysis.pixel_stats(splits)
    assert table.columns == ["split", "images", "min", "max", "mean", "std"]
    assert [row[:2] for row in table.rows] == [("s0", 3), ("s1", 1)]
    np.testing.assert_allclose(table.rows[1][2:], [0.1, 0.1, 0.1, 0.0], atol=1e-7)


def test_pixel_stats_checks_labels():
    with pytest.raises(ValueError, match="2 classes"):
        analysis.pixel_stats(splits_of([0, 2]), ["a", "b"])


# ---------------------------------------------------------------- Dataset.splits


def test_dataset_splits_maps_names_to_arrays():
    arrays = [np.full(3, k) for k in range(6)]
    ds = data.Dataset(*arrays, classes=["a"], mean=np.zeros(1), std=np.ones(1))
    splits = ds.splits()
    assert list(splits) == ["train", "val", "test"]
    for (X, y), k in zip(splits.values(), (0, 2, 4)):
        assert X is arrays[k] and y is arrays[k + 1]
