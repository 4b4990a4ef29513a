"""What the dataset looks like (notebook 01): the files' format as stored, and tables of the arrays.

:func:`inspect_pngs` reports the files' format as stored; :func:`channel_stats`,
:func:`class_balance` and :func:`pixel_stats` return a :class:`Table` whose ``str()`` prints
the same text on every machine.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .folders import SPLITS, resolve_root, split_files
from .images import decode_image
from .tables import Table


@dataclass(frozen=True)
class PngReport:
    """What :func:`inspect_pngs` found, one entry per file in :func:`load_split` order.

    ``files`` POSIX paths relative to the root; ``modes`` the Pillow mode as stored ("LA");
    ``sizes`` ``(width, height)``; ``alpha_min``/``alpha_max`` uint8 ``(N,)``, the alpha that
    Pillow's RGBA conversion gives (what ``mode="RGBA"`` feeds a network: 255 where a file
    stores none). ``str()`` counts the files per mode, size and alpha range.
    """

    files: list[str]
    modes: list[str]
    sizes: list[tuple[int, int]]
    alpha_min: np.ndarray
    alpha_max: np.ndarray

    def __str__(self) -> str:
        groups = {
            "mode": self.modes,
            "size": [f"{w}x{h}" for w, h in self.sizes],
            "alpha": [f"min {lo}, max {hi}" for lo, hi in zip(self.alpha_min, self.alpha_max)],
        }
        lines = [f"{len(self.files)} files"]
        for kind, values in groups.items():
            lines += [f"{kind} {value}: {n} files" for value, n in sorted(Counter(values).items())]
        return "\n".join(lines)


def inspect_pngs(root: str | os.PathLike | None = None) -> PngReport:
    """Open every image of both splits as stored and record its format (see :class:`PngReport`).

    Unlike :func:`load_split` it reports odd sizes instead of rejecting them; missing folders
    and unreadable or corrupt files raise DataError as there.
    """
    root = resolve_root(root)
    files, modes, sizes, alpha = [], [], [], []
    for split in SPLITS:
        for path in split_files(root, split)[0]:
            im = decode_image(path)
            files.append(path.relative_to(root).as_posix())
            modes.append(im.mode)
            sizes.append(im.size)
            alpha.append(im.convert("RGBA").getchannel("A").getextrema())
    lo, hi = np.array(alpha, dtype=np.uint8).reshape(-1, 2).T
    return PngReport(files, modes, sizes, lo, hi)


def channel_stats(X: np.ndarray, names: Sequence[str]) -> Table:
    """Min, max, mean, std of each channel of ``X`` ``(N, C, H, W)``, and whether it equals channel 0.

    ``names`` labels the C channels (e.g. "RGBA"). A copy of channel 0 or a constant channel
    (std 0) adds nothing a network could learn from.
    """
    if X.ndim != 4 or X.shape[1] != len(names):
        raise ValueError(f"X {X.shape} must be (N, C, H, W) with C = len(names) = {len(names)}")
    rows = [
        (name, X[:, c].min(), X[:, c].max(), X[:, c].mean(dtype=np.float64),
         X[:, c].std(dtype=np.float64), np.array_equal(X[:, c], X[:, 0]))
        for c, name in enumerate(names)
    ]
    return Table(["channel", "min", "max", "mean", "std", f"same as {names[0]}"], rows)


def _check_labels(splits: Mapping[str, tuple[np.ndarray, np.ndarray]], classes: Sequence[str]) -> None:
    for name, (_, y) in splits.items():
        if len(y) and not 0 <= y.min() <= y.max() < len(classes):
            raise ValueError(
                f"labels of split {name!r} span {y.min()}..{y.max()}, but {len(classes)} classes "
                f"were given ({list(classes)}): pass the class names the labels index"
            )


def class_balance(splits: Mapping[str, tuple[np.ndarray, np.ndarray]], classes: Sequence[str]) -> Table:
    """Images per class (columns, plus "total") and split (rows, plus "all").

    ``splits`` maps a split name to ``(X, y)``, as :meth:`Dataset.splits` gives; only ``y`` is used.
    """
    if not splits:
        raise ValueError("splits is empty: pass {split name: (X, y)}, e.g. Dataset.splits()")
    _check_labels(splits, classes)
    counts = [(name, np.bincount(y, minlength=len(classes))) for name, (_, y) in splits.items()]
    counts.append(("all", sum(c for _, c in counts)))
    return Table(["split", *classes, "total"], [(name, *c.tolist(), int(c.sum())) for name, c in counts])


def _pixel_row(X: np.ndarray) -> tuple:
    if not len(X):
        return 0, None, None, None, None
    return len(X), X.min(), X.max(), X.mean(dtype=np.float64), X.std(dtype=np.float64)


def pixel_stats(
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]], classes: Sequence[str] | None = None
) -> Table:
    """Images and pixel min, max, mean, std over all channels, per split (rows).

    ``splits`` maps a split name to ``(X (N, C, H, W), y (N,))`` as :meth:`Dataset.splits`
    gives. With ``classes`` each split gets one row per class and an "all" row; a class a
    split lacks shows 0 images and "-".
    """
    stats = ["images", "min", "max", "mean", "std"]
    if classes is None:
        return Table(["split", *stats], [(name, *_pixel_row(X)) for name, (X, _) in splits.items()])
    _check_labels(splits, classes)
    rows = []
    for name, (X, y) in splits.items():
        rows += [(name, cls, *_pixel_row(X[y == c])) for c, cls in enumerate(classes)]
        rows.append((name, "all", *_pixel_row(X)))
    return Table(["split", "class", *stats], rows)
