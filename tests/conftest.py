import os
import tracemalloc
from pathlib import Path

import matplotlib
import numpy as np
import pytest


def pytest_configure(config):
    # CI sets HW3_REQUIRE_TORCH=1: there the PyTorch oracle must run, never be skipped.
    if os.environ.get("HW3_REQUIRE_TORCH") == "1":
        try:
            import torch  # noqa: F401
        except ImportError as err:
            raise pytest.UsageError(
                f"HW3_REQUIRE_TORCH=1 but PyTorch is not importable ({err}): "
                "install it with `pip install torch==2.13.0`") from None
    # and HW3_REQUIRE_DATA=1: the tests of the real dataset must run, never be skipped for want of it
    data = Path(os.environ.get("HW3_DATA") or Path(__file__).parents[1] / "data")
    if os.environ.get("HW3_REQUIRE_DATA") == "1" and not all(
            (data / split).is_dir() for split in ("Data_train", "Data_test")):
        raise pytest.UsageError(f"HW3_REQUIRE_DATA=1 but the dataset is not at {data} (no Data_train/ "
                                "and Data_test/ there): set HW3_DATA to its folder, or run `make data`")


def missing(tool, env_var):
    """Skip the test for want of ``tool`` (a sentence saying what is missing and how to get it),
    or fail it where ``env_var`` is "1": CI sets such variables so that nothing it must test is
    skipped."""
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{env_var}=1 but {tool}")
    pytest.skip(tool)


def peak_bytes(fn):
    """``(fn(), the peak bytes it allocated)`` (NumPy's arrays are traced too)."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def random_configs(count, seed):
    """Random convolution geometries: batch 1-4, channels 1-5, non-square inputs 5-17,
    non-square kernels 1-5, stride 1-3, padding 0-2 (kernels always fit)."""
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < count:
        h, w = rng.integers(5, 18, size=2)
        kh, kw = rng.integers(1, 6, size=2)
        p = int(rng.integers(0, 3))
        if kh > h + 2 * p or kw > w + 2 * p:
            continue
        configs.append(dict(n=int(rng.integers(1, 5)), c=int(rng.integers(1, 6)),
                            f=int(rng.integers(1, 6)), h=int(h), w=int(w), kh=int(kh),
                            kw=int(kw), stride=int(rng.integers(1, 4)), padding=p))
    return configs


def anisotropic_configs(count, seed):
    """Random convolution geometries whose stride or padding differs between the axes
    (``(sh, sw)``, ``(ph, pw)``): otherwise as :func:`random_configs`, which draws one stride
    and one padding for both, so that an axis's value used for the other goes unseen. Strides
    of 1-3 against kernels of 1-5: rows or columns that no window reads (stride > kernel) and
    stride-1 rows (unstack_product's stacked product) both occur."""
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < count:
        h, w = (int(v) for v in rng.integers(5, 18, size=2))
        kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
        sh, sw = (int(v) for v in rng.integers(1, 4, size=2))
        ph, pw = (int(v) for v in rng.integers(0, 3, size=2))
        if kh > h + 2 * ph or kw > w + 2 * pw or (sh, ph) == (sw, pw):
            continue
        configs.append(dict(n=int(rng.integers(1, 5)), c=int(rng.integers(1, 6)),
                            f=int(rng.integers(1, 6)), h=h, w=w, kh=kh, kw=kw, stride=(sh, sw),
                            padding=(ph, pw)))
    return configs


def anisotropic_config_id(cfg):
    return "n{n}c{c}f{f}_{h}x{w}_k{kh}x{kw}_s{stride[0]}x{stride[1]}p{padding[0]}x{padding[1]}".format(**cfg)


def pool_configs(count, seed):
    """Random pooling geometries: batch 1-3, channels 1-3, non-square inputs 1-12, kernels
    1-4 per axis, strides 1-4 per axis (gaps where stride > kernel, overlaps where less) or
    None (the kernel), the kernel always fitting."""
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < count:
        kernel = tuple(int(v) for v in rng.integers(1, 5, size=2))
        h, w = (int(v) for v in rng.integers(1, 13, size=2))
        if kernel[0] <= h and kernel[1] <= w and kernel != (1, 1):
            stride = None if rng.random() < 0.25 else tuple(int(v) for v in rng.integers(1, 5, size=2))
            configs.append(dict(n=int(rng.integers(1, 4)), c=int(rng.integers(1, 4)), h=h, w=w,
                                kernel=kernel, stride=stride))
    return configs


def pool_config_id(cfg):
    stride = "k" if cfg["stride"] is None else "{}x{}".format(*cfg["stride"])
    return "n{n}c{c}_{h}x{w}_k{kernel[0]}x{kernel[1]}_s".format(**cfg) + stride


def winograd_configs(count, seed):
    """Random stride-1 geometries with square kernels of 2-5: batch 1-3, channels 1-4,
    inputs up to 12, padding 0-2, odd and even outputs."""
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < count:
        r, p = int(rng.integers(2, 6)), int(rng.integers(0, 3))
        h, w = (int(v) for v in rng.integers(1, 13, size=2))
        if min(h, w) + 2 * p >= r:
            configs.append(dict(n=int(rng.integers(1, 4)), c=int(rng.integers(1, 5)),
                                f=int(rng.integers(1, 5)), h=h, w=w, r=r, padding=p))
    return configs


# Winograd geometries (stride 1, square kernels) whose padding differs between the axes, which
# winograd_configs never draws: one for each kernel size
WINOGRAD_PADDING_PER_AXIS = [dict(n=2, c=2, f=3, h=9, w=7, r=2, padding=(0, 2)),
                             dict(n=1, c=3, f=2, h=6, w=11, r=3, padding=(2, 0)),
                             dict(n=2, c=2, f=2, h=10, w=9, r=4, padding=(1, 2)),
                             dict(n=3, c=1, f=3, h=8, w=5, r=5, padding=(2, 1))]


def winograd_config_id(cfg):
    return "n{n}c{c}f{f}_{h}x{w}_k{r}p{padding}".format(**cfg)


def image_and_window(cfg, seed):
    """``(rng, x, window)`` for a config of :func:`random_configs`: a random ``x (N, C, H, W)``
    in float64 and ``window = (kh, kw, stride, padding)``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"]))
    return rng, x, (cfg["kh"], cfg["kw"], cfg["stride"], cfg["padding"])


def assert_adjoint(unfold, fold, x, rng):
    """``<unfold(x), r> == <x, fold(r)>`` for a random ``r``: ``fold`` is the adjoint of ``unfold``."""
    r = rng.standard_normal(unfold(x).shape)
    lhs, rhs = np.vdot(unfold(x), r), np.vdot(x, fold(r))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs)), (lhs, rhs)


def config_id(cfg):
    return "n{n}c{c}f{f}_{h}x{w}_k{kh}x{kw}_s{stride}p{padding}".format(**cfg)


# Figures in the test process render off-screen. (Not through MPLBACKEND: nbval's kernels
# would inherit it and store no figures.)
matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    """Close the figures a test made, so that they do not pile up across tests."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# every way split_conv splits a Conv2D's work, both weight gradients (windows and views)
CONV_SPLITS = ["one_column", "columns_kept", "one_row", "two_rows", "two_columns",
               "two_columns_rebuilt", "views_one_column", "views_one_row", "views_two_rows",
               "views_two_columns"]


def split_conv(split, monkeypatch, layer=None, x_shape=None):
    """Make every ``Conv2D`` on im2col split its work as its large inputs do, but finely:
    ``"one_column"``, product blocks one output column wide, their windows rebuilt in
    backward; ``"columns_kept"``, the same blocks with their windows kept for backward;
    ``"one_row"``, bands of one output row, built in one reused buffer and rebuilt in backward;
    ``"two_rows"``, one block in bands of two output rows (the sizes of ``layer`` on inputs of
    ``x_shape`` decide the band's bytes); ``"two_columns"``, blocks of two output columns (one
    for the last of an odd count), as large inputs have blocks of several columns, their windows
    kept; ``"two_columns_rebuilt"``, the same blocks in bands of one row, rebuilt in backward in
    one buffer that the widest block's band sizes. These take the weight gradient from the
    windows; ``"views_"`` and one of them takes it from views of the input (no window kept)."""
    from hw3lib import conv

    views = split.startswith("views_")
    monkeypatch.setattr(conv, "WEIGHT_GRADIENT", "views" if views else "windows")
    split = split.removeprefix("views_")

    settings = {"one_column": {"CACHE_BYTES": 0, "MIN_COLUMNS": 1, "WINDOW_KEEP_BYTES": 0},
                "columns_kept": {"CACHE_BYTES": 0, "MIN_COLUMNS": 1},
                "one_row": {"WINDOW_KEEP_BYTES": 0, "WINDOW_BAND_BYTES": 0}}
    if split.startswith("two_columns"):  # MIN_COLUMNS counts columns of N numbers each
        settings[split] = {"CACHE_BYTES": 0, "MIN_COLUMNS": 2 * x_shape[0]}
        if split == "two_columns_rebuilt":
            settings[split] |= {"WINDOW_KEEP_BYTES": 0, "WINDOW_BAND_BYTES": 0}
    if split == "two_rows":
        n, c, h, w = x_shape
        (kh, kw), (sh, sw), (_, pw) = layer.kernel_size, layer.stride, layer.padding
        ow = (w + 2 * pw - kw) // sw + 1
        band = (kh + sh) * c * kw * ow * n * layer.params["W"].itemsize  # two output rows' windows
        settings[split] = {"CACHE_BYTES": 1 << 40, "WINDOW_KEEP_BYTES": 0, "WINDOW_BAND_BYTES": band}
    for name, value in settings[split].items():
        monkeypatch.setattr(conv, name, value)


def split_winograd(split, monkeypatch):
    """Make every Winograd ``Conv2D`` run in blocks of one tile row: ``"one_tile_row_kept"``,
    its transformed input kept for backward; ``"one_tile_row_rebuilt"``, rebuilt in backward."""
    from hw3lib import conv

    monkeypatch.setattr(conv, "TILE_BLOCK_BYTES", 0)
    if split == "one_tile_row_rebuilt":
        monkeypatch.setattr(conv, "KEEP_BYTES", 0)


def assert_split(split, layer, out):
    """Check that ``layer``'s forward pass, which gave ``out (N, F, OH, OW)``, was split as
    :func:`split_conv` asked."""
    oh, ow = out.shape[2:]
    bands = [[rows.stop - rows.start for _, rows in block] for block in layer.bands]
    views = split.startswith("views_")
    split = split.removeprefix("views_")
    assert layer.views == views
    if split in ("one_column", "columns_kept"):
        assert len(layer.blocks) == ow
        assert len(layer.X) == (ow if split == "columns_kept" and not views else 0)
    elif split.startswith("two_columns"):
        widths = [columns.stop - columns.start for columns in layer.blocks]
        assert widths == [2] * (ow // 2) + [1] * (ow % 2)
        if split == "two_columns":
            kept = 0 if views else len(widths)  # a weight gradient from views keeps no window
            assert len(layer.X) == kept and bands == [[oh]] * len(widths)
        else:
            assert layer.X == [] and bands == [[1] * oh] * len(widths)
    elif split == "one_row":
        assert layer.X == [] and bands == [[1] * oh] * len(layer.blocks)
    else:
        per = min(oh, 2)  # bands of two rows, one left over for odd OH (not hw3lib's even_block)
        assert layer.X == [] and len(layer.blocks) == 1
        assert bands == [[per] * (oh // per) + ([oh % per] if oh % per else [])]
