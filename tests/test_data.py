"""Tests for hw3lib.data. Real-data tests need HW3_DATA (or data/) holding Data_train/ and Data_test/."""

import hashlib
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hw3lib import data, download, folders, images
from hw3lib.config import TrainConfig
from hw3lib.images import DataError, TransparentPixels
from conftest import peak_bytes
from datasets import (CLASSES, DATA, PNG_SIGNATURE, SEED_PNG, make_root, needs_data, write_banded_root,
                      write_png)


def grey(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255


# ---------------------------------------------------------------- load_split (real data)


@pytest.fixture(scope="module")
def train():
    return data.load_split(DATA, "train")


@needs_data
def test_train_split_shapes_labels_and_range(train):
    X, y, classes = train
    assert X.shape == (1470, 1, 32, 32) and X.dtype == np.float32 and X.flags.c_contiguous
    assert 0 <= X.min() and X.max() <= 1
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [490, 490, 490]
    assert np.all(np.diff(y) >= 0)  # grouped by class
    assert classes == CLASSES


@needs_data
def test_order_is_natural_within_each_class(train):
    X, _, _ = train
    for c, name in enumerate(CLASSES):
        for i in (0, 1, 2, 10, 100, 489):  # plain string order would put _10 at index 2
            np.testing.assert_array_equal(
                X[490 * c + i, 0], grey(DATA / "Data_train" / name / f"{name}_train_{i}.png")
            )


@needs_data
def test_test_split():
    X, y, classes = data.load_split(DATA, "test")
    assert X.shape == (498, 1, 32, 32) and np.bincount(y).tolist() == [166] * 3
    assert classes == CLASSES


@needs_data
@pytest.mark.parametrize("mode, channels", [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)])
def test_modes(mode, channels):
    X, _, _ = data.load_split(DATA, "test", mode)
    X_l, _, _ = data.load_split(DATA, "test")
    assert X.shape == (498, channels, 32, 32)
    np.testing.assert_array_equal(X[:, :1], X_l)  # grey in the first channel
    if channels >= 3:
        np.testing.assert_array_equal(X[:, 1:3], np.repeat(X_l, 2, axis=1))
    if mode.endswith("A"):
        assert np.all(X[:, -1] == 1)  # alpha 255 everywhere


def test_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HW3_DATA", str(make_root(tmp_path, classes=("E", "F", "G"))))
    X, y, classes = data.load_split(split="test")
    assert classes == ["E", "F", "G"] and y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    np.testing.assert_allclose(X[:, 0, 0, 0] * 255, [0, 10, 20, 1, 11, 21, 2, 12, 22], atol=1e-4)


def test_a_root_starting_with_a_tilde_is_under_the_home_folder(monkeypatch, tmp_path):
    make_root(tmp_path / "photos")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.load_split("~/photos")[2] == ["A", "B"]
    monkeypatch.setenv("HW3_DATA", "~/photos")  # quoted in a shell, or set in a notebook
    assert data.load_split()[2] == ["A", "B"]


def test_a_root_of_a_tilde_of_no_known_user_is_refused_in_one_line(monkeypatch, tmp_path):
    """HW3_DATA='~nobody' (or root=) ended in pathlib's RuntimeError traceback; the message is the
    command line's (cli.file_or_folder), and its advice, the full path, is read as a folder."""
    monkeypatch.chdir(tmp_path)
    full = f"give its full path {tmp_path / '~no-such-user-hw3' / 'x'}"
    monkeypatch.setenv("HW3_DATA", "~no-such-user-hw3/x")
    with pytest.raises(ValueError) as refused:
        data.load_split()
    assert str(refused.value) == (
        "HW3_DATA='~no-such-user-hw3/x': this machine has no user 'no-such-user-hw3', whose home "
        f"folder a leading ~no-such-user-hw3 is; for a folder named ~no-such-user-hw3, {full}")
    with pytest.raises(ValueError) as refused:
        data.load_split(Path("./~no-such-user-hw3/x"))  # a Path drops the ./, as --data's did
    assert str(refused.value).startswith("the dataset folder '~no-such-user-hw3/x' (--data or root=): "
                                         "this machine has no user") and str(refused.value).endswith(full)
    make_root(tmp_path / "~no-such-user-hw3" / "x")
    assert data.load_split(tmp_path / "~no-such-user-hw3" / "x")[2] == ["A", "B"]


def test_default_root_is_repo_data_folder(monkeypatch, tmp_path):
    assert folders.DEFAULT_ROOT == Path(folders.__file__).resolve().parent.parent / "data"
    monkeypatch.delenv("HW3_DATA", raising=False)
    monkeypatch.setattr(folders, "DEFAULT_ROOT", make_root(tmp_path))
    assert data.load_split()[2] == ["A", "B"]


@pytest.mark.parametrize("kwargs, words", [({"split": "val"}, ["train", "test"]), ({"mode": "P"}, ["L", "LA", "RGB", "RGBA"])])
def test_invalid_split_or_mode(tmp_path, kwargs, words):
    with pytest.raises(ValueError) as err:
        data.load_split(tmp_path / "missing", **kwargs)  # checked before the disk is touched
    assert all(repr(w) in str(err.value) for w in words)


# ---------------------------------------------------------------- errors on disk


def test_missing_default_root_says_where_to_put_the_course_data(monkeypatch, tmp_path):
    monkeypatch.delenv("HW3_DATA", raising=False)
    monkeypatch.setattr(folders, "DEFAULT_ROOT", tmp_path / "nowhere")
    with pytest.raises(DataError) as err:
        data.load_split()
    msg = str(err.value)
    assert f"no dataset at {tmp_path / 'nowhere'}: the folder does not exist" in msg
    assert "HW3_DATA" in msg and "python -m hw3lib download" in msg


def test_missing_own_root_gets_own_advice_not_the_download(tmp_path):
    with pytest.raises(DataError) as err:
        data.load_split(tmp_path / "nowhere")
    msg = str(err.value)
    assert f"no dataset at {tmp_path / 'nowhere'}: the folder does not exist" in msg
    assert "check the path" in msg and "train/ and test/" in msg and "download" not in msg
    assert "relative path" not in msg


def test_a_relative_root_that_does_not_exist_is_named_with_the_working_folder(tmp_path, monkeypatch):
    """HW3_DATA=data/fruits, set in the repository, seen from notebooks/ (a notebook's working
    folder): "no dataset at data/fruits: the folder does not exist", though it does, elsewhere."""
    monkeypatch.chdir(tmp_path)
    for root in ("data/fruits", "fruits/Data_train/.."):
        monkeypatch.setenv("HW3_DATA", root)
        with pytest.raises(DataError) as err:
            data.load_split()
        assert (f"no dataset at {root}: the folder does not exist (a relative path, looked for in "
                f"the working folder {tmp_path}: give an absolute path)") in str(err.value)
    (tmp_path / "images.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"no dataset at .*images.zip: it is a file, not a folder\. Fix"):
        data.load_split(tmp_path / "images.zip")


def test_split_without_class_folders(tmp_path):
    (tmp_path / "Data_train").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        data.load_split(tmp_path)


def test_an_image_directly_in_a_split_folder_is_to_be_moved_into_its_class_folder(tmp_path):
    """It was to be moved "out of the dataset folder", as if it did not belong to the data."""
    write_png(make_root(tmp_path) / "Data_train" / "cat_7.png")
    folder = tmp_path / "Data_train"
    with pytest.raises(DataError, match=f"unexpected file {folder / 'cat_7.png'}: .*Fix: move it into "
                                        f"the folder of its class, {folder / '<class>' / 'cat_7.png'}: "
                                        f"an image directly in {folder} has no class.$"):
        data.load_split(tmp_path)


def test_a_dataset_needs_two_classes(tmp_path):
    with pytest.raises(DataError, match="holds only the class folder A: a classifier needs 2 or more"):
        data.load_dataset(make_root(tmp_path, classes=("A",)))


def test_empty_class_folder(tmp_path):
    root = make_root(tmp_path)
    for f in (root / "Data_train" / "B").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"class folder .*B holds no images. Fix: add its images"):
        data.load_split(root)


def test_an_empty_class_folder_added_to_the_course_data_is_ones_own(tmp_path):
    """The course's class folder emptied: restore it; a class of one's own added empty: add its
    images or remove it."""
    root = make_root(tmp_path, classes=("Carambula", "Lychee", "Pear"), n=1)
    (root / "Data_train" / "Apple").mkdir()
    with pytest.raises(DataError, match=r"class folder .*Apple holds no images. Fix: add its images "
                                        r"or remove the folder.$"):
        data.load_split(root)
    (root / "Data_train" / "Apple").rmdir()
    (root / "Data_train" / "Pear" / "Pear_train_0.png").unlink()
    with pytest.raises(DataError, match=r"class folder .*Pear holds no images. Fix: restore the original"):
        data.load_split(root)


def test_corrupt_png_names_file(tmp_path):
    bad = make_root(tmp_path) / "Data_train" / "A" / "A_train_1.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match="A_train_1.png is a truncated or corrupt PNG file.*Fix: replace"):
        data.load_split(tmp_path)


def test_other_image_format_under_a_png_name_is_named(tmp_path):
    bad = make_root(tmp_path) / "Data_train" / "A" / "A_train_1.png"
    Image.new("L", (32, 32)).save(bad, format="BMP")
    with pytest.raises(DataError, match="A_train_1.png is a BMP file, but its name says PNG. Fix: rename "
                                        "it to end in .bmp"):
        data.load_split(tmp_path)


def test_images_of_different_sizes_are_counted_by_size_with_a_file_of_each(tmp_path):
    root = make_root(tmp_path)
    write_png(root / "Data_train" / "B" / "B_train_0.png", size=(32, 31))
    write_png(root / "Data_train" / "B" / "B_train_2.png", size=(32, 31))
    with pytest.raises(DataError) as err:
        data.load_split(tmp_path)
    assert str(err.value) == (
        f"images of different sizes (height x width): 4 of 32x32 (e.g. "
        f"{root / 'Data_train/A/A_train_0.png'}), 2 of 31x32 (e.g. {root / 'Data_train/B/B_train_0.png'})"
        ". Fix: resize them as they load, e.g. with TrainConfig(image_size='32x32').")
    X, _, _ = data.load_split(tmp_path, image_size=32)
    assert X.shape == (6, 1, 32, 32)


def test_every_image_that_cannot_be_used_is_named_in_one_error_with_its_fix(tmp_path):
    """Not only the first: a folder with several bad files is fixed in one round."""
    root = make_root(tmp_path, n=4)
    folder = root / "Data_train"
    (folder / "A" / "A_train_1.png").write_bytes(b"")
    Image.new("L", (32, 32)).save(folder / "B" / "B_train_0.png", format="BMP")
    Image.new("LA", (32, 32), (9, 0)).save(folder / "B" / "B_train_3.png")
    write_png(folder / "A" / "A_train_2.png", size=(30, 32))
    with pytest.raises(DataError) as err:
        data.load_split(tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0] == f"3 of the 8 images under {folder} cannot be used, each named here with its fix:"
    assert lines[1] == f"- {folder / 'A/A_train_1.png'} is empty (0 bytes). Fix: replace it with the image or remove it."
    assert lines[2].startswith(f"- {folder / 'B/B_train_0.png'} is a BMP file, but its name says PNG. Fix: rename")
    assert lines[3].startswith(f"- {folder / 'B/B_train_3.png'} has transparent pixels") and "Fix: keep" in lines[3]
    assert lines[4].startswith("images of different sizes (height x width): 4 of 32x32") and "1 of 32x30" in lines[4]
    assert len(lines) == 5


def test_a_newline_in_a_bad_images_name_keeps_it_to_one_line_of_the_list(tmp_path):
    root = make_root(tmp_path, n=4)
    for name in ("A/A_train_1.png", "B/bad\nname.png"):
        (root / "Data_train" / name).write_bytes(b"")
    with pytest.raises(DataError) as err:
        data.load_split(tmp_path)
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and lines[2].startswith(f"- {root / 'Data_train/B/bad'}\\nname.png is empty")


def test_a_newline_in_a_path_keeps_each_line_of_an_error_of_both_splits_to_one_line(tmp_path):
    """Beside the list of bad images, the folder it names, the sizes' example images and the
    test split's bad image were written raw: a newline in their paths split their lines."""
    root = make_root(tmp_path / "my\nfruits", n=4)
    (root / "Data_train" / "B" / "bad.png").write_bytes(b"")
    write_png(root / "Data_train" / "B" / "big\none.png", size=(40, 40))
    (root / "Data_test" / "A" / "bad\ntest.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        data.load_dataset(root)
    escaped = str(root).replace("\n", "\\n")
    lines = str(err.value).splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith(f"1 of the 10 images under {escaped}/Data_train cannot be used")
    assert lines[1].startswith(f"- {escaped}/Data_train/B/bad.png is empty")
    assert f"1 of 40x40 (e.g. {escaped}/Data_train/B/big\\none.png)" in lines[2]
    assert lines[3].startswith(f"{escaped}/Data_test/A/bad\\ntest.png is empty")


def test_reading_stops_at_the_most_problems_one_error_names(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_NAMED_PROBLEMS", 2)
    root = make_root(tmp_path)
    for name in ("A/A_train_0.png", "A/A_train_2.png", "B/B_train_1.png"):
        (root / "Data_train" / name).write_bytes(b"not a png")
    write_png(root / "Data_train" / "B" / "B_train_2.png", size=(30, 32))
    with pytest.raises(DataError) as err:
        data.load_split(tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0] == (f"2 of the 6 images under {root / 'Data_train'} cannot be used (reading stopped "
                        "at 2: more may follow), each named here with its fix:")
    assert [line.split()[1] for line in lines[1:]] == [str(root / "Data_train" / n)
                                                        for n in ("A/A_train_0.png", "A/A_train_2.png")]


def test_load_dataset_names_both_splits_bad_images_in_one_error(tmp_path):
    root = make_root(tmp_path)
    for name in ("Data_train/A/A_train_1.png", "Data_train/B/B_train_0.png", "Data_test/B/B_test_2.png"):
        (root / name).write_bytes(b"")
    with pytest.raises(DataError) as err:
        data.load_dataset(tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"2 of the 6 images under {root / 'Data_train'} cannot be used")
    assert lines[3] == f"{root / 'Data_test/B/B_test_2.png'} is empty (0 bytes). Fix: replace it with the image or remove it."
    assert len(lines) == 4


def test_one_image_that_cannot_be_used_raises_its_own_error(tmp_path):
    """Alone, a problem keeps its message and its class (TransparentPixels)."""
    bad = make_root(tmp_path) / "Data_train" / "B" / "B_train_1.png"
    Image.new("LA", (32, 32), (9, 0)).save(bad)
    with pytest.raises(TransparentPixels, match=f"^{bad} has transparent pixels"):
        data.load_split(tmp_path)


@pytest.mark.parametrize("other", ["RGB", "P", "L", "I;16"])
def test_an_image_stored_in_another_mode_is_converted_like_the_rest(tmp_path, other):
    """The split stores LA; one image in another mode holds the same grey 40, which every
    conversion keeps (16 bit: 40 * 257 / 65535 = 40 / 255)."""
    path = make_root(tmp_path) / "Data_train" / "B" / "B_train_1.png"
    grey = {"RGB": (40, 40, 40), "P": 0, "L": 40, "I;16": 40 * 257}[other]
    im = Image.new(other, (32, 32), grey)
    if other == "P":
        im.putpalette([40, 40, 40] * 256)
    im.save(path)
    X, _, _ = data.load_split(tmp_path)
    np.testing.assert_allclose(X[4], 40 / 255, rtol=1e-6)


@pytest.mark.parametrize("where", ["Data_train/A/notes.txt", "Data_train/README", "Data_train/A/sub/x.png"])
def test_non_image_entries_are_rejected(tmp_path, where):
    root = make_root(tmp_path)
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    (root / where).write_text("x")
    with pytest.raises(DataError, match="unexpected") as err:
        data.load_split(root)
    assert str(root / Path(where).parts[0] / Path(where).parts[1]) in str(err.value)
    if where.endswith("sub/x.png"):  # its images are the class's: moved up, not out with it
        assert f"Fix: move the images in it up into {root / 'Data_train' / 'A'} " in str(err.value)


def test_unlistable_folder(tmp_path, monkeypatch):
    root = make_root(tmp_path)
    listdir = os.listdir

    def fake(path):
        if Path(path) == root / "Data_train" / "B":
            raise PermissionError(13, "Permission denied")
        return listdir(path)

    monkeypatch.setattr(os, "listdir", fake)
    with pytest.raises(DataError, match=r"cannot list .*Data_train/B: Permission denied.*permissions"):
        data.load_split(root)


def test_hidden_files_and_the_operating_systems_own_are_skipped(tmp_path):
    root = make_root(tmp_path)
    (root / "Data_train" / ".DS_Store").write_bytes(b"\0")
    (root / "Data_train" / "A" / ".DS_Store").write_bytes(b"\0")
    (root / "Data_train" / "A" / "._A_train_0.png").write_bytes(b"junk")
    (root / "Data_train" / "A" / "Thumbs.db").write_bytes(b"\0")  # Windows, in any image folder
    (root / "Data_train" / "B" / "desktop.ini").write_bytes(b"\0")
    (root / "Data_train" / "__MACOSX" / "A").mkdir(parents=True)  # class folders zipped on a Mac
    (root / "Data_train" / "__MACOSX" / "A" / "._A_train_0.png").write_bytes(b"junk")
    X, y, classes = data.load_split(root)
    assert X.shape == (6, 1, 32, 32) and classes == ["A", "B"]
    assert sorted(download.compute_manifest(root)) == sorted(
        f"{folders.SPLITS[split]}/{c}/{c}_{split}_{i}.png" for split in folders.SPLITS for c in "AB" for i in range(3))


def load_as_nobody(root):
    """``data.load_split(root)`` in a forked child that runs as the unprivileged user
    ``nobody`` when the tests run as root (root reads any file, whatever its mode); returns
    the child's ``repr`` of the exception it met, or "" when it loaded without one."""
    data.load_split(root.parent / "warm")  # Pillow's PNG plugin is imported before the fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, exit without pytest's teardown
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                data.load_split(root)
                outcome = ""
            except Exception as err:
                outcome = f"{type(err).__name__}: {err}"
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


def test_unreadable_file_real_permissions():
    base = Path(tempfile.mkdtemp())  # under /tmp, which the user nobody can enter
    try:
        base.chmod(0o755)
        make_root(base / "warm")
        root = make_root(base / "data")
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (root / "Data_train" / "A" / "A_train_2.png").chmod(0)
        outcome = load_as_nobody(root)
    finally:
        shutil.rmtree(base)
    assert outcome.startswith("DataError: cannot read "), outcome
    assert "A_train_2.png" in outcome and "permissions" in outcome


def test_a_root_that_cannot_be_looked_into_is_named_with_the_fix():
    base = Path(tempfile.mkdtemp())  # under /tmp, which the user nobody can enter
    root = base / "root"
    try:
        make_root(root)
        make_root(base / "warm")
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        root.chmod(0)  # nobody (and not its owner either) may look into it
        outcome = load_as_nobody(root)
    finally:
        root.chmod(0o755)
        shutil.rmtree(base)
    assert outcome == (f"DataError: cannot look into {root}: Permission denied. Fix: make the folder "
                       "readable (check its permissions), or give another one (--data, root= or HW3_DATA)."), outcome


def test_unreadable_file_simulated(tmp_path, monkeypatch):
    bad = make_root(tmp_path) / "Data_train" / "A" / "A_train_2.png"
    os_open = images.os.open

    def fake(path, *args):
        if Path(path) == bad:
            raise PermissionError(13, "Permission denied", str(path))
        return os_open(path, *args)

    monkeypatch.setattr(images.os, "open", fake)
    with pytest.raises(DataError, match=r"cannot read .*A_train_2.png: Permission denied.*permissions"):
        data.load_split(tmp_path)


def test_test_classes_must_match_train_classes(tmp_path):
    make_root(tmp_path, classes=("A", "B", "C"), test_classes=("A", "B", "D"))
    with pytest.raises(DataError, match=r"missing from test: \['C'\], only in test: \['D'\]. Fix: give "
                                        r"both splits the same class folders: move about one image in "
                                        r"five of each missing class into its own folder in \S+, e.g. "
                                        r"\S+Data_test/C; give each class only in test its training "
                                        r"images, e.g. in \S+Data_train/D, or remove its test folder.$"):
        data.load_dataset(tmp_path)
    shutil.rmtree(tmp_path / "Data_test" / "D")  # a class missing from test alone: "only in test: []" was said
    with pytest.raises(DataError, match=r"missing from test: \['C'\]. Fix: .*, e.g. \S+Data_test/C.$"):
        data.load_dataset(tmp_path)


def test_a_class_folder_named_in_another_case_in_one_split_is_named_with_the_rename(tmp_path):
    """cat/ in train and Cat/ in test were two classes, 'missing from test: ['cat'], only in test:
    ['Cat']', to be fixed by moving images between the splits; the rename is named: to the
    training split's name, or for the course's data to the course's."""
    own = make_root(tmp_path / "own", classes=("cat", "Dog"), test_classes=("Cat", "Dog"))
    with pytest.raises(DataError, match=re.escape(
            "in another case in test: ['Cat'] for ['cat'] in train (class names are case-sensitive). Fix: "
            f"give both splits the same class folders: rename {own}/Data_test/Cat to {own}/Data_test/cat "
            "(the training split's name).") + "$"):
        data.load_dataset(own)
    (own / "Data_test" / "Cat").rename(own / "Data_test" / "cat")  # the fix, followed
    assert data.load_dataset(own).classes == ["Dog", "cat"]
    course = make_root(tmp_path / "course", classes=("Carambula", "lychee", "Pear"), n=1,
                       test_classes=("Carambula", "Lychee", "Pear"))
    rename = f"rename {course}/Data_train/lychee to {course}/Data_train/Lychee (the course's name)"
    with pytest.raises(DataError, match=re.escape(f"Fix: give both splits the same class folders: {rename}.") + "$"):
        data.load_dataset(course)
    shutil.rmtree(course / "Data_test" / "Pear")  # and a class folder of the course's gone: fetched
    with pytest.raises(DataError, match=re.escape(f"missing from test: ['Pear']. Fix: {rename}, then restore "
                                                  "the original files")):
        data.load_dataset(course)


@pytest.mark.parametrize("break_test_split", ["missing class", "empty class", "stray file"])
def test_a_broken_test_split_listing_is_named_before_any_image_is_read(tmp_path, monkeypatch,
                                                                      break_test_split):
    """A big folder of one's own images would be decoded for minutes before the test split's
    class folders were even listed."""
    make_root(tmp_path, classes=("A", "B", "C"))
    folder = tmp_path / "Data_test" / "C"
    if break_test_split == "missing class":
        shutil.rmtree(folder)
    elif break_test_split == "empty class":
        for path in folder.iterdir():
            path.unlink()
    else:
        (folder / "notes.txt").write_text("hi")
    reads = []
    monkeypatch.setattr(data, "read_image", lambda *a, **k: reads.append(a[0]))
    with pytest.raises(DataError, match=r"missing from test: \['C'\]|C holds no images|unexpected file"):
        data.load_dataset(tmp_path)
    assert reads == []


@pytest.mark.parametrize("link", ["test folder", "test class folder", "hard link", "within train"])
def test_a_file_listed_in_two_places_is_refused_before_any_image_is_read(tmp_path, monkeypatch, link):
    """A test/ linked to train/ (a placeholder for a test split to come) would test on the
    training images; a link inside train/ could put one image in training and validation."""
    make_root(tmp_path, classes=("A", "B"))
    train, test = tmp_path / "Data_train", tmp_path / "Data_test"
    if link == "test folder":
        shutil.rmtree(test)
        test.symlink_to(train.name)
    elif link == "test class folder":
        shutil.rmtree(test / "B")
        (test / "B").symlink_to(train / "B")
    elif link == "hard link":
        (test / "A" / "A_test_0.png").unlink()
        os.link(train / "A" / "A_train_2.png", test / "A" / "A_test_0.png")
    else:
        (train / "B" / "B_train_9.png").symlink_to(train / "A" / "A_train_0.png")
    reads = []
    monkeypatch.setattr(data, "read_image", lambda *a, **k: reads.append(a[0]))
    with pytest.raises(DataError, match=r"listed twice, e\.g\. .* is .*Data_train.* Fix: remove the link"):
        data.load_dataset(tmp_path)
    assert reads == []


def test_file_order_is_the_same_in_either_unicode_form():
    """The blocked split cuts each class in file order: the same files must sort alike whether
    their names came composed (Linux, Windows) or decomposed (macOS, its archives)."""
    names = ["e_2.png", "\u00e9_1.png", "f_1.png", "\u00e9_10.png", "\u00e9_9.png"]
    orders = [[unicodedata.normalize("NFC", n) for n in sorted(
        (unicodedata.normalize(form, n) for n in names), key=folders.natural_key)] for form in ("NFC", "NFD")]
    assert orders[0] == orders[1] == ["e_2.png", "f_1.png", "\u00e9_1.png", "\u00e9_9.png", "\u00e9_10.png"]


def test_class_names_spelled_in_either_unicode_form_are_one_class(tmp_path):
    composed, decomposed = unicodedata.normalize("NFC", "Äpfel"), unicodedata.normalize("NFD", "Äpfel")
    assert composed != decomposed
    make_root(tmp_path, classes=(composed, "Birnen"), test_classes=(decomposed, "Birnen"))
    dataset = data.load_dataset(tmp_path)
    assert dataset.classes == ["Birnen", composed] and sorted(set(dataset.y_test)) == [0, 1]
    make_root(tmp_path, classes=(decomposed,))
    with pytest.raises(DataError, match="Data_train holds class folders whose names differ only in how "
                                        "their letters are encoded .* Äpfel. Fix: merge them"):
        data.load_dataset(tmp_path)


@st.composite
def mutated_png(draw):
    body = bytearray(SEED_PNG)
    for pos, value in draw(st.lists(st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255)), max_size=8)):
        body[pos] = value
    return bytes(body[: draw(st.one_of(st.just(len(body)), st.integers(0, len(body))))])


@pytest.fixture(scope="module")
def one_file_root(tmp_path_factory):
    root = make_root(tmp_path_factory.mktemp("fuzz"), classes=("A",), n=1)
    return root, root / "Data_train" / "A" / "A_train_0.png"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=600), st.binary(max_size=600).map(PNG_SIGNATURE.__add__), mutated_png()))
def test_random_bytes_only_raise_data_error(one_file_root, body):
    root, path = one_file_root
    path.write_bytes(body)
    try:
        X, _, _ = data.load_split(root)
    except DataError as exc:
        assert "A_train_0.png" in str(exc)
    else:  # a mutated PNG can still decode
        assert X.shape == (1, 1, 32, 32) and X.dtype == np.float32 and 0 <= X.min() <= X.max() <= 1


# ---------------------------------------------------------------- train_val_split


def toy(n_per_class=490, n_classes=3):
    y = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    return np.arange(len(y), dtype=np.float32).reshape(-1, 1, 1, 1), y  # X holds each sample's index


def val_ids(split, seed=0, fraction=0.3, **toy_args):
    """The indices (ascending) that ``train_val_split`` sends to validation from :func:`toy` data."""
    return data.train_val_split(*toy(**toy_args), fraction, seed, split)[2].ravel().astype(np.int64)


def runs_of(ids):
    """Contiguous runs ``[(first, last), ...]`` of sorted indices."""
    breaks = np.flatnonzero(np.diff(ids) != 1)
    return list(zip(ids[np.r_[0, breaks + 1]], ids[np.r_[breaks, len(ids) - 1]]))


@needs_data
@pytest.mark.parametrize("split", data.SPLIT_METHODS)
def test_split_sizes_on_real_data(train, split):
    X_tr, y_tr, X_va, y_va = data.train_val_split(*train[:2], split=split)
    assert (len(X_tr), len(X_va)) == (1029, 441)
    assert np.bincount(y_va).tolist() == [147] * 3 and np.bincount(y_tr).tolist() == [343] * 3


@pytest.mark.parametrize("split", data.SPLIT_METHODS)
def test_split_is_a_stratified_partition(split):
    X, y = toy()
    X_tr, y_tr, X_va, y_va = data.train_val_split(X, y, 0.3, seed=1, split=split)
    ids_tr, ids_va = X_tr.ravel().astype(int), X_va.ravel().astype(int)
    assert sorted(np.concatenate([ids_tr, ids_va]).tolist()) == list(range(len(y)))
    np.testing.assert_array_equal(y[ids_tr], y_tr)
    np.testing.assert_array_equal(y[ids_va], y_va)
    assert np.bincount(y_va).tolist() == [147] * 3
    assert not np.all(np.diff(ids_va) == 1)  # not the first 147 of each class


@pytest.mark.parametrize("split", data.SPLIT_METHODS)
def test_split_is_deterministic_per_seed(split):
    a, b, c = (val_ids(split, seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_blocked_split_holds_out_whole_runs_of_neighbouring_files():
    for seed in range(5):
        ids = val_ids("blocked", seed)
        for c in range(3):  # 490 files per class in 10 runs of 49: 3 whole runs (neighbours merge)
            runs = runs_of(ids[ids // 490 == c] % 490)
            assert all(first % 49 == 0 and (last + 1) % 49 == 0 for first, last in runs)
            assert sum(last - first + 1 for first, last in runs) == 147 and 1 <= len(runs) <= 3


def test_blocked_split_cuts_the_last_run_to_reach_the_count():
    ids = val_ids("blocked", seed=2, fraction=0.25, n_per_class=37, n_classes=2)  # 9 of 37 per class
    assert np.bincount(ids // 37).tolist() == [9, 9]
    # 7 runs of 5-6 files: at most 2 pieces per class, 3 where a run goes on from the last file to the first
    assert len(runs_of(ids)) <= 2 * 3


@pytest.mark.parametrize("n", [3, 7, 12, 24, 49])
def test_a_small_class_is_held_out_in_runs_of_at_least_min_run_files(n):
    """A class cut into 10 runs whatever its size held out runs of 1 or 2 files when small (12:
    4 validation images in up to 4 pieces, each beside a training file, as a random split's
    are); its runs hold data.MIN_RUN files or more now, so validation is a few long pieces,
    only their ends beside training files. A class of 50 or more is cut into 10 runs as before."""
    held_out = set()
    for seed in range(10):
        ids = val_ids("blocked", seed, n_per_class=n, n_classes=1)
        assert len(ids) == min(round(0.3 * n), n - 1)
        # whole runs and one cut short, each a piece, or two where it goes on from the last file to the first
        assert len(runs_of(ids)) <= -(-len(ids) // data.MIN_RUN) + 1 + 1
        held_out.add(tuple(ids))
    assert len(held_out) >= 2  # the seed draws the runs' starts too: a class of 4 is not always (0,)
    assert [data.run_count(n) for n in (1, 4, 5, 12, 49, 50, 490)] == [1, 1, 1, 2, 9, 10, 10]


def test_random_split_is_the_original_reports():
    # The ids of the original (pre-"blocked") implementation for seed 0, pinned by their hash.
    ids = val_ids("random", seed=0)
    assert hashlib.sha256(ids.tobytes()).hexdigest()[:16] == "4cb4ad840b0257cb"
    assert len(runs_of(ids)) > 200  # scattered: most validation files sit next to training files


def test_split_rejects_unknown_method():
    with pytest.raises(ValueError, match=r"split must be one of \['blocked', 'random'\], got 'video'"):
        data.train_val_split(*toy(), split="video")


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan")])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        data.train_val_split(*toy(), val_fraction=fraction)


def test_a_fraction_that_leaves_validation_empty_is_refused_before_any_image_is_read(tmp_path, monkeypatch):
    """A large folder was read whole, for minutes, before this was said."""
    root = make_root(tmp_path, n=3)
    monkeypatch.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("read an image"))
    with pytest.raises(ValueError, match=r"TrainConfig\(val_fraction=0.1\) of \[3, 3\] images per "
                                         "class leaves the validation split empty"):
        data.load_dataset(root, val_fraction=0.1)


def test_split_refuses_a_fraction_that_leaves_validation_empty():
    with pytest.raises(ValueError, match=r"TrainConfig\(val_fraction=0.001\) of \[490, 490, 490\] images "
                                         "per class leaves the validation split empty"):
        data.train_val_split(*toy(), val_fraction=0.001)


@pytest.mark.parametrize("split", data.SPLIT_METHODS)
@pytest.mark.parametrize("fraction", [0.6, 0.8, 0.999])
def test_every_class_keeps_a_training_image_whatever_the_fraction(split, fraction):
    """A class of 1 or 2 images (or 490 at 0.999) is never sent whole to validation, where the
    model would never train on it: it keeps one image for training."""
    y = np.array([0] * 490 + [1] * 2 + [2])
    _, y_train, _, y_val = data.train_val_split(np.zeros((len(y), 1, 1, 1), np.float32), y, fraction,
                                                split=split)
    assert np.bincount(y_train).tolist() == [max(1, 490 - round(490 * fraction)), 1, 1]
    assert np.bincount(y_val).tolist() == [min(489, round(490 * fraction)), 1]


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_split_refuses_a_seed_that_is_no_count(seed):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        data.train_val_split(*toy(), seed=seed)


def test_split_rejects_length_mismatch():
    X, y = toy()
    with pytest.raises(ValueError, match="differ in length"):
        data.train_val_split(X, y[:-1])


# ---------------------------------------------------------------- normalisation


def test_fit_normalizer_is_per_channel():
    rng = np.random.default_rng(0)
    X = (rng.random((20, 3, 4, 4)) * np.array([1, 2, 3])[None, :, None, None]).astype(np.float32)
    mean, std = data.fit_normalizer(X)
    assert mean.shape == std.shape == (3,) and mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, [X[:, c].mean() for c in range(3)], rtol=1e-6)
    np.testing.assert_allclose(std, [X[:, c].std() for c in range(3)], rtol=1e-6)
    Z = data.normalize(X, mean, std)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=(0, 2, 3)), 1, atol=1e-5)


def test_constant_channel_normalises_to_zero():
    X = np.ones((5, 2, 3, 3), dtype=np.float32)
    X[:, 0] = np.arange(5)[:, None, None]
    mean, std = data.fit_normalizer(X)
    assert std[1] == 1
    Z = data.normalize(X, mean, std)
    assert np.all(np.isfinite(Z)) and np.all(Z[:, 1] == 0)


def test_normalize_does_not_upcast_and_checks_shapes():
    X = np.zeros((2, 2, 3, 3), dtype=np.float32)
    assert data.normalize(X, np.zeros(2), np.ones(2)).dtype == np.float32  # float64 stats
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.normalize(X, np.zeros(3), np.ones(3))


def test_normalizing_a_large_split_makes_no_float64_copy_of_it(monkeypatch):
    # 40 MB of float32 images: NumPy's std in float64 would hold 80 MB more; one block, 1 MiB
    # (a new block made while the last was still held was two)
    monkeypatch.setattr(data, "NORMALIZE_BLOCK_BYTES", 2**20, raising=False)
    rng = np.random.default_rng(0)
    X = rng.random((800, 3, 64, 64), dtype=np.float32)
    (mean, std), peak = peak_bytes(lambda: data.fit_normalizer(X))
    assert peak < 1.2 * 2**20, f"fit_normalizer held {peak / 2**20:.2f} MiB"
    np.testing.assert_allclose(std, X.std(axis=(0, 2, 3), dtype=np.float64), rtol=1e-6)
    np.testing.assert_array_equal(mean, X.mean(axis=(0, 2, 3), dtype=np.float64).astype(np.float32))
    Z, peak = peak_bytes(lambda: data.normalize(X, mean, std))
    assert peak < 1.1 * X.nbytes, f"normalize held {peak / X.nbytes:.1f} times the images"  # the result only
    expected = (X - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
    assert Z.dtype == np.float32 and np.array_equal(Z, expected)


def test_fitting_the_mean_and_std_shows_a_bar_once_it_takes_a_while(monkeypatch, capsys):
    """The training images' mean and std (0.4 s at 16,000 RGB 64x64 images, more for more) were
    fitted with nothing on the screen, between the reading's bar and the checks' bars: with
    ``progress`` a bar counts the images once the fit has taken PROGRESS_DELAY seconds (here at
    once), block by block; never without it; the numbers the same."""
    monkeypatch.setattr(data, "NORMALIZE_BLOCK_BYTES", 2**16)  # 10 images a block
    X = np.random.default_rng(0).random((45, 3, 16, 16), dtype=np.float32)
    quiet = data.fit_normalizer(X)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(data, "PROGRESS_DELAY", 0)
    bars, counts, tqdm = [], [], data.tqdm

    def made(**kwargs):
        bars.append(tqdm(**kwargs))
        update = bars[-1].update
        bars[-1].update = lambda n=1: (counts.append(n), update(n))
        return bars[-1]

    monkeypatch.setattr(data, "tqdm", made)
    shown = data.fit_normalizer(X, progress=True)
    assert [a.tobytes() for a in shown] == [a.tobytes() for a in quiet]
    assert (bars[-1].desc, bars[-1].total, counts) == ("fitting mean and std", 45, [10, 10, 10, 10, 5])
    assert "fitting mean and std:   0%|" in capsys.readouterr().err


def test_load_dataset_loads_straight_into_the_training_and_validation_parts(tmp_path, monkeypatch):
    # Splitting a loaded Data_train would hold it twice (all of it, and its two parts).
    monkeypatch.setattr(data, "NORMALIZE_BLOCK_BYTES", 2**16, raising=False)
    rng = np.random.default_rng(0)
    for split, count in (("train", 150), ("test", 20)):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    ds, peak = peak_bytes(lambda: data.load_dataset(tmp_path, split="random", seed=3))
    held = sum(X.nbytes for X in (ds.X_train, ds.X_val, ds.X_test))
    assert peak < 1.3 * held, f"load_dataset held {peak / held:.1f} times its arrays"
    X, y, _ = data.load_split(tmp_path, "train")
    expected = data.train_val_split(X, y, 0.3, 3, "random")
    for got, want in zip((ds.X_train, ds.y_train, ds.X_val, ds.y_val), expected):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def assert_same_dataset(got, want):
    """Every field of the Datasets ``got`` and ``want`` equal, the arrays bit for bit (dtype,
    shape, layout and bytes)."""
    for name, value in vars(want).items():
        other = getattr(got, name)
        if isinstance(value, np.ndarray):
            assert (other.dtype, other.shape, other.flags.c_contiguous, other.tobytes()) == (
                value.dtype, value.shape, value.flags.c_contiguous, value.tobytes()), name
        else:
            assert other == value, name


@pytest.mark.parametrize("split", data.SPLIT_METHODS)
def test_images_read_once_and_split_are_load_datasets_data_bit_for_bit(tmp_path, split):
    """Runs that differ only in the split (a sweep's seeds) each read every file again: the read
    step's images, split for each seed and fraction, are load_dataset's, bit for bit (a small
    class, cut into fewer runs from a seeded file, among them)."""
    root = write_banded_root(tmp_path, per_class=30, test_per_class=4)
    for image in sorted((root / "Data_train" / "C").iterdir())[12:]:
        image.unlink()
    images = data.read_images(root, mode="RGB", image_size=(24, 20))
    assert (images.X.shape, images.image_size, images.read_with) == (
        (72, 3, 24, 20), (24, 20), dict(mode="RGB", image_size=(24, 20)))
    for seed in (0, 1, 7):
        for fraction in (0.1, 0.3, 0.55):
            got = data.split_images(images, fraction, seed, split)
            assert_same_dataset(got, data.load_dataset(root, "RGB", fraction, seed, split, image_size=(24, 20)))
            assert got.X_test is images.X_test
    with pytest.raises(ValueError, match=r"TrainConfig\(val_fraction=0.001\) of \[30, 30, 12\] images"):
        data.split_images(images, 0.001)


def test_a_config_splits_the_images_of_its_own_read_settings_only(tmp_path):
    root = write_banded_root(tmp_path, per_class=10, test_per_class=2)
    images = TrainConfig(seed=1).read_images(root)
    assert_same_dataset(TrainConfig(seed=2, split="random").split_images(images),
                        TrainConfig(seed=2, split="random").load_data(root))
    with pytest.raises(ValueError, match=r"the images were read with \{'mode': 'L', 'image_size': None\}, "
                                         r"the config reads with \{'mode': 'RGB', .*Fix: split the config's own"):
        TrainConfig(mode="RGB").split_images(images)
    with pytest.raises(ValueError, match="kernel_size=15 does not fit 32x32"):  # as load_data refuses them
        TrainConfig(model={"kernel_size": 15}).split_images(images)
    assert len(TrainConfig(model={"kernel_size": 15}).split_images(images, check_model=False).y_val) == 9
    dataset = TrainConfig().load_data(root)  # split already: an AttributeError on read_with, on .X
    for split in (TrainConfig().split_images, data.split_images):
        with pytest.raises(ValueError, match="split_images takes the images that read_images returns "
                                             r"\(a DecodedImages\), got a Dataset: a Dataset is split already"):
            split(dataset)


def test_one_block_normalizes_as_numpy_does():
    rng = np.random.default_rng(1)
    X = (rng.integers(0, 256, (1029, 1, 32, 32)) / 255).astype(np.float32)  # the course's train part
    mean, std = data.fit_normalizer(X)
    assert mean.tobytes() == X.mean(axis=(0, 2, 3), dtype=np.float64).astype(np.float32).tobytes()
    assert std.tobytes() == X.std(axis=(0, 2, 3), dtype=np.float64).astype(np.float32).tobytes()


@needs_data
def test_load_dataset_fits_normalizer_on_train_part_only():
    ds = data.load_dataset(DATA, mode="RGBA")
    assert ds.classes == CLASSES
    assert (len(ds.X_train), len(ds.X_val), len(ds.X_test)) == (1029, 441, 498)
    assert ds.X_train.shape[1:] == (4, 32, 32)
    for got, want in zip((ds.mean, ds.std), data.fit_normalizer(ds.X_train)):
        np.testing.assert_array_equal(got, want)
    everything = np.concatenate([ds.X_train, ds.X_val, ds.X_test])
    assert not np.array_equal(ds.mean, data.fit_normalizer(everything)[0])
    np.testing.assert_array_equal(ds.X_val, data.train_val_split(*data.load_split(DATA, mode="RGBA")[:2])[2])
    random = data.load_dataset(DATA, split="random")
    assert not np.array_equal(random.X_val, data.load_dataset(DATA).X_val)


# ---------------------------------------------------------------- dataloader


def test_dataloader_covers_every_sample_once_with_partial_last_batch():
    X, y = toy(n_per_class=5, n_classes=2)
    batches = list(data.dataloader(X, y, batch_size=4, seed=3))
    assert [len(b) for b, _ in batches] == [4, 4, 2]
    ids = np.concatenate([b.ravel() for b, _ in batches]).astype(int)
    assert sorted(ids.tolist()) == list(range(10))
    np.testing.assert_array_equal(np.concatenate([t for _, t in batches]), y[ids])


def test_dataloader_order_per_seed_and_epoch():
    X, y = toy(n_per_class=50, n_classes=2)

    def order(**kw):
        return np.concatenate([b.ravel() for b, _ in data.dataloader(X, y, 16, **kw)])

    np.testing.assert_array_equal(order(seed=1, epoch=2), order(seed=1, epoch=2))
    assert not np.array_equal(order(seed=1, epoch=2), order(seed=1, epoch=3))
    assert not np.array_equal(order(seed=1, epoch=2), order(seed=2, epoch=2))
    np.testing.assert_array_equal(order(shuffle=False), np.arange(100))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "4", None])
def test_dataloader_rejects_bad_batch_size_at_call(batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got"):
        data.dataloader(*toy(2, 2), batch_size)  # no next(): checked eagerly


@pytest.mark.parametrize("name, value", [("seed", -1), ("seed", 1.5), ("seed", None), ("epoch", -2),
                                         ("epoch", "1")])
def test_dataloader_rejects_a_seed_or_epoch_that_draws_no_order_naming_it(name, value):
    """They failed inside NumPy's seeding, 'expected non-negative integer' or 'SeedSequence
    expects int or sequence of ints', naming neither."""
    with pytest.raises(ValueError, match=rf"{name} must be an integer >= 0 \(with .*, draws the "
                                         rf"order\), got {re.escape(repr(value))}"):
        data.dataloader(*toy(2, 2), 2, **{name: value})


def test_dataloader_accepts_numpy_int_and_checks_lengths():
    X, y = toy(2, 2)
    assert len(list(data.dataloader(X, y, np.int64(3)))) == 2
    with pytest.raises(ValueError, match="differ in length"):
        data.dataloader(X, y[:-1], 2)


def test_the_array_helpers_refuse_lists_and_images_without_four_axes_naming_them():
    """Each failed inside: on .ndim of a list, an axis out of bounds for (N, H, W), or fancy
    indexing of a list in the dataloader's first batch."""
    X = np.random.default_rng(0).random((4, 1, 3, 3)).astype(np.float32)
    y = np.arange(4) % 2
    for call, match in (
            (lambda: data.fit_normalizer(X.tolist()), r"X must be a NumPy array of images \(N, C, H, W\), got a list"),
            (lambda: data.fit_normalizer(X[:, 0]), r"X must be images \(N, C, H, W\), got shape \(4, 3, 3\)"),
            (lambda: data.normalize(X.tolist(), [0.5], [0.2]), r"X must be a NumPy array of images"),
            (lambda: data.dataloader(X.tolist(), y, 2), r"X must be a NumPy array \(N, \.\.\.\), got a list"),
            (lambda: data.dataloader(X, y.tolist(), 2), r"y must be a NumPy array \(N,\), got a list")):
        with pytest.raises(ValueError, match=match):
            call()


def test_an_empty_class_folder_is_removed_from_both_splits(tmp_path):
    """Removing the empty folder alone left its namesake in the other split: the classes differed."""
    root = make_root(tmp_path / "own", classes=("A", "B", "C"), n=2)
    for f in (root / "Data_test" / "B").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"Data_test/B holds no images. Fix: add its images or remove the "
                                        r"folder and .*Data_train/B, the class's folder in the train split.$"):
        data.load_dataset(root)
    shutil.rmtree(root / "Data_train" / "B")
    (root / "Data_test" / "B").rmdir()
    assert data.load_dataset(root, val_fraction=0.5).classes == ["A", "C"]


@pytest.mark.parametrize("listed", [list, lambda names: names[::-1]], ids=["listed", "reversed"])
def test_the_entry_refused_in_a_folder_is_the_same_however_the_file_system_lists_them(tmp_path, monkeypatch, listed):
    root = make_root(tmp_path)
    for name in ("notes_10.txt", "notes_2.txt"):
        (root / "Data_train" / "A" / name).touch()
    listdir = os.listdir
    monkeypatch.setattr(folders.os, "listdir", lambda folder: listed(listdir(folder)))
    with pytest.raises(DataError, match=r"unexpected file .*notes_2\.txt: "):
        folders.split_files(root, "train")


# ---------------------------------------------------------------- reading on several threads


@pytest.fixture
def threaded(monkeypatch):
    """Small files are read on several threads too (else the tests' would stay on one)."""
    monkeypatch.setattr(data, "MIN_THREADED_BYTES", 0)


def test_several_threads_load_the_same_arrays_in_the_same_order(tmp_path, threaded):
    root = write_banded_root(tmp_path / "banded", per_class=25)
    mixed = make_root(tmp_path / "mixed", n=5)
    Image.new("RGB", (40, 20), (90, 40, 10)).save(mixed / "Data_train" / "B" / "B_train_3.png")
    for settings in (dict(root=root), dict(root=root, mode="RGB", image_size=(20, 24)),
                     dict(root=mixed, mode="LA", image_size=32)):
        one = data.load_split(**settings, threads=1)
        for threads in (2, 3, 8):
            for got, want in zip(data.load_split(**settings, threads=threads), one):
                assert np.array_equal(got, want) and np.asarray(got).dtype == np.asarray(want).dtype
    one, three = data.load_dataset(root, threads=1), data.load_dataset(root, threads=3)
    for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "mean", "std"):
        assert getattr(three, name).tobytes() == getattr(one, name).tobytes(), name


def bad_files(root):
    """Several images of ``root``'s training split that cannot be used, of different kinds."""
    folder = root / "Data_train"
    (folder / "A" / "A_train_1.png").write_bytes(b"")
    Image.new("L", (32, 32)).save(folder / "B" / "B_train_0.png", format="BMP")
    Image.new("LA", (32, 32), (9, 0)).save(folder / "B" / "B_train_3.png")
    (folder / "B" / "B_train_5.png").write_bytes(b"not a png")
    write_png(folder / "A" / "A_train_2.png", size=(30, 32))
    write_png(folder / "A" / "A_train_6.png", size=(30, 32))


@pytest.mark.parametrize("most", [20, 3, 1])
def test_several_threads_name_the_same_bad_images_and_count_as_many(tmp_path, threaded, monkeypatch, most):
    """The same message (every problem in file order, the stop at MAX_NAMED_PROBLEMS, the sizes
    counted) and the same count of files read on the progress bar."""
    monkeypatch.setattr(data, "MAX_NAMED_PROBLEMS", most)
    bad_files(make_root(tmp_path, n=8))
    bars = []
    tqdm = data.tqdm
    monkeypatch.setattr(data, "tqdm", lambda **kw: bars.append(tqdm(**kw)) or bars[-1])
    raised = []
    for threads in (1, 2, 4):
        with pytest.raises(DataError) as err:
            data.load_split(tmp_path, progress=True, threads=threads)  # a bar counts when shown
        raised.append((type(err.value), str(err.value), bars[-1].n))
    assert raised[1] == raised[0] and raised[2] == raised[0]
    assert raised[0][2] == {20: 16, 3: 12, 1: 2}[most]
    with pytest.raises(DataError) as err:  # both splits' problems, in one error
        data.load_dataset(tmp_path, threads=3)
    with pytest.raises(DataError) as one:
        data.load_dataset(tmp_path, threads=1)
    assert str(err.value) == str(one.value)


def test_several_threads_refuse_a_size_from_the_first_image_and_stop(tmp_path, threaded, monkeypatch):
    root = make_root(tmp_path, n=40)
    read = []
    read_image = images.read_image
    monkeypatch.setattr(images, "read_image", lambda *a: read.append(a[0]) or read_image(*a))
    seen = []

    def refuse(size):
        seen.append(size)
        raise ValueError("too small")

    with pytest.raises(ValueError, match="too small"):
        data.load_split(root, check_size=refuse, threads=2)
    assert seen == [(32, 32)] and 1 <= len(read) <= 1 + 2 * data.AHEAD  # the rest never read
    monkeypatch.setattr(data, "MAX_BYTES", 32 * 32 * 4 * 79)
    with pytest.raises(DataError, match=r"^80 images of 32x32 pixels \(e.g. .*A_train_0.png\) take"):
        data.load_split(root, threads=2)


def test_ctrl_c_while_reading_on_threads_stops_them(tmp_path, threaded, monkeypatch):
    root = make_root(tmp_path, n=100)
    read = []
    read_image = images.read_image

    def slow(*args):
        time.sleep(0.02)
        read.append(args[0])
        return read_image(*args)

    monkeypatch.setattr(images, "read_image", slow)
    show = warnings.showwarning
    ctrl_c = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    ctrl_c.start()
    start = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            data.load_split(root, threads=2)
    finally:
        ctrl_c.cancel()
    assert time.perf_counter() - start < 1.5  # all 200 files take 2 s
    count = len(read)
    time.sleep(0.1)
    assert len(read) == count < 200  # the files not begun were cancelled, and no thread reads on
    assert not [t for t in threading.enumerate() if t.name.startswith("hw3lib-read")]
    assert warnings.showwarning is show


@pytest.mark.parametrize("threads", [0, -2, 1.5, "2", True, None])
def test_threads_must_be_a_count_of_one_or_more(tmp_path, threads):
    """Refused before the disk is touched (no folder here); None: one per core, up to 8."""
    if threads is None:
        assert data.reading_threads(None) == min(len(os.sched_getaffinity(0)), data.MAX_THREADS)
        return
    message = rf"^threads must be an integer >= 1 \(the threads that read the images.*got {re.escape(repr(threads))}$"
    for load in (data.load_split, data.load_dataset):
        with pytest.raises(ValueError, match=message):
            load(tmp_path / "none", threads=threads)


def test_small_files_are_read_on_one_thread(tmp_path, monkeypatch):
    """Handing the course's 1 KB PNGs to threads costs more than it saves."""
    root = make_root(tmp_path)
    monkeypatch.setattr(data, "ThreadPoolExecutor", None)  # a pool would fail
    assert data.load_split(root, threads=4)[0].shape == (6, 1, 32, 32)
