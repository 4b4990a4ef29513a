"""The command line with one's own images: --image-size, --out checked first, runs that do not
learn, a full disk, exit statuses, unknown commands, repeated Ctrl-C."""
import argparse
import dataclasses
import errno
import importlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from hw3lib import atomic, checkpoint, cli, cores, data, download, file_order, out_folders, processes, train, train_cli
from hw3lib.__main__ import COMMANDS, main as hw3lib_main
from hw3lib.checkpoint import load_checkpoint, save_checkpoint
from hw3lib.config import TrainConfig
from hw3lib.download import dataset_sha256
from hw3lib.engine import engine_stamp
from hw3lib.out_folders import refuse_file_in_the_way
from hw3lib.train import fit
from datasets import name_at_random, write_videos
from test_checkpoint import MALFORMED, rewrite
from test_train import DATA, HAVE_DATA, fake_root, run_cli, start_training

QUICK = ("--epochs", 2, "--batch-size", 8, "--lr", 0.002, "--no-progress")


def digits_root(base, size=(28, 28), classes=10, per_class=4):
    """train/ and test/ folders of ``classes`` classes, 16-bit grey PNGs of ``size`` (H, W)
    whose class k lights up the k-th band of rows."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k in range(classes):
            for i in range(per_class):
                pixels = rng.integers(0, 20000, size)
                band = size[0] * k // classes
                pixels[band:band + max(1, size[0] // classes)] += 40000
                path = base / split / f"digit{k}" / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels.astype(np.uint16)).save(path)
    return base


def test_own_images_of_another_size_and_class_count_train(tmp_path, capsys):
    root, out = digits_root(tmp_path / "digits"), tmp_path / "run"
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--no-hflip", "--out", out)
    assert code in (0, 3), err
    assert "28x28, 10 classes" in stdout and json.loads(stdout.splitlines()[-1])["epochs"] == 2
    model = load_checkpoint(out / "checkpoint.npz").build_model()
    assert model.input_shape == (1, 28, 28) and model.num_classes == 10
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--image-size", "20x24", "--channels",
                                "RGB", "--out", tmp_path / "run2")
    assert code in (0, 3), err
    assert load_checkpoint(tmp_path / "run2" / "checkpoint.npz").build_model().input_shape == (3, 20, 24)


def test_mixed_sizes_are_refused_naming_the_option_and_bad_sizes_too(tmp_path, capsys):
    root = digits_root(tmp_path / "digits")
    Image.new("L", (64, 64)).save(root / "train" / "digit3" / "big.png")
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", tmp_path / "run")
    assert code == 2 and len(err.splitlines()) == 1 and "--image-size" in err and "1 of 64x64 (e.g. " in err
    assert "big.png)" in err
    for bad in ("0", "28x", "axb"):
        code, stdout, err = run_cli(capsys, "--data", root, "--image-size", bad, "--out", tmp_path / "run")
        assert code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith("error: argument --image-size: must be an integer S (S x S pixels) or "
                              f"'HxW' with H, W >= 1, e.g. 32 or 28x28, got {bad!r}"), err  # named once


def test_data_advice_names_the_option_of_the_command_that_runs(tmp_path, capsys):
    """train says --image-size and --channels, sweep --set image_size= and --set mode=: the
    library names the setting (TrainConfig(image_size=...)), each command its option."""
    mixed = digits_root(tmp_path / "mixed", classes=2)
    Image.new("L", (64, 64)).save(mixed / "train" / "digit1" / "big.png")
    clear = digits_root(tmp_path / "clear", classes=2)
    Image.new("LA", (28, 28)).save(clear / "train" / "digit0" / "0.png")  # alpha 0 everywhere
    sweep = ["sweep", "--param", "lr=1e-3,5e-4", "--no-progress", "--out", str(tmp_path / "sweep")]
    for root, train_words, sweep_words in ((mixed, "--image-size 28x28", "--set image_size=28x28"),
                                           (clear, "--channels LA", "--set mode=LA")):
        code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", tmp_path / "run")
        assert code == 2 and f"Fix: {'resize' if root == mixed else 'keep'}" in err and train_words in err
        assert hw3lib_main([*sweep, "--data", str(root)]) == 2
        err = capsys.readouterr().err
        assert sweep_words in err and train_words not in err and "TrainConfig(" not in err, err
    assert hw3lib_main([*sweep, "--data", str(mixed), "--set", "image_size=8"]) == 2
    assert "Fix: larger images, e.g. --set image_size=16, or" in capsys.readouterr().err
    code, _, err = run_cli(capsys, "--data", mixed, *QUICK, "--image-size", 8, "--out", tmp_path / "run")
    assert code == 2 and err.endswith("needs at least 16 pixels a side. Fix: larger images, e.g. "
                                      "--image-size 16\n"), err  # no option for the kernel


def test_val_fraction_is_an_option_and_one_image_per_class_asks_for_more(tmp_path, capsys):
    root = digits_root(tmp_path / "d", classes=2, per_class=4)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--val-fraction", 0.5, "--out", tmp_path / "a")
    assert code in (0, 3) and "on 4 training, 4 validation, 8 test images" in stdout, err
    assert load_checkpoint(tmp_path / "a" / "checkpoint.npz").config.val_fraction == 0.5
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--val-fraction", 0.1, "--out", tmp_path / "b")
    assert code == 2 and "error: --val-fraction 0.1 of [4, 4] images per class leaves the validation " \
                         "split empty" in err, err  # the option given, not the library's name for it
    assert "Fix: choose one that sends some images to each split, e.g. --val-fraction 0.3" in err
    for bad in ("1", "0", "nan", "a"):
        code, stdout, err = run_cli(capsys, "--data", root, "--val-fraction", bad, "--out", tmp_path / "c")
        assert code == 2 and "argument --val-fraction: must be a number between 0 and 1" in err
    one = digits_root(tmp_path / "one", classes=2, per_class=1)
    code, stdout, err = run_cli(capsys, "--data", one, *QUICK, "--out", tmp_path / "d")
    assert code == 2 and "one image per class leaves the validation split empty" in err
    assert "Fix: add training images, 2 or more per class" in err and "val_fraction" not in err


def test_a_run_that_does_not_learn_warns_and_exits_3(tmp_path, capsys):
    root, out = fake_root(tmp_path), tmp_path / "run"
    code, stdout, err = run_cli(capsys, "--data", root, "--lr", 10, "--epochs", 2, "--no-progress",
                                "--out", out)
    assert code == 3
    warning = err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: ") and "chance" in warning[0]
    assert warning[0].endswith("learning rate 10 is too large, try a smaller one, e.g. 1")
    assert json.loads(stdout.splitlines()[-1])["learned"] is False
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2  # kept, like any run
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 6, "--out", tmp_path / "ok")
    assert code == 0 and err == "" and json.loads(stdout.splitlines()[-1])["learned"] is True
    assert "note:" not in stdout  # batches of 8 of 24 training images


def test_a_class_with_no_validation_image_is_noted(tmp_path, capsys):
    """A class of one image only trains: validation said nothing of it, and train said nothing."""
    root = digits_root(tmp_path / "digits", size=(16, 16), classes=3)
    for extra in ("1.png", "2.png", "3.png"):
        (root / "train" / "digit0" / extra).unlink()
    (root / "train" / "digit2" / "3.png").unlink()  # 3 images: 1 validates
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--batch-size", 2, "--out", tmp_path / "run")
    assert code in (0, 3), err
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert notes == ["note: no validation images of class(es) digit0 (too few images to hold one out): "
                     "validation accuracy, and the epoch it picks, do not measure them; add images to them"]


def test_frames_named_out_of_order_are_noted_where_the_blocked_split_holds_them_out(tmp_path, capsys):
    """Frames named at random: the blocked split held out frames whose neighbours trained, and
    train said nothing (only audit told)."""
    root = name_at_random(write_videos(tmp_path / "frames", frames=60, test_frames=6))
    notes = {}
    for split in ("blocked", "random"):
        code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--split", split,
                                    "--out", tmp_path / split)
        assert code in (0, 3), err
        notes[split] = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert len(notes["blocked"]) == 1 and "not neighbours in file-name order" in notes["blocked"][0]
    assert notes["random"] == []  # it holds out neighbours of training frames whatever the order
    code, stdout, err = run_cli(capsys, "--data", write_videos(tmp_path / "in_order", frames=60, test_frames=6),
                                *QUICK, "--out", tmp_path / "in_order_run")
    assert "note:" not in stdout


def test_a_batch_larger_than_the_training_split_is_noted_and_too_few_steps_are_said(tmp_path, capsys):
    """Two epochs of one batch each: the advice is to train longer, not a smaller learning rate."""
    code, stdout, err = run_cli(capsys, "--data", fake_root(tmp_path), "--batch-size", 100000, "--epochs", 2,
                                "--lr", 1e-4, "--no-progress", "--out", tmp_path / "run")
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert notes == ["note: --batch-size 100000 is more than the 24 training images, so each epoch is one "
                     "batch of all of them (one optimizer step); a smaller --batch-size gives more steps "
                     "per epoch"]
    assert code == 3 and len(err.splitlines()) == 1
    assert err.strip().endswith("only 2 optimizer step(s) (2 epoch(s) of 1 batch: all 24 training images, batch "
                                "size 100000), too few to "
                                "learn: train longer, with more epochs or a smaller batch size")
    assert "smaller one" not in err


def test_classes_of_pure_noise_may_not_be_told_apart(tmp_path, capsys):
    """3 classes of random pixels: the model learns its training images by heart, validation
    stays at chance, and the advice says the classes may not be distinguishable at all."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 5)):
        for k in range(3):
            for i in range(n):
                path = tmp_path / "noise" / split / f"class{k}" / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(path)
    code, stdout, err = run_cli(capsys, "--data", tmp_path / "noise", "--epochs", 60, "--no-progress",
                                "--out", tmp_path / "run")
    assert code == 3 and len(err.splitlines()) == 1 and "is not clearly above chance" in err
    assert err.strip().endswith("the model fits its 42 training images but does not generalise from them "
                                "to the validation images: train on more, or more varied, images, or the "
                                "classes may not be told apart from these images")


@pytest.mark.skipif(not HAVE_DATA, reason=f"real dataset not found at {DATA}: set HW3_DATA")
def test_one_image_above_chance_on_the_real_data_is_not_learning(tmp_path, capsys):
    """The audit's run: 148 of 441 validation images right, against 147 by always the largest class."""
    code, stdout, err = run_cli(capsys, "--data", DATA, "--batch-size", 100000, "--epochs", 2,
                                "--no-progress", "--out", tmp_path / "run")
    summary = json.loads(stdout.splitlines()[-1])
    assert code == 3 and summary["val_acc"] == 0.335601 and summary["learned"] is False
    assert "(148 of 441 images) is not clearly above chance, 0.333" in err and "too few to learn" in err
    assert "note: --batch-size 100000 is more than the 1029 training images" in stdout


@pytest.mark.parametrize("case", ["file", "parent file", "checkpoint folder", "history folder"])
def test_out_that_cannot_hold_a_run_is_refused_at_once(tmp_path, capsys, case):
    root = fake_root(tmp_path)
    out = tmp_path / "out"
    if case == "file":
        out.write_text("x")
    elif case == "parent file":
        (tmp_path / "plain").write_text("x")
        out = tmp_path / "plain" / "run"
    else:
        (out / ("checkpoint.npz" if case == "checkpoint folder" else "history.json")).mkdir(parents=True)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", out)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1 and str(out) in err
    assert "Errno" not in err and ".tmp" not in err
    if case.endswith("folder"):
        assert f"{out / case.replace(' folder', '')}" in err or "is a folder" in err
        assert not (out / "history.json").is_file()


@pytest.mark.parametrize("out, error", [
    ("/proc/hw3-run", "cannot create --out /proc/hw3-run: No such file or directory; choose a writable folder"),
    ("/proc/hw3-run/sub", "cannot create --out /proc/hw3-run/sub: No such file or directory; choose a "
                          "writable folder"),
    pytest.param("/sys", "cannot write to --out /sys: Permission denied; choose a writable folder",
                 marks=pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's /sys")),
])
def test_an_out_that_cannot_be_created_or_written_in_is_refused_before_any_image_is_read(
        tmp_path, capsys, monkeypatch, out, error):
    """It was refused as the checkpoint's room was tried, after the images were read and hashed
    (minutes of a large folder). Folders no one can create or write in, root too (/sys)."""
    root = fake_root(tmp_path)
    monkeypatch.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("an image was read"))
    assert run_cli(capsys, "--data", root, *QUICK[:-1], "--out", out) == (2, "", f"error: {error}\n")


@pytest.mark.parametrize("problem", [(errno.ENOSPC, "No space left on device"),
                                     (errno.EROFS, "Read-only file system"),
                                     (errno.EACCES, "Permission denied")])
def test_a_full_or_read_only_out_is_refused_before_training(tmp_path, capsys, monkeypatch, problem):
    def refuse(*args, **kwargs):
        raise OSError(*problem)

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    code, stdout, err = run_cli(capsys, "--data", fake_root(tmp_path), *QUICK, "--out", tmp_path / "run")
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1
    assert f"cannot write to --out {tmp_path / 'run'}: {problem[1]}" in err
    assert list((tmp_path / "run").iterdir()) == []


@pytest.mark.parametrize("full_at", ["checkpoint", "its lock", "first checkpoint"])
def test_a_disk_filling_up_mid_run_names_the_path_and_keeps_what_was_written(tmp_path, capsys, monkeypatch,
                                                                            full_at):
    """The disk fills up at epoch 2: as the checkpoint is written, or before, as its lock file
    is given the process number (on a full disk the first write to fail; it named --out); or
    at epoch 1, when no checkpoint is there for --resume (it said to go on with it)."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    savez, write, calls = np.savez, os.write, []

    def fills_up(*args, **arrays):
        calls.append(1)  # the locks written: --out's, then epoch 1's, then epoch 2's
        if len(calls) == {"checkpoint": 2, "its lock": 3, "first checkpoint": 1}[full_at]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return (write if full_at == "its lock" else savez)(*args, **arrays)

    if full_at == "its lock":
        monkeypatch.setattr(atomic, "os", SimpleNamespace(**{**vars(os), "write": fills_up}))
    else:
        monkeypatch.setattr(checkpoint.np, "savez", fills_up)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 3, "--out", out)
    assert code == 2 and len(err.splitlines()) == 1
    if full_at == "first checkpoint":
        assert err == (f"error: cannot write {out / 'checkpoint.npz'}: No space left on device; no epoch "
                       "was saved. Free some space (or make the folder writable), then run the same "
                       "command again\n")
        assert not (out / "checkpoint.npz").exists()
        return
    assert f"cannot write {out / 'checkpoint.npz'}: No space left on device" in err and "--resume" in err
    assert load_checkpoint(out / "checkpoint.npz").epoch == 1
    assert json.loads((out / "history.json").read_text())["epoch"] == [1]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "history.json"]


def test_a_run_diverging_after_a_saved_epoch_says_to_take_a_smaller_lr_into_another_out(
        tmp_path, capsys, monkeypatch):
    """--resume refuses another --lr and a fresh run an --out holding a run: the advice says
    where a smaller learning rate can go."""
    root, out, evaluate, calls = fake_root(tmp_path), tmp_path / "run", train.evaluate_checked, []

    def nan_at_epoch_2(*args):
        calls.append(1)
        return (math.nan, 0.0) if len(calls) == 3 else evaluate(*args)  # train's, val's, train's

    monkeypatch.setattr(train, "evaluate_checked", nan_at_epoch_2)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", out)
    assert code == 2 and len(err.splitlines()) == 1
    assert err.endswith(f"{out / 'checkpoint.npz'} keeps epoch 1. Try a smaller learning rate, e.g. --lr "
                        "0.0002, in a fresh run into another --out (--resume goes on with "
                        f"{out / 'checkpoint.npz'}'s own --lr 0.002)\n"), err
    assert load_checkpoint(out / "checkpoint.npz").epoch == 1


def test_a_resume_of_a_run_that_diverged_is_refused_before_reading_the_data_unless_it_trains_no_epoch(
        tmp_path, capsys, monkeypatch):
    """--resume went on from the same weights over the same batches at the run's own --lr, which it
    cannot change, and diverged again. Finishing the run with the epochs it has trains none: that
    one goes on, and keeps the record of the divergence."""
    root, out, evaluate, calls = fake_root(tmp_path), tmp_path / "run", train.evaluate_checked, []

    def nan_at_epoch_2(*args):
        calls.append(1)
        return (math.nan, 0.0) if len(calls) == 3 else evaluate(*args)  # train's, val's, train's

    monkeypatch.setattr(train, "evaluate_checked", nan_at_epoch_2)
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 2
    monkeypatch.undo()
    with monkeypatch.context() as patched:
        patched.setattr(TrainConfig, "load_data", lambda *args, **kwargs: pytest.fail("read the data"))
        for epochs in ((), ("--epochs", 5)):
            code, stdout, err = run_cli(capsys, "--data", root, *QUICK[2:], *epochs, "--resume", "--out", out)
            assert code == 2 and stdout == "" and err == (
                f"error: --resume: {out / 'checkpoint.npz'} diverged at --lr 0.002 after 1 epoch(s) "
                f"({out / 'history.json'} says). `train --resume` would diverge again (the same batches "
                "from the same weights): train afresh into another --out with a smaller --lr, e.g. --lr "
                "0.0002; or give --epochs 1 to finish the run with the epochs it has (and test them)\n")
    code, stdout, err = run_cli(capsys, "--data", root, "--epochs", 1, "--resume", "--no-progress", "--out", out)
    assert code in (0, 3) and json.loads(stdout.splitlines()[-1])["epochs"] == 1, err
    assert "diverged" in json.loads((out / "history.json").read_text())
    assert "diverged at --lr 0.002 after 1 epoch(s)" in run_cli(capsys, "--data", root, "--resume", "--out", out)[2]
    history = json.loads((out / "history.json").read_text())  # not this checkpoint's epochs: trained on
    (out / "history.json").write_text(json.dumps({**history, "epoch": [1, 2]}))
    code, stdout, err = run_cli(capsys, "--data", root, "--resume", "--no-progress", "--out", out)
    assert code in (0, 3) and json.loads(stdout.splitlines()[-1])["epochs"] == 2, err


def test_a_resume_training_a_tested_run_on_keeps_its_test_record_at_every_epoch(tmp_path, capsys,
                                                                                  monkeypatch):
    """history.json is rewritten at each epoch; a resume killed outright between two (no handler
    runs) leaves the last of them, which must still show the run's test record."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 0
    recorded, seen = json.loads((out / "history.json").read_text())["test"], []

    def fit_reading_the_history_each_epoch(*args, on_epoch, **kwargs):
        def on_epoch_then_read(history):
            on_epoch(history)
            seen.append(json.loads((out / "history.json").read_text()).get("test"))
        return fit(*args, on_epoch=on_epoch_then_read, **kwargs)

    monkeypatch.setattr(train_cli, "fit", fit_reading_the_history_each_epoch)
    assert run_cli(capsys, "--data", root, *QUICK, "--epochs", 4, "--resume", "--out", out)[0] == 0
    assert seen == [recorded, recorded]


@pytest.mark.parametrize("end", ["ctrl-c", "divergence"])
def test_a_resume_training_a_tested_run_on_keeps_its_test_record_in_history_json(
        tmp_path, capsys, monkeypatch, end):
    """history.json, rewritten at each epoch, kept the checkpoint's test record only once the
    run finished again: one cut short in between showed a run whose test split was never seen."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 0
    recorded = json.loads((out / "history.json").read_text())["test"]
    evaluate, calls = train.evaluate_checked, []

    def cut_at_epoch_4(*args):
        calls.append(1)
        if len(calls) == 3:  # epoch 3's train and val, then epoch 4's train
            if end == "ctrl-c":
                raise KeyboardInterrupt
            return math.nan, 0.0
        return evaluate(*args)

    monkeypatch.setattr(train, "evaluate_checked", cut_at_epoch_4)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 4, "--resume", "--out", out)
    assert code == (130 if end == "ctrl-c" else 2), err
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3] and history["test"] == recorded and recorded["evaluations"] == 1


def test_resuming_a_finished_run_says_its_checkpoint_was_left_as_it_was(tmp_path, capsys):
    """The line of the files written named the checkpoint, which a resume that trains nothing
    and shows the recorded test does not write."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 0
    before = (out / "checkpoint.npz").stat().st_mtime_ns
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--resume", "--out", out)
    assert code == 0 and (out / "checkpoint.npz").stat().st_mtime_ns == before, err
    assert stdout.splitlines()[-2].endswith(f"test evaluated 1 time(s) in this run's life; wrote "
                                            f"{out / 'history.json'}; {out / 'checkpoint.npz'} was "
                                            "left as it was")
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 3, "--resume", "--out", out)
    assert code == 0 and stdout.splitlines()[-2].endswith(
        f"wrote {out / 'checkpoint.npz'} and {out / 'history.json'}"), err


@pytest.mark.parametrize("cut", ["disk full", "ctrl-c"])
def test_a_test_evaluation_cut_off_at_the_end_is_finished_by_resume(tmp_path, capsys, monkeypatch, cut):
    """The disk filling up (or a Ctrl-C) as the test record is saved, after the last epoch:
    one line saying how to go on, and ``--resume`` with the same --epochs trains nothing,
    evaluates the test split once and writes it; again, it reuses that evaluation."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    savez = np.savez

    def fails_at_the_test_record(file, **arrays):
        if "test.probs" in arrays:
            raise OSError(errno.ENOSPC, "No space left on device") if cut == "disk full" else KeyboardInterrupt
        savez(file, **arrays)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint.np, "savez", fails_at_the_test_record)
        code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", out)
    assert code == (2 if cut == "disk full" else 130) and len(err.splitlines()) == 1, err
    if cut == "disk full":
        assert f"cannot write {out / 'checkpoint.npz'}: No space left on device" in err
        assert "--resume" in err and "Errno" not in err
    else:
        assert err == (f"error: interrupted at the test evaluation, after 2 epoch(s); {out / 'checkpoint.npz'} "
                       "keeps them: run the same command with --resume to finish the run\n")
    assert load_checkpoint(out / "checkpoint.npz").test is None
    for evaluations in (1, 1):
        code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--resume", "--out", out)
        assert code == 0 and "Traceback" not in err, err
        summary = json.loads(stdout.splitlines()[-1])
        assert summary["epochs"] == 2 and summary["test_evaluations"] == evaluations
        assert json.loads((out / "history.json").read_text())["test"]["evaluations"] == evaluations
    assert round(load_checkpoint(out / "checkpoint.npz").test.accuracy, 6) == summary["test_acc"]


def test_a_command_whose_tool_is_not_installed_names_it_in_one_line(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nbformat", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "hw3lib.report", raising=False)
    assert hw3lib_main(["report", "--help"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: report needs the Python package 'nbformat', which is not installed: install "
                   "the pinned tools with `pip install -r requirements.txt` (make report does)\n")


def test_unknown_and_missing_commands_are_named(capsys):
    assert hw3lib_main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'trian' (did you mean train?); the commands are "
                          "bench, download, audit, train, predict, report, sweep") and len(err.splitlines()) == 1
    assert hw3lib_main(["zzz"]) == 2 and "did you mean" not in capsys.readouterr().err
    assert hw3lib_main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no command given; the commands are") and len(err.splitlines()) == 1
    assert hw3lib_main(["--help"]) == 0 and "commands:" in capsys.readouterr().out


def test_an_error_naming_a_folder_prints_its_control_characters_escaped(tmp_path, capsys):
    """A tab, carriage return or escape code in a path printed raw in the error line: columns
    broken, the line's start overwritten, the terminal told to clear itself."""
    folder = tmp_path / "a\tb\rc\x1b[2Jd"
    assert hw3lib_main(["train", "--data", str(folder), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "a\\tb\\rc\\x1b[2Jd" in err and "\t" not in err and "\r" not in err and "\x1b" not in err
    assert len(err.splitlines()) == 1


def test_ctrl_c_outside_training_is_status_130_in_one_line(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainConfig, "load_data", interrupted)
    code, stdout, err = run_cli(capsys, "--data", tmp_path, "--out", tmp_path / "run")
    assert code == 130 and err == "error: interrupted\n"


def test_help_tells_how_to_use_own_images_and_the_exit_statuses(capsys):
    with pytest.raises(SystemExit) as done:
        hw3lib_main(["train", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for words in ("Use your own images", "train/ and test/", ".jpg", "--image-size H[xW]", "16-bit",
                  "--channels", "digits", "python -m hw3lib train --data", "Exit status", "3 the model did"):
        assert words in text, words
    assert "--val-fraction (30%) of the training split validates" in text and "%%" not in text
    assert "default on" in " ".join(text.split()) and "default True" not in text  # --hflip, in words


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_repeated_interrupts_end_with_130_and_leave_no_temporary_file(tmp_path, signum):
    """Five SIGINTs (Ctrl-C) or SIGTERMs (a plain kill) in quick succession, the first while
    training: exit 130, one line, no temporary file, the finished epochs kept."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    proc = start_training(root, out)
    for _ in range(5):
        proc.send_signal(signum)
        time.sleep(0.002)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and "go on with --resume" in err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "history.json"]
    assert load_checkpoint(out / "checkpoint.npz").history == json.loads((out / "history.json").read_text())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_after_the_command_leaves_the_process_its_status(tmp_path, signum):
    """As a process (``run``), a Ctrl-C or SIGTERM that comes after the command finished, here
    sent by the process to itself as ``main`` returns, changes nothing: the command's status
    (2: the run does not exist), its one line, no traceback; not 143 or a KeyboardInterrupt."""
    program = ("import os, sys\n"
               "from hw3lib import __main__ as cli\n"
               "command = cli.main\n"
               "def main(*args, **kwargs):\n"
               "    status = command(*args, **kwargs)\n"
               f"    os.kill(os.getpid(), {int(signum)})\n"
               "    return status\n"
               "cli.main = main\n"
               "cli.run()\n")
    proc = subprocess.run([sys.executable, "-c", program, "predict", str(tmp_path / "no-run"),
                           str(tmp_path / "image.png")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(
        proc.stderr.splitlines()) == 1, proc.stderr


def test_a_fresh_run_into_an_out_holding_a_run_is_refused_and_loses_nothing(tmp_path, capsys):
    root, out = fake_root(tmp_path), tmp_path / "run"
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--lr", 0.01, "--out", out)
    assert code == 2 and stdout == "" and err == (
        f"error: --out {out} already holds a run ({out / 'checkpoint.npz'}): go on with it with "
        "--resume, or choose another --out (or delete it)\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 3, "--resume", "--out", out)
    assert code == 0 and json.loads(stdout.splitlines()[-1])["epochs"] == 3, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 2, "--resume", "--out", out)
    assert code == 2 and stdout == "" and err == (
        f"error: --resume: {out / 'checkpoint.npz'} has trained 3 epoch(s) already, --epochs 2 asks "
        "for fewer. Give --epochs 3 to finish it, above 3 to go on\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_fresh_run_into_an_out_holding_a_file_resume_cannot_read_says_so_not_to_resume(tmp_path, capsys):
    """It said "already holds a run: go on with it with --resume", which then refused the file."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    out.mkdir()
    np.savez(out / "checkpoint.npz", weights=np.zeros(3))  # another program's .npz
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", out)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1
    assert err.startswith(f"error: --out {out} already holds {out / 'checkpoint.npz'}, which a fresh "
                          "run would write over and --resume cannot go on with ("
                          f"{out / 'checkpoint.npz'} is not a valid checkpoint: it has no meta array")
    assert err.endswith("). Move that file away, or choose another --out\n") and "--resume," not in err
    assert list(np.load(out / "checkpoint.npz")) == ["weights"]


def test_a_run_into_an_out_another_train_command_writes_to_is_refused_naming_it(tmp_path, capsys):
    """While one `train` writes to --out, another (fresh or --resume) is refused at once naming
    its process and lock, and writes nothing there; once the first is killed (SIGKILL: nothing
    of its own clean-up runs), its lock left behind blocks nothing."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    proc = start_training(root, out)  # --epochs 100000: trains until killed
    try:
        for argv in (("--lr", 0.01), ("--resume",)):
            code, stdout, err = run_cli(capsys, "--data", root, *QUICK, *argv, "--out", out)
            assert code == 2 and stdout == "" and err == (
                f"error: --out {out} is in use: process {proc.pid} is training a run into it (it "
                f"holds {out / '.run.lock'}); wait for it to end, or end it (Ctrl-C there keeps its "
                "finished epochs), then go on with --resume; or choose another --out\n"), err
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    ckpt = load_checkpoint(out / "checkpoint.npz")
    assert ckpt.config.epochs == 100000 and ckpt.config.lr == TrainConfig().lr  # the first's alone
    assert (out / ".run.lock").exists()
    code, stdout, err = run_cli(capsys, "--data", root, "--epochs", ckpt.epoch + 1, "--resume",
                                "--no-progress", "--out", out)
    assert code in (0, 3) and json.loads(stdout.splitlines()[-1])["epochs"] == ckpt.epoch + 1, err
    assert not (out / ".run.lock").exists()


def no_proc(pid):
    """:func:`hw3lib.processes.start_ticks` where there is no /proc (macOS)."""
    raise FileNotFoundError(2, "No such file or directory", f"/proc/{pid}/stat")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux's /proc")
def test_a_killed_trains_lock_is_not_taken_for_a_process_that_got_its_number_later(tmp_path, monkeypatch):
    """A train killed outright (SIGKILL) leaves OUT/.run.lock naming it; a process that got its
    number later, long after the file was written, was taken for the train, still training."""
    lock = tmp_path / ".run.lock"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as child:
        try:
            lock.write_text(f"{child.pid}\n")  # after the child started: it may be the train
            assert out_folders.training_into(tmp_path) == child.pid
            an_hour_before = time.time() - 3600  # written an hour before the child started
            os.utime(lock, (an_hour_before, an_hour_before))
            assert out_folders.training_into(tmp_path) is None
            monkeypatch.setattr(processes, "start_ticks", no_proc)
            assert out_folders.training_into(tmp_path) == child.pid  # its start unknown: as before
        finally:
            child.kill()


def test_a_run_removes_the_half_written_history_of_a_train_command_killed_mid_write(tmp_path, capsys):
    """A SIGKILL while history.json is written leaves its temporary file; the next run into
    --out (which it holds, so no other writes there) removes it."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 0
    (out / ".history.json.k1ll3d.tmp").write_text('{"epoch": [1, 2')
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 3, "--resume", "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "history.json"]


def test_a_run_into_a_new_out_refuses_a_run_another_command_put_there_as_it_read_the_data(
        tmp_path, capsys, monkeypatch):
    """--out is held from its creation where it did not exist at the checks: a run another
    command put there meanwhile (while this one read the data) is refused, not written over."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    assert run_cli(capsys, "--data", root, *QUICK, "--out", tmp_path / "other")[0] == 0

    def another_run_comes(root, **kwargs):
        shutil.copytree(tmp_path / "other", out)
        return dataset_sha256(root, **kwargs)
    monkeypatch.setattr(train_cli, "dataset_sha256", another_run_comes)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--lr", 0.01, "--out", out)
    assert code == 2 and stdout == "" and err == (
        f"error: --out {out} already holds a run ({out / 'checkpoint.npz'}): go on with it with "
        "--resume, or choose another --out (or delete it)\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        p.name: p.read_bytes() for p in (tmp_path / "other").iterdir()}


def test_resume_alone_goes_on_with_the_runs_own_settings(tmp_path, capsys, monkeypatch):
    """A run of --epochs 3 (and other settings than the defaults) interrupted after its first
    epoch, then `--resume` as the message says, without those options: it trains epochs 2 and 3
    (not the default 24) with the run's settings and ends as the same run uninterrupted, bit for
    bit; again, it trains nothing."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    settings = ("--data", root, "--batch-size", 8, "--lr", 0.002, "--no-hflip", "--seed", 3,
                "--image-size", 16, "--channels", "RGB", "--no-progress")
    assert run_cli(capsys, *settings, "--epochs", 3, "--out", tmp_path / "straight")[0] == 0
    savez, calls = np.savez, []

    def interrupted_at_the_second_epoch(file, **arrays):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        savez(file, **arrays)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint.np, "savez", interrupted_at_the_second_epoch)
        code, stdout, err = run_cli(capsys, *settings, "--epochs", 3, "--out", out)
    assert code == 130 and "go on with --resume" in err and load_checkpoint(out / "checkpoint.npz").epoch == 1
    for _ in range(2):
        code, stdout, err = run_cli(capsys, "--data", root, "--no-progress", "--resume", "--out", out)
        assert code == 0 and json.loads(stdout.splitlines()[-1])["epochs"] == 3, err
    resumed, straight = (load_checkpoint(path / "checkpoint.npz") for path in (out, tmp_path / "straight"))
    assert resumed.config == straight.config and resumed.history["val_loss"] == straight.history["val_loss"]
    for key in straight.params:
        assert np.array_equal(resumed.params[key], straight.params[key]), key


def test_resume_goes_on_with_the_runs_threads_unless_told_and_notes_another_count(
        tmp_path, capsys, monkeypatch):
    """The checkpoint records --threads; --resume without it goes on with the run's count (the
    batches split as before, so the run stays bit for bit its own); another count is used,
    with a note that the rounding changes, and recorded."""
    root, out, given = fake_root(tmp_path), tmp_path / "run", []

    def fit_recording_threads(*args, threads, **kwargs):
        given.append(threads)
        return fit(*args, threads=threads, **kwargs)

    monkeypatch.setattr(train_cli, "fit", fit_recording_threads)
    monkeypatch.setattr(cores, "usable_cores", lambda: 2)  # no note of more threads than cores
    assert run_cli(capsys, "--data", root, *QUICK, "--threads", 2, "--out", out)[0] == 0
    code, stdout, err = run_cli(capsys, "--data", root, "--epochs", 3, "--no-progress", "--resume",
                                "--out", out)
    assert code == 0 and "note:" not in stdout and "up to 2 threads" in stdout, stdout + err
    assert given == [2, 2] and load_checkpoint(out / "checkpoint.npz").threads == 2
    code, stdout, err = run_cli(capsys, "--data", root, "--epochs", 4, "--no-progress", "--resume",
                                "--threads", 1, "--out", out)
    assert code == 0 and given == [2, 2, 1] and load_checkpoint(out / "checkpoint.npz").threads == 1
    assert (f"note: {out / 'checkpoint.npz'} was trained with --threads 2; going on with --threads 1 "
            "splits its batches otherwise") in stdout
    # finished, it trains no batch: no note of batches split otherwise
    code, stdout, err = run_cli(capsys, "--data", root, "--no-progress", "--resume", "--threads", 2,
                                "--out", out)
    assert code == 0 and given == [2, 2, 1, 2] and "note:" not in stdout, stdout + err


def test_threads_read_the_images_too_and_one_per_core_without_it(tmp_path, capsys, monkeypatch):
    root, given = fake_root(tmp_path), []
    reading_threads = data.reading_threads
    monkeypatch.setattr(data, "reading_threads", lambda threads: given.append(threads) or reading_threads(threads))
    for option in (["--threads", 3], []):
        code, stdout, err = run_cli(capsys, "--data", root, *QUICK, *option, "--out", tmp_path / f"run{len(given)}")
        assert code == 0, stdout + err
    assert given == [3, None]  # None: one per core, up to 8 (data.reading_threads)


def test_train_runs_on_one_blas_thread_whatever_the_environment_gives(tmp_path, capsys, monkeypatch):
    """In a shell without OPENBLAS_NUM_THREADS=1 (only make sets it), BLAS took a thread per core:
    train's run then rounded otherwise than the notebooks' and the sweeps' runs of its settings
    (which train on one BLAS thread), and two threads stall at random on shared machines."""
    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas, "NumPy's BLAS (OpenBLAS in its wheels) is one threadpoolctl sets"
    seen, fit_ = [], train_cli.fit
    monkeypatch.setattr(train_cli, "fit", lambda *a, **k: seen.append(
        [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]) or fit_(*a, **k))
    with threadpool_limits(limits=2, user_api="blas"):  # as a 2-core shell gives it
        code, stdout, err = run_cli(capsys, "--data", fake_root(tmp_path), *QUICK, "--out", tmp_path / "run")
        assert code == 0, stdout + err
        assert {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"} == {2}  # given back
    assert seen == [[1] * len(blas)]


def test_resume_refuses_options_other_than_the_runs_naming_them_as_options(tmp_path, capsys):
    """Options given on --resume that differ from the run's are refused, each named as the
    command takes it; a setting the command has no option for (a run begun in Python) is the
    run's own, so such a run goes on from the command line too."""
    root, out = fake_root(tmp_path), tmp_path / "run"
    config = TrainConfig(epochs=1, batch_size=8, lr=0.002, beta1=0.8, image_size=16)
    data = config.load_data(root)
    fit(config.build_model(len(data.classes), data.image_size), data, config, progress=False,
        checkpoint_path=out / "checkpoint.npz", data_sha256=dataset_sha256(root))
    code, stdout, err = run_cli(capsys, "--data", root, "--out", out, "--resume", "--lr", 0.001,
                                "--channels", "RGB", "--no-hflip", "--image-size", 20, "--dtype", "float64")
    assert code == 2 and stdout == "" and err.startswith("error: --resume: ")
    for said in ("--lr 0.002 (this command: --lr 0.001)", "--channels L (this command: --channels RGB)",
                 "--hflip (this command: --no-hflip)", "--image-size 16x16 (this command: --image-size 20x20)",
                 "--dtype float32 (this command: --dtype float64)",
                 "leave those options out to go on with the run's own"):
        assert said in err, said
    assert "beta1" not in err
    code, stdout, err = run_cli(capsys, "--data", root, "--out", out, "--resume", "--epochs", 2,
                                "--batch-size", 8, "--no-progress")
    assert code in (0, 3), err
    resumed = load_checkpoint(out / "checkpoint.npz")
    assert resumed.epoch == 2 and resumed.config == dataclasses.replace(config, epochs=2)


def test_dtype_float64_trains_in_float64_and_says_so(tmp_path, capsys):
    root, out = fake_root(tmp_path), tmp_path / "run"
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", out, "--dtype", "float64")
    assert code in (0, 3), err
    assert ", float64, " in stdout.splitlines()[0]
    ckpt = load_checkpoint(out / "checkpoint.npz")
    assert ckpt.config.dtype == "float64" and ckpt.params["W1"].dtype == np.float64
    assert run_cli(capsys, "--data", root, *QUICK, "--out", tmp_path / "f32")[1].splitlines()[0].count(
        "float") == 0  # the default goes unsaid


@pytest.mark.parametrize("case", ["no optimizer state", "history null", "best epoch beyond the last",
                                  "meta a JSON list", "wrong-shaped moment", "NaN weights"])
def test_resuming_a_malformed_checkpoint_says_what_is_wrong_with_the_file(tmp_path, capsys, case):
    root, out = fake_root(tmp_path), tmp_path / "run"
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 0
    rewrite(out / "checkpoint.npz", MALFORMED[case][0])
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 3, "--resume", "--out", out)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {out / 'checkpoint.npz'} is not a valid checkpoint: ")
    assert MALFORMED[case][1] in err and "train afresh" in err and "learning rate" not in err


def test_ctrl_c_in_the_first_epoch_says_nothing_was_saved(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    root, out = fake_root(tmp_path), tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(train, "_train_epoch", interrupted)
        code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", out)
    assert code == 130 and err == ("error: interrupted after 0 epoch(s); nothing was saved: run the "
                                   "same command again (without --resume)\n")
    assert list(out.iterdir()) == []
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 0  # as it says


def test_resuming_on_other_data_is_refused_before_printing_naming_the_file(tmp_path, capsys):
    root, out = fake_root(tmp_path), tmp_path / "run"
    other = fake_root(tmp_path / "other", per_class=(10, 6))
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 0
    code, stdout, err = run_cli(capsys, "--data", other, *QUICK, "--epochs", 3, "--resume", "--out", out)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1
    assert err.startswith(f"error: {out / 'checkpoint.npz'} was trained on other data")
    assert "the same --data" in err and "another --out" in err
    # which data this command read: --data left out on --resume is HW3_DATA's, not the run's
    assert f"this data, at {other}, " in err and "--resume does not keep it" in err


def test_resuming_a_run_of_other_code_notes_that_the_run_mixes_the_two(tmp_path, capsys):
    root, out = fake_root(tmp_path), tmp_path / "run"
    path = out / "checkpoint.npz"
    assert run_cli(capsys, "--data", root, *QUICK, "--out", out)[0] == 0
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 3, "--resume", "--out", out)
    assert code == 0 and "note:" not in stdout, err  # the same code goes on silently
    ckpt = load_checkpoint(path)
    ckpt.engine = "hw3lib 0123456789ab, numpy 1.0.0, openblas 0.0.1 (Generic)"
    save_checkpoint(path, ckpt)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 4, "--resume", "--out", out)
    assert code == 0 and err == "", err
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {path} was trained by other code (hw3lib 0123456789ab, numpy 1.0.0, openblas "
                     f"0.0.1 (Generic)); resuming goes on with this code ({engine_stamp()}), so the run "
                     "mixes the two; train afresh into another --out for a run of this code alone"]
    assert stdout.splitlines()[2] == notes[0] and "resuming after epoch 3" in stdout.splitlines()[1]
    assert load_checkpoint(path).engine == engine_stamp()
    # a checkpoint written before the stamp existed has no engine: no note
    ckpt = load_checkpoint(path)
    ckpt.engine = None
    save_checkpoint(path, ckpt)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--epochs", 5, "--resume", "--out", out)
    assert code == 0 and "note:" not in stdout and json.loads(stdout.splitlines()[-1])["epochs"] == 5, err


@pytest.mark.parametrize("argv, option", [
    (["bench", "--repeats", "0"], "argument --repeats: must be an integer >= 1, got '0'"),
    (["bench", "--images", "0"], "argument --images: must be an integer >= 1"),
    (["bench", "--bogus"], "unrecognized arguments: --bogus"),
    (["report", "--bogus"], "unrecognized arguments: --bogus"),
    (["download", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--out", ""], "argument --out: must name a folder, got an empty string"),
    (["download", ""], "argument DEST: must name a folder, got an empty string"),
    (["train", "--data", ""], "argument --data: must name a folder, got an empty string"),
    (["sweep", "--data", "", "--seeds", "0-1"], "argument --data: must name a folder, got an empty string"),
])
def test_every_commands_argument_errors_are_one_line_naming_the_option(tmp_path, capsys, monkeypatch,
                                                                       argv, option):
    monkeypatch.chdir(tmp_path)
    assert hw3lib_main(argv) == 2
    stdout, err = capsys.readouterr()
    assert stdout == "" and len(err.splitlines()) == 1
    assert err.startswith(f"error: {option}") and f"python -m hw3lib {argv[0]} --help" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["-1e-3", "-0.5", "-2", "-.5E+2"])
def test_a_negative_number_is_read_as_the_value_and_refused_for_what_it_is(tmp_path, capsys, value):
    assert hw3lib_main(["train", "--lr", value, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --lr must be a positive finite number, got {float(value)!r}\n"
    assert not (tmp_path / "run").exists()


def test_a_setting_out_of_range_is_named_as_the_option_that_gave_it(tmp_path, capsys):
    """TrainConfig's checks name its fields (lr, batch_size): the command names its options."""
    assert hw3lib_main(["train", "--lr", "nan", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "error: --lr must be a positive finite number, got nan\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command, option, least, value", [
    ("train", "--epochs", 1, "x"), ("train", "--epochs", 1, "0"), ("train", "--batch-size", 1, "2.5"),
    ("train", "--batch-size", 1, "-2"), ("train", "--seed", 0, "x"), ("train", "--seed", 0, "-1"),
    ("train", "--threads", 1, "0"), ("sweep", "--workers", 1, "x"), ("sweep", "--workers", 1, "0"),
    ("sweep", "--trials", 1, "0"), ("bench", "--repeats", 1, "x"), ("predict", "--top", 1, "x"),
    ("report", "--timeout", 1, "0"),
])
def test_every_integer_option_refuses_a_bad_value_in_the_same_words(tmp_path, capsys, monkeypatch,
                                                                     command, option, least, value):
    """train's --epochs x and sweep's --workers x said argparse's "invalid int value: 'x'", and
    their 0 was refused later in other words, where bench, predict and report said "must be an
    integer >= 1, got 'x'"."""
    monkeypatch.chdir(tmp_path)
    assert hw3lib_main([command, option, value]) == 2
    assert capsys.readouterr() == ("", f"error: argument {option}: must be an integer >= {least}, got "
                                       f"{value!r} (python -m hw3lib {command} --help lists the options)\n")
    assert list(tmp_path.iterdir()) == []


def test_checks_that_fail_create_no_out_folder(tmp_path, capsys):
    root, out = fake_root(tmp_path), tmp_path / "run"
    for argv, words in ((["--data", tmp_path / "nowhere"], "no dataset at"),
                        (["--data", root, "--resume"], "no checkpoint at")):
        code, stdout, err = run_cli(capsys, *argv, *QUICK, "--out", out)
        assert code == 2 and words in err and not out.exists()


@pytest.mark.parametrize("inside, split", [("Data_train", "train"), ("Data_test/A/run", "test")])
def test_an_out_inside_a_split_folder_of_the_data_is_refused_before_it_breaks_the_data(
        tmp_path, capsys, monkeypatch, inside, split):
    """Such an --out trained, then its checkpoint.npz and history.json in the dataset refused
    every later run on it, --resume included."""
    root = fake_root(tmp_path)
    before = dataset_sha256(root)
    for data in (["--data", root], []):  # given, or $HW3_DATA's
        monkeypatch.setenv("HW3_DATA", str(root))
        code, stdout, err = run_cli(capsys, *data, *QUICK, "--out", root / inside)
        folder = root / f"Data_{split}"
        assert code == 2 and stdout == "" and err == (
            f"error: --out {root / inside} is inside the dataset's {split} split folder {folder}: "
            "the run's files written there would become part of the dataset and break it. Choose "
            f"an --out outside {folder} (e.g. {root / 'runs'})\n")
    assert dataset_sha256(root) == before and not (root / "Data_test/A/run").exists()
    code, _, err = run_cli(capsys, "--data", root, *QUICK, "--out", root / "runs")  # beside: fine
    assert code == 0, err


@pytest.mark.parametrize("inside, split", [("train", "train"), ("test/run", "test")])
def test_an_out_that_would_make_a_second_split_folder_of_the_data_is_refused(tmp_path, capsys, inside, split):
    """The data's Data_train/ and Data_test/ were checked, not train/ and test/ beside them: such
    an --out trained, and the dataset then held both folders of a split, which every later read
    of it (--resume too) refused."""
    root = fake_root(tmp_path)
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", root / inside)
    assert code == 2 and stdout == "" and err == (
        f"error: --out {root / inside} would create {root / split}, a second {split} split folder "
        f"beside the dataset's {root / f'Data_{split}'}: a dataset holding both is refused by every "
        f"later read of it. Choose an --out outside {root / split} (e.g. {root / 'runs'})\n")
    assert not (root / split).exists()


@pytest.mark.parametrize("inside, why", [
    ("val", "a validation split's folder, which every later read of the dataset refuses (its images "
            "would be left out)"),
    ("Validation/run", None),
    ("Data_Train", "whose name is the split folder name Data_train in other letter case: where the "
                   "file system ignores case (macOS's, Windows') it is that split folder, and the "
                   "run's files would become part of the dataset"),
    ("TEST/run", None)])
def test_an_out_in_a_folder_of_the_data_root_that_breaks_the_data_is_refused(tmp_path, capsys, inside, why):
    """--out root/val trained, and every later train and audit of the dataset refused it (a
    validation folder its images would be left out of); root/Data_Train is the training split
    where the file system ignores case. The root itself, and another folder in it, stay fine:
    a read of the dataset looks at its split folders alone."""
    root = fake_root(tmp_path)
    top = root / inside.split("/")[0]
    for command in (["train", *map(str, QUICK)], ["sweep", "--param", "lr=1e-3,5e-4", "--no-progress"]):
        assert hw3lib_main([*command, "--data", str(root), "--out", str(root / inside)]) == 2
        stdout, err = capsys.readouterr()
        assert stdout == "" and err.startswith(f"error: --out {root / inside} would put the run's files in "
                                               f"{top}, ") and err.endswith(
            f". Choose an --out outside {top} (e.g. {root / 'runs'})\n"), err
        assert why is None or why in err
        assert not top.exists()
    assert run_cli(capsys, "--data", root, *QUICK, "--out", root)[0] == 0  # beside the split folders
    code, _, err = run_cli(capsys, "--data", root, *QUICK, "--out", tmp_path / "after")  # still a dataset
    assert code == 0, err


@pytest.mark.parametrize("command", [["train"], ["sweep", "--param", "lr=1e-3,5e-4"], ["report", "--no-execute"]])
def test_an_out_that_would_leave_the_files_loose_in_the_home_folder_is_refused(tmp_path, capsys, monkeypatch,
                                                                                command):
    """Every command writes straight into --out: `--out ~` left checkpoint.npz and history.json
    (a sweep's journal, checkpoints/ and figures, the report's files) loose in the home folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    example = {"train": home / "runs" / "lenet5", "sweep": home / "runs" / "sweep",
               "report": home / "hw3-report"}[command[0]]
    data = [] if command[0] == "report" else ["--data", str(fake_root(tmp_path))]
    assert hw3lib_main([*command, *data, "--out", str(home)]) == 2
    stdout, err = capsys.readouterr()
    assert stdout == "" and err == (
        f"error: --out {home} is your home folder {home}: the command writes its files straight into "
        "--out, not into a folder of their own, so they would lie loose among everything else there. "
        f"Give a folder for them alone, e.g. --out {example}\n")
    assert list(home.iterdir()) == []


class Parsed(Exception):
    """A command's parsed arguments (``args[0]``), raised before it does anything with them."""


@pytest.mark.parametrize("argv", [
    ["train", "--data", "~/digits", "--out", "~/runs/x"],
    ["sweep", "--param", "lr=1e-3", "--out", "~/sweep", "--storage", "~/journal.log"],
    ["report", "--notebooks", "~/notebooks", "--out", "~/report"],
    ["audit", "--list", "~/near.csv"],
    ["predict", "~/runs/x", "~/pear.png", "~"],
    ["download", "~/fruits"],
])
def test_every_path_of_every_command_takes_a_leading_tilde_for_the_home_folder(tmp_path, monkeypatch, argv):
    """--data expanded it (as the library does), the others made a folder named ~ in the current
    one, where the path came quoted (`--out '~'`) or from Python, with no shell to expand it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    parse = cli.Parser.parse_args

    def parse_then_stop(parser, *args, **kwargs):
        raise Parsed(parse(parser, *args, **kwargs))

    monkeypatch.setattr(cli.Parser, "parse_args", parse_then_stop)
    with pytest.raises(Parsed) as parsed:
        hw3lib_main(argv)
    values = [v for value in vars(parsed.value.args[0]).values()
              for v in (value if isinstance(value, list) else [value])]
    assert sorted(str(v) for v in values if str(v).startswith(str(tmp_path))) == sorted(
        str(tmp_path) + arg[1:] for arg in argv if arg.startswith("~"))


def test_a_tilde_of_no_known_user_is_refused_not_taken_for_a_folder(capsys, tmp_path, monkeypatch):
    """--data '~nobody' ended in a traceback (pathlib's RuntimeError), --out '~nobody' made a folder.
    The advice is the full path: ./~nobody/x, as a Path ~nobody/x, was expanded again as --data."""
    monkeypatch.chdir(tmp_path)
    for option in ("--data", "--out"):
        assert hw3lib_main(["train", option, "~no-such-user-hw3/x"]) == 2
        assert capsys.readouterr()[1] == (
            f"error: argument {option}: '~no-such-user-hw3/x': this machine has no user 'no-such-user-hw3', "
            "whose home folder a leading ~no-such-user-hw3 is; for a folder named ~no-such-user-hw3, give "
            f"its full path {tmp_path}/~no-such-user-hw3/x (python -m hw3lib train --help lists the options)\n")


def test_a_file_named_with_a_trailing_slash_is_refused(tmp_path, capsys):
    """predict ckpt.npz/ read the file, where a shell says "Not a directory"."""
    (tmp_path / "ckpt.npz").write_bytes(b"")
    assert hw3lib_main(["predict", f"{tmp_path}/ckpt.npz/", "x.png"]) == 2
    assert capsys.readouterr()[1] == (
        f"error: argument RUN: '{tmp_path}/ckpt.npz/': {tmp_path}/ckpt.npz is a file, not a folder, as "
        f"its trailing / says; give {tmp_path}/ckpt.npz (python -m hw3lib predict --help lists the options)\n")


def test_train_into_an_out_of_a_leading_tilde_from_python_writes_into_the_home_folder(tmp_path, capsys,
                                                                                     monkeypatch):
    home, root = tmp_path / "home", fake_root(tmp_path)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "--data", root, *QUICK, "--out", "~/runs/x")[0] == 0
    assert (home / "runs" / "x" / "checkpoint.npz").is_file() and not (tmp_path / "~").exists()


def test_the_file_systems_root_as_out_is_refused():
    """Checked on the rule alone: a command given `--out /` wrote there where it could (as root)."""
    with pytest.raises(ValueError) as refused:
        out_folders.refuse_loose_files(Path("/"), Path("/home/me/runs/lenet5"))
    assert str(refused.value) == (
        "--out / is the file system's root: the command writes its files straight into --out, not "
        "into a folder of their own, so they would lie loose among everything else there. Give a "
        "folder for them alone, e.g. --out /home/me/runs/lenet5")


def test_a_setting_a_command_has_no_option_for_stays_as_the_library_names_it():
    from hw3lib.phrasing import phrased
    assert phrased("Fix: TrainConfig(image_size='64x64') or TrainConfig(kernel_size=3)") == (
        "Fix: --image-size 64x64 or TrainConfig(kernel_size=3)")
    # a check of a setting the command has no option for keeps the setting's name
    assert phrased("optimizer must be one of ['adam'], got 'sgd'") == (
        "optimizer must be one of ['adam'], got 'sgd'")
    assert phrased("val_fraction must lie in (0, 1), got 1.5") == "--val-fraction must lie in (0, 1), got 1.5"


def test_a_file_or_a_dead_link_where_a_folder_must_go_is_named_and_nothing_is_created(tmp_path):
    """The one check behind train's, sweep's and report's --out."""
    (tmp_path / "f").write_text("x")
    (tmp_path / "dead").symlink_to(tmp_path / "nowhere")
    refuse_file_in_the_way(tmp_path / "new" / "run", "--out")  # folders still to make are fine
    assert not (tmp_path / "new").exists()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    dead, loop = (f"a broken symbolic link (to {tmp_path / 'nowhere'})",
                  f"a symbolic link in a loop (to {tmp_path / 'loop'}, which leads back to it)")
    for path, blocker, what in ((tmp_path / "f", tmp_path / "f", "a file"),
                                (tmp_path / "f" / "run", tmp_path / "f", "a file"),
                                (tmp_path / "dead" / "run", tmp_path / "dead", dead),
                                (tmp_path / "loop", tmp_path / "loop", loop)):
        with pytest.raises(ValueError) as info:
            refuse_file_in_the_way(path, "--out", given="OUT")
        assert str(info.value) == f"--out OUT: {blocker} is {what}, not a folder; choose another --out"


def command_parsers(monkeypatch):
    """Each command's argument parser, as its main builds it: {command: Parser}."""
    parsers = {}

    def record(self, *args, **kwargs):
        parsers[self.prog.split()[-1]] = self
        raise SystemExit

    monkeypatch.setattr(cli.Parser, "parse_args", record)
    for name, (module, _) in COMMANDS.items():
        with pytest.raises(SystemExit):
            importlib.import_module(module).main([])
    return parsers


def test_every_option_that_has_a_default_says_it_in_its_help(monkeypatch):
    """download's --base-url said only "folder URL holding Data_train/": the one option of all the
    commands whose help left its default out."""
    unsaid = [(name, action.dest) for name, parser in command_parsers(monkeypatch).items()
              for action in parser._actions if action.default not in (None, False, [], argparse.SUPPRESS)
              and "default" not in action.help]
    assert unsaid == []


def test_an_option_that_several_commands_take_is_read_and_explained_alike(monkeypatch):
    """The options that train shares with audit and sweep (--data, --channels, --image-size,
    --val-fraction, --no-progress, ...) take the same values in every command; audit's --image-size
    never said that H alone is a square, which train's says."""
    shared = {}
    for name, parser in command_parsers(monkeypatch).items():
        for action in parser._actions:
            for option in action.option_strings:
                shared.setdefault(option, []).append(action)
    for option in ("--data", "--channels", "--image-size", "--val-fraction", "--no-progress"):
        actions = shared[option]
        assert len(actions) > 1 and len({(a.type, tuple(a.choices or ()), a.metavar) for a in actions}) == 1
    assert all("(H alone: square)" in action.help for action in shared["--image-size"])


def test_no_option_reads_a_plain_int(monkeypatch):
    """An integer option takes :func:`hw3lib.cli.int_at_least`, whose words every command shares."""
    assert [(name, action.dest) for name, parser in command_parsers(monkeypatch).items()
            for action in parser._actions if action.type is int] == []


def test_the_commands_with_an_exit_status_of_their_own_say_it_in_their_help(monkeypatch):
    """train's --help said that 3 is a model that did not learn; the sweep, which exits 3 when
    none of its best setting's runs learned, said nothing of it."""
    helps = {name: " ".join(parser.format_help().split()) for name, parser in command_parsers(monkeypatch).items()}
    assert "3 the model did not learn" in helps["train"]
    assert "3 none of the best setting's runs learned" in helps["sweep"]
    assert "the exit status is then 1" in helps["predict"]
    for name in ("train", "sweep"):
        assert "130 interrupted (Ctrl-C or a plain kill;" in helps[name]


@pytest.mark.parametrize("no_progress, terminal, shown", [
    (False, True, True), (False, False, False), (True, True, False)])
def test_bars_show_on_a_terminal_unless_no_progress(monkeypatch, no_progress, terminal, shown):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    assert cli.show_progress(SimpleNamespace(no_progress=no_progress)) is shown


def test_sweep_and_download_show_their_bar_only_on_a_terminal(tmp_path, monkeypatch):
    """Into a file (``2> err.log``) a bar's updates, ten a second, filled it."""
    from hw3lib import download_cli, sweep_cli

    progress = []

    def record(*args, **kwargs):
        progress.append(kwargs["progress"])
        raise ValueError("stop here")

    monkeypatch.setattr(download_cli, "download", record)
    monkeypatch.setattr(sweep_cli, "run_sweep", record)
    for terminal in (True, False):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
        for argv in (["download", str(tmp_path / "d")],
                     ["sweep", "--param", "lr=1e-3", "--out", str(tmp_path / "s"),
                      "--data", str(fake_root(tmp_path / str(terminal)))]):
            assert hw3lib_main(argv) == 2
    assert progress == [True, True, False, False]


@pytest.mark.parametrize("argv, errors_too", [
    (["--help"], False), (["train", *map(str, QUICK)], False), (["train", *map(str, QUICK)], True)])
def test_output_closed_by_its_reader_is_one_line_not_a_traceback_or_a_full_disk(
        tmp_path, argv, errors_too):
    """``python -m hw3lib ... | head -1``: the reader goes away. The top-level help ends
    quietly, as a command's --help does; a command ends in one line saying so, status 2. With
    the errors on the same pipe (``2>&1 | head -1``) that line cannot be printed either, and
    the status stays 2: it was Python's 1, the status of predict's unreadable images."""
    import os
    import subprocess
    import sys

    if argv[0] == "train":
        argv += ["--data", str(fake_root(tmp_path)), "--out", str(tmp_path / "run")]
    read, write = os.pipe()
    os.close(read)  # every write to the output now fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "hw3lib", *argv], stdout=write,
                              stderr=write if errors_too else subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    if argv[0] == "--help":
        assert (proc.returncode, proc.stderr) == (0, "")
    else:
        assert proc.returncode == 2 and (errors_too or proc.stderr == (
            "error: the output was closed before train finished (a broken pipe: the program reading "
            "it, such as head, exited)\n"))


class ReaderGoneAfter(io.StringIO):
    """A standard output whose reader exits after ``lines`` lines (``| head -N``)."""

    def __init__(self, lines):
        super().__init__()
        self.lines = lines

    def write(self, text):
        if self.getvalue().count("\n") >= self.lines:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        return super().write(text)


@pytest.mark.parametrize("lines, kept", [
    (4, "{out}/checkpoint.npz and {out}/history.json keep its 2 finished epoch(s) of 3: run the "
        "same command with --resume to finish the run"),
    (6, "the run had finished: {out}/checkpoint.npz and {out}/history.json keep it; run the same "
        "command with --resume to print its results")])
def test_output_closed_during_train_says_what_out_keeps_and_resume_finishes_it(
        tmp_path, capsys, monkeypatch, lines, kept):
    """``train ... | head -4``: the reader exits as row 2 is printed (its epoch saved) or after
    the run's test; the error said nothing of the epochs kept in --out."""
    out, argv = tmp_path / "run", ["--data", fake_root(tmp_path), *QUICK[2:], "--epochs", 3]
    monkeypatch.setattr(sys, "stdout", ReaderGoneAfter(lines))
    code, _, err = run_cli(capsys, *argv, "--out", out)
    assert (code, err) == (2, "error: the output was closed before train finished (a broken pipe: "
                              "the program reading it, such as head, exited); "
                              + kept.format(out=out) + "\n")
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2, 3][:lines - 2]
    monkeypatch.undo()
    code, stdout, err = run_cli(capsys, *argv, "--out", out, "--resume")
    assert code in (0, 3) and json.loads(stdout.splitlines()[-1])["epochs"] == 3, err


def test_output_closed_during_train_escapes_the_out_it_names(tmp_path, capsys, monkeypatch):
    """The broken pipe's line names --out: a tab or escape code in it printed raw, where every
    other error line escapes them."""
    out = tmp_path / "a\tb\x1b[2Jrun"
    monkeypatch.setattr(sys, "stdout", ReaderGoneAfter(3))
    code, _, err = run_cli(capsys, "--data", fake_root(tmp_path), *QUICK[2:], "--epochs", 3, "--out", out)
    assert code == 2 and "\x1b" not in err and "\t" not in err.rstrip("\n")
    assert f"{tmp_path}/a\\tb\\x1b[2Jrun/checkpoint.npz" in err, err


def test_a_bar_counts_the_images_read_when_reading_takes_a_while(tmp_path, capsys, monkeypatch):
    """30,000 images took minutes with one line on stderr, then nothing until training began.
    The bars show on a terminal only: into a file (``2> err.log``) their updates, ten a second,
    filled it; the line saying what is read stays."""
    root = digits_root(tmp_path / "digits", classes=2, per_class=3)
    monkeypatch.setattr(data, "PROGRESS_DELAY", 0)  # reading these takes no while
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, stdout, err = run_cli(capsys, "--data", root, "--epochs", 1, "--out", tmp_path / "run")
    assert code in (0, 3), err
    assert "reading:   0%|" in err and " 0/12 [" in err  # the bar (refreshed 10 times a second)
    assert "fitting mean and std:   0%|" in err and " 0/4 [" in err  # the training images'
    assert "epoch 1/1:" in err  # training's bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    code, stdout, err = run_cli(capsys, "--data", root, "--epochs", 1, "--out", tmp_path / "file")
    assert code in (0, 3) and err.startswith(f"reading 6 training and 6 test images from {root} ...\n")
    assert "%|" not in err and "epoch 1/1" not in err, err
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", tmp_path / "quiet")
    assert code in (0, 3) and "reading" not in err


def test_after_reading_train_shows_its_checks_of_the_data_when_they_take_a_while(tmp_path, capsys, monkeypatch):
    """After reading 20,000 images train hashed every byte of them and checked their file order,
    seconds with nothing on the screen: on a terminal a bar shows once PROGRESS_DELAY seconds
    have gone (since reading ended: the hash's count against the order check's), never on a
    tiny folder, nor into a file."""
    root = digits_root(tmp_path / "digits", classes=2, per_class=3)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run_cli(capsys, "--data", root, "--epochs", 1, "--out", tmp_path / "tiny")
    assert code in (0, 3) and "epoch 1/1:" in err and "hashing" not in err and "file order" not in err, err
    monkeypatch.setattr(download, "PROGRESS_DELAY", 0)
    monkeypatch.setattr(file_order, "PROGRESS_DELAY", 0.2)  # counted from the hash's start
    monkeypatch.setattr(train_cli, "dataset_sha256", lambda *args, **kwargs: (
        time.sleep(0.2), dataset_sha256(*args, **kwargs))[1])  # hashing takes the delay
    code, _, err = run_cli(capsys, "--data", root, "--epochs", 1, "--out", tmp_path / "run")
    assert code in (0, 3) and "hashing:   0%|          | 0/12 [" in err, err
    assert "checking file order:   0%|" in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    code, _, err = run_cli(capsys, "--data", root, "--epochs", 1, "--out", tmp_path / "file")
    assert code in (0, 3) and "hashing" not in err and "file order" not in err, err


def test_train_lists_the_folders_once(tmp_path, capsys, monkeypatch):
    """The line announcing the read listed both splits, then loading listed them again: a second
    each at 25,000 files before the first image was read. One listing serves both now."""
    from hw3lib import folders
    root = digits_root(tmp_path / "digits", classes=2, per_class=3)
    listed = []

    def split_files(*args):
        listed.append(args[1])
        return folders_split_files(*args)

    folders_split_files = folders.split_files
    monkeypatch.setattr(folders, "split_files", split_files)
    monkeypatch.setattr(cli, "split_files", split_files)
    code, _, err = run_cli(capsys, "--data", root, "--epochs", 1, "--out", tmp_path / "run")
    assert code in (0, 3) and err.startswith(f"reading 6 training and 6 test images from {root} ...\n")
    assert listed == ["train", "test"]


def test_reading_the_images_is_announced_on_stderr_unless_no_progress(tmp_path, capsys, monkeypatch):
    """A large folder of photos takes minutes to read before the first line on stdout: a line
    says how many images are being read, before the first is decoded."""
    root = digits_root(tmp_path / "digits", classes=2, per_class=3)
    said = []
    read_image = data.read_image

    def reading(*args, **kwargs):  # what stderr said when the first image was decoded
        if not said:
            said.append(capsys.readouterr().err)
        return read_image(*args, **kwargs)

    monkeypatch.setattr(data, "read_image", reading)
    code, stdout, err = run_cli(capsys, "--data", root, "--epochs", 1, "--out", tmp_path / "run")
    assert code in (0, 3), err
    assert said == [f"reading 6 training and 6 test images from {root} ...\n"]
    code, stdout, err = run_cli(capsys, "--data", root, *QUICK, "--out", tmp_path / "quiet")
    assert code in (0, 3) and "reading" not in err


def test_parse_given_tells_an_option_given_at_its_default_and_converts_defaults_as_argparse_does():
    """It filled an option left out with its raw default: a string default skipped its type."""
    parser = cli.Parser(prog="x")
    parser.add_argument("--n", type=int, default="3")
    parser.add_argument("--m", type=int, default=5)
    args, given = cli.parse_given(parser, [], ["n", "m"])
    assert (args.n, args.m, given) == (3, 5, set())
    args, given = cli.parse_given(parser, ["--n", "3", "--m", "5"], ["n", "m"])
    assert (args.n, args.m, given) == (3, 5, {"n", "m"})
