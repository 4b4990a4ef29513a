"""The kernel-row lowering under Conv2D: unfold_rows, its adjoint fold_rows, and its memory."""
import numpy as np
import pytest
from conftest import assert_adjoint, config_id, image_and_window, random_configs

from hw3lib.im2col import fold_rows, im2col, spread_rows, unfold_rows


@pytest.mark.parametrize("cfg", random_configs(12, seed=11), ids=config_id)
def test_fold_rows_is_the_adjoint_of_unfold_rows(cfg):
    rng, x, window = image_and_window(cfg, seed=4)
    assert_adjoint(lambda x: unfold_rows(x, *window), lambda r: fold_rows(r, x.shape, *window), x, rng)


def test_kernel_rows_are_views_of_the_width_windows_for_stride_one():
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 10))
    rows = unfold_rows(x, 5, 3)  # kernel 5x3: output 8x8, rows (4, 5, 3 * 3, 8 * 8)
    assert rows.shape == (4, 5, 9, 64) and not rows.flags.owndata
    assert np.shares_memory(rows[:, 0], rows[:, 1])
    base = rows.base
    while base.base is not None:
        base = base.base
    assert base.size == 4 * 3 * 3 * 12 * 8  # N C kw H OW: one copy of x per kernel column
    assert im2col(x, 5, 3).size == 5 * base.size * 8 // 12  # im2col: one per kernel offset


def test_spread_rows_puts_each_block_on_the_rows_it_read():
    rows = np.arange(1.0, 3.0).reshape(1, 2, 1, 1, 1)  # kernel rows 0 and 1, one output row
    spread = spread_rows(rows, padded_h=3, stride_h=1)
    np.testing.assert_array_equal(spread[0, :, 0, :, 0], [[1, 0, 0], [0, 2, 0]])
