"""The per-layer profile of a training step (``bench --profile``): that it times every layer
where training runs it, computes what training computes, and leaves the model as it was."""
from collections import defaultdict

import numpy as np
import pytest

from hw3lib import LeNet5, bench, grid
from hw3lib.bench import main, parse_input
from hw3lib.conv import Conv2D
from hw3lib.layers import MaxPool2D, ReLU
from hw3lib.profiler import layer_label, profile_training, timed_layers
from hw3lib.workloads import hw3lib_trainer


def data(n, channels=1, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, channels, size, size), dtype=np.float32), rng.integers(0, 3, n)


def test_the_profile_times_every_layer_in_the_order_training_runs_them():
    model = LeNet5(input_size=16, seed=0)
    result = profile_training(model, *data(12), batch=4, steps=3, warmup=1)
    layers = [layer for layer, _, _ in result["layers"]]
    assert sorted(map(id, layers)) == sorted(map(id, model.layers))
    # the ReLU after each convolution runs after the max-pool that follows it
    assert [type(layer) for layer in layers[1:3]] == [MaxPool2D, ReLU]
    assert all(f > 0 and b > 0 for _, f, b in result["layers"])
    assert result["update"] > 0 and result["step"] > 0


def test_profiled_training_computes_what_training_computes_and_restores_the_layers():
    X, y = data(12)
    profiled, plain = LeNet5(input_size=16, seed=0), LeNet5(input_size=16, seed=0)
    profile_training(profiled, X, y, batch=4, steps=2, warmup=1)  # three steps over the 12 images
    hw3lib_trainer(plain, X, y, batch=4)()  # one epoch: the same three steps
    for key, value in plain.get_params().items():
        np.testing.assert_array_equal(profiled.get_params()[key], value)
    assert not any("forward" in vars(layer) or "backward" in vars(layer) for layer in profiled.layers)


def test_the_layers_are_restored_when_a_step_fails():
    model = LeNet5(input_size=16, seed=0)
    with pytest.raises(ValueError, match="expects input"):
        with timed_layers(model, defaultdict(list)):
            model.forward(np.zeros((2, 3, 16, 16), np.float32))  # the wrong channel count
    assert not any(vars(layer).keys() & {"forward", "backward"} for layer in model.layers)


def test_the_batches_cycle_over_the_data_and_bad_settings_are_refused():
    X, y = data(8)
    profiled, plain = LeNet5(input_size=16, seed=0), LeNet5(input_size=16, seed=0)
    profile_training(profiled, X, y, batch=4, steps=3, warmup=0)  # batches 0:4, 4:8, then 0:4 again
    train = hw3lib_trainer(plain, np.concatenate([X, X[:4]]), np.concatenate([y, y[:4]]), batch=4)
    train()
    for key, value in plain.get_params().items():
        np.testing.assert_array_equal(profiled.get_params()[key], value)
    with pytest.raises(ValueError, match="batch <= 4"):
        profile_training(LeNet5(input_size=16), *data(4), batch=5)
    with pytest.raises(ValueError, match="steps >= 1"):
        profile_training(LeNet5(input_size=16), *data(4), batch=4, steps=0)


def test_bench_profile_prints_a_line_per_layer_and_the_whole_step(capsys):
    main(["--profile", "3x16x16", "--batch", "2", "--steps", "2", "--widths", "4,8"])
    out = capsys.readouterr().out
    assert "LeNet5 on 3x16x16 random images, batch 2, conv widths (4, 8)" in " ".join(out.split())
    for layer in ("Conv2D(3, 4, 5x5)", "Conv2D(4, 8, 5x5)", "MaxPool2D(2x2)", "Dense(8, 120)",
                  "AdamGD's update", "the whole step"):
        assert layer in out
    assert out.count("ReLU()") == 4 and "GFLOP/s" in out


def test_bench_profile_puts_each_number_under_the_heading_that_says_what_it_is(capsys):
    """The update's and the whole step's ms were printed under "forward ms"."""
    main(["--profile", "3x16x16", "--batch", "2", "--steps", "2", "--widths", "4,8"])
    lines = capsys.readouterr().out.splitlines()
    head = next(line for line in lines if line.startswith("layer, in forward order"))
    names = ("forward ms", "backward ms", "total ms", "of the step")
    ends = [head.index(name) + len(name) for name in names]
    starts = [head.index(names[0]) - 1, *ends[:-1]]  # right-aligned cells, each up to its heading's end
    for line in lines[lines.index(head) + 1:lines.index("")]:
        cell = {name: line[start:end].strip() for name, start, end in zip(names, starts, ends)}
        assert cell["of the step"].endswith("%"), line
        if line.startswith(("AdamGD's update", "the rest", "the whole step")):
            assert cell["forward ms"] == cell["backward ms"] == "" and float(cell["total ms"]) > 0, line
        else:
            assert float(cell["total ms"]) == pytest.approx(
                float(cell["forward ms"]) + float(cell["backward ms"]), abs=2e-3), line


def test_bench_profile_fits_an_80_column_terminal_and_names_the_machine(capsys):
    """Its rows were 113 columns wide (each Conv2D named by its whole repr), its heading 138."""
    main(["--profile", "3x16x16", "--batch", "2", "--steps", "1", "--widths", "64,128"])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "Conv2D(64, 128, 5x5, winograd)" in out and bench.cpu_name() in out


@pytest.mark.parametrize("layer, label", [
    (Conv2D(3, 6, 5), "Conv2D(3, 6, 5x5)"),
    (Conv2D(3, 6, (3, 5), stride=2, padding=1), "Conv2D(3, 6, 3x5, stride 2x2, padding 1x1)"),
    (MaxPool2D(2), "MaxPool2D(2x2)"), (MaxPool2D(3, 2), "MaxPool2D(3x3, stride 2x2)"),
    (ReLU(), "ReLU()")])
def test_the_profile_names_each_layer_short_with_what_is_not_a_default(layer, label):
    assert layer_label(layer) == label


@pytest.mark.parametrize("text", ["3x16", "3x16x17", "0x16x16", "ax16x16", "3x16x\u00b2"])
def test_the_profile_input_must_be_channels_and_a_square_size(text):
    with pytest.raises(ValueError, match="CxSxS"):
        parse_input(text)
    assert parse_input("3X128x128") == (3, 128)
    assert parse_input("3x016x16") == (3, 16)  # a square size, once refused as not square


@pytest.mark.parametrize("text, why", [("0x32x32", "the channels and the size must be at least 1"),
                                       ("3x0x0", "the channels and the size must be at least 1"),
                                       ("3x32x33", "32 high but 33 wide, not square")])
def test_the_profile_input_error_says_what_is_wrong_with_numbers_of_the_right_form(text, why):
    """`--profile 0x32x32` was told only the form CxSxS, which it has."""
    with pytest.raises(ValueError, match=f"got '{text}': {why}$"):
        parse_input(text)


def test_bench_refuses_bad_profile_settings():
    with pytest.raises(ValueError, match="argument --widths: takes two positive channel counts"):
        main(["--profile", "--widths", "6"])
    with pytest.raises(ValueError, match="argument --steps: must be an integer >= 1, got '0'"):
        main(["--profile", "--steps", "0"])
    with pytest.raises(ValueError, match="--profile takes the input as CxSxS.*got ''"):
        main(["--profile="])  # empty: not the whole benchmark
    with pytest.raises(ValueError, match="--profile and --grid are two different measurements"):
        main(["--profile", "--grid"])
    for argv, message in ((["--threads", "2"], "--threads applies to --grid, not to the benchmark"),
                          (["--grid", "--steps", "5"], "--steps applies to --profile, not to --grid"),
                          (["--profile", "--rounds", "3"], "--rounds applies to --grid, not to --profile"),
                          (["--grid", "--repeats", "3"], "--repeats applies to the benchmark, not to --grid")):
        with pytest.raises(ValueError, match=message):  # each was silently ignored
            main(argv)


AT_DEFAULT = {"the benchmark": ["--repeats", "7"],
              "--grid": ["--rounds", "5", "--processes", str(grid.PROCESSES), "--threads", "1",
                         "--images", "1024"],
              "--profile": ["--batch", "32", "--widths", "6,16", "--steps", "20"]}
MODES = {"the benchmark": [], "--grid": ["--grid"], "--profile": ["--profile"]}


@pytest.mark.parametrize("mode, owner, option, value", [
    (mode, owner, *options[i:i + 2]) for mode in MODES for owner, options in AT_DEFAULT.items()
    if owner != mode for i in range(0, len(options), 2)])
def test_an_option_another_mode_ignores_is_refused_at_its_default_value_too(
        monkeypatch, mode, owner, option, value):
    """``--grid --batch 32`` was accepted, 32 being --batch's default, where --batch 33 was refused."""
    for runner in ("measure", "grid_main", "profile_main"):
        monkeypatch.setattr(bench, runner, lambda *args, **kwargs: pytest.fail(f"{mode} ran"))
    with pytest.raises(ValueError, match=f"{option} applies to {owner}, not to {mode}: leave it out"):
        main([*MODES[mode], option, value])


@pytest.mark.parametrize("argv, message", [
    (["--profile", "1x8x8"], "LeNet5 with kernel_size=5 does not fit 8x8 inputs: it needs at least 16 "
                             "pixels a side. Fix: larger images, e.g. --profile 1x16x16"),
    (["--profile", "1x32x32", "--batch", "99999999999"],
     "--profile 1x32x32 with --batch 99999999999 and --widths 6,16 does not fit in memory ("),
    (["--profile", "1x32x32", "--widths", "99999,99999"],
     "--profile 1x32x32 with --batch 32 and --widths 99999,99999 does not fit in memory ("),
    # past int64: numpy's "Maximum allowed dimension exceeded", or a TypeError's traceback
    (["--profile", "99999999999999999999x32x32"],
     "--profile 99999999999999999999x32x32 with --batch 32 and --widths 6,16 does not fit in memory ("),
    (["--profile", "1x32x32", "--batch", "99999999999999999999"],
     "--profile 1x32x32 with --batch 99999999999999999999 and --widths 6,16 does not fit in memory ("),
    (["--profile", "1x32x32", "--widths", "6,99999999999999999999"],
     "--profile 1x32x32 with --batch 32 and --widths 6,99999999999999999999 does not fit in memory ("),
])
def test_a_profile_that_cannot_be_built_is_one_error_naming_its_options(argv, message):
    """Not TrainConfig(image_size=16), which bench has no option for, nor a MemoryError."""
    with pytest.raises(ValueError) as info:
        main([*argv, "--steps", "1"])
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert "TrainConfig" not in str(info.value) and "smaller kernel_size" not in str(info.value)
