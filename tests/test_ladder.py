"""The performance ladder: the "before" im2col/col2im and every rung against the naive loops."""
import re

import numpy as np
import pytest
from conftest import config_id, image_and_window, random_configs
from threadpoolctl import threadpool_info, threadpool_limits

from hw3lib import Conv2D, LeNet5, col2im, gradcheck_layer, im2col
from hw3lib.ladder import (ADD_AT, SLICES, Col2imTimes, ConvShape, NaiveConv2D, available_rungs,
                           col2im_add_at, conv_problem,
                           epoch_totals, format_epoch_totals, format_ladder, im2col_fancy,
                           lenet_conv_shapes,
                           max_relative_error, single_thread, time_col2im, time_ladder)
from hw3lib.workloads import TRAIN_SIZE

CONFIGS = random_configs(16, seed=11)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_fancy_im2col_and_add_at_col2im_equal_the_library(cfg):
    rng, x, args = image_and_window(cfg, seed=0)
    cols = im2col(x, *args)
    np.testing.assert_array_equal(im2col_fancy(x, *args), cols)
    c = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(col2im_add_at(c, x.shape, *args), col2im(c, x.shape, *args),
                               rtol=1e-12, atol=1e-12)


def test_add_at_col2im_counts_overlaps():
    counts = col2im_add_at(np.ones((9, 4)), (1, 1, 4, 4), 3, 3)[0, 0]
    np.testing.assert_array_equal(counts, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


@pytest.mark.parametrize("shape", [ConvShape("s1p0", 2, 3, 3, 7),
                                   ConvShape("s2p1", 3, 2, 3, 8, 2, 1)], ids=lambda s: s.name)
def test_every_rung_equals_the_naive_loops_in_float64(shape):
    x, W, b, dout = conv_problem(shape, 3, dtype=np.float64, seed=4)
    rungs = available_rungs()
    reference = rungs["naive loops"](x, W, b, dout, shape.stride, shape.padding)()
    for name, rung in rungs.items():
        result = rung(x, W, b, dout, shape.stride, shape.padding)()
        assert [r.shape for r in result] == [r.shape for r in reference], name
        assert max_relative_error(result, reference) < 1e-13, name


def test_lenet_conv_shapes_match_the_model():
    for channels in (1, 4):
        model = LeNet5(in_channels=channels, seed=0)
        convs = [(layer, shape) for layer, shape in zip(model.layers, model.shapes)
                 if isinstance(layer, Conv2D)]
        ours = [(s.in_channels, s.out_channels, (s.kernel,) * 2, s.size)
                for s in lenet_conv_shapes(channels)]
        assert ours == [(layer.in_channels, layer.out_channels, layer.kernel_size, shape[1])
                        for layer, shape in convs]


def test_time_ladder_rows_speedups_and_errors():
    shapes = [ConvShape("tiny", 2, 3, 3, 6), ConvShape("tiny s2", 1, 2, 3, 7, 2, 1)]
    rows = time_ladder(shapes, batch=4, naive_batch=2, repeats=2, dtype=np.float64)
    rungs = list(available_rungs())
    assert [(r["shape"], r["rung"]) for r in rows] == [(s.name, n) for s in shapes for n in rungs]
    for r in rows:
        naive = r["rung"] == "naive loops"
        assert r["images"] == (2 if naive else 4)
        assert r["seconds"] > 0
        assert r["per_image"] == pytest.approx(r["seconds"] / r["images"])
        assert r["epoch"] == pytest.approx(r["per_image"] * TRAIN_SIZE)
        assert r["error"] < 1e-13
        if naive:
            assert r["speedup"] == 1
    naive_tiny = rows[0]["per_image"]
    assert rows[1]["speedup"] == pytest.approx(naive_tiny / rows[1]["per_image"])
    table = format_ladder(rows)
    assert len(table.splitlines()) == len(rows) + 1 and "tiny s2" in table
    header = table.splitlines()[0]  # its columns apart: "speed-up max rel err" read as one phrase
    assert re.split(r"\s{2,}", header) == ["layer", "rung", "images", "ms/image", "s/epoch",
                                           "speed-up", "max rel err"]
    totals = epoch_totals(rows, ["tiny", "tiny s2"])
    assert totals["naive loops"] == pytest.approx(rows[0]["epoch"] + rows[len(rungs)]["epoch"])


def test_epoch_totals_of_lenets_convolutions_in_minutes_seconds_and_their_ratio():
    """Notebook 02's summary of the ladder: conv1 + conv2 per epoch, loops against Conv2D."""
    epochs = {("conv1 (1x32x32)", "naive loops"): 45.0, ("conv1 (1x32x32)", "hw3lib Conv2D"): 0.05,
              ("conv1 (4x32x32)", "naive loops"): 105.0, ("conv1 (4x32x32)", "hw3lib Conv2D"): 0.5,
              ("conv2 (6x14x14)", "naive loops"): 15.0, ("conv2 (6x14x14)", "hw3lib Conv2D"): 0.03}
    rows = [dict(shape=shape, rung=rung, epoch=epoch) for (shape, rung), epoch in epochs.items()]
    rows.append(dict(shape="conv2 (6x14x14)", rung="PyTorch CPU", epoch=1.0))  # another rung
    assert format_epoch_totals(rows).splitlines() == [
        f"1-channel input, conv1 + conv2, one epoch ({TRAIN_SIZE} images): loops 1.0 min, "
        "im2col 0.08 s, 750x",
        f"4-channel input, conv1 + conv2, one epoch ({TRAIN_SIZE} images): loops 2.0 min, "
        "im2col 0.53 s, 226x"]
    assert format_epoch_totals(rows, channels=(4,)).startswith("4-channel input")
    with pytest.raises(ValueError, match=r"no time for conv1 \(4x32x32\) by naive loops, conv1 "
                                         r"\(4x32x32\) by hw3lib Conv2D: time them with "
                                         r"time_ladder\(lenet_conv_shapes\(4\)"):
        format_epoch_totals([r for r in rows if r["shape"] != "conv1 (4x32x32)"])


def test_col2im_times_print_each_fold_in_ms_and_their_ratio():
    """Notebook 03's timing of np.add.at against hw3lib.col2im, on set times and on a run."""
    times = Col2imTimes((150, 3200), (32, 6, 14, 14), "float32", {ADD_AT: 4.71e-3, SLICES: 0.44e-3})
    assert str(times) == ("col2im of cols (150, 3200) into x (32, 6, 14, 14), float32:\n"
                          "  np.add.at                           4.71 ms\n"
                          "  strided slices (hw3lib.col2im)      0.44 ms\n"
                          "  ratio 10.7x")
    run = time_col2im(ConvShape("tiny s2", 2, 3, 3, 6, 2, 1), batch=2, repeats=1, dtype=np.float64)
    assert (run.cols_shape, run.x_shape, run.dtype) == ((18, 18), (2, 2, 6, 6), "float64")
    assert list(run.seconds) == [ADD_AT, SLICES] and min(run.seconds.values()) > 0
    assert run.ratio == pytest.approx(run.seconds[ADD_AT] / run.seconds[SLICES])
    lines = str(run).splitlines()
    assert lines[0] == "col2im of cols (18, 18) into x (2, 2, 6, 6), float64:" and len(lines) == 4
    assert re.fullmatch(r"  np\.add\.at +\d+\.\d\d ms", lines[1])
    assert re.fullmatch(r"  ratio \d+\.\dx", lines[3])


def test_time_ladder_reports_float32_rounding_as_error():
    rows = time_ladder([ConvShape("tiny", 2, 3, 3, 6)],
                       rungs=["naive loops", "fancy index + np.add.at"],
                       batch=2, naive_batch=2, repeats=1, dtype=np.float32)
    assert 0 < rows[1]["error"] < 1e-5


def test_time_ladder_refuses_bad_arguments():
    shapes = [ConvShape("tiny", 1, 1, 3, 5)]
    with pytest.raises(ValueError, match="unknown or unavailable rungs.*available"):
        time_ladder(shapes, rungs=["naive loops", "magic"])
    with pytest.raises(ValueError, match="must include 'naive loops'"):
        time_ladder(shapes, rungs=["hw3lib Conv2D"])
    with pytest.raises(ValueError, match="naive_batch <= batch"):
        time_ladder(shapes, batch=2, naive_batch=3)


def blas_threads():
    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_single_thread_limits_blas_and_torch_and_restores_them():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(2):
            assert blas_threads() == {2}
            with single_thread():
                assert blas_threads() == {1}
                assert torch.get_num_threads() == 1
            assert blas_threads() == {2}
        assert torch.get_num_threads() == 2
    finally:  # the tests after this one run with PyTorch's threads as they were
        torch.set_num_threads(before)


def test_naive_layer_passes_gradcheck_and_equals_conv2d():
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 5))
    conv = Conv2D(3, 4, (3, 2), stride=2, padding=1, rng=0, dtype=np.float64)
    naive = NaiveConv2D(conv.params["W"], conv.params["b"], stride=2, padding=1)
    errors = gradcheck_layer(naive, x)
    assert set(errors) == {"x", "W", "b"} and max(errors.values()) < 1e-8
    np.testing.assert_allclose(naive.forward(x), conv.forward(x), rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(6).standard_normal(conv.forward(x).shape)
    np.testing.assert_allclose(naive.backward(dout), conv.backward(dout), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(naive.grads["W"], conv.grads["W"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: time_ladder(lenet_conv_shapes(1), rungs="naive loops"), "rungs is a list of rung names"),
    (lambda: time_ladder("conv1"), "shapes is a list of ConvShape"),
    (lambda: time_ladder(lenet_conv_shapes(0)), "in_channels must be an integer >= 1, got 0"),
    (lambda: time_ladder(lenet_conv_shapes(1), batch=2.0), "batch must be an integer >= 1, got 2.0"),
    (lambda: ConvShape("x", 1, 6, 0, 32), "kernel must be an integer >= 1, got 0"),
])
def test_time_ladder_refuses_bad_arguments_naming_them(call, message):
    """Not 'unknown rungs ['n', 'a', ...]', a failed reshape, an AttributeError or numpy's
    TypeError."""
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
