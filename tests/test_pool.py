"""Pooling against naive loops over windows, in float64: forward, and backward with the
gradient routed to each window's first maximum; for windows that tile the input (the fast path
with no zero fill), that leave pixels uncovered, that leave gaps, that overlap, and for inputs
in a Conv2D output's memory layout."""
import weakref

import numpy as np
import pytest

from hw3lib import AvgPool2D, Flatten, MaxPool2D, layers

GEOMETRIES = [(2, None, (2, 3, 8, 6)),         # tiles the input: written, no zero fill
              (2, None, (2, 2, 7, 9)),         # disjoint, the last row and column uncovered
              (2, 3, (1, 2, 8, 8)),            # gaps between the windows
              (3, 2, (2, 2, 7, 9)),            # overlapping
              ((2, 3), (1, 2), (1, 2, 5, 9)),  # rectangular, overlapping rows
              ((16, 17), (1, 16), (1, 2, 17, 33))]  # 272 offsets: more than a byte numbers


def windows(shape, kernel, stride):
    """Every window as ``(n, c, oh, ow, rows, cols)`` slices, by loops."""
    (kh, kw), (sh, sw) = kernel, stride
    n, c, h, w = shape
    for a in range(n):
        for b in range(c):
            for r in range((h - kh) // sh + 1):
                for q in range((w - kw) // sw + 1):
                    yield a, b, r, q, slice(r * sh, r * sh + kh), slice(q * sw, q * sw + kw)


def naive_pool(x, dout, layer, kind):
    """Forward and backward of one pooling layer by loops over its windows."""
    out, dx = np.zeros_like(dout), np.zeros_like(x)
    for a, b, r, q, rows, cols in windows(x.shape, layer.kernel_size, layer.stride):
        field = x[a, b, rows, cols]
        if kind == "max":
            out[a, b, r, q] = field.max()
            i, j = np.unravel_index(np.argmax(field), field.shape)  # the first maximum
            dx[a, b, rows, cols][i, j] += dout[a, b, r, q]
        else:
            out[a, b, r, q] = field.mean()
            dx[a, b, rows, cols] += dout[a, b, r, q] / field.size
    return out, dx


@pytest.mark.parametrize("kernel,stride,shape", GEOMETRIES)
@pytest.mark.parametrize("kind,cls", [("max", MaxPool2D), ("avg", AvgPool2D)])
@pytest.mark.parametrize("layout", ["NCHW", "HCWN"])
@pytest.mark.parametrize("block_bytes", [layers.POOL_BLOCK_BYTES, 1], ids=["one block", "a row a block"])
def test_pool_equals_naive_loops(kernel, stride, shape, kind, cls, layout, block_bytes, monkeypatch):
    monkeypatch.setattr(layers, "POOL_BLOCK_BYTES", block_bytes)  # MaxPool2D's backward in blocks
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).round(1)  # rounded: ties within windows happen
    if layout == "HCWN":  # the memory layout of a Conv2D output
        x = np.ascontiguousarray(x.transpose(2, 1, 3, 0)).transpose(3, 1, 0, 2)
    layer = cls(kernel, stride)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    ref_out, ref_dx = naive_pool(x, dout, layer, kind)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(dout), ref_dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("window", [[[np.nan, 2.0], [0.0, 1.0]], [[1.0, np.nan], [0.0, 2.0]],
                                    [[1.0, 2.0], [np.nan, 0.0]], [[1.0, 0.0], [2.0, np.nan]],
                                    [[np.nan, np.nan], [np.nan, np.nan]]])
def test_a_window_holding_nan_gives_nan_and_sends_its_gradient_to_one_input(window):
    """As MaxPool2D's docstring says (PyTorch sends it to the window's last NaN); the other
    windows are untouched."""
    x = np.array([[[[*window[0], 3.0, 4.0], [*window[1], 5.0, 3.0]]]])
    layer = MaxPool2D(2)
    out = layer.forward(x)
    assert np.isnan(out[..., 0]).all() and out[..., 1] == 5.0
    dx = layer.backward(np.full_like(out, 7.0))
    assert sorted(dx[..., :2].ravel().tolist()) == [0.0, 0.0, 0.0, 7.0]
    assert dx[..., 2:].tolist() == [[[[0.0, 0.0], [7.0, 0.0]]]]


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("block_bytes", [layers.POOL_BLOCK_BYTES, 1], ids=["one block", "a row a block"])
def test_pools_keep_no_reference_to_their_input(cls, block_bytes, monkeypatch):
    """The backward pass needs only the input's shape and layout, so a convolution's whole
    output is freed after the forward pass (it was kept until the next batch)."""
    monkeypatch.setattr(layers, "POOL_BLOCK_BYTES", block_bytes)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 6))
    layer = cls(2)
    out = layer.forward(x)
    input_freed = weakref.ref(x)
    del x
    assert input_freed() is None
    assert layer.backward(np.ones_like(out)).shape == (2, 3, 8, 6)


def laid_out_hcwn(a):
    """Whether ``a (N, C, H, W)`` has a Conv2D output's memory layout, ``(H, C, W, N)``."""
    return a.transpose(2, 1, 3, 0).flags.c_contiguous


@pytest.mark.parametrize("kernel,stride,shape", GEOMETRIES)
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("block_bytes", [layers.POOL_BLOCK_BYTES, 1], ids=["one block", "a row a block"])
def test_pools_and_flatten_keep_a_conv_outputs_memory_layout(kernel, stride, shape, cls, block_bytes,
                                                            monkeypatch):
    """As _Pool2D and Flatten say: a Conv2D output's (H, C, W, N) layout goes through the pool's
    output and gradient, and Flatten's gradient, so the layers before them read contiguous runs
    of N; each could return C order (a slower backward pass, same numbers) and every test passed.
    (MaxPool2D's forward pass in blocks joined them in C order: the backward pass at batch 512
    took 11 times as long.)"""
    monkeypatch.setattr(layers, "POOL_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(0)
    x = np.ascontiguousarray(rng.standard_normal(shape).transpose(2, 1, 3, 0)).transpose(3, 1, 0, 2)
    pool, flatten = cls(kernel, stride), Flatten()
    out = pool.forward(x)
    flat = flatten.forward(out)
    dout = flatten.backward(rng.standard_normal(flat.shape))
    assert laid_out_hcwn(out) and laid_out_hcwn(dout)
    assert laid_out_hcwn(pool.backward(dout))
    assert laid_out_hcwn(pool.backward(np.ascontiguousarray(dout)))  # a gradient in C order too
