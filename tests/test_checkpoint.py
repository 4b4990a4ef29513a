"""Checkpoints: round trip, atomic writes (a writer killed mid-write), refusing bad files."""
import errno
import io
import json
import os
import pickle
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import PIL
import pytest
from PIL import Image
from threadpoolctl import threadpool_info
from test_train import TINY, assert_same_params, params_of, tiny_config, tiny_data

from hw3lib.conv import Conv2D
from hw3lib.layers import AvgPool2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from hw3lib.model import LeNet5, Sequential
from hw3lib import engine
from hw3lib.atomic import atomic_write
from hw3lib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hw3lib.engine import engine_modules, engine_stamp, stamp_differences
from hw3lib.phrasing import phrased
from hw3lib.train import fit
from hw3lib.trained import FitResult


@pytest.fixture
def saved(tmp_path):
    """A 2-epoch run's result and its checkpoint path."""
    data, config, path = tiny_data(), tiny_config(epochs=2), tmp_path / "c.npz"
    result = fit(config.build_model(3), data, config, checkpoint_path=path,
                 data_sha256="ab" * 32, progress=False)
    return result, path


def test_round_trip_keeps_everything(saved):
    result, path = saved
    ckpt = load_checkpoint(path)
    assert ckpt.config == tiny_config(epochs=2) and ckpt.epoch == 2
    assert ckpt.best_epoch == result.best_epoch and ckpt.history == result.history
    assert ckpt.classes == ["a", "b", "c"] and ckpt.data_sha256 == "ab" * 32
    assert ckpt.engine == engine_stamp() and ckpt.threads == 1
    assert np.array_equal(ckpt.mean, result.mean) and np.array_equal(ckpt.std, result.std)
    assert set(ckpt.optimizer) == {"t"} | {f"{m}.{k}" for m in "mv" for k in ckpt.params}
    assert int(ckpt.optimizer["t"]) == 2 * 5
    assert_same_params(ckpt.best_params, params_of(result.model))
    assert_same_params(params_of(ckpt.build_model()), params_of(result.model))
    assert_same_params(params_of(ckpt.build_model(best=False)), ckpt.params)
    assert ckpt.build_model().get_params()["W1"].dtype == np.float32
    model = LeNet5(num_classes=3, seed=7, **TINY)
    load_checkpoint(path, model)
    assert_same_params(params_of(model), params_of(result.model))
    with zipfile.ZipFile(path) as z:  # plain arrays and a JSON string: nothing to unpickle
        assert "meta.npy" in z.namelist() and "params.W1.npy" in z.namelist()


def test_a_float64_run_round_trips_in_float64(tmp_path):
    data, config, path = tiny_data(), tiny_config(epochs=1, dtype="float64"), tmp_path / "c.npz"
    result = fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    ckpt = load_checkpoint(path)
    assert ckpt.model_config["dtype"] == "float64" and ckpt.params["W1"].dtype == np.float64
    assert ckpt.config.dtype == "float64"
    assert_same_params(params_of(ckpt.build_model()), params_of(result.model))
    assert ckpt.build_model().get_params()["W1"].dtype == np.float64


def test_a_float64_checkpoint_written_before_the_config_had_a_dtype_reads_as_float64(tmp_path):
    """Such a file records float64 in its model_config alone: its config is float64, so that
    resuming it builds (from the config) the model it was trained as."""
    data, config, path = tiny_data(), tiny_config(epochs=1, dtype="float64"), tmp_path / "c.npz"
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    rewrite(path, lambda arrays, meta: meta["config"].pop("dtype"))
    assert load_checkpoint(path).config.dtype == "float64"
    fit(config.build_model(3), data, replace(config, epochs=2), resume=path, progress=False)


def test_a_run_read_back_predicts_raw_images_and_image_files_as_in_training(saved, tmp_path):
    result, path = saved
    run, data = FitResult.load(str(path)), tiny_data()
    assert run.classes == result.classes == ["a", "b", "c"] and run.config == result.config
    assert run.checkpoint_path == path and run.best_epoch == result.best_epoch
    assert np.array_equal(run.predict(data.X_val), result.predict(data.X_val))
    assert run.evaluate(data.X_val, data.y_val) == result.evaluate(data.X_val, data.y_val)
    grey = np.round(data.X_val[:3, 0] * 255).astype(np.uint8)  # (3, 12, 12) as 8-bit files
    files = [tmp_path / f"{i}.png" for i in range(3)]
    for image, file in zip(grey, files):
        Image.fromarray(image, "L").save(file)
    probs = run.predict_files([str(f) for f in files])
    assert np.allclose(probs, run.predict(grey[:, None] / np.float32(255)), atol=1e-6)
    Image.fromarray(np.kron(grey[0], np.ones((3, 2), np.uint8)), "L").save(tmp_path / "big.png")
    assert run.predict_files([tmp_path / "big.png"]).shape == (1, 3)  # 36x24, resized to 12x12


def test_save_checkpoint_refuses_what_is_no_checkpoint_naming_what_writes_one(saved, tmp_path):
    result, path = saved
    with pytest.raises(TypeError, match=r"takes a path and a Checkpoint, got a LeNet5 where the "
                                        r"Checkpoint goes\. .*fit\(\.\.\., checkpoint_path="):
        save_checkpoint(tmp_path / "m.npz", result.model)
    with pytest.raises(TypeError, match="got a Checkpoint where the path goes"):
        save_checkpoint(load_checkpoint(path), tmp_path / "m.npz")
    assert list(tmp_path.glob("m.npz*")) == []


@pytest.mark.parametrize("change, words", [
    (lambda ckpt: ckpt.params.update(W1=np.zeros(3, np.float32)),
     "params.W1 has shape (3,), where its model and optimizer need ("),
    (lambda ckpt: ckpt.history["val_loss"].__setitem__(0, float("nan")),
     "its history is not epochs 1 to 2 with a finite number in every column"),
])
def test_save_checkpoint_refuses_what_load_would_refuse_and_writes_nothing(saved, tmp_path,
                                                                            change, words):
    """Weights of other shapes were written, then refused on load; NaN in the history was a
    bare 'Out of range float values are not JSON compliant'."""
    _, path = saved
    ckpt = load_checkpoint(path)
    change(ckpt)
    with pytest.raises(ValueError) as err:
        save_checkpoint(tmp_path / "m.npz", ckpt)
    assert str(err.value).startswith(f"not saving {tmp_path / 'm.npz'}: load_checkpoint would "
                                     f"refuse this checkpoint, as {words}"), str(err.value)
    assert list(tmp_path.glob("m.npz*")) == []


def test_a_file_written_before_the_engine_stamp_loads_without_one(saved):
    _, path = saved
    rewrite(path, lambda arrays, meta: (meta.pop("engine"), meta.pop("threads")))
    assert load_checkpoint(path).engine is None and load_checkpoint(path).threads is None


def test_a_file_written_before_the_test_split_digest_loads_its_test_split_as_unknown(saved):
    _, path = saved
    rewrite(path, lambda arrays, meta: meta.pop("test_sha256"))
    assert load_checkpoint(path).test_sha256 is None
    run, data = FitResult.load(path), tiny_data()
    assert run.test_sha256 is None  # untested: no record names it either
    run.evaluate(data.X_test, data.y_test)
    assert run.test_evaluations == 0 and load_checkpoint(path).test_evaluations == 0


def test_the_engine_is_the_code_training_runs_numpy_pillow_and_blas():
    modules = engine_modules()
    assert {"train", "trained", "evaluation", "conv", "layers", "im2col", "winograd", "optim",
            "losses", "model", "data", "images", "checkpoint", "engine", "atomic"} <= set(modules)
    assert not {"results", "report", "plots", "widgets", "bench", "sweep"} & set(modules)
    stamp = engine_stamp()
    assert re.fullmatch(r"hw3lib [0-9a-f]{12}, numpy \S+, pillow \S+, .+", stamp)
    assert f"numpy {np.__version__}," in stamp and f"pillow {PIL.__version__}," in stamp
    assert any(lib["internal_api"] in stamp for lib in threadpool_info() if lib["user_api"] == "blas")


def test_stamp_differences_name_each_part_of_the_engine_that_differs():
    now = engine_stamp()
    code, numpy_version, pillow, blas = now.split(", ", 3)
    assert stamp_differences(now, now) == []
    assert stamp_differences(f"{code}, numpy 1.0, {pillow}, {blas}", now) == [
        f"another NumPy (numpy 1.0; now {numpy_version})"]
    assert stamp_differences(f"hw3lib 000000000000, {numpy_version}, {pillow}, other (x)", now) == [
        "other training code (hw3lib's modules that training runs differ)",
        f"another BLAS library (other (x); now {blas})"]
    assert len(stamp_differences(None, now)) == 4  # a file written before the stamp: all unknown


def test_the_engine_stamp_names_the_code_as_imported_and_refuses_code_edited_since(
        tmp_path, monkeypatch):
    package = tmp_path / "hw3lib"
    package.mkdir()
    for name in engine_modules() + ["plots"]:
        shutil.copy(Path(engine.__file__).with_name(f"{name}.py"), package)
    monkeypatch.setattr(engine, "__file__", str(package / "engine.py"))
    stamp = engine_stamp()
    with open(package / "plots.py", "a") as f:  # not run in training
        f.write("PLOTS_EDITED = 1\n")
    with open(package / "im2col.py", "a") as f:  # a comment and a blank line change no code
        f.write("\n# a comment\n")
    assert engine_stamp() == stamp
    with open(package / "im2col.py", "a") as f:  # code run in training, and not imported
        f.write("IM2COL_EDITED = 1\n")
    with pytest.raises(engine.EngineChanged, match=r"^hw3lib/im2col.py changed since this "
                       r"Python process imported hw3lib, .*restart the kernel"):
        engine_stamp()
    data, config = tiny_data(), tiny_config(epochs=1)
    with pytest.raises(engine.EngineChanged):  # before any work, with nothing written
        fit(config.build_model(3), data, config, checkpoint_path=tmp_path / "c.npz", progress=False)
    assert not (tmp_path / "c.npz").exists()
    imported = {name: engine._parsed(name)[1] for name in engine_modules()}  # as on restart
    monkeypatch.setattr(engine, "_IMPORTED", imported)
    assert engine_stamp() != stamp and engine_stamp().split(",")[1:] == stamp.split(",")[1:]
    (package / "winograd.py").rename(package / "winograd.py.away")  # a branch switched under it
    with pytest.raises(engine.EngineChanged, match="^hw3lib/winograd.py changed since"):
        engine_stamp()


def test_another_architecture_is_refused_listing_the_shapes(saved):
    _, path = saved
    model = LeNet5(in_channels=3, num_classes=3, **{**TINY, "hidden": (9, 8)})
    with pytest.raises(CheckpointError, match="another architecture") as info:
        load_checkpoint(path, model)
    message = str(info.value)
    assert "W1: file (2, 1, 3, 3) vs model (2, 3, 3, 3)" in message
    assert "W3: file (8, 4) vs model (9, 4)" in message and "b3: file (8,) vs model (9,)" in message
    assert "W4: file (8, 8) vs model (8, 9)" in message and "W2" not in message
    load_checkpoint(path, LeNet5(num_classes=3, **TINY))  # the same architecture loads


@pytest.mark.parametrize("settings,words", [
    (dict(activation="tanh"), "activation 'relu' in the file, 'tanh' in the model"),
    (dict(pooling="avg"), "pooling 'max' in the file, 'avg' in the model"),
    (dict(activation="tanh", pooling="avg"),
     "activation 'relu' in the file, 'tanh' in the model; pooling 'max' in the file, 'avg' in the model"),
    (dict(dtype=np.float64), "dtype 'float32' in the file, 'float64' in the model"),  # was cast
])
def test_another_activation_pooling_or_dtype_is_refused_naming_the_settings(saved, settings, words):
    _, path = saved
    model = LeNet5(num_classes=3, **TINY, **settings)
    before = params_of(model)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, model)
    assert str(info.value) == (f"{path} was saved from another architecture; mismatched settings: "
                               f"{words}. Build the model with the checkpoint's settings "
                               "(Checkpoint.build_model()) or train it afresh")
    assert_same_params(params_of(model), before)  # nothing loaded


def own_lenet(act=ReLU, pool=MaxPool2D, size=12, dtype=np.float32, algorithm="auto"):
    """A Sequential of one's own with the parameter shapes of the TINY LeNet5."""
    return Sequential([Conv2D(1, 2, 3, dtype=dtype, algorithm=algorithm), act(), pool(2),
                       Conv2D(2, 4, 3, dtype=dtype), act(), pool(2), Flatten(),
                       Dense(4, 8, dtype=dtype), act(), Dense(8, 8, dtype=dtype), act(),
                       Dense(8, 3, dtype=dtype)], (1, size, size))


@pytest.mark.parametrize("model,words", [
    (lambda: own_lenet(act=Tanh), "layer 2 ReLU() in the file, Tanh() in the model; layer 5 ReLU() "
     "in the file, Tanh() in the model; layer 9 ReLU() in the file, Tanh() in the model; 1 more layer(s)"),
    (lambda: own_lenet(pool=AvgPool2D), "layer 3 MaxPool2D(kernel_size=(2, 2), stride=(2, 2)) in the "
     "file, AvgPool2D(kernel_size=(2, 2), stride=(2, 2)) in the model; layer 6 MaxPool2D"),
    (lambda: own_lenet(size=13), "input (1, 12, 12) in the file, (1, 13, 13) in the model"),
    (lambda: own_lenet(dtype=np.float64), "dtype 'float32' in the file, 'float64' in the model"),
])
def test_a_sequential_of_ones_own_that_computes_otherwise_is_refused_naming_its_layers(saved, model,
                                                                                     words):
    """Weights of the same shapes as the file's, but another activation, pooling, input size or
    dtype: loaded silently before, they computed something else."""
    _, path = saved
    model = model()
    before = params_of(model)
    with pytest.raises(CheckpointError, match="another architecture; mismatched settings: ") as info:
        load_checkpoint(path, model)
    assert words in str(info.value)
    assert_same_params(params_of(model), before)  # nothing loaded


def test_a_sequential_of_ones_own_with_the_files_layers_loads(saved):
    result, path = saved
    for model in (own_lenet(), own_lenet(algorithm="im2col")):
        load_checkpoint(path, model)
        assert_same_params(params_of(model), params_of(result.model))


def test_settings_and_shapes_that_differ_are_named_together(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match=r"mismatched settings: hidden \(8, 8\) in the file, "
                       r"\(9, 8\) in the model; mismatched parameters: W3: file \(8, 4\) vs model"):
        load_checkpoint(path, LeNet5(num_classes=3, **{**TINY, "hidden": (9, 8)}))


def test_settings_written_as_single_numbers_are_the_same_architecture(saved):
    result, path = saved
    rewrite(path, lambda arrays, meta: meta["model_config"].update(input_size=12, kernel_size=3))
    model = LeNet5(num_classes=3, **{**TINY, "input_size": (12, 12)})
    before = params_of(model)
    ckpt = load_checkpoint(path, model)  # not refused as another architecture, and loaded
    assert ckpt.model_config["input_size"] == 12
    assert_same_params(params_of(model), params_of(result.model))
    assert any(not np.array_equal(before[k], v) for k, v in params_of(model).items())


@pytest.mark.parametrize("keep", [10, 0.5, -1])
def test_truncated_file_is_refused(saved, keep):
    _, path = saved
    body = path.read_bytes()
    path.write_bytes(body[:int(keep * len(body)) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


class Trap:
    """Unpickling this object would create the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_objects_are_refused_and_never_unpickled(saved, tmp_path):
    _, path = saved
    marker = tmp_path / "unpickled"
    arrays = dict(np.load(path))
    arrays["meta"] = np.array([Trap(marker)], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # numpy pickles the object array
    path.write_bytes(buf.getvalue())
    fix = "; give a checkpoint that `python -m hw3lib train` or fit wrote, or train afresh"
    with pytest.raises(CheckpointError, match="pickled object") as err:
        load_checkpoint(path)
    assert str(err.value).endswith(fix)  # it named the cause alone
    path.write_bytes(pickle.dumps(Trap(marker)))
    with pytest.raises(CheckpointError, match="pickled object") as err:
        load_checkpoint(path)
    assert str(err.value).endswith(fix)
    assert not marker.exists()


def test_other_files_are_refused(saved, tmp_path):
    _, path = saved
    arrays = dict(np.load(path))
    np.savez(tmp_path / "no_meta.npz", **{k: v for k, v in arrays.items() if k != "meta"})
    with pytest.raises(CheckpointError, match="not a valid checkpoint"):
        load_checkpoint(tmp_path / "no_meta.npz")
    np.savez(tmp_path / "other.npz", meta=np.array('{"format": "something else"}'))
    with pytest.raises(CheckpointError, match="is not a hw3lib-checkpoint version 2"):
        load_checkpoint(tmp_path / "other.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        load_checkpoint(tmp_path / "single.npy")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.npz")


@pytest.mark.parametrize("version, words", [
    (3, "was written by a newer hw3lib (checkpoint format version 3; this one reads versions 1 "
        "to 2): update hw3lib to load it"),
    (0, "is not a valid checkpoint: its format version 0 is none that hw3lib writes")])
def test_a_checkpoint_of_another_format_version_says_why_and_what_to_do(saved, version, words):
    _, path = saved
    rewrite(path, set_entry("version", version))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(f"{path} {words}")


def rewrite(path, change):
    """Rewrite the checkpoint ``path`` after ``change(arrays, meta)`` edited its arrays and its
    decoded ``meta`` in place (an array ``meta`` replaces the latter), as any program could."""
    arrays = dict(np.load(path))
    meta = json.loads(str(arrays.pop("meta")))
    change(arrays, meta)
    np.savez(path, **{"meta": np.array(json.dumps(meta)), **arrays})


def drop_optimizer(arrays, meta):
    for key in [k for k in arrays if k.startswith("optim.")]:
        del arrays[key]


def set_entry(key, value):
    return lambda arrays, meta: meta.update({key: value})


def shorten_history(arrays, meta):
    meta["history"] = {k: v[:-1] for k, v in meta["history"].items()}


def set_array(key, value):
    return lambda arrays, meta: arrays.update({key: value})


def nan_weight(arrays, meta):
    arrays["params.W1"][0, 0, 0, 0] = np.nan


def float64_weights(arrays, meta):
    for key in [k for k in arrays if k.startswith(("params.", "best."))]:
        arrays[key] = arrays[key].astype(np.float64)


def nan_history(arrays, meta):
    meta["history"]["val_loss"][0] = float("nan")


MALFORMED = {  # what is wrong -> (the change, words of the message)
    "no optimizer state": (drop_optimizer, "it lacks array(s) optim.t, optim.m.W1"),
    "history null": (set_entry("history", None), "its history does not hold one row"),
    "history shorter than epoch": (shorten_history, "for each of its 2 epoch(s)"),
    "best epoch beyond the last": (set_entry("best_epoch", 7), "epoch 2 and best_epoch 7 do not fit"),
    "meta a JSON list": (set_array("meta", np.array("[1, 2]")), "no meta array holding a JSON object"),
    "wrong-shaped moment": (set_array("optim.m.W1", np.zeros(3, np.float32)),
                            "optim.m.W1 has shape (3,), where its model and optimizer need ("),
    "NaN weights": (nan_weight, "params.W1 holds NaN or infinite numbers"),
    "float64 weights in a float32 model": (  # were cast to float32 without a word
        float64_weights, "params.W1 holds float64 values, where its model and optimizer are float32 "
        "(model_config's dtype): cast the arrays to float32, or set model_config's dtype to float64"),
    "NaN in the history": (nan_history, "with a finite number in every column"),
    # three checks that no case reached: each could go and every test passed
    "history epochs not counting from 1": (
        lambda arrays, meta: meta["history"].update(epoch=[2, 1]),
        "its history is not epochs 1 to 2 with a finite number"),
    "std of zero": (set_array("std", np.zeros(1, np.float32)), "its std holds a number <= 0"),
    "step count below 0": (set_array("optim.t", np.array(-5)),
                           "its optimizer step count optim.t is -5, below 0"),
    "mean of another shape": (set_array("mean", np.zeros(3)), "mean has shape (3,)"),
    "weights of text": (set_array("best.b1", np.array(["a", "b"])), "best.b1 holds <U1 values"),
    "classes": (set_entry("classes", ["a"]), "its classes ['a'] are not 3 names"),
    "model_config": (set_entry("model_config", {"dtype": "float32", "pooling": "median"}),
                     "its model_config"),
    "config": (set_entry("config", {"lr": -1}), "lr must be a positive finite number"),
    "engine": (set_entry("engine", 3), "its engine 3 is not a string"),
    "threads": (set_entry("threads", 0), "its threads 0 is no count of threads"),
    "test_sha256": (set_entry("test_sha256", 3), "its test_sha256 3 is not a string"),
    "no mean": (lambda arrays, meta: arrays.pop("mean"), "it has no 'mean' entry"),
    # loaded, predict read image files in the config's mode and refused them for the model's
    "config of another mode than the model": (
        lambda arrays, meta: meta["config"].update(mode="RGB"),
        "its model_config and config disagree on the model: in_channels 1 in model_config, 3 by "
        "config (config's mode 'RGB')"),
    # loaded, it predicted with an activation its weights were not trained with
    "model_config of another activation than the config": (
        lambda arrays, meta: meta["model_config"].update(activation="tanh"),
        "activation 'tanh' in model_config, 'relu' by config"),
    # a config whose model does not fit the model_config's 12x12 inputs: a bare ValueError (from
    # building it) that named no file
    "config of a kernel too large for the model_config's inputs": (
        lambda arrays, meta: meta["config"].update(model={"kernel_size": 7}),
        "its model_config and config disagree on the model: config builds none for model_config's "
        "inputs (ValueError: LeNet5 with kernel_size=7 does not fit 12x12 inputs"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_checkpoint_is_refused_in_one_line_naming_the_file_and_the_fix(saved, case):
    _, path = saved
    change, words = MALFORMED[case]
    rewrite(path, change)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a valid checkpoint: ") and words in message, message
    assert message.endswith("train afresh, into another --out (or delete it)") and "\n" not in message


def test_random_bytes_after_pk_are_a_corrupt_file_not_a_pickle(tmp_path):
    path = tmp_path / "checkpoint.npz"
    for head in (b"PK", b"PK\x03\x04"):
        path.write_bytes(head + np.random.default_rng(0).bytes(100_000))
        with pytest.raises(CheckpointError, match="is truncated or corrupt") as err:
            load_checkpoint(path)
        assert "pickle" not in str(err.value)


def _damaged(body, case):
    """``body`` (a checkpoint's bytes) with one header field set as ``case`` names."""
    body = bytearray(body)
    central = body.rfind(b"PK\x01\x02")  # the last member's central directory entry
    if case == "zip version":  # "version needed to extract"
        body[central + 6:central + 8] = (99).to_bytes(2, "little")
    elif case == "encrypted flag":
        body[central + 8] |= 1
    elif case == "compression method":
        body[central + 10:central + 12] = (77).to_bytes(2, "little")
    return bytes(body)


@pytest.mark.parametrize("case", ["zip version", "encrypted flag", "compression method",
                                  "unclosed npy header"])
def test_a_damaged_archive_header_is_a_corrupt_file_not_a_traceback(saved, tmp_path, case):
    _, path = saved
    if case == "unclosed npy header":
        header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,".ljust(118) + b"\n"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("meta.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
                       + bytes(24))
        path.write_bytes(buf.getvalue())
    else:
        path.write_bytes(_damaged(path.read_bytes(), case))
    with pytest.raises(CheckpointError, match="is truncated or corrupt") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "pickle" not in str(err.value)


def test_what_is_no_checkpoint_is_named_for_what_it_is(tmp_path):
    cases = {"random.npz": b"\x13\x07\xc4 random bytes, no archive", "empty.npz": b""}
    for name, body in cases.items():
        (tmp_path / name).write_bytes(body)
    (tmp_path / "dangling.npz").symlink_to(tmp_path / "gone.npz")
    (tmp_path / "loop.npz").symlink_to(tmp_path / "loop.npz")
    (tmp_path / "folder.npz").mkdir()
    expected = {"random.npz": "is not a checkpoint (an .npz archive", "empty.npz": "is empty (0 bytes)",
                "dangling.npz": "is a broken symbolic link (to ", "folder.npz": "is a folder, not a checkpoint",
                "loop.npz": "is a symbolic link in a loop (to "}
    for name, words in expected.items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and words in str(err.value)
        assert "pickle" not in str(err.value) and "permissions" not in str(err.value)


def test_a_failed_write_names_the_target_not_the_temporary_file(saved, monkeypatch):
    _, path = saved
    before = path.read_bytes()

    def full_disk(file, **arrays):
        file.write(b"PK half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError) as err:
        save_checkpoint(path, load_checkpoint(path))
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_twice_during_a_write_waits_for_it_and_leaves_no_temporary_file(tmp_path, signum):
    def write(f):
        f.write(b"first half ")
        os.kill(os.getpid(), signum)
        os.kill(os.getpid(), signum)
        f.write(b"second half")

    previous = signal.signal(signum, signal.default_int_handler)  # as `python -m hw3lib` has it
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic_write(tmp_path / "history.json", write)
    finally:
        signal.signal(signum, previous)
    assert (tmp_path / "history.json").read_bytes() == b"first half second half"
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_a_write_works_without_os_fchmod_as_on_windows_before_python_3_13(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "fchmod")
    atomic_write(tmp_path / "history.json", lambda f: f.write(b"{}"))
    assert (tmp_path / "history.json").read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_a_write_reaches_the_disk_before_its_rename_and_the_rename_after_it(tmp_path, monkeypatch):
    """atomic_write's durability: the file is flushed to disk (fsync) before it is renamed over
    the old one, and the folder after (the rename itself); and it is readable by all (0o644, as
    open() makes files), not mkstemp's 0o600. Dropping either fsync or the chmod passed."""
    events, fsync, replace = [], os.fsync, os.replace

    def fsync_noted(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def replace_noted(src, dst):
        events.append("rename")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync_noted)
    monkeypatch.setattr(os, "replace", replace_noted)
    atomic_write(tmp_path / "history.json", lambda f: f.write(b"{}"))
    assert events == ["fsync file", "rename", "fsync folder"]
    if hasattr(os, "fchmod"):
        assert stat.S_IMODE((tmp_path / "history.json").stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_file(saved, monkeypatch):
    _, path = saved
    before = path.read_bytes()
    ckpt = load_checkpoint(path)

    def broken_savez(file, **arrays):
        file.write(b"PK half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, ckpt)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


WRITER = textwrap.dedent("""
    import io, sys, time
    import numpy as np
    from hw3lib.checkpoint import HISTORY_KEYS, Checkpoint, save_checkpoint
    from hw3lib.config import TrainConfig

    path, stall = sys.argv[1], sys.argv[2] == "stall"
    config = TrainConfig(image_size=140)  # 2 million weights in W3: 8 MB per copy, four copies
    model = config.build_model(3)
    params = model.get_params()
    optimizer = config.build_optimizer(params).state_dict()
    model_config = {**model.config, "dtype": "float32"}
    for i in range(1, 10**9):
        if stall and i == 2:  # from now on, write half of each file, say so, and hang there
            savez = np.savez

            def half_then_hang(f, **arrays):
                buffer = io.BytesIO()
                savez(buffer, **arrays)
                f.write(buffer.getvalue()[: buffer.tell() // 2])
                f.flush()
                print("mid-write", flush=True)
                time.sleep(60)
            np.savez = half_then_hang
        for weights in params.values():
            weights.fill(i)
        history = {key: list(range(1, i + 1)) for key in HISTORY_KEYS}
        save_checkpoint(path, Checkpoint(config, model_config, params, params,
                                         {**optimizer, "t": np.array(i)}, i, i, history,
                                         np.zeros(1), np.ones(1), ["a", "b", "c"]))
        print(i, flush=True)
""")


def kill_writer(path, stall, delay=0.0):
    """Start a writer, wait for its first complete checkpoint (and, with ``stall``, until it
    is halfway through the second), kill -9 it; return the files left beside ``path``."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "stall" if stall else "loop"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "1"  # one complete checkpoint exists
        if stall:
            assert proc.stdout.readline().strip() == "mid-write"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    ckpt = load_checkpoint(path)
    assert ckpt.epoch >= 1 and int(ckpt.optimizer["t"]) == ckpt.epoch
    for weights in (ckpt.params["W3"], ckpt.best_params["W3"]):
        assert weights.shape == (120, 16 * 32 * 32) and (weights == ckpt.epoch).all()
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert all(p.name.startswith(f".{path.name}.") and p.suffix == ".tmp" for p in leftovers)
    for p in leftovers:
        p.unlink()
    return ckpt, leftovers


def test_a_writer_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    """Kill -9 a writer that is halfway through writing checkpoint 2 (it says so, then hangs):
    checkpoint 1 loads whole, and only the half-written temporary file is left behind."""
    ckpt, leftovers = kill_writer(tmp_path / "big.npz", stall=True)
    assert ckpt.epoch == 1 and len(leftovers) == 1


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_a_writer_killed_at_any_moment_leaves_a_complete_checkpoint(tmp_path, delay):
    """Kill -9 a writer that rewrites a 31 MB checkpoint in a loop, at an arbitrary moment:
    the file always loads as one complete version."""
    kill_writer(tmp_path / "big.npz", stall=False, delay=delay)


def test_a_run_loads_from_the_folder_train_out_wrote_as_predict_takes_it(tmp_path):
    """FitResult.load("runs/lenet5"), the folder `predict` takes, said the folder was no
    checkpoint file and advised moving it away."""
    data, config = tiny_data(), tiny_config(epochs=1)
    path = tmp_path / "runs" / "lenet5" / "checkpoint.npz"
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    for given in (path.parent, str(path.parent)):
        run = FitResult.load(given)
        assert run.checkpoint_path == path and run.best_epoch == 1
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        FitResult.load(tmp_path / "runs")  # a folder without checkpoint.npz


def test_a_run_refuses_images_that_are_not_raw_and_files_it_cannot_take(saved, tmp_path):
    from hw3lib.images import DataError, TransparentPixels

    run, data = FitResult.load(saved[1]), tiny_data()
    for bad, words in ((np.round(data.X_val * 255).astype(np.uint8), "got uint8 values: divide 8-bit"),
                       (data.X_val * 255, r"got float32 values from .* to 255: divide 8-bit pixels by 255"),
                       (data.X_val - 0.5, "images normalised already go to run.model.forward")):
        for call in (run.predict, lambda X: run.evaluate(X, data.y_val)):
            with pytest.raises(ValueError, match=words):
                call(bad)
    for call in (run.predict, lambda X: run.test(X, data.y_val[:0])):  # no images: said, not numpy's
        with pytest.raises(ValueError, match=r"X must hold raw images as floats in \[0, 1\] \(N, C, H, W\) with N >= 1, got shape \(0, 1, 12, 12\)"):
            call(data.X_val[:0])
    grey = np.round(data.X_val[0, 0] * 255).astype(np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "one.png")
    assert run.predict_files(tmp_path / "one.png").shape == (1, 3)  # one path, not its letters
    with pytest.raises(ValueError, match="needs at least one image file"):
        run.predict_files([])
    with pytest.raises(DataError, match=r"is a folder, not an image file. Fix: give the paths of image files"):
        run.predict_files([tmp_path])
    with pytest.raises(ValueError, match=r"predict_files takes paths of image files \(str or "
                                         r"pathlib.Path\), got a ndarray: arrays of raw images go to predict"):
        run.predict_files(data.X_val)  # failed in pathlib
    alpha = np.full_like(grey, 255)
    alpha[0, 0] = 0
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(tmp_path / "cut.png")
    with pytest.raises(TransparentPixels, match=r"cut.png has transparent pixels \(alpha down to 0 "
                       r"of 255\), which this run, trained on mode L images, cannot take. Fix: "
                       r"flatten the image onto a background"):
        run.predict_files([tmp_path / "cut.png"])


def test_a_run_refuses_images_holding_nan_before_predicting_or_testing_them(saved):
    """NaN passed the [0, 1] check (its min and max compare False): predict gave a class for a
    NaN image, evaluate a NaN loss, and test failed in save_checkpoint's words about the test
    record, not the images."""
    run, data = FitResult.load(saved[1]), tiny_data()
    for value in (np.nan, np.inf):
        X = data.X_val.copy()
        X[3, 0, 1, 2] = value
        for call in (run.predict, lambda X: run.evaluate(X, data.y_val),
                     lambda X: run.test(X, data.y_val)):
            with pytest.raises(ValueError, match=r"1 image\(s\) hold NaN or infinite values "
                                                 r"\(the first at index 3\)"):
                call(X)
    assert run.test_evaluations == load_checkpoint(saved[1]).test_evaluations == 0


def test_a_run_refuses_images_of_another_shape_naming_the_shape_given_and_its_own(saved):
    """Over one batch (256) of images of another size, predict and evaluate named the first
    batch's shape, (256, 1, 16, 16), not the images given; hw3lib.evaluate did the same."""
    from hw3lib import evaluate

    run = FitResult.load(saved[1])
    for X, given in ((np.zeros((300, 1, 16, 16), np.float32), r"\(300, 1, 16, 16\)"),
                     (np.zeros((300, 3, 12, 12), np.float32), r"\(300, 3, 12, 12\)")):
        y = np.zeros(300, int)
        for call in (run.predict, lambda X: run.evaluate(X, y), lambda X: run.test(X, y)):
            with pytest.raises(ValueError, match=rf"this run's model takes images \(N, 1, 12, 12\), "
                                                 rf"got {given}: load them in the run's mode and size, "
                                                 r"TrainConfig\(mode='L'\) and TrainConfig\(image_size="
                                                 r"'12x12'\), or give the image files to predict_files") as err:
                call(X)
            # one setting in each TrainConfig(...), as the commands and the panel rephrase them
            assert "size, --channels L and --image-size 12x12, or" in phrased(str(err.value))
        with pytest.raises(ValueError, match=rf"the model expects input \(N, 1, 12, 12\), got {given}"):
            evaluate(run.model, X, y)
    assert run.test_evaluations == saved[0].test_evaluations  # nothing was evaluated
