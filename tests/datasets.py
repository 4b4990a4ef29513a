"""Helpers shared by the data tests: where the real dataset is, and tiny datasets made on the spot."""
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hw3lib import data, folders, images

DATA = Path(os.environ.get("HW3_DATA", Path(__file__).parents[1] / "data"))
HAVE_DATA = (DATA / "Data_train").is_dir()
NO_DATA = f"real dataset not found at {DATA}: set HW3_DATA to the folder holding Data_train/ and Data_test/"
needs_data = pytest.mark.skipif(not HAVE_DATA, reason=NO_DATA)
CLASSES = ["Carambula", "Lychee", "Pear"]
FIRST_FILE = "Data_test/Carambula/Carambula_test_0.png"  # first in manifest order


def png_bytes(value: int, size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("LA", size, (value, 255)).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, value: int = 128, size=(32, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(value, size))


SEED_PNG = png_bytes(77)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_root(base: Path, classes=("A", "B"), n=3, test_classes=None) -> Path:
    """A tiny dataset: n images per class, pixel value 10 * index + class number."""
    for split, names in (("train", classes), ("test", test_classes or classes)):
        for c, name in enumerate(names):
            for i in range(n):
                write_png(base / folders.SPLITS[split] / name / f"{name}_{split}_{i}.png", 10 * i + c)
    return base


def copy_splits(src: Path, dst: Path) -> Path:
    for split_dir in folders.SPLITS.values():
        shutil.copytree(src / split_dir, dst / split_dir)
    return dst


def write_banded_root(base: Path, per_class=60, test_per_class=6, seed=0) -> Path:
    """A learnable dataset of grey 32x32 noise, each class (A, B, C) brightening its own band
    of rows, so left-right flips keep the class: ``per_class`` training images per class."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", test_per_class)):
        for k, name in enumerate("ABC"):
            folder = base / folders.SPLITS[split] / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                x = (rng.random((32, 32)) * 150).astype(np.uint8)
                x[k * 10:k * 10 + 10] += 100
                Image.fromarray(x, "L").save(folder / f"{name}_{split}_{i}.png")
    return base


def write_videos(root, frames=40, test_frames=12):
    """Each class (A, B) one "video" of 16x16 grey frames in file order, a slow random walk; its
    test frames from a walk of their own."""
    rng = np.random.default_rng(0)
    for split, n in (("train", frames), ("test", test_frames)):
        for name in "AB":
            folder = root / folders.SPLITS[split] / name
            folder.mkdir(parents=True)
            frame = rng.random((16, 16)) * 200
            for i in range(n):
                frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255)
                Image.fromarray(frame.astype(np.uint8)).save(folder / f"{name}_{i}.png")
    return root


def name_at_random(root: Path, seed=0, split="train") -> Path:
    """Rename each class folder's files of ``root``'s ``split`` in a random order (``0007.png``),
    as files named by a camera's counter across videos or by hashes are read: no longer in frame
    order."""
    rng = np.random.default_rng(seed)
    for folder in (root / folders.SPLITS[split]).iterdir():
        files = sorted(folder.iterdir())
        for file, k in zip(files, rng.permutation(len(files))):
            file.rename(folder / f"{k:04d}{file.suffix}.renaming")
        for file in folder.iterdir():
            file.rename(folder / file.stem)
    return root


def count_decodes(monkeypatch) -> list:
    """The paths of the image files decoded from now on (:func:`hw3lib.images.read_image`,
    called by hw3lib.data on one thread or through ``read_on_thread`` on several), in order."""
    decoded, read_image = [], images.read_image

    def counted(path, *args, **kwargs):
        decoded.append(Path(path))
        return read_image(path, *args, **kwargs)

    monkeypatch.setattr(data, "read_image", counted)
    monkeypatch.setattr(images, "read_image", counted)
    return decoded
