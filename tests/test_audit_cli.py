"""``python -m hw3lib audit``: the leakage audit of a data folder from the command line."""
import csv
import shutil
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hw3lib import audit_cli, data, folders
from hw3lib.images import DataError
from hw3lib.__main__ import main
from datasets import write_videos


def test_audit_prints_the_table_and_what_it_means_naming_copied_test_images(tmp_path, capsys):
    root = write_videos(tmp_path / "frames")
    copied = root / "Data_test" / "B" / "B_copy.png"
    shutil.copy(root / "Data_train" / "B" / "B_7.png", copied)
    assert main(["audit", "--data", str(root), "--seeds", "0,1", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    header, table, meaning = out.split("\n\n")
    lines = header.splitlines()
    assert lines[0] == (f"{root}: 80 images in the training folder, 25 in the test folder, "
                        "1x16x16 (C x H x W); seeds 0,1")
    assert lines[1].startswith("near duplicate: closer to a training image than ")
    rows = table.splitlines()
    assert rows[0].split()[:4] == ["split", "images", "->", "nearest"]
    assert [row.split()[0] for row in rows[1:]] == ["blocked"] * 3 + ["random"] * 3
    sentences = [line for line in meaning.splitlines() if not line.startswith(" ")]
    assert [s.split(":")[0] for s in sentences[:2]] == ["blocked split", "random split"]
    assert "validation accuracy will read higher" in " ".join(meaning.split())
    assert sentences[2].startswith("1 test image(s) have an exact copy in the training folder")
    assert meaning.splitlines()[meaning.splitlines().index(f"  {copied}") + 1] == sentences[3]
    assert sentences[3].startswith("1 test image(s) are near duplicates of an image in the training folder")
    # the sentences fit an 80-column terminal (the first line names the folder)
    assert max(len(line) for line in out.splitlines()[1:] if str(root) not in line) <= 80


def test_audit_names_a_mirrored_test_image_under_its_sentence_and_a_copy_under_its_own(tmp_path, capsys):
    """Each sentence that counts test images is followed by their names, the copies' under the
    copies' sentence and the mirror images' under theirs."""
    root = write_videos(tmp_path / "frames")
    copied, mirrored = root / "Data_test" / "A" / "A_copy.png", root / "Data_test" / "B" / "B_mirror.png"
    shutil.copy(root / "Data_train" / "A" / "A_3.png", copied)
    with Image.open(root / "Data_train" / "B" / "B_7.png") as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    assert main(["audit", "--data", str(root), "--seeds", "0", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = [i for i, line in enumerate(lines) if line[:1].isdigit()]
    copies, mirrors = (next(i for i in starts if words in " ".join(lines[i:i + 4]))
                       for words in ("exact copy in the training folder", "the mirror image"))
    assert lines[copies].startswith("1 test image(s)") and lines[mirrors].startswith("1 test image(s)")
    assert f"  {copied}" in lines[copies:mirrors] and f"  {mirrored}" not in lines[copies:mirrors]
    assert lines[mirrors:].index(f"  {mirrored}") <= 4  # after its sentence's lines


def test_audit_lists_test_frames_of_training_videos_beside_their_nearest_training_frame(tmp_path, capsys,
                                                                                       monkeypatch):
    """It counted the test images near training images (a share of them) but named none: frames
    of the training videos in the test folder are listed beside the frame next to them, the
    nearest first, as many as fit on the terminal, all of them in --list's CSV file."""
    root = write_videos(tmp_path / "frames")
    train, test = root / "Data_train", root / "Data_test"
    for name in ("A/A_10.png", "A/A_20.png", "B/B_30.png"):  # held out of the training videos
        (train / name).rename(test / name.replace("_", "_held_"))
    shutil.copy(train / "B" / "B_7.png", test / "B" / "B_copy.png")
    monkeypatch.setattr(audit_cli, "SHOWN", 2)
    listed = tmp_path / "near.csv"
    assert main(["audit", "--data", str(root), "--seeds", "0", "--no-progress", "--list", str(listed)]) == 0
    with listed.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["test_image", "nearest_training_image", "distance"]
    assert rows[1][:2] == [str(test / "B" / "B_copy.png"), str(train / "B" / "B_7.png")] and rows[1][2] == "0"
    neighbours = {test / "A" / "A_held_10.png": ("A_9.png", "A_11.png"),
                  test / "A" / "A_held_20.png": ("A_19.png", "A_21.png"),
                  test / "B" / "B_held_30.png": ("B_29.png", "B_31.png")}
    # a frame one step from its neighbours is near where the step is under the median one; the
    # test walks' own frames are far
    assert {Path(row[0]) for row in rows[2:]} <= set(neighbours) and len(rows) - 1 >= 3
    for test_file, train_file, _ in rows[2:]:
        assert Path(train_file).name in neighbours[Path(test_file)]
    distances = [float(row[2]) for row in rows[1:]]
    assert distances == sorted(distances)
    lines, count = capsys.readouterr().out.splitlines(), len(rows) - 1
    start = next(i for i, line in enumerate(lines)
                 if line.startswith(f"{count} test image(s) are near duplicates"))
    assert f"{listed} lists all {count}:" in " ".join(" ".join(lines[start:start + 4]).split())
    table = lines[lines.index(next(line for line in lines[start:] if line.startswith("distance"))):]
    assert table[0].split() == ["distance", "test", "image", "(Data_test/)", "nearest", "training", "image",
                                "(Data_train/)"]
    assert [row.split()[1:] for row in table[1:3]] == [
        [str(Path(test_file).relative_to(test)), str(Path(train_file).relative_to(train))]
        for test_file, train_file, _ in rows[1:3]]
    assert table[1].split()[0] == "0.000" and table[3:] == [f"and {count - 2} more"]
    assert main(["audit", "--data", str(root), "--seeds", "0", "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"and {count - 2} more (--list FILE writes them all)"


def test_near_copies_counted_against_the_step_of_files_out_of_order_are_said_to_be_no_copies(tmp_path, capsys):
    """Files named at random make the near threshold the step between unrelated frames: the
    findings say so, and the near copies listed against it are said to be mostly no copies."""
    root = write_videos(tmp_path / "frames")
    for folder in (root / "Data_train" / name for name in "AB"):
        files = sorted(folder.iterdir())
        for i, path in enumerate(files):
            path.rename(folder / f"tmp_{i}.png")
        for i, new in enumerate(np.random.default_rng(0).permutation(len(files))):
            (folder / f"tmp_{i}.png").rename(folder / f"{folder.name}_{new}.png")
    shutil.copy(root / "Data_train" / "B" / "B_7.png", root / "Data_test" / "B" / "B_copy.png")
    assert main(["audit", "--data", str(root), "--seeds", "0", "--no-progress"]) == 0
    meaning = " ".join(capsys.readouterr().out.split())
    assert "not neighbours in file-name order" in meaning
    assert ("near duplicates of an image in the training folder, against a threshold that the file "
            "order makes too large (above): most may be no copies;") in meaning


def test_near_copies_counted_against_the_step_of_independent_images_are_said_to_be_no_copies(tmp_path, capsys):
    """Independent images (no runs of near-copies) make the near threshold a typical distance:
    every test image was listed as a near duplicate of a training image, without a word that the
    findings above had just said such a near duplicate means little here."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 10)):
        for name in "AB":
            folder = tmp_path / "photos" / folders.SPLITS[split] / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(folder / f"{name}_{i}.png")
    assert main(["audit", "--data", str(tmp_path / "photos"), "--seeds", "0", "--no-progress"]) == 0
    meaning = " ".join(capsys.readouterr().out.split())
    assert "the files do not come in runs of near-identical images" in meaning
    assert ("near duplicates of an image in the training folder, by a threshold that the files' lack "
            "of runs makes a typical distance (above): most may be no copies;") in meaning


def test_audit_says_when_no_test_image_is_near_a_training_image_and_writes_an_empty_list(tmp_path, capsys):
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    listed = tmp_path / "near.csv"
    assert main(["audit", "--data", str(root), "--seeds", "0", "--no-progress", "--list", str(listed)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "no test image is a near duplicate of an image in the training folder")
    assert listed.read_text() == "test_image,nearest_training_image,distance\n"


@pytest.mark.parametrize("where, said", [
    ("frames/Data_test/near.csv", "is inside the dataset's test split folder"),
    ("frames/Data_train", "is inside the dataset's train split folder"),
    ("lists", "is a folder: give the name of a file to write"),
    ("missing/near.csv", "does not exist; create it or give another file"),
    ("a_file/near.csv", "a_file is a file, not a folder; choose another --list"),  # not "does not exist"
    ("a_file/sub/near.csv", "a_file is a file, not a folder; choose another --list"),
])
def test_a_list_that_cannot_be_written_is_refused_before_the_images_are_read(tmp_path, capsys, monkeypatch,
                                                                            where, said):
    """One in the dataset would break it: every later read refuses a CSV file among the images."""
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    (tmp_path / "lists").mkdir()
    (tmp_path / "a_file").write_text("")
    monkeypatch.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("an image was read"))
    assert main(["audit", "--data", str(root), "--no-progress", "--list", str(tmp_path / where)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --list {tmp_path / where}") and said in err
    assert not (root / "Data_test" / "near.csv").exists()


@pytest.mark.parametrize("listed, error", [
    ("/proc/near.csv", "--list /proc/near.csv: cannot write in /proc (No such file or directory); "
                       "give a file in a folder you can write in"),
    pytest.param("/sys/near.csv", "--list /sys/near.csv: cannot write in /sys (Permission denied); "
                 "give a file in a folder you can write in",
                 marks=pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's /sys")),
])
def test_a_list_in_a_folder_that_cannot_be_written_in_is_refused_before_the_images_are_read(
        tmp_path, capsys, monkeypatch, listed, error):
    """It was refused as the file was written, after the whole audit. Folders no one can write
    in, root too."""
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    monkeypatch.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("an image was read"))
    assert main(["audit", "--data", str(root), "--list", listed]) == 2
    assert capsys.readouterr() == ("", f"error: {error}\n")


def test_a_list_named_as_a_folder_with_a_trailing_slash_is_refused(tmp_path, capsys):
    """A Path drops the trailing /: `--list newdir/` wrote a file named newdir."""
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    assert main(["audit", "--data", str(root), "--no-progress", "--list", f"{tmp_path / 'newdir'}/"]) == 2
    assert not (tmp_path / "newdir").exists()
    assert f"names a folder (its trailing /): give the name of a file to write, e.g. {tmp_path / 'newdir'}/near.csv" \
        in capsys.readouterr().err


def test_a_class_with_no_validation_image_is_noted_as_train_notes_it(tmp_path, capsys):
    """A class of one training image validates under no split: train said so, audit nothing."""
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    for split in ("Data_train", "Data_test"):
        (root / split / "C").mkdir()
        Image.new("L", (16, 16), 99).save(root / split / "C" / "C_0.png")
    assert main(["audit", "--data", str(root), "--seeds", "0,1", "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "note: no validation images of class(es) C (too few images to hold one out): validation "
        "accuracy, and the epoch it picks, do not measure them; add images to them")
    shutil.rmtree(root / "Data_train" / "C")
    shutil.rmtree(root / "Data_test" / "C")
    assert main(["audit", "--data", str(root), "--seeds", "0", "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().out


def test_audit_announces_its_reading_and_names_options_in_errors(tmp_path, capsys):
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    assert main(["audit", "--data", str(root), "--seeds", "0"]) == 0
    assert capsys.readouterr().err.startswith(f"reading 12 training and 6 test images from {root} ...")
    Image.new("L", (20, 20)).save(root / "Data_test" / "A" / "A_big.png")
    assert main(["audit", "--data", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--image-size" in err and "TrainConfig" not in err
    assert main(["audit", "--data", str(root), "--image-size", "16", "--no-progress"]) == 0
    for argv, said in ((["--seeds", "0-99"], "more than an audit takes (at most 20)"),
                       (["--seeds", ",".join(map(str, range(21)))], "21 seeds, more than an audit takes"),
                       (["--val-fraction", "1.5"], "argument --val-fraction: must be a number between 0 and 1")):
        assert main(["audit", "--data", str(root), *argv]) == 2
        assert said in capsys.readouterr().err


def test_a_bar_counts_the_images_read_when_reading_takes_a_while(tmp_path, capsys, monkeypatch):
    """A large folder of photos took minutes with one line on stderr, then nothing. The bar
    shows on a terminal only: into a file (``2> err.log``) its updates, ten a second, filled it.
    One bar over both splits, as train's (there was one a split, the test's after a delay of
    its own)."""
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    monkeypatch.setattr(data, "PROGRESS_DELAY", 0)  # reading these takes no while
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["audit", "--data", str(root), "--seeds", "0"]) == 0
    err = capsys.readouterr().err
    assert "reading:   0%|" in err and " 0/18 [" in err and " 0/12 [" not in err  # one bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert main(["audit", "--data", str(root), "--seeds", "0"]) == 0
    assert capsys.readouterr().err == f"reading 12 training and 6 test images from {root} ...\n"
    assert main(["audit", "--data", str(root), "--seeds", "0", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_a_quick_read_shows_no_bar(tmp_path, capsys):
    """Each split's bar showed at 0% at once, before its delay, in a log redirected to a file."""
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    assert main(["audit", "--data", str(root), "--seeds", "0"]) == 0
    assert capsys.readouterr().err == f"reading 12 training and 6 test images from {root} ...\n"

def test_a_split_that_cannot_be_made_is_refused_before_the_images_are_read(tmp_path, capsys, monkeypatch):
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    monkeypatch.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("an image was read"))
    assert main(["audit", "--data", str(root), "--val-fraction", "0.01"]) == 2
    assert capsys.readouterr().err.startswith("error: --val-fraction 0.01 of [6, 6] images per class "
                                              "leaves the validation split empty")


@pytest.mark.parametrize("break_it, said", [
    (lambda root: shutil.rmtree(root / "Data_test" / "B"), "class folders differ between"),
    (lambda root: shutil.rmtree(root / "Data_train" / "B"), "holds only the class folder A"),
    (lambda root: (root / "val" / "A").mkdir(parents=True), "would be left out"),
    (lambda root: (root / "Data_test" / "A" / "A_link.png").symlink_to(
        root / "Data_train" / "A" / "A_0.png"), "listed twice"),
])
def test_audit_refuses_the_folders_that_train_refuses_before_reading_images(tmp_path, capsys,
                                                                            monkeypatch, break_it, said):
    """It audited them, and passed or faulted splits that train would then refuse to make."""
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    break_it(root)
    monkeypatch.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("an image was read"))
    assert main(["audit", "--data", str(root), "--no-progress"]) == 2
    assert said in capsys.readouterr().err
    with pytest.raises(DataError, match=said):
        data.load_dataset(root)


@pytest.mark.parametrize("argv", [["--help"], ["audit", "--help"]])
def test_audit_is_listed_and_explains_itself(argv, capsys):
    with pytest.raises(SystemExit) if argv[0] == "audit" else nullcontext():
        main(argv)
    out = capsys.readouterr().out
    assert "audit" in out and "leakage" in out


def test_the_line_announcing_the_read_counts_the_listing_the_audit_made(tmp_path, capsys, monkeypatch):
    """The audit lists both splits before reading (refused as train refuses them); the line
    saying how many images it reads listed them again."""
    from hw3lib import cli
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)

    def listed_again(*args):
        raise AssertionError("the folders were listed again to announce the read")

    monkeypatch.setattr(cli, "split_files", listed_again)
    assert main(["audit", "--data", str(root), "--seeds", "0"]) == 0
    assert capsys.readouterr().err == f"reading 12 training and 6 test images from {root} ...\n"


def test_the_audit_lists_the_folders_once_and_names_the_images_it_read(tmp_path, capsys, monkeypatch):
    """The audit listed both splits (dataset_files, for the names it prints), then reading listed
    each again (load_split): a second at 25,000 files, and a file added in between, over minutes
    of reading, was measured but not listed, so that the names printed were those of other images.
    Train lists once; the audit reads the files of its one listing now."""
    from hw3lib import cli
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    listed = []

    def split_files(*args):
        listed.append(args[1])
        return folders_split_files(*args)

    def announce_then_add(*args):  # a file comes into the test split after the listing
        announce(*args)
        shutil.copy(root / "Data_test" / "A" / "A_0.png", root / "Data_test" / "A" / "A_00.png")

    folders_split_files, announce = folders.split_files, audit_cli.announce_reading
    for module in (folders, cli, data):
        monkeypatch.setattr(module, "split_files", split_files)
    monkeypatch.setattr(audit_cli, "announce_reading", announce_then_add)
    assert main(["audit", "--data", str(root), "--seeds", "0"]) == 0
    assert listed == ["train", "test"]
    assert capsys.readouterr().out.startswith(f"{root}: 12 images in the training folder, 6 in the test folder")


def test_test_images_of_another_size_are_refused_with_the_option_that_resizes_both(tmp_path, capsys):
    """As train refuses them (it reads as train reads), naming a file of each size and the
    --image-size that makes them comparable."""
    root = write_videos(tmp_path / "frames", frames=6, test_frames=3)
    for path in (root / "Data_test").rglob("*.png"):
        Image.open(path).resize((20, 20)).save(path)
    assert main(["audit", "--data", str(root), "--seeds", "0"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: images of different sizes (height x width): 12 of 16x16") \
        and "6 of 20x20" in err and err.endswith("Fix: resize them as they load, e.g. with --image-size 16x16.")
