"""``python -m hw3lib predict``: a trained run's classes for files and folders, as a table or JSON."""
import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from hw3lib import evaluation, predict_cli, train
from hw3lib import trained as trained_module
from hw3lib.__main__ import main as hw3lib_main
from hw3lib.atomic import claimed
from hw3lib.checkpoint import load_checkpoint, save_checkpoint
from hw3lib.tables import display_width
from hw3lib.trained import FitResult
from test_cli import QUICK, digits_root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained on 4 classes of 16x16 "digits", and the folder of its test images."""
    base = tmp_path_factory.mktemp("predict")
    root = digits_root(base / "digits", size=(16, 16), classes=4)
    assert hw3lib_main(["train", "--data", str(root), *map(str, QUICK), "--out", str(base / "run")]) in (0, 3)
    return base / "run", root / "test"


def predict(capsys, *argv):
    code = hw3lib_main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_folder_is_every_image_under_it_in_natural_order_with_the_runs_probabilities(trained, capsys, tmp_path):
    run, test = trained
    folder = tmp_path / "photos"
    (folder / "b").mkdir(parents=True)
    for name, source in (("img10.png", "digit0/0.png"), ("img2.png", "digit1/1.png"), ("b/x.png", "digit2/2.png")):
        (folder / name).write_bytes((test / source).read_bytes())
    for skipped in ("notes.txt", ".DS_Store", "Thumbs.db", "__MACOSX/img1.png", ".hidden/img1.png"):
        (folder / skipped).parent.mkdir(exist_ok=True)
        (folder / skipped).write_bytes(b"not an image")
    single = test / "digit3" / "3.png"
    code, out, err = predict(capsys, run, single, folder)
    assert (code, err) == (0, "")
    files = [single, folder / "b" / "x.png", folder / "img2.png", folder / "img10.png"]  # by path
    result = FitResult.load(run / "checkpoint.npz")
    probs = result.predict_files(files)
    lines = out.splitlines()
    assert lines[0].split() == ["image", "class", "probability"] and len(lines) == 1 + len(files)
    for line, path, p in zip(lines[1:], files, probs):
        assert line.split() == [str(path), result.classes[p.argmax()], f"{p.max():.3f}"]


def test_a_folder_follows_links_to_folders_but_not_back_up_and_names_one_it_cannot_list(
        trained, capsys, tmp_path, monkeypatch):
    run, test = trained
    folder, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    for name in ("photos/sub/x.png", "elsewhere/y.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((test / "digit1" / "1.png").read_bytes())
    (folder / "linked").symlink_to(elsewhere)  # a folder of photos kept elsewhere
    (folder / "sub" / "up").symlink_to(folder)  # a loop: not followed round again
    code, out, err = predict(capsys, run, folder)
    assert (code, err) == (0, "")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(folder / "linked" / "y.png"),
                                                                  str(folder / "sub" / "x.png")]
    scandir = os.scandir

    def unlistable(path):
        if Path(path) == folder / "linked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", unlistable)
    code, out, err = predict(capsys, run, folder)
    assert (code, out) == (2, "") and err.startswith(f"error: cannot list {folder / 'linked'}: Permission "
                                                     "denied. Fix: make the folder readable"), err


def test_top_classes_as_json_in_batches_equal_one_batch(trained, capsys, monkeypatch):
    run, test = trained
    code, out, _ = predict(capsys, run / "checkpoint.npz", test, "--top", 2, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    monkeypatch.setattr(evaluation, "EVAL_BATCH", 3)  # 16 images in 6 batches: the same, to rounding
    in_batches = [json.loads(line) for line in predict(capsys, run, test, "--top", 2, "--json")[1].splitlines()]
    assert [(row["file"], row["classes"]) for row in in_batches] == [(row["file"], row["classes"]) for row in rows]
    np.testing.assert_allclose([row["probabilities"] for row in in_batches],
                               [row["probabilities"] for row in rows], atol=1e-5)
    result = FitResult.load(run / "checkpoint.npz")
    probs = result.predict_files([row["file"] for row in rows])
    assert code == 0 and len(rows) == 16 and rows[0]["file"].endswith("digit0/0.png")
    for row, p in zip(rows, probs):
        best = np.argsort(-p, kind="stable")[:2]
        assert row["classes"] == [result.classes[k] for k in best]
        np.testing.assert_allclose(row["probabilities"], p[best], atol=1e-6)
    code, out, _ = predict(capsys, run, test / "digit0" / "0.png", "--top", 9)  # at most the 4 classes
    assert out.splitlines()[0].split() == ["image", *"class 1 p 1 class 2 p 2 class 3 p 3 class 4 p 4".split()]


def test_images_are_classified_in_batches_whose_largest_layer_output_is_bounded(trained, capsys, monkeypatch):
    # 256 images at a time whatever the run's image size: a 256x256 run's forward pass over them
    # held 2.3 GB, a 512x512 one's over 5 GB. The batches shrink to EVAL_BYTES of the model's
    # largest layer output (here 3 images of 6x12x12 float32 maps), with the same answers.
    from hw3lib import TrainConfig
    run, test = trained
    rows = predict(capsys, run, test, "--json")[1].splitlines()
    sizes = []
    predict_files = FitResult.predict_files
    monkeypatch.setattr(FitResult, "predict_files", lambda self, files: sizes.append(len(files))
                        or predict_files(self, files))
    monkeypatch.setattr(evaluation, "EVAL_BYTES", 3 * 6 * 12 * 12 * 4 + 1)
    in_batches = predict(capsys, run, test, "--json")[1].splitlines()
    assert sizes == [3] * 5 + [1]
    for row, small in zip(map(json.loads, rows), map(json.loads, in_batches), strict=True):
        assert row["file"] == small["file"] and row["classes"] == small["classes"]
        np.testing.assert_allclose(row["probabilities"], small["probabilities"], atol=1e-5)
    monkeypatch.undo()
    shrunk = [evaluation.eval_batch(TrainConfig(mode="RGB", dtype=dtype).build_model(3, (size, size)))
              for dtype in ("float32", "float64") for size in (32, 128, 256, 512)]
    assert shrunk == [256, 256, 88, 21, 256, 181, 44, 10]


def test_a_run_that_stopped_before_its_last_epoch_is_noted(trained, capsys, tmp_path):
    run, test = trained
    ckpt = load_checkpoint(run / "checkpoint.npz")
    save_checkpoint(tmp_path / "checkpoint.npz", replace(ckpt, config=replace(ckpt.config, epochs=24)))
    code, out, err = predict(capsys, tmp_path, test / "digit0" / "0.png")
    assert code == 0 and len(out.splitlines()) == 2
    assert err == (f"note: this run stopped after 2 of its 24 epochs; it predicts with the weights of "
                   f"epoch {ckpt.best_epoch} (`train --resume` trains it on)\n")
    assert predict(capsys, run, test / "digit0" / "0.png")[2] == ""  # a finished run: no note


def test_predicting_the_runs_own_test_split_is_a_test_evaluation_counted_once_for_its_weights(
        trained, capsys, tmp_path):
    """train counted each test evaluation into the checkpoint, but predict on the test folder (a
    look at the test images' classes, as good as their accuracy) counted none: a run stopped
    early could be tested on its kept weights through predict, uncounted, and trained on or not."""
    run, test = trained
    ckpt = load_checkpoint(run / "checkpoint.npz")
    untested = replace(ckpt, test=None, test_evaluations=0)  # stopped before its test, say
    out = tmp_path / "run"
    out.mkdir()
    save_checkpoint(out / "checkpoint.npz", untested)
    elsewhere = tmp_path / "copied.png"  # a copy of a test image outside the dataset: not the split
    elsewhere.write_bytes((test / "digit1" / "1.png").read_bytes())
    assert predict(capsys, out, elsewhere)[::2] == (0, "")
    assert load_checkpoint(out / "checkpoint.npz").test_evaluations == 0
    code, rows, err = predict(capsys, out, test / "digit1" / "1.png")  # one image of the split
    assert code == 0 and len(rows.splitlines()) == 2
    assert err == (f"note: {test} is this run's test split: predicting its images is a test evaluation of "
                   f"the weights of epoch {ckpt.best_epoch}, counted in {out / 'checkpoint.npz'}; test "
                   "evaluated 1 time(s) in this run's life\n")
    counted = load_checkpoint(out / "checkpoint.npz")
    assert counted.test_evaluations == 1 and counted.test.epoch == ckpt.best_epoch
    assert counted.test.accuracy == ckpt.test.accuracy  # the evaluation train made of the same weights
    for again in (test, test.parent):  # the same weights again, the split or the dataset holding it
        assert predict(capsys, out, again)[::2] == (0, "")
    assert load_checkpoint(out / "checkpoint.npz").test_evaluations == 1
    save_checkpoint(out / "checkpoint.npz", untested)
    assert "test evaluated 1 time(s)" in predict(capsys, out, test.parent)[2]  # the dataset's folder
    save_checkpoint(out / "checkpoint.npz", untested)
    linked = tmp_path / "linked"
    linked.symlink_to(test)
    assert "test evaluated 1 time(s)" in predict(capsys, out, linked / "digit0")[2]  # through a link


def test_a_run_whose_kept_weights_are_tested_reads_no_test_split_to_count(trained, capsys, monkeypatch):
    """A finished run, its kept weights tested by train, counts nothing new: predict read the
    whole test split on every call all the same, seconds for a folder of photos."""
    run, test = trained
    monkeypatch.setattr(predict_cli, "load_split", lambda *a, **k: pytest.fail("the test split was read"))
    assert predict(capsys, run, test / "digit1" / "1.png")[::2] == (0, "")


def test_reading_the_test_split_shows_its_bar_on_a_terminal_unless_no_progress(trained, capsys, tmp_path,
                                                                             monkeypatch):
    """predict read a run's whole test split to count its look, minutes for a folder of photos,
    with no bar, and had no --no-progress, unlike train, audit, sweep and download."""
    run, test = trained
    save_checkpoint(tmp_path / "checkpoint.npz", replace(load_checkpoint(run / "checkpoint.npz"), test=None))
    shown = []

    def record(*args, progress=False, **kwargs):
        shown.append(progress)
        raise predict_cli.DataError("not read here")  # not the run's split: nothing counted

    monkeypatch.setattr(predict_cli, "load_split", record)
    for terminal, given in ((True, []), (False, []), (True, ["--no-progress"])):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
        assert predict(capsys, tmp_path, test / "digit1" / "1.png", *given)[0] == 0
    assert shown == [True, False, False]


def test_evaluating_the_test_split_shows_its_bar_once_it_takes_a_while_on_a_terminal(trained, capsys, tmp_path,
                                                                                 monkeypatch):
    """predict's evaluation of a run's test split, forward passes over thousands of images, showed
    no bar where train's evaluations show theirs once they take PROGRESS_DELAY seconds."""
    run, test = trained
    ckpt = load_checkpoint(run / "checkpoint.npz")
    untested = replace(ckpt, test=None)
    bar = "evaluating:"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    save_checkpoint(tmp_path / "checkpoint.npz", untested)
    err = predict(capsys, tmp_path, test / "digit1" / "1.png")[2]
    assert "is this run's test split" in err and bar not in err  # a quick evaluation: no bar
    monkeypatch.setattr(evaluation, "PROGRESS_DELAY", 0)  # this evaluation takes no while
    for terminal, given, shown in ((True, [], True), (False, [], False), (True, ["--no-progress"], False)):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
        save_checkpoint(tmp_path / "checkpoint.npz", untested)
        code, out, err = predict(capsys, tmp_path, test / "digit1" / "1.png", *given)
        assert code == 0 and len(out.splitlines()) == 2 and "is this run's test split" in err
        assert (bar in err) is shown, err


def test_another_datasets_test_folder_is_not_the_runs_test_split(trained, capsys, tmp_path):
    run, test = trained
    ckpt = load_checkpoint(run / "checkpoint.npz")
    save_checkpoint(tmp_path / "checkpoint.npz", replace(ckpt, test=None, test_evaluations=0))
    other = digits_root(tmp_path / "other", size=(16, 16), classes=4, per_class=3)
    assert predict(capsys, tmp_path, other / "test")[::2] == (0, "")
    assert load_checkpoint(tmp_path / "checkpoint.npz").test_evaluations == 0


def test_a_run_that_diverged_is_noted_with_a_smaller_lr_not_resume(trained, capsys, tmp_path, monkeypatch):
    """The note said `train --resume` trains it on, which goes on from the same weights over the
    same batches at the same --lr, and diverges again."""
    run, test = trained
    evaluate, calls = train.evaluate_checked, []

    def nan_at_epoch_2(*args):
        calls.append(1)
        return (math.nan, 0.0) if len(calls) == 3 else evaluate(*args)  # train's, val's, train's

    monkeypatch.setattr(train, "evaluate_checked", nan_at_epoch_2)
    out = tmp_path / "diverged"
    assert hw3lib_main(["train", "--data", str(test.parent), *map(str, QUICK), "--out", str(out)]) == 2
    monkeypatch.undo()
    capsys.readouterr()
    image = tmp_path / "0.png"  # outside the test split, whose images would be a test evaluation
    image.write_bytes((test / "digit0" / "0.png").read_bytes())
    code, stdout, err = predict(capsys, out, image)
    assert code == 0 and len(stdout.splitlines()) == 2
    assert err == (f"note: this run diverged after 1 of its 2 epochs (its loss or weights stopped being "
                   f"finite at --lr 0.002, {out / 'history.json'} says); it predicts with the weights of "
                   "epoch 1. `train --resume` would diverge again (the same batches from the same "
                   "weights): train afresh into another --out with a smaller --lr, e.g. --lr 0.0002\n")
    history = json.loads((out / "history.json").read_text())
    (out / "history.json").write_text(json.dumps({**history, "epoch": [1, 2]}))  # not this checkpoint's
    assert "this run stopped after 1 of its 2 epochs" in predict(capsys, out, image)[2]


def test_a_linked_checkpoint_counts_the_test_split_into_the_file_it_links_to(trained, capsys, tmp_path):
    """The count was written through the link's path: the link became a copy holding the count,
    and the run it linked to (whose train merges counts under its own lock) never had it."""
    run, test = trained
    ckpt = load_checkpoint(run / "checkpoint.npz")
    real = tmp_path / "run"
    real.mkdir()
    save_checkpoint(real / "checkpoint.npz", replace(ckpt, test=None, test_evaluations=0))
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "checkpoint.npz").symlink_to(real / "checkpoint.npz")
    err = predict(capsys, linked, test / "digit0" / "0.png")[2]
    assert f"counted in {real / 'checkpoint.npz'};" in err
    assert (linked / "checkpoint.npz").is_symlink()
    assert load_checkpoint(real / "checkpoint.npz").test_evaluations == 1


@pytest.mark.parametrize("cannot", ["read-only", "trained on since loaded"])
def test_a_test_split_look_that_cannot_be_counted_is_noted_and_the_images_classified(
        trained, capsys, tmp_path, monkeypatch, cannot):
    """A checkpoint that could not take the count (a read-only run, or one its train wrote an
    epoch into while predict read the split) ended predict in an error, nothing classified."""
    run, test = trained
    ckpt = load_checkpoint(run / "checkpoint.npz")
    untested = replace(ckpt, test=None, test_evaluations=0)
    out = tmp_path / "run"
    out.mkdir()
    if cannot == "read-only":  # as chmod would for another user than root
        save_checkpoint(out / "checkpoint.npz", untested)

        def denied(path, checkpoint):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(trained_module, "save_checkpoint", denied)
    else:
        save_checkpoint(out / "checkpoint.npz", replace(untested, epoch=1, best_epoch=1, history={
            key: values[:1] for key, values in untested.history.items()}))
        listed = predict_cli.image_files

        def trained_on(paths):  # the train writes its next epoch meanwhile
            save_checkpoint(out / "checkpoint.npz", untested)
            return listed(paths)

        monkeypatch.setattr(predict_cli, "image_files", trained_on)
    code, rows, err = predict(capsys, out, test / "digit0" / "0.png")
    assert code == 0 and len(rows.splitlines()) == 2
    assert (f"note: {test} is this run's test split, but this look at it could not be counted in "
            f"{out / 'checkpoint.npz'}: ") in err
    assert err.endswith(" Its images are classified uncounted.\n")


def test_a_run_being_trained_is_noted_as_training_not_as_stopped(trained, capsys, tmp_path):
    """A run that a train command was training was said to have stopped, to be trained on with
    `train --resume`, which that command's hold on the folder refuses."""
    run, test = trained
    ckpt = load_checkpoint(run / "checkpoint.npz")
    save_checkpoint(tmp_path / "checkpoint.npz", replace(ckpt, config=replace(ckpt.config, epochs=24)))
    with claimed(tmp_path / "run"):  # as a train command holds its --out
        code, out, err = predict(capsys, tmp_path / "checkpoint.npz", test / "digit0" / "0.png")
    assert code == 0 and len(out.splitlines()) == 2
    assert err == (f"note: this run is being trained (by process {os.getpid()}): 2 of its 24 epochs so "
                   f"far; it predicts with the weights of epoch {ckpt.best_epoch}, the best so far\n")
    (tmp_path / ".run.lock").write_text("999999999\n")  # left by a train killed outright
    assert "this run stopped after 2" in predict(capsys, tmp_path, test / "digit0" / "0.png")[2]


@pytest.mark.parametrize("inside, message", [
    ("folder", "{out}/checkpoint.npz is a folder, not a checkpoint file; move it away"),
    ("broken link", "{out}/checkpoint.npz is a broken symbolic link (to {out}/gone.npz); point it at"),
])
def test_what_stands_in_a_runs_folder_as_its_checkpoint_is_named(trained, capsys, tmp_path, inside,
                                                                  message):
    """It was "no run at OUT: it holds no checkpoint.npz", which it held, as a folder or a link."""
    run, test = trained
    out = tmp_path / "run"
    out.mkdir()
    if inside == "folder":
        (out / "checkpoint.npz").mkdir()
    else:
        (out / "checkpoint.npz").symlink_to(out / "gone.npz")
    code, stdout, err = predict(capsys, out, test)
    assert (code, stdout, len(err.splitlines())) == (2, "", 1)
    assert err.startswith("error: " + message.format(out=out)), err


@pytest.mark.parametrize("argv, message", [
    (("{tmp}/nowhere", "{test}"), "no run at {tmp}/nowhere: no such file or folder; give the folder "
                                   "`train --out` wrote, or its checkpoint.npz"),
    (("{tmp}/loop", "{test}"), "no run at {tmp}/loop: it is a symbolic link in a loop (to {tmp}/loop, "
                               "which leads back to it); give the folder `train --out` wrote"),
    (("{tmp}", "{test}"), "no run at {tmp}: it holds no checkpoint.npz (train writes it as each epoch "
                          "ends); give the folder `train --out` wrote"),  # one stopped in its first epoch
    (("{run}", "{tmp}/missing.png"), "no file or folder {tmp}/missing.png: check the path"),
    (("{run}", "{tmp}/empty"), "{tmp}/empty holds no image (.png, "),
    (("{run}", "{tmp}/iphone"), "{tmp}/iphone holds no image (.png, .jpg, .jpeg, .bmp, .gif, .tif, "
                                ".tiff, .webp): its 1 file(s) have other names, e.g. IMG_1.HEIC (convert "
                                "images of other formats to PNG or JPEG); give image files"),
    (("{run}", "{test}", "--top", "0"), "argument --top: must be an integer >= 1, got '0'"),
])
def test_errors_are_one_line_naming_the_cause(trained, capsys, tmp_path, argv, message):
    run, test = trained
    (tmp_path / "empty").mkdir()
    (tmp_path / "iphone").mkdir()
    (tmp_path / "iphone" / "IMG_1.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    paths = dict(tmp=tmp_path, run=run, test=test)
    code, out, err = predict(capsys, *(arg.format(**paths) for arg in argv))
    assert (code, out, len(err.splitlines())) == (2, "", 1)
    assert err.startswith("error: " + message.format(**paths)), err


def write_corrupt_exif_jpegs(folder, image, count):
    """``count`` JPEGs of ``image`` whose EXIF data Pillow warns about."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated
    for k in range(count):
        path = folder / f"{k}.jpg"
        Image.open(image).convert("L").save(path, exif=exif)
        body = bytearray(path.read_bytes())
        at = body.find(b"Exif\0\0") + 6
        body[at:at + 8] = b"II*\x00\xff\xff\xff\x7f"  # the first IFD far past the end of the file
        path.write_bytes(bytes(body))


@pytest.mark.parametrize("unreadable", [False, True])
def test_pillows_warnings_about_many_files_are_one_line(trained, capsys, tmp_path, unreadable):
    run, test = trained
    write_corrupt_exif_jpegs(tmp_path, test / "digit0" / "0.png", 3)
    if unreadable:  # the batch is read again file by file: the warnings are still gathered
        (tmp_path / "9.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning) as caught:
        assert predict(capsys, run, tmp_path)[0] == (1 if unreadable else 0)
    assert len(caught) == 1  # one for the folder, not one per photo
    assert str(caught[0].message).startswith(f"{tmp_path / '0.jpg'} and 2 other file(s): Corrupt EXIF data")


@pytest.mark.parametrize("as_json", [False, True])
def test_files_that_cannot_be_read_are_named_and_the_others_classified(trained, capsys, tmp_path,
                                                                       monkeypatch, as_json):
    run, test = trained
    monkeypatch.setattr(evaluation, "EVAL_BATCH", 3)  # the bad files in the first and last batches
    good = sorted((test / "digit1").iterdir())[:4]
    for k, path in enumerate(good):
        (tmp_path / f"{2 * k + 1}.png").write_bytes(path.read_bytes())
    (tmp_path / "0.png").write_bytes(b"")
    (tmp_path / "2.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "8.png").write_bytes(good[0].read_bytes()[:60])  # cut short
    code, out, err = predict(capsys, run, tmp_path, *(["--json"] if as_json else []))
    assert code == 1
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["error"] * 4, err
    assert lines[0].startswith(f"error: {tmp_path / '0.png'} is empty (0 bytes)")
    assert lines[1].startswith(f"error: {tmp_path / '2.png'} is a broken symbolic link (to {tmp_path / 'gone.png'})")
    assert lines[2].startswith(f"error: {tmp_path / '8.png'} ") and "truncated" in lines[2]
    assert lines[3] == "error: 3 of 7 image(s) could not be read (each named above); 4 classified"
    classified = ([json.loads(line)["file"] for line in out.splitlines()] if as_json
                  else [line.split()[0] for line in out.splitlines()[1:]])
    assert classified == [str(tmp_path / f"{k}.png") for k in (1, 3, 5, 7)]
    if not as_json:  # the same classes as the good files alone
        assert out.splitlines()[1:] == [line.replace(str(path), str(tmp_path / f"{2 * k + 1}.png"))
                                        for k, (path, line) in enumerate(zip(good, predict(
                                            capsys, run, *good)[1].splitlines()[1:]))]


def test_nothing_readable_is_no_table(trained, capsys, tmp_path):
    run, _ = trained
    (tmp_path / "a.png").write_bytes(b"")
    assert predict(capsys, run, tmp_path / "a.png") == (
        1, "", f"error: {tmp_path / 'a.png'} is empty (0 bytes). Fix: replace it with the image or remove it.\n"
               "error: 1 of 1 image(s) could not be read (each named above); 0 classified\n")


def test_a_named_pipe_given_or_in_a_folder_is_named_as_one_not_waited_on_or_missing(trained, capsys, tmp_path):
    run, _ = trained
    os.mkfifo(tmp_path / "img.png")
    for given in (tmp_path / "img.png", tmp_path):  # the file itself: not "no file or folder"
        code, out, err = predict(capsys, run, given)
        assert code == 1 and f"error: {tmp_path / 'img.png'} is a named pipe (FIFO), not an image" in err, err


def test_a_file_name_that_is_not_utf8_is_printed_as_its_bytes_under_a_strict_utf8_output(trained, tmp_path):
    """A photo named in Latin-1 (b'caf\\xe9.png'): under a UTF-8 locale other than C.UTF-8,
    Python's standard output refuses the name ("surrogates not allowed"); it is written as its
    bytes, as ls writes it, and the image classified."""
    import subprocess
    import sys
    run, test = trained
    name = os.fsencode(tmp_path) + b"/caf\xe9.png"
    with open(name, "wb") as f:
        f.write(next((test / "digit1").iterdir()).read_bytes())
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    proc = subprocess.run([sys.executable, "-m", "hw3lib", "predict", str(run), str(tmp_path)],
                          capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert name in proc.stdout.splitlines()[1]


def test_each_row_prints_as_its_image_is_classified_aligned_for_the_rows_to_come(trained, capsys, monkeypatch,
                                                                               tmp_path):
    """A folder of thousands of photos printed nothing until the last was read."""
    run, test = trained
    files = [test / "digit0" / "0.png", test / "digit1" / "1.png"]
    seen = []

    def one_at_a_time(run, files):
        for path in files:
            yield path, run.predict_files([path])[0]
            seen.append(capsys.readouterr().out)  # what was printed before the next image
    monkeypatch.setattr(predict_cli, "classified", one_at_a_time)
    # in tmp_path: written into the module's shared test folder, it was one more image for the
    # tests that read that folder after this one
    longer = tmp_path / "copy with a longer name.png"
    assert len(str(longer)) > len(str(files[0])) and "digit" not in str(longer)
    longer.write_bytes(files[1].read_bytes())
    code, out, err = predict(capsys, run, *files, longer, "--top", 2)
    assert (code, err) == (0, "")
    lines = seen[0].splitlines()
    assert lines[0].split() == ["image", "class", "1", "p", "1", "class", "2", "p", "2"]
    assert len(lines) == 2 and lines[1].startswith(str(files[0]))
    assert seen[1].startswith(str(files[1])) and seen[2].startswith(str(longer))
    # aligned for the longest path to come: the class columns start at one place on every line
    starts = {line.index("digit", len(str(files[0]))) for line in (seen[0].splitlines()[1], seen[1], seen[2])}
    assert len(starts) == 1


def test_the_table_aligns_names_in_wide_characters_and_decomposed_accents(trained, capsys, tmp_path):
    """A name in Chinese or Japanese takes two columns a character: the table was padded by
    characters, so the columns after it slid right."""
    run, test = trained
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("梨の写真.png", "pear.png", "Pe\u0301pin.png"):  # the last as macOS stores "Pépin"
        (folder / name).write_bytes((test / "digit1" / "1.png").read_bytes())
    code, out, err = predict(capsys, run, folder)
    assert code == 0, err
    lines = out.splitlines()
    starts = {display_width(line[:line.index(" digit") + 1]) for line in lines[1:]}
    assert len(lines) == 4 and starts == {display_width(lines[0][:lines[0].index("class")])}


def test_a_tab_or_newline_in_a_file_name_is_printed_escaped_in_the_table_and_in_json(trained, capsys, tmp_path):
    """A name holding a tab or a newline broke the table's row in two or shifted its columns."""
    run, test = trained
    names = ["a\tb.png", "c\nd.png", "e\x1bf.png"]
    for name in names:
        (tmp_path / name).write_bytes((test / "digit1" / "1.png").read_bytes())
    code, out, err = predict(capsys, run, tmp_path)
    assert code == 0, err
    rows = out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [f"{tmp_path}/{shown}" for shown in (r"a\tb.png", r"c\nd.png",
                                                                                      r"e\x1bf.png")]
    assert len({row.index(" digit") for row in rows}) == 1  # the class column starts at one place
    as_json = [json.loads(line)["file"] for line in predict(capsys, run, tmp_path, "--json")[1].splitlines()]
    assert as_json == [str(tmp_path / name) for name in names]


def test_an_unreadable_file_with_a_newline_in_its_name_is_named_on_one_error_line(trained, capsys, tmp_path):
    """Its `error: ...` line broke in two at the name's newline, and an escape sequence in a
    name reached the terminal raw."""
    run, test = trained
    (tmp_path / "ok.png").write_bytes((test / "digit1" / "1.png").read_bytes())
    (tmp_path / "bad\n\x1b[31m.png").write_bytes(b"junk")
    code, out, err = predict(capsys, run, tmp_path)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
    assert lines[0].startswith(f"error: {tmp_path}/bad\\n\\x1b[31m.png is not an image file")

def test_one_very_deep_path_overflows_its_own_row_not_every_rows_column(trained, capsys, tmp_path):
    """One photo 300 characters deep made the image column that wide on every row."""
    run, test = trained
    deep = tmp_path.joinpath(*["a_folder_nested_deep"] * 15, "x.png")
    deep.parent.mkdir(parents=True)
    for path in (deep, tmp_path / "y.png", tmp_path / "z.png"):
        path.write_bytes((test / "digit1" / "1.png").read_bytes())
    code, out, err = predict(capsys, run, tmp_path)
    assert code == 0, err
    header, *rows = out.splitlines()
    assert [row.split()[0] for row in rows] == [str(deep), str(tmp_path / "y.png"), str(tmp_path / "z.png")]
    starts = {line.index(" digit") + 1 for line in rows[1:]} | {header.index("class")}
    assert len(starts) == 1 and starts.pop() < len(str(deep))  # aligned, as wide as the short paths need
    assert rows[0].startswith(f"{deep}  digit")


@pytest.mark.parametrize("listed", [list, lambda found: list(found)[::-1]], ids=["listed", "reversed"])
def test_a_folder_without_images_names_its_first_file_in_natural_order_however_the_file_system_lists_them(
        tmp_path, monkeypatch, listed):
    for name in ("IMG_10.HEIC", "IMG_2.HEIC", "notes.txt"):
        (tmp_path / name).touch()
    walk = predict_cli.files_under
    monkeypatch.setattr(predict_cli, "files_under", lambda folder: listed(walk(folder)))
    with pytest.raises(ValueError, match=r"its 3 file\(s\) have other names, e\.g\. IMG_2\.HEIC "):
        predict_cli.image_files([tmp_path])
