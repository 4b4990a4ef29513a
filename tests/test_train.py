"""hw3lib.train: the loop, its history, refusals, divergence, interrupts, resume, the command."""
import errno
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import replace
from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
from tqdm import tqdm
import pytest
from PIL import Image

import hw3lib.evaluation as evaluation
import hw3lib.learning as learning
import hw3lib.train as train
import hw3lib.trained as trained
from hw3lib.__main__ import main as hw3lib_main
from hw3lib.atomic import INTERRUPTS
from hw3lib.data import Dataset, dataloader, fit_normalizer, normalize
from hw3lib.download import dataset_sha256
from hw3lib.losses import softmax
from hw3lib.model import LeNet5
from hw3lib.optim import SGD, AdamGD
from hw3lib.checkpoint import CheckpointError, load_checkpoint
from hw3lib.checkpoint import test_data_sha256 as split_sha256  # a name pytest does not collect
from hw3lib.config import TrainConfig
from hw3lib.train import TrainingError, _random_hflips, fit
from hw3lib.evaluation import evaluate
from hw3lib.trained import FitResult
from conftest import peak_bytes
from datasets import make_root, write_png

TINY = dict(input_size=12, conv_channels=(2, 4), kernel_size=3, hidden=(8, 8))
DATA = Path(os.environ.get("HW3_DATA", Path(__file__).parents[1] / "data"))
HAVE_DATA = (DATA / "Data_train").is_dir() and (DATA / "Data_test").is_dir()


def patterned(n, channels, size, rng):
    """Images ``(n, channels, size, size)`` whose class k (0-2) brightens the k-th third of the
    rows (a cue that left-right flips keep), and their labels ``(n,)``."""
    y = np.arange(n) % 3
    X = rng.random((n, channels, size, size), dtype=np.float32) * 0.6
    third = size // 3
    for k in range(3):
        X[y == k, :, k * third:(k + 1) * third] += 0.4
    return X, y


def tiny_data(channels=1, size=12, n_train=48, n_val=21, seed=0):
    """A small Dataset: 48 training images (batches of 10 leave a last batch of 8)."""
    rng = np.random.default_rng(seed)
    (X, y), (Xv, yv), (Xt, yt) = (patterned(n, channels, size, rng) for n in (n_train, n_val, n_val))
    mean, std = fit_normalizer(X)
    return Dataset(X, y, Xv, yv, Xt, yt, ["a", "b", "c"], mean, std)


def tiny_config(**changes):
    return TrainConfig(**{**dict(epochs=3, batch_size=10, lr=0.01, model=TINY), **changes})


def params_of(model):
    return {k: v.copy() for k, v in model.get_params().items()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs"


def without_seconds(history):
    return {k: v for k, v in history.items() if k != "seconds"}


# --- settings -------------------------------------------------------------------------------

def test_defaults_are_the_reports_plus_flips():
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.beta1, c.beta2, c.eps) == (24, 32, 5e-4, 0.9, 0.999, 1e-8)
    assert c.hflip and c.bias_correction and c.mode == "L" and c.val_fraction == 0.3
    assert c.split == "blocked"
    assert c.build_model(3).input_shape == (1, 32, 32)


def test_a_batch_larger_than_the_training_split_warns_once_from_python():
    """fit with batch_size 1000 on 48 training images trained one full batch an epoch without a
    word from Python (only the train command noted it): one warning now, for the whole run."""
    data = tiny_data()
    config = tiny_config(batch_size=1000, epochs=2)
    with pytest.warns(UserWarning) as caught:
        result = fit(config.build_model(3, data.image_size), data, config, progress=False)
    assert [(w.category, str(w.message)) for w in caught] == [(train.OneBatchWarning,
        "batch_size 1000 is more than the 48 training images, so each epoch is one batch of all of "
        "them (one optimizer step); a smaller batch_size gives more steps per epoch")]
    assert caught[0].filename == __file__ and len(result.history["epoch"]) == 2  # the caller's line
    config = tiny_config(batch_size=48, epochs=1)  # one batch of them all, as asked: no word
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(config.build_model(3, data.image_size), data, config, progress=False)


@pytest.mark.parametrize("changes, match", [
    (dict(lr=0.0), "lr must be a positive finite"), (dict(lr=-1e-3), "lr must be a positive finite"),
    (dict(lr=float("nan")), "lr must be a positive finite"), (dict(lr=float("inf")), "lr"),
    (dict(lr=True), "lr"), (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(batch_size=-4), "batch_size"), (dict(batch_size=2.5), "batch_size"),
    (dict(epochs=0), "epochs must be an integer >= 1"), (dict(seed=-1), "seed"),
    (dict(beta1=1.0), "beta1"), (dict(beta2=-0.1), "beta2"), (dict(eps=0.0), "^eps must be a positive"),
    (dict(mode="CMYK"), "mode must be one of"), (dict(val_fraction=1.0), "val_fraction"),
    (dict(split="stratified"), r"split must be one of \['blocked', 'random'\]"),
    (dict(image_size=32, model=dict(kernel_size=40)), "kernel_size=40 does not fit 32x32"),
    (dict(model=dict(input_size=8)), "does not fit 8x8"),
    (dict(model=dict(depth=3)), "LeNet5 arguments among"),
    (dict(model=dict(hidden=np.ones(2))), "lists"),
    (dict(model=dict(kernel_size=np.int64(3))), r"a NumPy number is none: convert it with int\(\)"),
    (dict(model=dict(activation="sigmoid")), "activation must be one of"),
    (dict(optimizer="rmsprop"), "optimizer must be one of"),
    (dict(mode=["L", "RGB"]), r"mode must be one of \['L', 'LA', 'RGB', 'RGBA'\], got \['L', 'RGB'\]"),
    (dict(optimizer="sgd", momentum=1.0), "momentum"),
    (dict(momentum=1.5), "momentum"),  # unused by Adam, but stored with the run
    (dict(dtype="float16"), r"dtype must be float32 or float64 \(the weights' precision\), got 'float16'"),
    (dict(dtype=None), "dtype must be float32 or float64"),
])
def test_config_refuses_bad_settings(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


def test_a_float64_config_trains_a_float64_model_and_records_its_dtype(tmp_path):
    """The weights, the gradients and Adam's moments in float64; the settings stored as JSON."""
    config = tiny_config(epochs=1, dtype=np.float64)
    assert config.dtype == "float64" and config.build_model(3).get_params()["W1"].dtype == np.float64
    result = fit(config.build_model(3), tiny_data(), config, checkpoint_path=tmp_path / "c.npz",
                 progress=False)
    ckpt = load_checkpoint(tmp_path / "c.npz")
    assert ckpt.config == config and {a.dtype for a in ckpt.optimizer.values() if a.size > 1} == {np.dtype(np.float64)}
    assert result.model.get_params()["W1"].dtype == np.float64


def test_without_image_size_the_model_is_checked_against_the_images_own_size(tmp_path):
    """Images load at their own size when image_size is None: a kernel that fits 64x64 images
    but not 32x32 ones is refused only where the images are 32x32, naming their size."""
    config = TrainConfig(model={"kernel_size": 13})  # fits 64x64, not 32x32: not refused here
    for size, split, name, i in itertools.product((64, 32), ("train", "test"), "AB", range(3)):
        folder = tmp_path / str(size) / split / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("L", (size, size), 40 * i).save(folder / f"{i}.png")
    assert config.load_data(tmp_path / "64").image_size == (64, 64)
    with pytest.raises(ValueError, match="kernel_size=13 does not fit 32x32 inputs"):
        config.load_data(tmp_path / "32")


def test_image_size_is_normalised_checked_and_kept_in_the_checkpoint(tmp_path):
    assert TrainConfig(image_size=28).image_size == (28, 28)
    assert TrainConfig(image_size="20x24").image_size == (20, 24) == TrainConfig(image_size=[20, 24]).image_size
    with pytest.raises(ValueError, match="image_size must be"):
        TrainConfig(image_size=0)
    with pytest.raises(ValueError, match="differs from image_size"):
        TrainConfig(image_size=28, model={"input_size": 32})
    config = tiny_config(image_size=12, model={k: v for k, v in TINY.items() if k != "input_size"})
    data = tiny_data()
    model = config.build_model(3, data.image_size)
    assert model.input_shape == (1, 12, 12) and config.build_model().input_shape == (1, 12, 12)
    fit(model, data, config, checkpoint_path=tmp_path / "c.npz", progress=False)
    assert load_checkpoint(tmp_path / "c.npz").config == config
    fit(config.build_model(3, data.image_size), data, replace(config, epochs=4), resume=tmp_path / "c.npz",
        progress=False)


def test_load_data_refuses_a_model_that_does_not_fit_the_first_image_before_loading_the_rest(tmp_path):
    """The first image's size decides at once: the others are not read (a corrupt one and one
    of another size would otherwise be what the error names)."""
    root = make_root(tmp_path)
    write_png(root / "Data_train" / "A" / "A_train_0.png", size=(8, 8))
    (root / "Data_train" / "B" / "B_train_1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match=r"does not fit 8x8 inputs: it needs at least 16 pixels a side. "
                                         r"Fix: larger images, e.g. TrainConfig\(image_size=16\)"):
        TrainConfig().load_data(root)


def test_config_builds_the_chosen_optimizer():
    params = {"W": np.zeros(2)}
    sgd = TrainConfig(optimizer="sgd", momentum=0.9, lr=0.1).build_optimizer(params)
    adam = TrainConfig(bias_correction=False).build_optimizer(params)
    assert isinstance(sgd, SGD) and sgd.momentum == 0.9 and sgd.lr == 0.1
    assert isinstance(adam, AdamGD) and not adam.bias_correction and adam.lr == 5e-4


def bad_data(kind):
    data = tiny_data()
    if kind == "channels":
        return tiny_data(channels=3)
    if kind == "size":
        return tiny_data(size=16)
    if kind == "label too large":
        return replace(data, y_train=np.where(data.y_train == 2, 3, data.y_train))
    if kind == "negative label":
        return replace(data, y_val=np.where(data.y_val == 0, -1, data.y_val))
    if kind == "float labels":
        return replace(data, y_train=data.y_train.astype(np.float32))
    if kind == "classes":
        return replace(data, classes=["a", "b", "c", "d"])
    if kind == "no classes":
        return replace(data, classes=[])
    if kind == "zero std":
        return replace(data, std=np.zeros_like(data.std))
    if kind == "negative std":
        return replace(data, std=-data.std)
    if kind == "8-bit statistics":  # X divided by 255 after fit_normalizer of the 8-bit pixels
        return replace(data, mean=data.mean * 255, std=data.std * 255)
    if kind == "uint8 pixels":
        return replace(data, X_train=np.round(data.X_train * 255).astype(np.uint8))
    if kind == "pixels to 255":
        return replace(data, X_val=data.X_val * 255)
    if kind == "normalised":
        return replace(data, X_train=(data.X_train - data.mean[:, None, None]) / data.std[:, None, None])
    if kind == "nan pixel":
        X = data.X_train.copy()
        X[0, 0, 0, 0] = np.nan
        return replace(data, X_train=X)
    return replace(data, y_val=data.y_val[:-1])  # lengths


@pytest.mark.parametrize("kind, match", [
    ("channels", "the data has 3 channel\\(s\\) and the model 1"), ("size", "check the image size"),
    ("label too large", "labels from 0 to 3, but the model has 3 classes"),
    ("negative label", "y_val holds labels from -1"), ("float labels", "integer labels"),
    ("classes", "the data has 4 classes"), ("lengths", "same number"),
    ("nan pixel", r"X_train: 1 image\(s\) hold NaN or infinite values \(the first at index 0\): fix or drop"),
    ("no classes", "the data has 0 classes"), ("zero std", "std > 0"), ("negative std", "std > 0"),
    ("8-bit statistics", r"data.mean \[.*\] lies outside \[0, 1\], where the raw images' pixels lie: "
                         r"it was fitted on other pixels \(8-bit ones, 0 to 255\?\).*fit_normalizer\(X_train\)"),
    # trained on, such images made a run that its test and predict refuse (they take raw ones)
    ("uint8 pixels", r"X_train must hold raw images as floats in \[0, 1\].*got uint8 values"),
    ("pixels to 255", r"X_val must hold raw images .*float32 values from .* to 255: divide 8-bit"),
    ("normalised", r"X_train must hold raw images .*float32 values from -"),
])
def test_fit_refuses_bad_data_before_any_work(tmp_path, kind, match):
    model, calls = tiny_config().build_model(3), []
    before = params_of(model)
    with pytest.raises(ValueError, match=match):
        fit(model, bad_data(kind), tiny_config(), on_batch=calls.append,
            checkpoint_path=tmp_path / "c.npz", progress=False)
    assert calls == [] and not (tmp_path / "c.npz").exists()
    assert_same_params(params_of(model), before)


@pytest.mark.parametrize("model, config, words", [
    (lambda: LeNet5(num_classes=3, **TINY), tiny_config(mode="RGB"),
     r"in_channels 1 \(the config's 3\), mode='RGB'"),
    (lambda: LeNet5(num_classes=3, **{**TINY, "kernel_size": 5, "input_size": 20}),
     tiny_config(model={**TINY, "input_size": 20}), r"kernel_size \(5, 5\) \(the config's \(3, 3\)\)"),
    (lambda: LeNet5(num_classes=3, activation="tanh", **TINY), tiny_config(),
     r"activation 'tanh' \(the config's 'relu'\)"),
    (lambda: LeNet5(num_classes=3, dtype=np.float64, **TINY), tiny_config(),
     r"dtype 'float64' \(the config's 'float32'\)"),
    (lambda: LeNet5(num_classes=3, **TINY), tiny_config(dtype="float64"),
     r"dtype 'float32' \(the config's 'float64'\)"),
])
def test_fit_refuses_a_model_other_than_the_one_its_config_builds(tmp_path, model, config, words):
    """Trained, such a run recorded the config's settings beside the model's: its
    predict_files read images in the config's mode (3 channels for a 1-channel model) and
    refused them, and config.build_model could not resume it."""
    size = 20 if config.model.get("input_size") == 20 else 12
    with pytest.raises(ValueError, match=r"the model differs from the one the config builds: "
                                         + words + r".*Fix: build the model with config.build_model"):
        fit(model(), tiny_data(size=size), config, checkpoint_path=tmp_path / "c.npz",
            progress=False)
    assert not (tmp_path / "c.npz").exists()
    fit(LeNet5(num_classes=3, seed=5, **TINY), tiny_data(), tiny_config(epochs=1),
        progress=False)  # its seed aside: the weights are the model's own


def test_numpy_numbers_in_the_settings_are_stored_as_python_numbers(tmp_path):
    config = tiny_config(epochs=np.int64(1), seed=np.int64(0), batch_size=np.int32(16), lr=np.float32(1e-3),
                         hflip=np.bool_(False), val_fraction=np.float64(0.3))
    assert [type(getattr(config, k)) for k in ("epochs", "seed", "batch_size", "lr", "hflip", "val_fraction")] \
        == [int, int, int, float, bool, float]
    fit(config.build_model(3), tiny_data(), config, checkpoint_path=tmp_path / "c.npz", progress=False)
    assert load_checkpoint(tmp_path / "c.npz").config == config  # numpy's int64 is no JSON: no file before


def test_fit_makes_the_checkpoints_folder_and_refuses_a_folder_before_any_work(tmp_path):
    config, calls = tiny_config(epochs=1), []
    path = tmp_path / "runs" / "lenet5" / "checkpoint.npz"
    fit(config.build_model(3), tiny_data(), config, checkpoint_path=path, progress=False)
    assert load_checkpoint(path).epoch == 1
    with pytest.raises(ValueError, match="checkpoint_path .*lenet5 is a folder; give a file's path"):
        fit(config.build_model(3), tiny_data(), config, checkpoint_path=path.parent, on_batch=calls.append,
            progress=False)
    assert calls == []


def test_evaluate_refuses_a_batch_size_below_one():
    data = tiny_data()
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        evaluate(tiny_config().build_model(3), data.X_val, data.y_val, batch_size=0)


def test_evaluate_refuses_a_normalizer_that_is_no_mean_std_pair():
    """(mean,) failed in normalize() on a missing argument."""
    data = tiny_data()
    for normalizer in ((data.mean,), data.mean):
        with pytest.raises(ValueError, match=r"normalizer must be the pair \(mean, std\), e.g. "
                                             r"\(data.mean, data.std\)"):
            evaluate(tiny_config().build_model(3), data.X_val, data.y_val, normalizer=normalizer)


def test_a_runs_predict_refuses_a_batch_size_below_one_as_evaluate_does():
    """It failed in range() with a step of 0, or gave 0.5 batches to its loop."""
    data, config = tiny_data(), tiny_config(epochs=1)
    run = fit(config.build_model(3), data, config, progress=False)
    for batch_size in (0, 2.5):
        with pytest.raises(ValueError, match=f"batch_size must be an integer >= 1, got {batch_size}"):
            run.predict(data.X_val, batch_size=batch_size)


@pytest.mark.parametrize("normalised", [True, False], ids=["normalised", "raw with normalizer"])
@pytest.mark.parametrize("kind, match", [
    ("nan pixel", r"X: 1 image\(s\) hold NaN or infinite values \(the first at index 2\): fix or drop"),
    ("inf pixel", r"X: 1 image\(s\) hold NaN or infinite values \(the first at index 2\)"),
    ("uint8 pixels", r"got uint8 values: divide 8-bit pixels by 255"),
    ("one-hot labels", r"y must be 1-D integer labels, got dtype int64 shape \(21, 3\)"),
])
def test_evaluate_refuses_what_fit_refuses_naming_the_cause_and_the_fix(kind, match, normalised):
    """It gave a NaN loss for NaN pixels, and an accuracy of a broadcast comparison for one-hot
    labels (2.0 for 3 images); 8-bit pixels failed in a layer's words, whose advice (a float
    conversion) left them unnormalised."""
    data, model = tiny_data(), tiny_config().build_model(3)
    X, y = data.X_val.copy(), data.y_val
    if kind.endswith("pixel"):
        X[2, 0, 1, 1] = np.nan if kind == "nan pixel" else np.inf
    elif kind == "uint8 pixels":
        X = np.round(X * 255).astype(np.uint8)
    else:
        y = np.eye(3, dtype=np.int64)[y]
    normalizer = (data.mean, data.std)
    with pytest.raises(ValueError, match=match):
        if normalised and X.dtype.kind == "f":
            evaluate(model, normalize(X, *normalizer), y)
        else:
            evaluate(model, X, y, normalizer=None if normalised else normalizer)


def test_labels_given_as_class_names_or_float_numbers_are_refused_with_the_fix(tmp_path):
    """Class names (a student's labels from folder names) were refused without a fix, and a
    run's test refused them only after predicting, in the loss's words."""
    data, config = tiny_data(), tiny_config(epochs=1)
    names = np.array(data.classes)[data.y_val]
    fix = r"class names\? Fix: give each its index in the classes, np.array\(\[classes.index\(c\) for c in "
    with pytest.raises(ValueError, match=r"y_train must be 1-D integer labels, got dtype <U1 .*" + fix + "y_train"):
        fit(config.build_model(3), replace(data, y_train=np.array(data.classes)[data.y_train]), config,
            progress=False)
    run = fit(config.build_model(3), data, config, checkpoint_path=tmp_path / "c.npz", progress=False)
    with pytest.raises(ValueError, match=fix + r"y\]\)"):
        run.evaluate(data.X_val, list(names))
    with pytest.raises(ValueError, match=r"whole numbers as floats\? Fix: y.astype\(int\)"):
        run.evaluate(data.X_val, data.y_val.astype(float))
    with pytest.raises(ValueError, match=fix + r"y_test"):
        run.test(data.X_val, names)
    with pytest.raises(ValueError, match="test needs as many labels as images, got 21 and 3"):
        run.test(data.X_val, data.y_val[:3])
    assert run.test_evaluations == load_checkpoint(tmp_path / "c.npz").test_evaluations == 0


def test_channels_last_images_are_refused_with_the_transpose_that_fixes_them():
    """(N, H, W, C) images, as Pillow gives them, were said to have H channels: 'load both
    with the same mode' for fit, 'load them in the run's mode and size' for a run."""
    data, config = tiny_data(channels=3), tiny_config(epochs=1, mode="RGB")
    fix = r"the images are channels-last \(N, H, W, C\), as Pillow and matplotlib give them. Fix: "
    with pytest.raises(ValueError, match=fix + r"X_train.transpose\(0, 3, 1, 2\)"):
        fit(config.build_model(3), replace(data, X_train=data.X_train.transpose(0, 2, 3, 1)), config,
            progress=False)
    run = fit(config.build_model(3), data, config, progress=False)
    for call in (run.predict, lambda X: run.evaluate(X, data.y_val), lambda X: run.test(X, data.y_val)):
        with pytest.raises(ValueError, match=r"takes images \(N, 3, 12, 12\), got \(21, 12, 12, 3\): "
                                             + fix + r"X.transpose\(0, 3, 1, 2\)"):
            call(data.X_val.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match=r"got \(21, 12, 12, 3\); the images are channels-last \(N, H, W, C\): "
                                         r"transpose them, x.transpose\(0, 3, 1, 2\)"):
        evaluate(run.model, normalize(data.X_val, data.mean, data.std).transpose(0, 2, 3, 1), data.y_val)


def test_one_image_without_the_batch_axis_is_refused_with_the_fix():
    """A single image (C, H, W), or a grey (H, W), was told to 'check the data's channel mode
    and image size' (by a run: to load it in the mode and size it already had)."""
    data, config = tiny_data(), tiny_config(epochs=1)
    run = fit(config.build_model(3), data, config, progress=False)
    X = normalize(data.X_val, data.mean, data.std)
    for image, fix in ((X[0], r"x\[None\], a batch of one"), (X[0, 0], r"x\[None, None\]")):
        with pytest.raises(ValueError, match=rf"got {re.escape(str(image.shape))}; .*Fix: {fix}"):
            run.model.predict(image)
        with pytest.raises(ValueError, match=rf"takes images \(N, 1, 12, 12\), got .*Fix: X"):
            run.predict(data.X_val[0] if image.ndim == 3 else data.X_val[0, 0])
    assert run.model.predict(X[0][None]).shape == (1,)


def test_grey_images_without_the_channel_axis_are_refused_with_the_fix():
    """Grey images (N, H, W), as stacking 2-D images gives them, were told to 'check the image
    size' (fit), 'check the data's channel mode and image size' (the model) or to load them
    in the run's mode and size (a run): the mode and size they had already."""
    data, config = tiny_data(), tiny_config(epochs=1)
    with pytest.raises(ValueError, match=r"X_train has shape \(\d+, 12, 12\), .*without the channel "
                                         r"axis\? Fix: X_train\[:, None\]"):
        fit(config.build_model(3), replace(data, X_train=data.X_train[:, 0]), config, progress=False)
    run = fit(config.build_model(3), data, config, progress=False)
    with pytest.raises(ValueError, match=r"got \(21, 12, 12\); grey images \(N, H, W\) without the "
                                         r"channel axis\? Fix: x\[:, None\]"):
        run.model.predict(normalize(data.X_val, data.mean, data.std)[:, 0])
    for call in (run.predict, lambda X: run.evaluate(X, data.y_val), lambda X: run.test(X, data.y_val)):
        with pytest.raises(ValueError, match=r"takes images \(N, 1, 12, 12\), got \(21, 12, 12\): .*Fix: "
                                             r"X\[:, None\]"):
            call(data.X_val[:, 0])


def test_evaluate_refuses_images_normalised_twice():
    data, model = tiny_data(), tiny_config().build_model(3)
    X = normalize(data.X_val, data.mean, data.std)
    with pytest.raises(ValueError, match=r"X must hold raw images as floats in \[0, 1\], got float32 "
                                         r"values from -.*: .*images normalised already go to "
                                         r"evaluate without normalizer"):
        evaluate(model, X, data.y_val, normalizer=(data.mean, data.std))


def test_fit_checks_its_images_once_not_at_every_epoch(monkeypatch):
    """fit checks the training and validation images before its first epoch; its evaluations
    after each epoch do not pass over all of them again (32 ms an epoch at 1024 3x128x128)."""
    calls = []

    def counted(X, *args, **kwargs):
        calls.append(len(X))
        return checked(X, *args, **kwargs)

    checked, data = train.checked_images, tiny_data()
    monkeypatch.setattr(train, "checked_images", counted)
    config = tiny_config(epochs=3)
    fit(config.build_model(3), data, config, progress=False)
    assert calls == [len(data.y_train), len(data.y_val)]


# --- the loop and its history ---------------------------------------------------------------

def test_evaluate_is_the_per_sample_mean_with_the_last_partial_batch_weighted():
    data, model = tiny_data(), tiny_config().build_model(3)
    X = normalize(data.X_train, data.mean, data.std)
    p = softmax(model.logits(X).astype(np.float64))
    loss = -np.log(p[np.arange(len(X)), data.y_train]).mean()
    acc = (p.argmax(axis=1) == data.y_train).mean()
    for batch_size in (7, 10, 48, 500):  # 48 = 6 * 7 + 6: a last batch of 6
        got_loss, got_acc = evaluate(model, X, data.y_train, batch_size)
        assert got_loss == pytest.approx(loss, rel=1e-5) and got_acc == acc


def test_history_rows_are_evaluation_passes_of_the_kept_weights():
    data, config = tiny_data(), tiny_config(epochs=4)
    result = fit(config.build_model(3), data, config, progress=False)
    h = result.history
    assert list(h) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
    assert h["epoch"] == [1, 2, 3, 4] and all(len(v) == 4 for v in h.values())
    assert json.loads(json.dumps(h)) == h
    best = result.best_epoch - 1
    keys = list(zip(h["val_acc"], np.negative(h["val_loss"])))
    assert keys[best] == max(keys)
    assert result.best_row == {key: values[best] for key, values in h.items()}
    assert result.best_row["epoch"] == result.best_epoch
    for split in ("train", "val"):
        X, y = normalize(getattr(data, f"X_{split}"), data.mean, data.std), getattr(data, f"y_{split}")
        assert evaluate(result.model, X, y) == (h[f"{split}_loss"][best], h[f"{split}_acc"][best])
        assert result.evaluate(getattr(data, f"X_{split}"), y) == evaluate(result.model, X, y)


def test_training_and_evaluation_normalise_batch_by_batch_not_a_copy_of_the_data():
    data = tiny_data(size=24, n_train=10_000, n_val=500)
    config = tiny_config(epochs=1, model={**TINY, "input_size": 24})
    size = data.X_train.nbytes  # 23 MB; a normalised copy of the training split is as large
    result, peak = peak_bytes(lambda: fit(config.build_model(3), data, config, progress=False))
    assert peak < size / 2  # 7.6 MB: batches of 256 evaluated, a model's work on them
    for call in (lambda: result.predict(data.X_train), lambda: result.evaluate(data.X_train, data.y_train)):
        _, peak = peak_bytes(call)
        assert peak < size / 2
    X = normalize(data.X_train, data.mean, data.std)  # the same numbers, bit for bit
    assert np.array_equal(result.predict(data.X_train), np.concatenate(
        [result.model.forward(X[i:i + 256]) for i in range(0, len(X), 256)]))


def test_evaluation_batches_hold_at_most_eval_bytes_of_the_largest_layer_output(monkeypatch):
    """256 images at a time whatever their size: evaluating RGB images of 256x256 took 1.2 GB,
    of 512x512 4.7 GB, in fit's epochs, evaluate, predict and test alike. Here batches of 5
    images of 2x10x10 float32 maps, with the same losses, accuracies and probabilities."""
    import hw3lib.evaluation as evaluation

    data, config = tiny_data(), tiny_config(epochs=1)
    whole = fit(config.build_model(3), data, config, progress=False)
    monkeypatch.setattr(evaluation, "EVAL_BYTES", 5 * 2 * 10 * 10 * 4 + 1)
    sizes, forward = [], LeNet5.forward
    monkeypatch.setattr(LeNet5, "forward", lambda self, X: sizes.append(len(X)) or forward(self, X))
    result = fit(config.build_model(3), data, config, progress=False)
    evaluated = [5] * 9 + [3] + [5] * 4 + [1]  # the epoch's 48 training and 21 validation images
    assert sizes[-len(evaluated):] == evaluated and max(sizes) == config.batch_size
    sizes.clear()
    probs = result.predict(data.X_val)
    assert sizes == [5] * 4 + [1]
    np.testing.assert_allclose(result.history["val_loss"], whole.history["val_loss"], rtol=1e-6)
    assert result.history["val_acc"] == whole.history["val_acc"]
    np.testing.assert_allclose(probs, whole.predict(data.X_val), rtol=1e-5, atol=1e-7)


def test_training_learns_and_is_deterministic():
    data, config = tiny_data(), tiny_config(epochs=6, lr=0.02)
    first = fit(config.build_model(3), data, config, progress=False)
    again = fit(config.build_model(3), data, config, progress=False)
    assert first.history["val_acc"][first.best_epoch - 1] == 1.0
    assert first.history["train_loss"][-1] < 0.5 * first.history["train_loss"][0]
    assert without_seconds(first.history) == without_seconds(again.history)
    assert_same_params(params_of(first.model), params_of(again.model))
    other = fit(replace(config, seed=1).build_model(3), data, replace(config, seed=1), progress=False)
    assert other.history["train_loss"] != first.history["train_loss"]


def test_of_epochs_ranked_equal_fit_keeps_the_first(monkeypatch):
    """Epochs of the same validation accuracy and loss (epoch_rank's ties): fit keeps the first,
    as its docstring says; keeping the last of them passed every test."""
    data, config = tiny_data(), tiny_config(epochs=3)
    one = fit(config.build_model(3), data, replace(config, epochs=1), progress=False)
    evaluated = train.evaluate_checked
    monkeypatch.setattr(train, "evaluate_checked", lambda net, X, *args: (
        (0.5, 0.75) if X is data.X_val else evaluated(net, X, *args)))  # every epoch alike
    tied = fit(config.build_model(3), data, config, progress=False)
    assert tied.history["val_acc"] == [0.75] * 3 and tied.history["val_loss"] == [0.5] * 3
    assert tied.best_epoch == 1
    assert_same_params(params_of(tied.model), params_of(one.model))


def test_in_a_notebook_the_saved_progress_bar_shows_the_end_of_the_run(tmp_path):
    """The bar is a widget there; its plain text, what a notebook shows without widgets, is
    saved as the bar ended (100%), not as it started (0%)."""
    import nbformat

    from hw3lib.notebooks import execute_notebook

    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from test_train import tiny_config, tiny_data\n"
            "from hw3lib.train import fit\n"
            "result = fit(tiny_config().build_model(3), tiny_data(), tiny_config())")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]),
                   tmp_path / "bar.ipynb")
    [output] = execute_notebook(tmp_path / "bar.ipynb", tmp_path / "out").cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" in output.data
    assert "100%" in output.data["text/plain"] and "15/15" in output.data["text/plain"]


def test_the_training_bar_shows_the_whole_epoch_while_it_is_evaluated(capsys, monkeypatch):
    """tqdm draws at most every 0.1 s: the bar stood at a batch before the last (344/350 at
    16,000 images) through the epoch's evaluation, as if training had stuck."""
    data, config = tiny_data(), tiny_config(epochs=1)  # 48 images, batches of 10: 5
    seen, evaluate_checked = [], train.evaluate_checked
    monkeypatch.setattr(train, "evaluate_checked", lambda *a: seen.append(capsys.readouterr().err)
                        or evaluate_checked(*a))
    fit(config.build_model(3), data, config)
    assert "5/5 [" in seen[0].split("\r")[-1]


def test_the_evaluation_bar_is_made_only_once_the_evaluation_takes_a_while(monkeypatch):
    """In a notebook a bar is a widget, kept in the notebook's file whether shown or not:
    made for every epoch and hidden by tqdm's delay, they added 270 KB to notebook 05."""
    made = []
    monkeypatch.setattr(train, "tqdm", lambda *a, **k: made.append(k) or tqdm(*a, **k))
    data, config = tiny_data(), tiny_config(epochs=2)
    fit(config.build_model(3), data, config)  # tiny: evaluated well within the delay
    assert [k.get("desc", "") for k in made if "evaluating" in k.get("desc", "")] == []


def test_a_bar_counts_the_images_evaluated_after_each_epoch_when_that_takes_a_while(capsys, monkeypatch):
    """At 16,000 RGB 64x64 images each epoch's evaluation took seconds after its bar had stopped,
    with nothing moving on the screen. A second bar counts the images evaluated once that has
    taken PROGRESS_DELAY seconds, and goes; the training bar ends as it did, the numbers the same."""
    data, config = tiny_data(), tiny_config(epochs=2)
    quiet = fit(config.build_model(3), data, config, progress=False)
    capsys.readouterr()
    fit(config.build_model(3), data, config)  # tiny: evaluated well within the delay
    err = capsys.readouterr().err
    assert "epoch 2/2: 100%" in err and "evaluating" not in err
    monkeypatch.setattr(evaluation, "PROGRESS_DELAY", 0)
    shown = fit(config.build_model(3), data, config)
    err = capsys.readouterr().err
    assert all(f"evaluating epoch {epoch}:  " in err for epoch in (1, 2))
    assert "/69 [" in err  # 48 training and 21 validation images
    last = [text for text in err.split("\r") if text.strip()][-1]
    assert last.startswith("epoch 2/2: 100%") and "val_acc=" in last, last
    assert {k: v for k, v in shown.history.items() if k != "seconds"} == {
        k: v for k, v in quiet.history.items() if k != "seconds"}


def test_validation_data_never_changes_the_weights():
    data, config = tiny_data(), tiny_config()
    shuffled = replace(data, y_val=np.roll(data.y_val, 1), X_val=data.X_val[::-1].copy())
    a = fit(config.build_model(3), data, config, progress=False, restore_best=False)
    b = fit(config.build_model(3), shuffled, config, progress=False, restore_best=False)
    assert_same_params(params_of(a.model), params_of(b.model))
    assert a.history["train_loss"] == b.history["train_loss"]
    assert a.history["val_loss"] != b.history["val_loss"]


def test_fit_is_the_reports_loop_over_each_epochs_dataloader_batches():
    """As fit's docstring says: each epoch the report's loop over the batches of
    ``dataloader(..., seed=config.seed, epoch=epoch)``, normalised with the training statistics
    (no flips here); the same weights, bit for bit, as that loop written out."""
    data, config = tiny_data(), tiny_config(hflip=False)
    result = fit(config.build_model(3), data, config, progress=False, restore_best=False)
    model = config.build_model(3)
    optimizer = config.build_optimizer(model.get_params())
    for epoch in range(1, config.epochs + 1):
        for X, y in dataloader(data.X_train, data.y_train, config.batch_size, seed=config.seed,
                               epoch=epoch):
            y_pred = model.forward(normalize(X, data.mean, data.std))
            model.set_params(optimizer.update_params(model.backward(y_pred, y)))
    assert_same_params(params_of(result.model), params_of(model))


def test_on_batch_reports_running_means_weighted_by_batch_size():
    seen = []
    fit(tiny_config().build_model(3), tiny_data(), tiny_config(epochs=1), on_batch=seen.append,
        progress=False)
    assert [s["batch"] for s in seen] == [1, 2, 3, 4, 5] and {s["batches"] for s in seen} == {5}
    sizes = np.array([10, 10, 10, 10, 8])
    losses = np.array([s["loss"] for s in seen])
    assert seen[-1]["running_loss"] == pytest.approx((losses * sizes).sum() / 48, rel=1e-12)
    assert 0 <= seen[-1]["running_acc"] <= 1


def test_hflip_mirrors_about_half_of_the_training_images_and_nothing_else():
    X, y = np.random.default_rng(0).random((200, 2, 4, 5)), np.arange(200)
    batches = [(X[i:i + 32], y[i:i + 32]) for i in range(0, 200, 32)]
    out = list(_random_hflips(iter(batches), np.random.default_rng(1)))
    Xf, yf = np.concatenate([b[0] for b in out]), np.concatenate([b[1] for b in out])
    flipped = np.array([np.array_equal(a, b[..., ::-1]) for a, b in zip(Xf, X)])
    kept = np.array([np.array_equal(a, b) for a, b in zip(Xf, X)])
    assert np.array_equal(yf, y) and (flipped ^ kept).all() and 70 < flipped.sum() < 130
    again = np.concatenate([b[0] for b in _random_hflips(iter(batches), np.random.default_rng(1))])
    assert np.array_equal(again, Xf)


def test_hflip_changes_nothing_for_mirror_symmetric_images():
    data = tiny_data()
    sym = replace(data, X_train=(data.X_train + data.X_train[..., ::-1]) / 2)
    runs = {(name, flip): fit(tiny_config().build_model(3), d, tiny_config(hflip=flip), progress=False,
                              restore_best=False)
            for name, d in (("sym", sym), ("plain", data)) for flip in (True, False)}
    assert_same_params(params_of(runs["sym", True].model), params_of(runs["sym", False].model))
    assert not np.array_equal(runs["plain", True].model.get_params()["W1"],
                              runs["plain", False].model.get_params()["W1"])


# --- divergence -------------------------------------------------------------------------------

def test_a_huge_learning_rate_stops_at_the_first_bad_batch(tmp_path):
    config = tiny_config(lr=1e8)
    model = config.build_model(3)
    initial = params_of(model)
    match = r"loss became nan at epoch 1, batch 2/5 with lr=1e\+08"
    with pytest.raises(TrainingError, match=match) as info:
        fit(model, tiny_data(), config, checkpoint_path=tmp_path / "c.npz", progress=False)
    message = str(info.value)
    assert "smaller learning rate, e.g. TrainConfig(lr=1e+07)" in message
    assert "nothing was saved" in message
    assert info.value.result.history["epoch"] == [] and info.value.result.best_epoch == 0
    assert_same_params(params_of(model), initial)
    assert not (tmp_path / "c.npz").exists()


def test_an_optimizer_state_that_overflowed_stops_the_run_as_divergence(tmp_path):
    """lr 1e5 on the tiny data: the loss and the weights stay finite, Adam's second moments
    overflow; the run stops there (the checkpoint would not load) and says why."""
    config = tiny_config(lr=1e5)
    with pytest.raises(TrainingError, match=r"the optimizer's state \(its gradient moments\) "
                       r"overflowed at epoch 1, batch 5/5 with lr=100000: .* nothing was saved .*"
                       r"smaller learning rate, e.g. TrainConfig\(lr=10000\)"):
        fit(config.build_model(3), tiny_data(), config, checkpoint_path=tmp_path / "c.npz",
            progress=False)
    assert not (tmp_path / "c.npz").exists()


def test_divergence_keeps_the_last_good_checkpoint_and_the_history(tmp_path):
    def blow_up(stats):  # a diverging update at epoch 2, batch 2
        if (stats["epoch"], stats["batch"]) == (2, 2):
            model.get_params()["W5"][...] = np.inf

    config, path = tiny_config(), tmp_path / "c.npz"
    model = config.build_model(3)
    with pytest.raises(TrainingError, match="at epoch 2, batch 3/5") as info:
        fit(model, tiny_data(), config, on_batch=blow_up, checkpoint_path=path, progress=False)
    assert f"{path} keeps epoch 1" in str(info.value)
    assert info.value.result.history["epoch"] == [1]
    saved = load_checkpoint(path)
    assert saved.epoch == 1 and saved.history == info.value.result.history
    assert_same_params(params_of(model), saved.best_params)  # finite: epoch 1's weights


# --- interrupts, stop, resume -----------------------------------------------------------------

def test_interrupt_keeps_history_and_checkpoint_and_resume_is_bit_exact(tmp_path):
    data, config = tiny_data(), tiny_config(epochs=4)
    full_path, cut_path = tmp_path / "full.npz", tmp_path / "cut.npz"
    fit(config.build_model(3), data, config, checkpoint_path=full_path, progress=False)

    def interrupt(stats):
        if (stats["epoch"], stats["batch"]) == (3, 2):
            raise KeyboardInterrupt

    cut = fit(config.build_model(3), data, config, on_batch=interrupt, checkpoint_path=cut_path,
              progress=False)
    assert cut.stopped == "interrupted" and cut.history["epoch"] == [1, 2]
    saved = load_checkpoint(cut_path)
    assert saved.epoch == 2 and saved.history == cut.history
    assert_same_params(params_of(cut.model), saved.best_params)

    other_init = LeNet5(num_classes=3, seed=99, **TINY)  # the checkpoint sets every weight
    resumed = fit(other_init, data, config, resume=cut_path, checkpoint_path=cut_path, progress=False)
    full, again = load_checkpoint(full_path), load_checkpoint(cut_path)
    assert resumed.stopped is None and again.epoch == full.epoch == 4
    for a, b in [(full.params, again.params), (full.best_params, again.best_params),
                 (full.optimizer, again.optimizer)]:
        assert_same_params(a, b)
    assert without_seconds(full.history) == without_seconds(again.history)
    assert full.best_epoch == again.best_epoch == resumed.best_epoch


def sigint_while_saving(monkeypatch, epoch):
    """Send this process a SIGINT while ``fit`` writes epoch ``epoch``'s checkpoint."""
    real_save = train.save_checkpoint

    def save_then_sigint(path, ckpt):
        if ckpt.epoch == epoch:
            os.kill(os.getpid(), signal.SIGINT)
        real_save(path, ckpt)

    monkeypatch.setattr(train, "save_checkpoint", save_then_sigint)


def test_ctrl_c_while_saving_keeps_checkpoint_and_history_in_step(tmp_path, monkeypatch):
    """A SIGINT that arrives while epoch 2's checkpoint is written is held back until the
    save and the history agree, then ends the run."""
    sigint_while_saving(monkeypatch, epoch=2)
    path = tmp_path / "c.npz"
    result = fit(tiny_config().build_model(3), tiny_data(), tiny_config(), checkpoint_path=path,
                 progress=False)
    assert result.stopped == "interrupted" and result.history["epoch"] == [1, 2]
    assert load_checkpoint(path).history == result.history


@pytest.mark.parametrize("use_event", [True, False])
def test_stop_flag_ends_the_run_after_the_current_batch(use_event):
    event, calls = threading.Event(), []

    def on_batch(stats):
        calls.append((stats["epoch"], stats["batch"]))
        if (stats["epoch"], stats["batch"]) == (2, 3):
            event.set()

    stop = event if use_event else event.is_set
    result = fit(tiny_config().build_model(3), tiny_data(), tiny_config(), on_batch=on_batch,
                 stop=stop, progress=False)
    assert result.stopped == "stopped" and calls[-1] == (2, 3) and len(calls) == 8
    assert result.history["epoch"] == [1] and result.best_epoch == 1


def test_stop_before_any_epoch_keeps_the_initial_weights():
    model = tiny_config().build_model(3)
    initial = params_of(model)
    result = fit(model, tiny_data(), tiny_config(), stop=lambda: True, progress=False)
    assert result.stopped == "stopped" and result.best_epoch == 0 and result.history["epoch"] == []
    assert result.best_row is None
    assert_same_params(params_of(model), initial)


def test_resume_refuses_another_run(tmp_path):
    data, config, path = tiny_data(), tiny_config(epochs=1), tmp_path / "c.npz"
    fit(config.build_model(3), data, config, checkpoint_path=path, data_sha256="a" * 64, progress=False)
    with pytest.raises(CheckpointError, match=r"lr=0.01 \(this run: 0.02\)"):
        fit(config.build_model(3), data, replace(config, lr=0.02), resume=path, progress=False)
    wide = replace(config, model={**TINY, "hidden": (9, 8)})
    match = r"another architecture.*W3: file \(8, 4\) vs model \(9, 4\)"
    with pytest.raises(CheckpointError, match=match):
        fit(wide.build_model(3), data, wide, resume=path, progress=False)
    with pytest.raises(CheckpointError, match="activation"):  # the same shapes, another model
        fit(LeNet5(num_classes=3, seed=0, activation="tanh", **TINY), data, config, resume=path, progress=False)
    with pytest.raises(CheckpointError, match="dtype 'float32' in the file, 'float64' in the model"):
        fit(LeNet5(num_classes=3, seed=0, dtype=np.float64, **TINY), data, config, resume=path, progress=False)
    with pytest.raises(CheckpointError, match="other statistics"):
        fit(config.build_model(3), replace(data, mean=data.mean + 0.01), config, resume=path,
            progress=False)
    with pytest.raises(CheckpointError, match="other data"):
        fit(config.build_model(3), data, config, resume=path, data_sha256="0" * 64, progress=False)
    # The same images under other class names: the labels would change meaning silently.
    with pytest.raises(CheckpointError, match=r"classes \['a', 'b', 'c'\], this data \['b', 'a', 'c'\]"):
        fit(config.build_model(3), replace(data, classes=["b", "a", "c"]), config, resume=path,
            progress=False)


def test_resume_refuses_fewer_epochs_than_the_run_has_trained(tmp_path):
    """A run's history would be longer than its config says; the same number finishes it."""
    data, config, path = tiny_data(), tiny_config(epochs=2), tmp_path / "c.npz"
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    with pytest.raises(CheckpointError, match=r"trained 2 epoch\(s\) already, config.epochs 1 asks "
                                              r"for fewer: give epochs=2 to finish it"):
        fit(config.build_model(3), data, replace(config, epochs=1), resume=path, progress=False)
    finished = fit(config.build_model(3), data, config, resume=path, progress=False)
    assert finished.history["epoch"] == [1, 2]


def test_resume_refuses_another_validation_split(tmp_path):
    data, config, path = tiny_data(), tiny_config(epochs=1, split="random"), tmp_path / "c.npz"
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    assert load_checkpoint(path).config.split == "random"
    with pytest.raises(CheckpointError, match=r"split='random' \(this run: 'blocked'\)"):
        fit(config.build_model(3), data, replace(config, split="blocked"), resume=path, progress=False)


def test_resume_refuses_another_test_split_than_the_checkpoint_records(tmp_path):
    """A run resumed with another test split (data built by hand, no data_sha256 to tell) wrote
    that split's digest over the one its test evaluations count."""
    data, config, path = tiny_data(), tiny_config(epochs=1), tmp_path / "c.npz"
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    digest = split_sha256(data.X_test, data.y_test)
    other = replace(data, X_test=data.X_test[::-1].copy())
    with pytest.raises(CheckpointError, match=f"trained with another test split \\(SHA-256 {digest}, "
                                              "this data [0-9a-f]{64}\\), which its test evaluations count"):
        fit(config.build_model(3), other, replace(config, epochs=2), resume=path, checkpoint_path=path,
            progress=False)
    assert load_checkpoint(path).test_sha256 == digest


def test_a_version_1_checkpoint_reads_as_the_random_split(tmp_path):
    data, config, path = tiny_data(), tiny_config(epochs=1), tmp_path / "c.npz"
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    arrays = dict(np.load(path))
    meta = json.loads(str(arrays["meta"]))
    meta["version"] = 1
    del meta["config"]["split"], meta["test_evaluations"], meta["test"]
    np.savez(path, **{**arrays, "meta": np.array(json.dumps(meta))})
    assert load_checkpoint(path).config.split == "random" and load_checkpoint(path).test is None


def test_test_split_is_evaluated_once_and_counted_in_the_checkpoint(tmp_path):
    data, config, path = tiny_data(), tiny_config(epochs=2), tmp_path / "c.npz"
    result = fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    assert result.test_evaluations == 0 and load_checkpoint(path).test_evaluations == 0  # fit never looks
    record = result.test(data.X_test, data.y_test)
    assert (record.loss, record.accuracy) == pytest.approx(result.evaluate(data.X_test, data.y_test))
    assert record.epoch == result.best_epoch and record.probs.shape == (len(data.y_test), 3)
    assert result.test(data.X_test, data.y_test) is record and result.test_evaluations == 1
    saved = load_checkpoint(path)
    assert saved.test_evaluations == 1 and saved.test.accuracy == record.accuracy
    np.testing.assert_array_equal(saved.test.probs, record.probs)
    # Other test data is a new evaluation, and counted as one.
    result.test(data.X_test[:-1], data.y_test[:-1])
    assert result.test_evaluations == 2 and load_checkpoint(path).test_evaluations == 2
    # Training on after a look at test keeps the count: the run has seen test twice.
    more = fit(config.build_model(3), data, replace(config, epochs=3), checkpoint_path=path,
               resume=path, progress=False)
    assert more.test_evaluations == 2 and load_checkpoint(path).test_evaluations == 2


def test_a_test_evaluation_that_cannot_be_recorded_gives_no_figures(tmp_path, monkeypatch):
    """A checkpoint that cannot be written (a read-only folder, a full disk): the evaluation is
    refused each time, never shown uncounted; once writable, it is counted once."""
    data, config, path = tiny_data(), tiny_config(epochs=2), tmp_path / "c.npz"
    result = fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)

    def read_only(*args):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(trained, "save_checkpoint", read_only)
        for _ in range(2):
            with pytest.raises(OSError, match="Read-only"):
                result.test(data.X_test, data.y_test)
    assert result.test_record is None and result.test_evaluations == 0
    result.test(data.X_test, data.y_test)
    assert result.test_evaluations == 1 and load_checkpoint(path).test_evaluations == 1


def test_a_run_whose_checkpoint_trained_on_since_is_not_tested_over_it(tmp_path):
    """A run held in memory while its checkpoint was resumed further (another process): its
    test record would stand in the newer run's checkpoint and the count would go back."""
    data, config, path = tiny_data(), tiny_config(epochs=2), tmp_path / "c.npz"
    held = fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    held.test(data.X_test, data.y_test)
    more = fit(config.build_model(3), data, replace(config, epochs=3), checkpoint_path=path,
               resume=path, progress=False)
    more.test(data.X_test, data.y_test)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"holds 3 epoch\(s\) now, this run 2: load it again"):
        held.test(data.X_test[:-1], data.y_test[:-1])
    assert path.read_bytes() == before and held.test_evaluations == 1
    assert FitResult.load(path).test(data.X_test[:-1], data.y_test[:-1]).epoch == more.best_epoch
    assert load_checkpoint(path).test_evaluations == 3


def test_a_run_tested_by_another_process_reuses_its_record_and_does_not_count_again(tmp_path):
    """Two processes holding the same run: the second test of its weights on the same images
    is no new evaluation, here as when the run is loaded after the first."""
    data, config, path = tiny_data(), tiny_config(epochs=2), tmp_path / "c.npz"
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    first, second = FitResult.load(path), FitResult.load(path)
    record = first.test(data.X_test, data.y_test)
    assert second.test(data.X_test, data.y_test).accuracy == record.accuracy
    assert second.test_evaluations == first.test_evaluations == load_checkpoint(path).test_evaluations == 1
    assert second.test(data.X_test[:-1], data.y_test[:-1]) is not None  # other images: a new one
    assert second.test_evaluations == load_checkpoint(path).test_evaluations == 2


def test_a_run_whose_checkpoint_holds_another_run_now_is_not_tested_into_it(tmp_path):
    """A fresh run trained into the path of an untested one held in memory (the same epochs and
    kept epoch): the held run's figures would be recorded as the new run's test."""
    data, config, path = tiny_data(), tiny_config(epochs=2), tmp_path / "c.npz"
    held = fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    again = replace(config, seed=1)
    other = fit(again.build_model(3), data, again, checkpoint_path=path, progress=False)
    assert (other.best_epoch, len(other.history["epoch"])) == (held.best_epoch, 2)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"c\.npz holds another run now .*: load it \(FitResult"):
        held.test(data.X_test, data.y_test)
    assert path.read_bytes() == before and held.test_evaluations == 0 and held.test_record is None


def test_resume_of_a_finished_run_trains_nothing(tmp_path):
    data, config, path = tiny_data(), tiny_config(epochs=2), tmp_path / "c.npz"
    done = fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    calls = []
    again = fit(config.build_model(3), data, config, resume=path, on_batch=calls.append, progress=False)
    assert calls == [] and again.history == done.history
    assert_same_params(params_of(again.model), params_of(done.model))


# --- did the run learn? -----------------------------------------------------------------------

def warning_of(train_loss, val_acc, n_train=1029, n_val=441, **config):
    """learning_warning for 3 balanced classes (``n_val`` a multiple of 3), the best epoch the
    one of the highest ``val_acc``."""
    history = dict(epoch=list(range(1, len(train_loss) + 1)), train_loss=list(train_loss),
                   val_acc=list(val_acc))
    best = int(np.argmax(val_acc)) + 1
    settings = {**dict(batch_size=32, lr=5e-4), **config}
    return learning.learning_warning(history, best, np.arange(n_train) % 3, np.arange(n_val) % 3,
                                  TrainConfig(**settings))


def test_chance_of_score_is_the_exact_binomial_tail():
    cases = ((12, Fraction(1, 3), range(13)), (441, Fraction(1, 3), (0, 147, 148, 178, 179, 300, 441)),
             (30, Fraction(1, 2), range(31)), (7, Fraction(5, 7), range(8)))
    for n, rate, counts in cases:
        for correct in counts:
            exact = sum(comb(n, i) * rate**i * (1 - rate)**(n - i) for i in range(correct, n + 1))
            assert learning.chance_of_score(correct, n, float(rate)) == pytest.approx(float(exact), rel=1e-9)
    assert learning.chance_of_score(0, 5, 0.5) == 1.0 and learning.chance_of_score(6, 5, 0.5) == 0.0
    # large splits neither overflow nor lose the tail (about the normal approximation's 0.1326)
    assert learning.chance_of_score(33_500, 100_000, 1 / 3) == pytest.approx(0.1326, abs=1e-3)
    assert learning.chance_of_score(40_000, 100_000, 1 / 3) == 0.0


def test_one_image_above_the_largest_class_is_not_learning():
    """The audit's run: 148 of 441 right against 147 for always the largest class."""
    warning = warning_of([1.0911, 1.0839], [147 / 441, 148 / 441], batch_size=100_000)
    assert warning.startswith("the model did not learn: best validation accuracy 0.336 (148 of 441 "
                              "images) is not clearly above chance, 0.333 for always the largest class")
    assert "probability 0.48, learning needs under 0.001" in warning and "\n" not in warning
    # the least count that clears the level learns; one fewer does not
    least = next(k for k in range(147, 442) if learning.chance_of_score(k, 441, 1 / 3) < learning.LEARNING_LEVEL)
    assert least == 179
    assert warning_of([0.9, 0.8], [0.3, 179 / 441]) is None
    assert "(178 of 441 images) is not clearly above chance" in warning_of([0.9, 0.8], [0.3, 178 / 441])


def test_a_split_too_small_to_clear_the_level_learns_only_with_every_image_right():
    # 6 validation images, 2 per class: even 6 of 6 happen by guessing with probability 1/729
    assert warning_of([0.5], [1.0], n_train=60, n_val=6) is None
    assert "(5 of 6 images) is not clearly above chance" in warning_of([0.5], [5 / 6], n_train=60, n_val=6)


def test_a_training_loss_never_below_chance_is_not_learning_even_with_good_validation():
    warning = warning_of([1.2, 1.15], [0.9, 0.95])
    assert "is above chance, but the training loss never fell below chance level (lowest 1.15" in warning


@pytest.mark.parametrize("losses, config, advice, wrong", [
    # the loss blew up, or rose while near chance: the step is too large
    ([3.5, 1.3], {}, "the training loss went up (to 3.5): learning rate 0.0005 is too large, try a "
                     "smaller one, e.g. 5e-05", "larger"),
    ([1.099, 1.104, 1.114], dict(lr=0.1), "went up (to 1.114): learning rate 0.1 is too large, try a "
                                          "smaller one, e.g. 0.01", "larger"),
    # far below chance on training images, chance on validation: the data, not the optimizer
    ([0.4, 0.05], {}, "the model fits its 1029 training images but does not generalise from them to "
                      "the validation images: train on more, or more varied, images, or the classes may "
                      "not be told apart from these images", "learning rate"),
    # the audit's 2 epochs of one batch: too few steps, where a smaller rate would be worse
    ([1.0911, 1.0839], dict(batch_size=100_000), "only 2 optimizer step(s) (2 epoch(s) of 1 batch: all "
     "1029 training images, batch size 100000), too few to learn: train longer, with more epochs or a smaller batch size", "learning rate"),
    # many steps, the loss not moving from chance: the step is too small
    ([1.0985, 1.098, 1.0975, 1.097], dict(lr=1e-6), "the training loss stayed within 2% of chance level "
     "in 132 optimizer steps, so training longer will not help: learning rate 1e-06 is too small, try a "
     "larger one, e.g. 1e-05", "smaller"),
    # many steps, the loss falling slowly, not below 0.9 x chance: the step is too small
    ([1.09, 1.07, 1.05, 1.03], dict(lr=1e-5), "the training loss hardly fell in 132 optimizer steps: "
     "learning rate 1e-05 is too small, try a larger one, e.g. 0.0001", "smaller"),
])
def test_the_advice_follows_the_cause(losses, config, advice, wrong):
    warning = warning_of(losses, [1 / 3] * len(losses), **config)
    assert warning.endswith(advice) and wrong not in warning.split("by chance; ")[1]
    assert "\n" not in warning


def test_a_loss_that_did_not_move_blames_the_learning_rate_whatever_the_step_count():
    """The audit's --lr 1e-7 runs: 3 epochs of 33 batches (99 steps) and 4 (132), the loss at
    chance level throughout, get the same advice; only a run of under 20 steps, where even a
    good rate moves the loss too little to tell, or one whose loss fell, is told to train longer."""
    still = [1.0991, 1.099, 1.099, 1.099]
    for epochs in (3, 4):
        warning = warning_of(still[:epochs], [1 / 3] * epochs, lr=1e-7)
        assert warning.endswith(f"the training loss stayed within 2% of chance level in {33 * epochs} "
                                "optimizer steps, so training longer will not help: learning rate 1e-07 "
                                "is too small, try a larger one, e.g. 1e-06")
        assert "too few" not in warning and "\n" not in warning
    # one step per epoch: 19 steps are too few to judge the rate, 20 are not
    assert "only 19 optimizer step(s)" in warning_of([1.0986] * 19, [1 / 3] * 19, batch_size=100_000, lr=1e-7)
    assert "stayed within 2% of chance level in 20 optimizer steps" in warning_of(
        [1.0986] * 20, [1 / 3] * 20, batch_size=100_000, lr=1e-7)
    # the loss moved (5% below chance) in 99 steps: too few steps, not too small a rate
    assert warning_of([1.08, 1.06, 1.045], [1 / 3] * 3).endswith(
        "only 99 optimizer step(s) (3 epoch(s) of 33 batch(es) of 32), too few to learn: train longer, "
        "with more epochs or a smaller batch size")


def test_one_epoch_at_chance_level_is_told_to_train_a_second_not_a_larger_rate():
    """The playground at Adam lr 0.1 for 1 epoch of 25 steps: the loss at chance level (thrown
    back there by too large a step) was told 'learning rate 0.1 is too small, try ... 1'. One
    epoch cannot show the up and down at chance that tells a step too large from one too small."""
    warning = warning_of([1.103], [1 / 3], lr=0.1)
    assert warning.endswith("the training loss stayed within 2% of chance level in its one epoch (33 "
                            "optimizer steps), which cannot tell a learning rate too small (the loss then "
                            "falls every epoch, however little) from one too large (it moves up and down "
                            "at chance level): train 2 or more epochs")
    assert "try a larger" not in warning and "try a smaller" not in warning


def test_a_loss_that_moved_up_and_down_at_chance_blames_too_large_a_rate_not_too_small():
    """The audit's notebook 05 at LR = 0.05 and the playground at 0.1 (which notebook 07 invites):
    Adam threw the network back to chance level in epoch 1, and its loss then rose and fell
    there, ending below its start; it was told to try a larger rate (0.5, 1), which does no
    better. A rate too small lowers the loss every epoch, however little."""
    collapsed = [1.0988, 1.0993, 1.0997, 1.1014, 1.1004, 1.0991, 1.1008, 1.0997, 1.0986, 1.0990,
                 1.1005, 1.1041, 1.1029, 1.0991, 1.0990, 1.1031, 1.1013, 1.0992, 1.0987, 1.0989,
                 1.0991, 1.0987, 1.0986, 1.0985]
    for losses in (collapsed, collapsed[:3]):  # 24 epochs of 33 steps, and 3
        warning = warning_of(losses, [1 / 3] * len(losses), lr=0.05)
        assert warning.endswith("learning rate 0.05 is too large, try a smaller one, e.g. 0.005")
        assert "too small" not in warning
    # a rate too small: the loss falls every epoch, by 1e-5 or so
    assert warning_of([1.0991 - 4e-5 * k for k in range(24)], [1 / 3] * 24, lr=1e-7).endswith(
        "learning rate 1e-07 is too small, try a larger one, e.g. 1e-06")
    # under 20 steps a rise says nothing: too few steps to judge the rate by
    assert "only 3 optimizer step(s)" in warning_of([1.0988, 1.0993, 1.0990], [1 / 3] * 3,
                                                     batch_size=100_000, lr=0.05)


def test_an_untrained_loss_on_unbalanced_classes_is_not_said_to_have_gone_up():
    """The audit's playground run: 10 training images of classes 6/2/2 (chance level 0.95, an
    untrained model starting near ln 3 = 1.099), batch 256, a loss flat or falling from there:
    too few steps, not too large a learning rate."""
    y_train, y_val = np.array([0] * 6 + [1] * 2 + [2] * 2), np.arange(441) % 3
    for losses in ([1.078, 1.078, 1.078], [1.051, 0.95, 0.85, 0.76, 0.657]):
        history = dict(epoch=list(range(1, len(losses) + 1)), train_loss=losses,
                       val_acc=[1 / 3] * len(losses))
        warning = learning.learning_warning(history, 1, y_train, y_val, TrainConfig(batch_size=256))
        assert warning.endswith(f"only {len(losses)} optimizer step(s) ({len(losses)} epoch(s) of 1 "
                                "batch: all 10 training images, batch size 256), too few to learn: train longer, with more epochs or "
                                "a smaller batch size")
    history = dict(epoch=[1, 2], train_loss=[1.1, 1.3], val_acc=[1 / 3] * 2)  # above 1.05 x ln 3
    assert "the training loss went up (to 1.3)" in learning.learning_warning(
        history, 1, y_train, y_val, TrainConfig(batch_size=256))


def two_class_warning(val_acc, n_train, n_val, train_loss=(0.5, 0.01)):
    history = dict(epoch=list(range(1, len(train_loss) + 1)), train_loss=list(train_loss),
                   val_acc=[val_acc] * len(train_loss))
    return learning.learning_warning(history, len(train_loss), np.arange(n_train) % 2, np.arange(n_val) % 2,
                                  TrainConfig(batch_size=32, lr=5e-4))


def test_a_validation_split_too_small_to_show_learning_is_said_not_a_failure_to_generalise():
    """The audit's own data: 2 classes of 10 images, 14 train and 6 validate; 5 of 6 right
    (test accuracy 0.9) was said not to generalise. On 6 images even 5 right happens by
    guessing with probability 0.11, so only 6 of 6 counts: the split is too small to tell."""
    warning = two_class_warning(5 / 6, 14, 6)
    assert warning.endswith("the model fits its 14 training images, but the validation split of 6 images "
                            "is too small to show learning unless every image is right: add images (on "
                            "14 or more validation images, one may be wrong)")
    assert "generalise" not in warning and "told apart" not in warning and "\n" not in warning
    assert "split of 6 images is too small" in two_class_warning(3 / 6, 14, 6)
    assert two_class_warning(1.0, 14, 6) is None
    # 14 validation images: 13 right would count, so 12 right is a failure to generalise
    assert learning.chance_of_score(13, 14, 0.5) < learning.LEARNING_LEVEL <= learning.chance_of_score(11, 12, 0.5)
    assert two_class_warning(13 / 14, 32, 14) is None
    assert "does not generalise" in two_class_warning(12 / 14, 32, 14)
    assert "split of 12 images is too small" in two_class_warning(10 / 12, 28, 12)
    # 3 balanced classes: one may be wrong from 9 validation images on (warning_of's 3 classes)
    assert "split of 6 images is too small" in warning_of([0.5, 0.01], [4 / 6, 5 / 6], n_train=14, n_val=6)
    assert "(on 9 or more validation images" in warning_of([0.5, 0.01], [5 / 6], n_train=14, n_val=6)


def test_a_validation_split_mostly_of_one_class_is_said_to_be_unbalanced_not_a_failure_to_generalise():
    """20,000 images of one class and 50 of another: 0.999 on validation against 0.998 for
    always the largest class was told that the model does not generalise, or that the classes
    may not be told apart, where the cause is the classes' balance."""
    y_train, y_val = np.array([0] * 14_000 + [1] * 35), np.array([0] * 6000 + [1] * 15)
    history = dict(epoch=[1, 2], train_loss=[0.05, 0.002], val_acc=[0.998, 6009 / 6015])
    warning = learning.learning_warning(history, 2, y_train, y_val, TrainConfig())
    assert warning.endswith("the model fits its 14035 training images, but 99.8% of the validation images "
                            "are of one class, so always answering it scores 0.998 and a model must beat that "
                            "by more than these images show: give the other classes more images (or the "
                            "largest fewer), and see each class's recall (hw3lib.metrics.metrics_table)")
    assert "generalise" not in warning
    y_val = np.array([0] * 5400 + [1] * 615)  # 89.8% of one class: balanced enough, as before
    history["val_acc"] = [0.898, 5410 / 6015]
    assert "does not generalise" in learning.learning_warning(history, 2, y_train, y_val, TrainConfig())


def test_a_perfect_score_on_a_validation_split_of_one_class_is_not_learning():
    """Classes of one image keep it for training: the validation images may all be of one class,
    which always answering it gets all right. Every image right counted as learning there."""
    y_train, y_val = np.array([0] * 8 + [1]), np.zeros(3, dtype=np.int64)
    assert not learning.beats_guessing(1.0, y_val) and learning.beats_guessing(1.0, np.arange(4) % 2)
    history = dict(epoch=[1, 2], train_loss=[0.5, 0.01], val_acc=[1.0, 1.0])
    warning = learning.learning_warning(history, 2, y_train, y_val, TrainConfig(batch_size=32, lr=5e-4))
    assert warning.startswith("the model did not learn: best validation accuracy 1.000 (3 of 3 images) "
                              "is not clearly above chance, 1.000 for always the largest class")
    assert warning.endswith("the validation images are all of one class, so always answering it gets "
                            "every one right and no score on them shows learning: add images to the "
                            "other classes, or hold out a larger fraction of each class than 0.3 (a "
                            "class holds out round(images x fraction) of its images, keeping one for "
                            "training)")
    assert "too small" not in warning and "\n" not in warning


def test_a_run_that_learned_gets_no_warning_and_one_without_epochs_none():
    assert warning_of([0.9, 0.3], [0.6, 0.95]) is None
    assert learning.learning_warning(dict(epoch=[], train_loss=[], val_acc=[]), 0, np.arange(9) % 3,
                                  np.arange(6) % 3, TrainConfig()) is None


# --- the command ----------------------------------------------------------------------------

def fake_root(tmp_path, per_class=(12, 6)):
    """A dataset folder of 32x32 LA PNGs, 3 classes, a brightened quadrant per class."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fruits"
    for split, n in zip(("train", "test"), per_class):
        X, y = patterned(3 * n, 1, 32, rng)
        for i, (x, label) in enumerate(zip(X, y)):
            folder = root / f"Data_{split}" / "ABC"[label]
            folder.mkdir(parents=True, exist_ok=True)
            gray = (x[0] * 255).astype(np.uint8)
            pixels = np.stack([gray, np.full_like(gray, 255)], -1)
            Image.fromarray(pixels, "LA").save(folder / f"{i}.png")
    return root


def run_cli(capsys, *argv):
    code = hw3lib_main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_command_trains_writes_files_and_ends_with_a_json_line(tmp_path, capsys):
    root, out_dir = fake_root(tmp_path), tmp_path / "run"
    code, out, err = run_cli(capsys, "--data", root, "--epochs", 2, "--batch-size", 8, "--lr", 0.002,
                             "--out", out_dir, "--no-progress")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == ("LeNet5 (L, 1 channel(s), 32x32, 3 classes) on 24 training, 12 validation, "
                        "18 test images") and max(map(len, lines[:2])) < 100
    assert lines[1] == "Adam lr=0.002, batch 8, seed 0, blocked validation split, flips on"
    assert lines[2].split() == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
    assert [line.split()[0] for line in lines[3:5]] == ["1", "2"]
    summary = json.loads(lines[-1])
    assert {"train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss", "epochs",
            "seconds_per_epoch"} <= set(summary) and summary["epochs"] == 2
    assert summary["split"] == "blocked" and summary["test_evaluations"] == 1
    history = json.loads((out_dir / "history.json").read_text())
    saved = load_checkpoint(out_dir / "checkpoint.npz")
    test = history.pop("test")
    assert history == saved.history and history["epoch"] == [1, 2]
    assert test["evaluations"] == saved.test_evaluations == 1
    assert test["accuracy"] == saved.test.accuracy and round(test["accuracy"], 6) == summary["test_acc"]
    assert saved.data_sha256 == dataset_sha256(root) and saved.classes == ["A", "B", "C"]
    best = summary["best_epoch"] - 1
    assert summary["val_acc"] == round(history["val_acc"][best], 6)

    code, out, err = run_cli(capsys, "--data", root, "--epochs", 3, "--batch-size", 8, "--lr", 0.002,
                             "--out", out_dir, "--no-progress", "--resume")
    assert code == 0, err
    assert "resuming after epoch 2" in out and json.loads(out.splitlines()[-1])["epochs"] == 3
    assert json.loads(out.splitlines()[-1])["test_evaluations"] == 2  # once after each finished run
    code, out, err = run_cli(capsys, "--data", root, "--epochs", 4, "--batch-size", 8, "--lr", 0.002,
                             "--out", out_dir, "--no-progress", "--resume", "--split", "random")
    assert code == 2 and "--split blocked (this command: --split random)" in err and out == ""
    code, out, err = run_cli(capsys, "--data", root, "--epochs", 6, "--batch-size", 8, "--lr", 0.002,
                             "--out", tmp_path / "random", "--no-progress", "--split", "random")
    assert code == 0 and json.loads(out.splitlines()[-1])["split"] == "random", err
    assert json.loads((out_dir / "history.json").read_text())["epoch"] == [1, 2, 3]


@pytest.mark.parametrize("argv, match", [
    (["--lr", "nan"], "--lr must be a positive finite number"), (["--lr", "0"], "--lr must be"),
    (["--lr", "-0.1"], "--lr must be"), (["--batch-size", "0"], "argument --batch-size: must be"),
    (["--epochs", "0"], "argument --epochs: must be"), (["--epochs", "two"], "must be an integer >= 1, got 'two'"),
    (["--channels", "CMYK"], "invalid choice: 'CMYK'"), (["--bogus"], "unrecognized arguments"),
    (["--seed", "-2"], "argument --seed: must be"),
])
def test_command_refuses_bad_arguments_in_one_line(tmp_path, capsys, argv, match):
    code, out, err = run_cli(capsys, *argv, "--out", tmp_path / "run")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("error: ") and match in err
    assert not (tmp_path / "run").exists()


def test_command_reports_missing_data_bad_resume_and_divergence_in_one_line(tmp_path, capsys):
    root, out_dir = fake_root(tmp_path), tmp_path / "run"
    cases = [(["--data", tmp_path / "nowhere"], "no dataset at"),
             (["--data", root, "--resume"], "no checkpoint at"),
             (["--data", root, "--lr", "1e8", "--batch-size", "8"], "at epoch 1, batch 2/")]
    for argv, match in cases:
        code, out, err = run_cli(capsys, *argv, "--out", out_dir, "--no-progress")
        assert code == 2 and len(err.splitlines()) == 1 and match in err, err
    assert "Try a smaller learning rate, e.g. --lr 1e+07" in err  # as the command takes it
    assert json.loads((out_dir / "history.json").read_text())["epoch"] == []
    (out_dir / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    code, out, err = run_cli(capsys, "--data", root, "--resume", "--out", out_dir)
    assert code == 2 and len(err.splitlines()) == 1 and "truncated or corrupt" in err


def start_training(root, out):
    """A `python -m hw3lib train` process on ``root`` writing to ``out``, returned once it has
    finished its first epoch (``out``/history.json exists), or after 60 s."""
    proc = subprocess.Popen([sys.executable, "-m", "hw3lib", "train", "--data", str(root),
                             "--epochs", "100000", "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "history.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def test_command_ctrl_c_keeps_history_and_checkpoint(tmp_path):
    """A real SIGINT to a running `python -m hw3lib train`: exit 130, one line, files kept."""
    root, out_dir = fake_root(tmp_path), tmp_path / "run"
    proc = start_training(root, out_dir)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "go on with --resume" in err
    history = json.loads((out_dir / "history.json").read_text())
    assert load_checkpoint(out_dir / "checkpoint.npz").history == history and history["epoch"]


def test_command_prints_the_row_of_an_epoch_saved_as_ctrl_c_came(tmp_path, capsys, monkeypatch):
    """Ctrl-C while epoch 2 is saved ends the run before fit's on_epoch: its row still shows."""
    sigint_while_saving(monkeypatch, epoch=2)
    root, out_dir = fake_root(tmp_path), tmp_path / "run"
    before = [signal.getsignal(signum) for signum in INTERRUPTS]
    try:
        code, out, err = run_cli(capsys, "--data", root, "--epochs", 3, "--batch-size", 8,
                                 "--out", out_dir, "--no-progress")
        # as the command's docstring says, further interrupts are ignored until the process ends:
        # in this process, pytest's, until they are restored below (left ignored, Ctrl-C stopped
        # working and later tests that send SIGINT, test_checkpoint_lock's, failed)
        assert [signal.getsignal(signum) for signum in INTERRUPTS] == [signal.SIG_IGN] * 2
    finally:
        for signum, handler in zip(INTERRUPTS, before):
            signal.signal(signum, handler)
    assert code == 130 and "interrupted after 2 epoch(s)" in err
    rows = [line.split()[0] for line in out.strip().splitlines()[-2:]]
    assert rows == ["1", "2"]
    assert json.loads((out_dir / "history.json").read_text())["epoch"] == [1, 2]


@pytest.mark.skipif(not HAVE_DATA, reason=f"real dataset not found at {DATA}: set HW3_DATA")
def test_command_on_the_real_data_two_epochs(tmp_path):
    """The 70/30 split's sizes, and learning well above chance (1/3) in two epochs."""
    proc = subprocess.run([sys.executable, "-m", "hw3lib", "train", "--epochs", "2",
                           "--data", str(DATA), "--out", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["epochs"] == 2 and summary["val_acc"] > 0.85 and summary["test_acc"] > 0.6
    assert "1029 training, 441 validation, 498 test images" in proc.stdout


def test_fit_refuses_a_model_other_than_lenet5_naming_what_trains_it():
    from hw3lib import Dense, Flatten, Sequential
    model = Sequential([Flatten(), Dense(144, 3, rng=0)], (1, 12, 12))
    with pytest.raises(ValueError, match=r"fit trains a LeNet5 .*got a Sequential.*model.forward, model.backward"):
        fit(model, tiny_data(), tiny_config(), progress=False)


def test_fit_refuses_hooks_that_cannot_be_called_before_any_work(tmp_path):
    """on_epoch failed after the first epoch's work, on_batch at the first batch, stop=True at
    once: each in Python's 'not callable'."""
    data, config = tiny_data(), tiny_config()
    for hook, match in (({"on_epoch": "x"}, r"on_epoch must be a function \(or None\), called "
                         r"during the run, got 'x': pass the function itself"),
                        ({"on_batch": 5}, r"on_batch must be a function .*got 5"),
                        ({"stop": True}, r"stop must be a function \(or None\), or a threading.Event.*got True")):
        with pytest.raises(ValueError, match=match):
            fit(config.build_model(3), data, config, progress=False, checkpoint_path=tmp_path / "c.npz", **hook)
        assert not (tmp_path / "c.npz").exists()


def test_fit_refuses_data_and_config_of_other_kinds_naming_them():
    # each failed on a missing attribute: (X, y) as data, a dict as config, the two swapped,
    # a Dataset built by hand from lists
    data, config = tiny_data(), tiny_config()
    for args, match in (((( data.X_train, data.y_train), config), r"takes a Dataset as data, got a tuple"),
                        ((data, {"epochs": 1}), r"takes a TrainConfig as config, got a dict"),
                        ((config, data), r"takes a Dataset as data, got a TrainConfig"),
                        ((replace(data, X_val=data.X_val.tolist()), config),
                         r"X_val must be a NumPy array \(N, 1, 12, 12\), got a list"),
                        ((replace(data, mean=[0.5], std=[0.2]), config),  # failed on list > int
                         r"data.mean and data.std must be NumPy arrays of shape \(1,\), one number "
                         r"per channel, got a list and a list"),
                        ((replace(data, mean=np.array(0.5, np.float32)), config), r"got shape \(\) and shape \(1,\)")):
        with pytest.raises(ValueError, match=match):
            fit(config.build_model(3), *args, progress=False)


def test_a_run_that_kept_its_latest_weights_is_not_tested_as_its_kept_epoch(tmp_path):
    """fit(..., restore_best=False) leaves the latest weights in the model: their test figures
    would be recorded (and kept in the checkpoint, for every later FitResult.load) as those
    of the kept epoch's weights. Refused, nothing counted; the kept weights test as usual."""
    data, path = tiny_data(), tmp_path / "c.npz"
    config = tiny_config(epochs=4, seed=2)
    latest = fit(config.build_model(3), data, config, checkpoint_path=path, progress=False,
                 restore_best=False)
    assert latest.best_epoch < 4  # the latest weights are not the kept ones
    with pytest.raises(ValueError, match=r"holds the weights of epoch 4 .* not the kept weights of epoch"):
        latest.test(data.X_test, data.y_test)
    assert latest.test_evaluations == 0 and load_checkpoint(path).test is None
    kept = FitResult.load(path)
    record = kept.test(data.X_test, data.y_test)
    assert (record.loss, record.accuracy) == pytest.approx(kept.evaluate(data.X_test, data.y_test))
    assert kept.test_evaluations == 1


def test_a_run_whose_latest_weights_are_its_kept_ones_is_tested():
    """restore_best=False where the last epoch is also the best: the model holds the kept weights."""
    data, config = tiny_data(), tiny_config(epochs=3)
    run = fit(config.build_model(3), data, config, progress=False, restore_best=False)
    assert run.best_epoch == 3  # its validation accuracy rose at the last epoch
    record = run.test(data.X_test, data.y_test)
    assert record.epoch == 3 and run.test_evaluations == 1
    assert (record.loss, record.accuracy) == pytest.approx(run.evaluate(data.X_test, data.y_test))


def test_a_run_stopped_before_it_saved_an_epoch_is_tested_with_no_checkpoint_written(tmp_path):
    data, path = tiny_data(), tmp_path / "c.npz"
    run = fit(tiny_config().build_model(3), data, tiny_config(), checkpoint_path=path,
              stop=lambda: True, progress=False)
    assert run.checkpoint_path == path and not path.exists()
    run.test(data.X_test, data.y_test)
    assert run.test_evaluations == 1 and list(tmp_path.iterdir()) == []


def test_a_fresh_run_overwrites_a_file_that_holds_no_checkpoint(tmp_path):
    data, config, path = tiny_data(), tiny_config(epochs=1), tmp_path / "c.npz"
    path.write_bytes(b"PK\x03\x04 truncated")  # no run in it, no test record to lose
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    assert load_checkpoint(path).epoch == 1


def test_evaluate_on_the_run_s_test_split_is_the_counted_test_evaluation(tmp_path):
    """run.evaluate(data.X_test, data.y_test) looked at the test split as often as called and
    counted none of it; it is now run.test: evaluated once, counted, then the record."""
    data, config, path = tiny_data(), tiny_config(epochs=2), tmp_path / "c.npz"
    result = fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    result.evaluate(data.X_val, data.y_val)
    assert result.test_evaluations == 0  # validation is free to look at
    loss, acc = result.evaluate(data.X_test, data.y_test)
    assert result.test_evaluations == 1 and load_checkpoint(path).test_evaluations == 1
    assert (loss, acc) == (result.test_record.loss, result.test_record.accuracy)
    assert result.evaluate(data.X_test, data.y_test) == (loss, acc) and result.test_evaluations == 1
    loaded = FitResult.load(path)  # the loaded run knows its test split by the record
    assert loaded.evaluate(data.X_test, data.y_test) == (loss, acc) and loaded.test_evaluations == 1


def test_evaluate_refuses_a_bad_batch_size_on_the_run_s_test_split_too(tmp_path):
    """On the test split, evaluate went to test, which takes no batch size: batch_size=0 was
    ignored there and refused on any other images."""
    data, config = tiny_data(), tiny_config(epochs=1)
    result = fit(config.build_model(3), data, config, checkpoint_path=tmp_path / "c.npz",
                 progress=False)
    for X, y in ((data.X_val, data.y_val), (data.X_test, data.y_test)):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
            result.evaluate(X, y, batch_size=0)
    assert result.test_evaluations == 0


def test_the_test_split_in_another_dtype_is_the_same_counted_split(tmp_path):
    """Its digest was of the arrays' bytes: float64 images or int32 labels were another split,
    evaluated as often as asked and counted never."""
    data, config = tiny_data(), tiny_config(epochs=1)
    result = fit(config.build_model(3), data, config, checkpoint_path=tmp_path / "c.npz",
                 progress=False)
    first = result.evaluate(data.X_test, data.y_test)
    for X, y in ((data.X_test.astype(np.float64), data.y_test),
                 (data.X_test, data.y_test.astype(np.int32))):
        assert split_sha256(X, y) == result.test_sha256
        assert result.evaluate(X, y) == first and result.test_evaluations == 1


def test_a_loaded_untested_run_s_evaluate_on_its_test_split_is_counted(tmp_path):
    """A run loaded before its first test knew no test split (only a test record named one):
    its evaluate on it was uncounted. Every epoch's checkpoint records the split's digest now,
    a resumed run's too."""
    data, config, path = tiny_data(), tiny_config(epochs=1), tmp_path / "c.npz"
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    digest = split_sha256(data.X_test, data.y_test)
    assert load_checkpoint(path).test_sha256 == digest
    fit(config.build_model(3), data, replace(config, epochs=2), resume=path, checkpoint_path=path,
        progress=False)
    ckpt = load_checkpoint(path)
    assert (ckpt.epoch, ckpt.test_sha256, ckpt.test_evaluations) == (2, digest, 0)
    loaded = FitResult.load(path)
    loss, acc = loaded.evaluate(data.X_test, data.y_test)
    assert loaded.test_evaluations == 1 and load_checkpoint(path).test_evaluations == 1
    assert (loss, acc) == (loaded.test_record.loss, loaded.test_record.accuracy)
