"""The row-stacked lowering under Conv2D: unfold_width and stack_rows, their adjoints
fold_width and unstack_rows, unstack_product, the kernel columns' views, and what is copied."""
import numpy as np
import pytest
from conftest import (anisotropic_configs, assert_adjoint, config_id, image_and_window,
                      random_configs)

from hw3lib.im2col import (fold_width, im2col, kernel_columns, padded_rows, pair, stack_rows,
                           stride_phases, unfold_width, unstack_product, unstack_rows,
                           width_windows)

CONFIGS = random_configs(12, seed=11)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_fold_width_is_the_adjoint_of_unfold_width(cfg):
    rng, x, (_, kw, s, p) = image_and_window(cfg, seed=4)
    assert_adjoint(lambda x: unfold_width(x, kw, s, p), lambda X: fold_width(X, x.shape, kw, s, p),
                   x, rng)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_unstack_rows_is_the_adjoint_of_stack_rows(cfg):
    rng, x, (kh, kw, s, p) = image_and_window(cfg, seed=5)
    X = unfold_width(x, kw, s, p)
    assert_adjoint(lambda X: stack_rows(X, kh, s), lambda S: unstack_rows(S, len(X), kh, s), X, rng)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_unstack_product_equals_unstacking_the_whole_product(cfg):
    rng, x, (kh, kw, s, p) = image_and_window(cfg, seed=6)
    X = unfold_width(x, kw, s, p)
    oh = stack_rows(X, kh, s).shape[0]
    W = rng.standard_normal((cfg["f"], kh, X.shape[1]))
    G = rng.standard_normal((oh, cfg["f"], X.shape[2]))
    whole = np.matmul(W.reshape(cfg["f"], -1).T, G)  # (OH, kh*K, M): kh times larger
    np.testing.assert_allclose(unstack_product(W, G, len(X), s), unstack_rows(whole, len(X), kh, s),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cfg", CONFIGS + anisotropic_configs(8, seed=13),
                         ids=lambda cfg: str(sorted(cfg.items())))
def test_kernel_columns_are_the_im2col_rows_of_each_kernel_column(cfg):
    """Each kernel column's views over the stride phases hold the rows ``(i, c, j)`` of
    stack_rows over width_windows, for column blocks that start anywhere, without a copy
    for stride 1."""
    _, x, (kh, kw, s, p) = image_and_window(cfg, seed=7)
    (sh, sw), (ph, pw) = ((s, s) if isinstance(s, int) else s), ((p, p) if isinstance(p, int) else p)
    rows = padded_rows(x, (ph, pw))
    phases = stride_phases(rows, sw)
    assert np.shares_memory(phases, rows) == (sw == 1)
    ow = (rows.shape[2] - kw) // sw + 1
    for columns in (slice(0, ow), slice(ow // 2, ow), slice(ow - 1, ow)):
        S = stack_rows(width_windows(rows, kw, sw, columns), kh, sh)  # (OH, kh*C*kw, b*N)
        S = S.reshape(len(S), kh, cfg["c"], kw, -1)
        seen = []
        for js, V in kernel_columns(phases, rows.shape[2], (kh, kw), (sh, sw), columns):
            assert not V.flags.writeable
            for q, j in enumerate(range(kw)[js]):
                np.testing.assert_array_equal(V[q], S[:, :, :, j].reshape(V.shape[1:]))
                seen.append(j)
        assert sorted(seen) == list(range(kw))


def test_kernel_columns_clamp_the_columns_asked_for_to_the_output_and_check_the_width():
    """Columns past the output's last are not read (views past the rows' memory would read
    whatever lies there), None is all of them, and a width the phases do not have is refused."""
    rows = padded_rows(np.random.default_rng(1).standard_normal((2, 2, 6, 7)))  # 7 wide
    phases = stride_phases(rows, 2)
    whole = kernel_columns(phases, 7, 3, 2)  # output columns 0, 1, 2
    for columns in (None, slice(0, 50), slice(-3, None)):
        for (js, V), (_, W) in zip(kernel_columns(phases, 7, 3, 2, columns), whole):
            np.testing.assert_array_equal(V, W)
    assert whole[0][1].shape[-1] == 3 * 2  # 3 output columns of 2 images
    with pytest.raises(ValueError, match="not the stride phases of rows 9 wide"):
        kernel_columns(phases, 9, 3, 2)


def test_kernel_columns_refuse_phases_of_another_stride_than_the_one_asked_for():
    """The phases decide the stride the views read at: one along the width that differs from
    theirs would be silently replaced by theirs."""
    rows = padded_rows(np.random.default_rng(2).standard_normal((2, 2, 6, 9)))
    for stride, sw in (((1, 2), 1), (1, 2), ((2, 3), 2)):
        with pytest.raises(ValueError, match=rf"dealt into {sw} stride phases, but the stride "
                                             rf"along the width is {pair(stride)[1]}"):
            kernel_columns(stride_phases(rows, sw), 9, 3, stride)


def test_kernel_columns_refuse_phases_not_laid_out_in_c_order():
    """The views' strides are those of C order, so other memory would read the wrong numbers,
    or past the array's end."""
    rows = padded_rows(np.random.default_rng(3).standard_normal((2, 2, 6, 9)))
    phases = stride_phases(rows, 2)
    for other in (np.asfortranarray(phases), phases[::-1], phases[:, :1]):
        with pytest.raises(ValueError, match="must be C-contiguous, as stride_phases returns"):
            kernel_columns(other, 9, 3, 2)


@pytest.mark.parametrize("kernel", [(7, 3), (3, 10), (8, 3)])
def test_kernel_columns_refuse_a_kernel_larger_than_the_rows(kernel):
    """Views of no output row or column (or an error about negative dimensions) said nothing
    of what was wrong."""
    rows = padded_rows(np.random.default_rng(4).standard_normal((2, 2, 6, 9)))
    with pytest.raises(ValueError, match=rf"a {kernel[0]}x{kernel[1]} kernel does not fit a 6x9"):
        kernel_columns(stride_phases(rows, 1), 9, kernel)


def test_kernel_columns_read_by_the_layout_not_by_numpys_strides_of_axes_of_one():
    """One image of one channel: NumPy may give its axes of length 1 any stride, and a view
    built from those strides read other memory (a whole LeNet5 trained on one 7x7 image,
    and batches split over threads into parts of one image, went wrong)."""
    x = np.random.default_rng(0).standard_normal((1, 1, 9, 8))
    rows = padded_rows(x)  # no copy: x's memory already is (H, C, W, N)
    assert rows.strides[1] != rows.strides[2] * rows.shape[2]  # NumPy's stride of C is x's
    columns = slice(0, 8 - 3 + 1)
    (js, V), = kernel_columns(stride_phases(rows, 1), 8, (2, 3), (1, 1), columns)
    S = stack_rows(width_windows(rows, 3, 1, columns), 2).reshape(8, 2, 1, 3, -1)
    for j in range(3):
        np.testing.assert_array_equal(V[j], S[:, :, :, j].reshape(V.shape[1:]))


@pytest.mark.parametrize("n, h", [(1, 1), (8, 16), (9, 17), (19, 37)])
def test_padded_rows_in_blocks_of_images_and_rows_equals_padding_then_moving_the_batch(n, h):
    """Batches and heights that the blocks of BATCH_BLOCK images and ROW_BLOCK rows cut with
    remainders, with and without padding."""
    x = np.random.default_rng(n + h).standard_normal((n, 2, h, 5)).astype(np.float32)
    for ph, pw in ((0, 0), (2, 1)):
        expected = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))).transpose(2, 1, 3, 0)
        np.testing.assert_array_equal(padded_rows(x, (ph, pw)), expected)


def test_padded_rows_copies_only_what_is_not_laid_out_so_already():
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 10)).astype(np.float32)
    rows = padded_rows(x)  # (N, C, H, W) memory: moved into (H, C, W, N)
    assert rows.shape == (12, 3, 10, 4) and not np.shares_memory(rows, x)
    np.testing.assert_array_equal(rows, x.transpose(2, 1, 3, 0))
    laid_out = np.ascontiguousarray(x.transpose(2, 1, 3, 0)).transpose(3, 1, 0, 2)  # a Conv2D output's
    assert padded_rows(laid_out).base is laid_out.base  # no copy: the same memory
    padded = padded_rows(laid_out, 1)  # padding needs a new array, zeros around the images
    assert padded.shape == (14, 3, 12, 4) and not np.shares_memory(padded, laid_out)
    np.testing.assert_array_equal(padded[1:-1, :, 1:-1], rows)
    assert not padded[0].any() and not padded[:, :, 0].any()


def test_output_rows_are_one_view_of_the_width_windows():
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 10))
    X = unfold_width(x, 3)  # kernel 5x3: output 8x8
    assert X.shape == (12, 3 * 3, 4 * 8) and X.size == 3 * x.size * 8 // 10  # kw copies of x
    S = stack_rows(X, 5)
    assert S.shape == (8, 5 * 9, 32) and np.shares_memory(S, X) and not S.flags.writeable
    np.testing.assert_array_equal(S[2], X[2:7].reshape(45, 32))  # output row 2 reads image rows 2-6
    cols = im2col(x, 5, 3)
    assert cols.size == 5 * X.size * 8 // 12  # im2col: one copy per kernel offset
    # column (n, oh, ow) of im2col is column (ow, n) of output row oh, rows reordered (c, i, j)
    field = S[2].reshape(5, 3, 3, 8, 4)[:, :, :, 6, 1].transpose(1, 0, 2).ravel()
    np.testing.assert_array_equal(cols[:, (1 * 8 + 2) * 8 + 6], field)


def test_width_windows_written_into_a_buffer_are_the_same_windows():
    rows = padded_rows(np.random.default_rng(2).standard_normal((3, 2, 7, 9)), (1, 2))
    buffer = np.full(10_000, np.nan)
    for stride, columns in ((1, None), (2, slice(1, 4)), (3, slice(0, 1))):
        X = width_windows(rows, 3, stride, columns, buffer)
        assert np.shares_memory(X, buffer)
        np.testing.assert_array_equal(X, width_windows(rows, 3, stride, columns))


def test_width_windows_hold_the_hand_example():
    x = np.arange(8.0).reshape(1, 1, 2, 4)
    X = unfold_width(x, 2, stride_w=2, padding=(0, 1))  # padded row [0, a, b, c, d, 0]: 3 windows
    np.testing.assert_array_equal(X[0], [[0, 1, 3], [0, 2, 0]])  # rows: j = 0, 1; columns: ow
