"""The 3-class fruit dataset (Carambula, Lychee, Pear): loading, splitting, batching, integrity.

Layout of a dataset root (never committed to the repository)::

    <root>/Data_train/<Class>/<Class>_train_<i>.png   490 per class
    <root>/Data_test/<Class>/<Class>_test_<i>.png     166 per class

Every file is a 32x32 PNG in mode ``LA`` whose alpha is 255 everywhere, so ``mode="L"``
loses nothing. The root is the ``root`` argument, else the environment variable
``HW3_DATA``, else ``data/`` at the repository root (:data:`DEFAULT_ROOT`).

Arrays are ``X`` float32 ``(N, C, 32, 32)`` in [0, 1] and ``y`` int64 ``(N,)`` holding
indices into the sorted class names.

Errors: problems with files on disk or on the server raise :class:`DataError` (its own
class, deliberately not a ``ValueError``) whose message names the file or URL and the fix.
Bad arguments (unknown ``mode``/``split``, ``val_fraction`` outside (0, 1), a bad
``batch_size``) raise ``ValueError``.

Analysis (notebook 01): :func:`inspect_pngs` reports the files' format as stored;
:func:`channel_stats`, :func:`class_balance` and :func:`pixel_stats` return a :class:`Table`
whose ``str()`` prints the same text on every machine.

Integrity: :data:`MANIFEST_PATH` (``hw3lib/fruits.sha256``) lists the SHA-256 of all 1968
files in ``sha256sum`` format, written by :func:`write_manifest` and checked by
:func:`verify` and :func:`download`.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .tables import Table

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data"
MANIFEST_PATH = Path(__file__).with_name("fruits.sha256")
SOURCE_REPO = "Joker1367/EE6550_ML"
SOURCE_COMMIT = "c2e804f9e271d0c75dbde0fd9c9b1aa1f2439d4a"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{SOURCE_REPO}/{SOURCE_COMMIT}/HW2/Data"

SPLITS = {"train": "Data_train", "test": "Data_test"}
MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}  # Pillow mode -> number of channels C
IMAGE_SHAPE = (32, 32)  # (H, W)

_FIX_WHERE = (
    "Fix: set HW3_DATA to a folder holding Data_train/ and Data_test/, put those two folders "
    f"under {DEFAULT_ROOT}, or fetch them with `python -m hw3lib download` "
    "(hw3lib.data.download(dest))."
)
_FIX_REFETCH = (
    "Fix: restore the original file (hw3lib.data.verify(root) lists what differs) "
    "or fetch a fresh copy with `python -m hw3lib download`."
)


class DataError(Exception):
    """A dataset file or folder is missing, unreadable, malformed, or fails its checksum."""


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify`: relative POSIX paths that are missing, extra or changed."""

    missing: list[str]
    extra: list[str]
    changed: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def __str__(self) -> str:
        if self.ok:
            return "all files match the manifest"
        parts = {"missing": self.missing, "extra": self.extra, "changed": self.changed}
        return ", ".join(
            f"{len(paths)} {kind} (first: {paths[0]})" for kind, paths in parts.items() if paths
        )


@dataclass(frozen=True)
class Dataset:
    """Train/validation/test arrays from :func:`load_dataset`.

    ``X_*`` are float32 ``(N, C, 32, 32)`` in [0, 1], not normalised; ``y_*`` int64 ``(N,)``.
    ``mean`` and ``std`` (float32 ``(C,)``) come from :func:`fit_normalizer` on ``X_train``
    only, so validation and test statistics never leak into the inputs:
    ``normalize(ds.X_val, ds.mean, ds.std)``.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray

    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train": (X_train, y_train), "val": (X_val, y_val), "test": (X_test, y_test)}``."""
        return {
            "train": (self.X_train, self.y_train),
            "val": (self.X_val, self.y_val),
            "test": (self.X_test, self.y_test),
        }


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``root``, else ``$HW3_DATA``, else :data:`DEFAULT_ROOT`."""
    if root is not None:
        return Path(root)
    env = os.environ.get("HW3_DATA")
    return Path(env) if env else DEFAULT_ROOT


def _natural_key(name: str) -> tuple[list[int | str], str]:
    """Sort key with digit runs compared as numbers: ``x_2`` before ``x_10``."""
    parts = re.split(r"(\d+)", name)
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], name


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read {path}: {exc.strerror or exc}. "
            "Fix: make the file readable (check its permissions) or replace it."
        ) from exc


def _entries(folder: Path, want_dirs: bool) -> list[Path]:
    """Non-hidden entries of ``folder``; each must be a folder (``want_dirs``) or a .png file."""
    try:
        names = [n for n in os.listdir(folder) if not n.startswith(".")]
    except OSError as exc:
        raise DataError(
            f"cannot list {folder}: {exc.strerror or exc}. "
            "Fix: make the folder readable (check its permissions)."
        ) from exc
    paths = [folder / n for n in names]
    for path in paths:
        is_dir = path.is_dir()
        if not (is_dir if want_dirs else not is_dir and path.suffix.lower() == ".png"):
            expected = "class folders" if want_dirs else ".png images"
            raise DataError(
                f"unexpected {'folder' if is_dir else 'file'} {path}: {folder} must hold "
                f"only {expected} (hidden files such as .DS_Store are skipped). "
                "Fix: move it out of the dataset folder."
            )
    return paths


def _decode_png(path: Path) -> Image.Image:
    """Read and fully decode one PNG as stored; any failure becomes a DataError naming ``path``."""
    body = _read_bytes(path)
    try:
        im = Image.open(io.BytesIO(body), formats=["PNG"])
        im.load()
        return im
    except Exception as exc:  # Pillow reports corrupt data with many exception types
        raise DataError(
            f"{path} is not a valid PNG image ({type(exc).__name__}: {exc}). {_FIX_REFETCH}"
        ) from exc


def _load_image(path: Path, mode: str, first: tuple[str, Path] | None = None) -> np.ndarray:
    """Decode one 32x32 PNG to uint8 ``(H, W, C)`` in Pillow ``mode``; DataError names ``path``.

    ``first`` is ``(stored mode, path)`` of the split's first image: every image of a split
    must be stored in the same mode (all "LA" here), so a stray colour or palette file is
    caught rather than silently converted.
    """
    im = _decode_png(path)
    if first is not None and im.mode != first[0]:
        raise DataError(
            f"{path} is stored in mode {im.mode}, the other images in mode {first[0]} "
            f"(e.g. {first[1]}). Fix: save it in mode {first[0]} like the rest, or replace it."
        )
    if im.size[::-1] != IMAGE_SHAPE:
        raise DataError(
            f"{path} is {im.size[0]}x{im.size[1]} pixels, expected "
            f"{IMAGE_SHAPE[1]}x{IMAGE_SHAPE[0]}. {_FIX_REFETCH}"
        )
    return np.asarray(im.convert(mode)).reshape(*IMAGE_SHAPE, -1)


def _split_files(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """``(files, labels, classes)`` of one split, in :func:`load_split` order; DataError as there."""
    split_dir = root / SPLITS[split]
    if not split_dir.is_dir():
        raise DataError(f"no dataset at {root}: folder {split_dir} does not exist. {_FIX_WHERE}")
    classes = sorted(p.name for p in _entries(split_dir, want_dirs=True))
    if not classes:
        raise DataError(f"{split_dir} holds no class folders. {_FIX_WHERE}")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        images = sorted(_entries(split_dir / name, want_dirs=False), key=lambda p: _natural_key(p.name))
        if not images:
            raise DataError(f"class folder {split_dir / name} holds no .png images. {_FIX_REFETCH}")
        files += images
        labels += [label] * len(images)
    return files, labels, classes


def load_split(
    root: str | os.PathLike | None = None, split: str = "train", mode: str = "L"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load one split as ``(X, y, classes)``.

    ``X`` float32 ``(N, C, 32, 32)`` in [0, 1] with C = 1, 2, 3, 4 for ``mode`` "L" (default;
    the alpha channel carries nothing), "LA", "RGB", "RGBA" (the original report's
    four-channel input); ``y`` int64 ``(N,)``; ``classes`` the sorted class-folder names.
    Samples are ordered by class, then by file name in natural order (``_2`` before ``_10``).
    ``split`` is "train" (``Data_train``) or "test" (``Data_test``).

    Hidden entries (names starting with ".", e.g. .DS_Store) are skipped; any other entry that
    is not a class folder, or not a .png file inside a class folder, raises DataError, as do a
    missing root, an empty class folder, an unreadable or corrupt PNG, an image that is not
    32x32 and an image stored in another mode than the split's first.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    files, labels, classes = _split_files(resolve_root(root), split)
    pixels = np.empty((len(files), *IMAGE_SHAPE, MODES[mode]), dtype=np.uint8)
    first = (_decode_png(files[0]).mode, files[0])
    for i, path in enumerate(files):
        pixels[i] = _load_image(path, mode, first)
    X = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
    X /= 255
    return X, np.array(labels, dtype=np.int64), classes


def train_val_split(
    X: np.ndarray, y: np.ndarray, val_fraction: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split into ``(X_train, y_train, X_val, y_val)``, deterministic for ``seed``.

    Each class with n samples sends ``round(n * val_fraction)`` randomly chosen ones to
    validation (147 of 490 at 0.3). Both parts keep the input order.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} != {len(y)}")
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        is_val[rng.permutation(idx)[: round(len(idx) * val_fraction)]] = True
    return X[~is_val], y[~is_val], X[is_val], y[is_val]


def fit_normalizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)``, float32 ``(C,)``, of ``X`` ``(N, C, H, W)``.

    Fit it on the training split only and apply it to every split with :func:`normalize`.
    A constant channel (the alpha of "LA"/"RGBA") gets std 1, so it normalises to 0, not NaN.
    """
    mean = X.mean(axis=(0, 2, 3), dtype=np.float64)
    std = X.std(axis=(0, 2, 3), dtype=np.float64)
    std[std == 0] = 1
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(X - mean) / std`` per channel, float32 ``(N, C, H, W)``; see :func:`fit_normalizer`."""
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    if X.ndim != 4 or X.shape[1] != mean.size or mean.shape != std.shape:
        raise ValueError(
            f"X {X.shape} must be (N, C, H, W) with C = len(mean) = len(std); "
            f"got mean {mean.shape}, std {std.shape}"
        )
    shape = (1, -1, 1, 1)
    return (np.asarray(X, dtype=np.float32) - mean.reshape(shape)) / std.reshape(shape)


def dataloader(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X_batch, y_batch)`` covering every sample exactly once, last partial batch included.

    With ``shuffle`` the order comes from ``np.random.default_rng((seed, epoch))``: the same
    for the same ``(seed, epoch)``, different from epoch to epoch. Arguments are checked when
    called, before the first batch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} != {len(y)}")
    order = np.random.default_rng((seed, epoch)).permutation(len(y)) if shuffle else np.arange(len(y))
    return ((X[idx], y[idx]) for idx in np.split(order, range(batch_size, len(y), batch_size)))


def load_dataset(
    root: str | os.PathLike | None = None, mode: str = "L", val_fraction: float = 0.3, seed: int = 0
) -> Dataset:
    """Load both splits, split train stratified into train/val, fit the normaliser on train.

    Raises DataError when the test split's class folders differ from the training split's.
    """
    root = resolve_root(root)
    X, y, classes = load_split(root, "train", mode)
    X_test, y_test, test_classes = load_split(root, "test", mode)
    if test_classes != classes:
        raise DataError(
            f"class folders differ between {root / SPLITS['train']} and {root / SPLITS['test']}: "
            f"missing from test: {sorted(set(classes) - set(test_classes))}, "
            f"only in test: {sorted(set(test_classes) - set(classes))}. "
            "Fix: give both splits the same class folders."
        )
    X_train, y_train, X_val, y_val = train_val_split(X, y, val_fraction, seed)
    mean, std = fit_normalizer(X_train)
    return Dataset(X_train, y_train, X_val, y_val, X_test, y_test, classes, mean, std)


# ---------------------------------------------------------------- analysis (notebook 01)


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
        for path in _split_files(root, split)[0]:
            im = _decode_png(path)
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compute_manifest(root: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every non-hidden file under ``root``/Data_train and Data_test.

    Returns ``{relative POSIX path: hex digest}`` sorted by path; absent folders give no entries.
    """
    root = Path(root)
    manifest = {}
    for split_dir in SPLITS.values():
        for dirpath, dirnames, filenames in os.walk(root / split_dir):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not name.startswith("."):
                    path = Path(dirpath, name)
                    manifest[path.relative_to(root).as_posix()] = _sha256(_read_bytes(path))
    return dict(sorted(manifest.items()))


def _format_manifest(manifest: Mapping[str, str]) -> str:
    return "".join(f"{sha}  {rel}\n" for rel, sha in sorted(manifest.items()))


def write_manifest(root: str | os.PathLike, path: str | os.PathLike = MANIFEST_PATH) -> None:
    """Write :func:`compute_manifest` of ``root`` to ``path`` in ``sha256sum`` format."""
    Path(path).write_text(_format_manifest(compute_manifest(root)), encoding="utf-8")


def read_manifest(path: str | os.PathLike = MANIFEST_PATH) -> dict[str, str]:
    """Parse a ``sha256sum``-format file into ``{relative path: hex digest}``."""
    path = Path(path)
    manifest = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        sha, _, rel = line.partition("  ")
        if not re.fullmatch(r"[0-9a-f]{64}", sha) or not rel:
            raise DataError(f"{path}:{number}: expected 'sha256  relative/path', got {line!r}")
        manifest[rel] = sha
    return manifest


def verify(
    root: str | os.PathLike | None = None,
    manifest: Mapping[str, str] | str | os.PathLike | None = None,
) -> VerifyReport:
    """Compare the files under ``root`` with ``manifest`` (a mapping, a file, or the packaged one).

    Hidden files are ignored, as in :func:`load_split`; a missing root reports every file missing.
    """
    if not isinstance(manifest, Mapping):
        manifest = read_manifest(MANIFEST_PATH if manifest is None else manifest)
    actual = compute_manifest(resolve_root(root))
    return VerifyReport(
        missing=sorted(manifest.keys() - actual.keys()),
        extra=sorted(actual.keys() - manifest.keys()),
        changed=sorted(rel for rel in manifest.keys() & actual.keys() if manifest[rel] != actual[rel]),
    )


def dataset_sha256(root: str | os.PathLike | None = None) -> str:
    """One SHA-256 over the manifest (sorted ``sha256sum`` lines) of the data present under ``root``.

    Equals the SHA-256 of ``hw3lib/fruits.sha256`` when the data is intact; for checkpoint stamps.
    """
    root = resolve_root(root)
    manifest = compute_manifest(root)
    if not manifest:
        raise DataError(f"no dataset files under {root}. {_FIX_WHERE}")
    return _sha256(_format_manifest(manifest).encode("utf-8"))


def _fetch(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise DataError(
            f"{url}: HTTP {exc.code} {exc.reason}. Fix: check that base_url points at the folder "
            f"holding Data_train/ and Data_test/ (default {DEFAULT_BASE_URL})."
        ) from exc
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeout, reset, cut-off body
        raise DataError(
            f"could not fetch {url}: {exc}. Fix: check the network connection and run the "
            "download again, or copy Data_train/ and Data_test/ by hand (see data/README.md)."
        ) from exc


def _fetch_all(
    manifest: Mapping[str, str], base_url: str, target: Path, progress: bool, timeout: float, workers: int
) -> None:
    """Fetch every manifest file into ``target``, checking each SHA-256 before writing it."""
    pool = ThreadPoolExecutor(workers)
    try:
        urls = {rel: f"{base_url.rstrip('/')}/{urllib.parse.quote(rel)}" for rel in manifest}
        futures = {pool.submit(_fetch, url, timeout): rel for rel, url in urls.items()}
        with tqdm(total=len(futures), disable=not progress, unit="file", desc="fruits") as bar:
            for future in as_completed(futures):
                rel = futures[future]
                body = future.result()
                if _sha256(body) != manifest[rel]:
                    raise DataError(
                        f"{urls[rel]} returned bytes with SHA-256 {_sha256(body)}, but the manifest "
                        f"expects {manifest[rel]} for {rel}. Fix: point base_url at the pinned copy "
                        f"(default {DEFAULT_BASE_URL})."
                    )
                path = target / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
                bar.update()
    finally:
        pool.shutdown(cancel_futures=True)


def _move_into(staged: Path, dest: Path) -> None:
    """Rename ``staged``/Data_train and Data_test into ``dest``, undoing a half-done move."""
    created = not dest.exists()
    dest.mkdir(exist_ok=True)
    moved = []
    try:
        for split_dir in SPLITS.values():
            os.rename(staged / split_dir, dest / split_dir)
            moved.append(split_dir)
    except BaseException as exc:
        for split_dir in moved:
            os.rename(dest / split_dir, staged / split_dir)
        if created:
            dest.rmdir()
        if isinstance(exc, OSError):
            raise DataError(f"could not move the downloaded files into {dest}: {exc}") from exc
        raise


def download(
    dest: str | os.PathLike,
    base_url: str = DEFAULT_BASE_URL,
    progress: bool = True,
    timeout: float = 30.0,
    workers: int = 8,
) -> Path:
    """Fetch the 1968 images into ``dest``/Data_train and ``dest``/Data_test; return ``dest``.

    Files are listed by the packaged manifest and fetched as ``base_url + "/" + relpath`` (by
    default the pinned commit of the course repository on GitHub), ``timeout`` seconds per
    request. Each file's SHA-256 is checked; everything lands in a temporary folder next to
    ``dest`` and is renamed into place only when complete, so a failure (HTTP error, changed
    bytes, interruption, a full disk) leaves ``dest`` as it was and removes the temporary folder. A ``dest``
    that already holds a verified copy is left alone; one holding anything else raises DataError.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest} exists and is not a folder. Fix: choose another destination.")
    if any((dest / split_dir).exists() for split_dir in SPLITS.values()):
        report = verify(dest)
        if report.ok:
            return dest
        raise DataError(
            f"{dest} already holds Data_train/ or Data_test/ that differ from the manifest ({report}). "
            "Fix: move or delete them, then download again."
        )
    manifest = read_manifest()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.download-", dir=dest.parent))
        try:
            staged = staging / "data"
            _fetch_all(manifest, base_url, staged, progress, timeout, workers)
            report = verify(staged, manifest)  # re-read from disk: what gets renamed is what was checked
            if not report.ok:
                raise DataError(f"the files written to {staged} fail verification ({report}). Fix: retry.")
            _move_into(staged, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise DataError(
            f"cannot write the download next to {dest}: {exc}. "
            "Fix: choose a writable destination with about 10 MB free."
        ) from exc
    return dest


def main_download(argv: list[str] | None = None) -> int:
    """``python -m hw3lib download [DEST]``: fetch and verify the dataset; exit status 0 or 1."""
    parser = argparse.ArgumentParser(
        prog="python -m hw3lib download", description="Fetch and verify the fruit images."
    )
    parser.add_argument(
        "dest", nargs="?", type=Path, help=f"target folder (default: $HW3_DATA or {DEFAULT_ROOT})"
    )
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="folder URL holding Data_train/")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        dest = download(resolve_root(args.dest), args.base_url, progress=not args.no_progress)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"verified dataset at {dest}")
    return 0
