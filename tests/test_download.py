"""Tests for hw3lib.download: the manifest, verify, dataset_sha256 and the download itself."""

import functools
import hashlib
import http.server
import itertools
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from hw3lib import download, folders
from hw3lib.__main__ import main as hw3lib_main
from hw3lib.data import load_split
from hw3lib.images import DataError
from datasets import DATA, FIRST_FILE, HAVE_DATA, NO_DATA, SEED_PNG, copy_splits, make_root, needs_data, write_png


# ---------------------------------------------------------------- manifest, verify, dataset_sha256


def sums(path: Path) -> dict[str, str]:
    return {rel: sha for sha, rel in (line.split("  ", 1) for line in path.read_text().splitlines())}


@needs_data
def test_committed_manifest_matches_shared_sums():
    if not (DATA / "SHA256SUMS").is_file():
        pytest.skip(f"{DATA} has no SHA256SUMS to compare with")
    manifest = download.read_manifest()
    assert len(manifest) == 1968
    assert manifest == sums(DATA / "SHA256SUMS")


@needs_data
def test_manifest_is_generated_by_write_manifest(tmp_path):
    download.write_manifest(DATA, tmp_path / "m.sha256")
    assert (tmp_path / "m.sha256").read_bytes() == download.MANIFEST_PATH.read_bytes()


@needs_data
def test_verify_shared_data_ok():
    report = download.verify(DATA)
    assert report.ok and str(report) == "all files match the manifest"


def test_pyproject_ships_manifest():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["hw3lib"]
    assert any(fnmatch(download.MANIFEST_PATH.name, p) for p in patterns)
    assert download.MANIFEST_PATH.parent.name == "hw3lib"


@pytest.fixture
def data_copy(tmp_path):
    if not HAVE_DATA:
        pytest.skip(NO_DATA)
    return copy_splits(DATA, tmp_path / "copy")


def test_verify_reports_changed_missing_extra(data_copy):
    (data_copy / "Data_train/Pear/Pear_train_7.png").write_bytes(SEED_PNG)
    (data_copy / "Data_test/Lychee/Lychee_test_3.png").unlink()
    (data_copy / "Data_test/Lychee/stray.png").write_bytes(SEED_PNG)
    (data_copy / "Data_test/Lychee/.DS_Store").write_bytes(b"ignored")
    report = download.verify(data_copy)
    assert not report.ok
    assert report.changed == ["Data_train/Pear/Pear_train_7.png"]
    assert report.missing == ["Data_test/Lychee/Lychee_test_3.png"]
    assert report.extra == ["Data_test/Lychee/stray.png"]
    assert "1 missing (first: Data_test/Lychee/Lychee_test_3.png)" in str(report)


def test_verify_accepts_mapping_and_file(tmp_path):
    root = make_root(tmp_path / "root")
    manifest = download.compute_manifest(root)
    assert len(manifest) == 12 and list(manifest) == sorted(manifest)
    download.write_manifest(root, tmp_path / "m.sha256")
    assert download.verify(root, manifest).ok and download.verify(root, tmp_path / "m.sha256").ok
    assert download.verify(tmp_path / "absent", manifest).missing == list(manifest)


def test_read_manifest_rejects_malformed_line(tmp_path):
    (tmp_path / "m").write_text("abc  Data_train/x.png\n")
    with pytest.raises(DataError, match=r"m:1: expected 'sha256  relative/path'"):
        download.read_manifest(tmp_path / "m")


@needs_data
def test_dataset_sha256_is_hash_of_manifest():
    expected = hashlib.sha256(download.MANIFEST_PATH.read_bytes()).hexdigest()
    assert download.dataset_sha256(DATA) == expected


def test_dataset_sha256_follows_content_and_env(tmp_path, monkeypatch):
    root = make_root(tmp_path)
    monkeypatch.setenv("HW3_DATA", str(root))
    before = download.dataset_sha256()
    assert before == download.dataset_sha256(root)
    write_png(root / "Data_test/B/B_test_0.png", 200)
    assert download.dataset_sha256(root) != before


def test_a_bar_counts_the_files_hashed_when_hashing_takes_a_while(tmp_path, capsys, monkeypatch):
    """train hashes every byte of the data after reading it: seconds at 20,000 images, with
    nothing on the screen. A bar counts the files once hashing has taken PROGRESS_DELAY seconds
    (a tiny folder shows none), and goes; the hash is the same."""
    root = make_root(tmp_path)
    quiet = download.dataset_sha256(root)
    assert download.dataset_sha256(root, progress=True) == quiet
    assert "hashing" not in capsys.readouterr().err
    monkeypatch.setattr(download, "PROGRESS_DELAY", 0)
    assert download.dataset_sha256(root, progress=True) == quiet
    assert "hashing:   0%|          | 0/12 [" in capsys.readouterr().err  # 2 classes of 3, 2 splits


def test_manifest_follows_symlinked_folders_as_the_loader_does_and_stops_at_a_cycle(tmp_path):
    real = make_root(tmp_path / "real", n=2)
    linked = tmp_path / "linked"
    for split in ("Data_train", "Data_test"):
        for name in ("A", "B"):
            (linked / split).mkdir(parents=True, exist_ok=True)
            (linked / split / name).symlink_to(real / split / name, target_is_directory=True)
    assert download.compute_manifest(linked) == download.compute_manifest(real)
    before = download.dataset_sha256(linked)
    assert before == download.dataset_sha256(real)
    write_png(real / "Data_train/A/A_train_0.png", 200)  # an image reached through a link counts
    assert download.dataset_sha256(linked) != before
    (real / "Data_train/A/up").symlink_to(real / "Data_train", target_is_directory=True)
    assert "Data_train/A/up/B/B_train_0.png" in download.compute_manifest(linked)
    assert not any("up/A" in rel for rel in download.compute_manifest(linked))  # not round again


def test_names_that_are_not_utf8_hash_by_their_bytes(tmp_path):
    root = make_root(tmp_path / "d")
    before = download.dataset_sha256(root)
    for split in ("Data_train", "Data_test"):
        os.rename(root / split / "B", root / split / os.fsdecode(b"caf\xe9"))  # Latin-1, not UTF-8
    assert download.dataset_sha256(root) != before


def test_dataset_sha256_without_data_names_what_this_folder_lacks(tmp_path, monkeypatch):
    """One's own folder gets advice for one's own data; only the course's folder, the download."""
    with pytest.raises(DataError, match=r"no dataset at .*nowhere: the folder does not exist\. Fix: "
                                        r"check the path \(given as --data, root= or HW3_DATA\)"):
        download.dataset_sha256(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"no train split in .*: neither .*Data_train/ nor .*train/ exists"):
        download.dataset_sha256(tmp_path)
    for split in ("Data_train", "Data_test"):
        (tmp_path / split).mkdir()
    with pytest.raises(DataError, match=r"no dataset files under .*: its split folders are empty\. Fix: put "
                                        r"each class's images in a folder of its own"):
        download.dataset_sha256(tmp_path)
    monkeypatch.setattr(folders, "DEFAULT_ROOT", tmp_path.resolve())  # the course's folder, empty
    with pytest.raises(DataError, match="no dataset files under .*python -m hw3lib download"):
        download.dataset_sha256(tmp_path)


# ---------------------------------------------------------------- download


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/busy/"):
            return self.send_error(429)
        if self.path.startswith("/portal/"):  # a proxy's or Wi-Fi portal's page, with status 200
            body = b"<html><body>Sign in to continue</body></html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return self.wfile.write(body)
        if self.path.startswith("/dribble/"):  # a byte every 50 ms: never a wait of `timeout`
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                try:
                    self.wfile.write(b".")
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
                time.sleep(0.05)
            return
        if self.path.startswith("/halved/"):  # half the file, no length announced, then hang up
            body = Path(self.directory, "good", self.path.removeprefix("/halved/")).read_bytes()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
            return
        if not self.path.startswith("/truncated/"):
            return super().do_GET()
        self.send_response(200)  # promise 1000 bytes, send 10, hang up
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"\x89PNG\r\n\x1a\n..")
        self.close_connection = True


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A local HTTP server with good/, changed/ and missing/ copies of the data; yields its URL."""
    if not HAVE_DATA:
        pytest.skip(NO_DATA)
    served = tmp_path_factory.mktemp("served")
    for name in ("good", "changed", "missing"):
        copy_splits(DATA, served / name)
    (served / "changed" / FIRST_FILE).write_bytes(SEED_PNG)
    (served / "missing" / "Data_train/Lychee/Lychee_train_5.png").unlink()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_proxy_for_localhost(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".download-" in p.name)


def test_download_success_into_existing_folder(tmp_path, site):
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "README.md").write_text("kept")
    assert download.download(dest, base_url=f"{site}/good/", progress=False) == dest
    assert download.verify(dest).ok
    assert sorted(p.name for p in dest.iterdir()) == ["Data_test", "Data_train", "README.md"]
    assert leftovers(tmp_path) == []
    assert download.dataset_sha256(dest) == hashlib.sha256(download.MANIFEST_PATH.read_bytes()).hexdigest()


@needs_data
def test_download_skips_verified_copy(monkeypatch):
    def no_network(url, timeout):
        raise AssertionError(f"fetched {url}")

    monkeypatch.setattr(download, "_fetch", no_network)
    assert download.download(DATA, progress=False) == DATA  # read-only shared copy: nothing written


def test_download_refuses_to_overwrite_other_data(tmp_path):
    write_png(tmp_path / "Data_train" / "A" / "x.png")
    with pytest.raises(DataError, match="already holds .*differ from the manifest.*move or delete"):
        download.download(tmp_path, base_url="http://127.0.0.1:9", progress=False)
    assert (tmp_path / "Data_train" / "A" / "x.png").is_file()


def test_download_rejects_changed_bytes_and_leaves_nothing(tmp_path, site):
    dest = tmp_path / "new" / "fruits"
    with pytest.raises(DataError) as err:
        download.download(dest, base_url=f"{site}/changed", progress=False)
    msg = str(err.value)
    assert f"{site}/changed/{FIRST_FILE}" in msg and "SHA-256" in msg and "Fix:" in msg
    assert not dest.parent.exists()  # nor the folder made for it


def test_download_missing_file_404_leaves_nothing(tmp_path, site):
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "README.md").write_text("kept")
    with pytest.raises(DataError, match=rf"{site}/missing/Data_train/Lychee/Lychee_train_5.png: HTTP 404.*Fix: check that base_url"):
        download.download(dest, base_url=f"{site}/missing", progress=False)
    assert [p.name for p in dest.iterdir()] == ["README.md"] and leftovers(tmp_path) == []


def test_download_server_busy_says_wait_not_check_the_url(tmp_path, site):
    with pytest.raises(DataError, match=rf"{site}/busy/.*: HTTP 429 Too Many Requests\. Fix: the server "
                                        r"failed or limits .*wait a few minutes and run the download again"):
        download.download(tmp_path / "d", base_url=f"{site}/busy", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_page_that_is_no_png_shows_what_came(tmp_path, site):
    with pytest.raises(DataError, match=r"portal/.* returned 45 bytes that are no PNG \(they begin "
                                        r"b'<html><body>Sign in.*\) with SHA-256 .*Fix: sign in to the "
                                        r"network or check the proxy.*; else point"):
        download.download(tmp_path / "d", base_url=f"{site}/portal", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_cut_off_body(tmp_path, site):
    with pytest.raises(DataError, match=rf"could not fetch {site}/truncated/.*IncompleteRead"):
        download.download(tmp_path / "d", base_url=f"{site}/truncated", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_png_cut_off_where_no_length_was_announced(tmp_path, site):
    """It said the server sent other bytes than the manifest's, "Fix: point base_url at the
    pinned copy", the copy it was pointed at."""
    with pytest.raises(DataError, match=rf"could not fetch {site}/halved/.*: the response broke off after "
                                        r"\d+ bytes, before the PNG's end\. Fix: check the network connection"):
        download.download(tmp_path / "d", base_url=f"{site}/halved", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_file_sent_a_byte_at_a_time_times_out(tmp_path, site):
    """urllib's timeout bounds each wait for a packet: a trickle never timed out."""
    start = time.monotonic()
    # a timeout 20 bytes long: a machine too busy to send the next byte for 0.5 s had a packet
    # wait time out ("timed out") before the whole response did
    with pytest.raises(DataError, match=rf"could not fetch {site}/dribble/.*: the response took over "
                                        r"1 s\. Fix: check the network connection"):
        download.download(tmp_path / "d", base_url=f"{site}/dribble", progress=False, timeout=1)
    assert time.monotonic() - start < 10 and list(tmp_path.iterdir()) == []


def test_download_interrupted_leaves_nothing(tmp_path, site, monkeypatch):
    calls = itertools.count()
    fetch = download._fetch

    def interrupt_later(url, timeout):
        if next(calls) == 100:
            raise KeyboardInterrupt
        return fetch(url, timeout)

    monkeypatch.setattr(download, "_fetch", interrupt_later)
    with pytest.raises(KeyboardInterrupt):
        download.download(tmp_path / "d", base_url=f"{site}/good", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_disk_error(tmp_path, site, monkeypatch):
    def disk_full(self, body):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(DataError, match=r"cannot write the download in .*No space left.*Fix: choose a writable"):
        download.download(tmp_path / "d", base_url=f"{site}/good", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_verifies_files_on_disk(tmp_path, site, monkeypatch):
    write_bytes = Path.write_bytes

    def bad_disk(self, body):
        return write_bytes(self, body[:-1] + b"!" if self.name == "Pear_train_0.png" else body)

    monkeypatch.setattr(Path, "write_bytes", bad_disk)
    with pytest.raises(DataError, match=r"fail verification \(1 changed \(first: Data_train/Pear/Pear_train_0.png\)\)"):
        download.download(tmp_path / "d", base_url=f"{site}/good", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_dest_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="f exists and is not a folder"):
        download.download(tmp_path / "f", progress=False)


def test_download_dest_through_a_file_or_a_broken_link_is_named_before_fetching(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    with pytest.raises(DataError, match=r"f/d lies under .*f, which is a file, not a folder\. Fix: choose another"):
        download.download(tmp_path / "f" / "d", base_url="http://127.0.0.1:9", progress=False)
    with pytest.raises(DataError, match=r"gone is a broken symbolic link \(to .*nowhere\)\. Fix: choose another"):
        download.download(tmp_path / "gone", base_url="http://127.0.0.1:9", progress=False)  # not "could not fetch"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "gone"]


def test_download_into_a_split_folder_is_refused(tmp_path):
    """HW3_DATA=.../Data_train: report's download nested a copy inside it (Data_train/Data_train)."""
    write_png(tmp_path / "Data_train" / "Pear" / "x.png")
    with pytest.raises(DataError, match=r"Data_train holds class folders .*: it is itself a split folder.*"
                                        r"Fix: give the folder that holds it"):
        download.download(tmp_path / "Data_train", base_url="http://127.0.0.1:9", progress=False)
    assert [p.name for p in (tmp_path / "Data_train").iterdir()] == ["Pear"]


def test_download_beside_train_and_test_folders_is_refused_before_fetching(tmp_path, site, monkeypatch):
    """A copy unpacked as train/ and test/ (names the loader takes too): the download fetched a
    second copy beside them, Data_train/ and Data_test/, and the data could no longer be loaded
    ("holds both Data_train/ and train/")."""
    for split, name in folders.SPLITS.items():
        shutil.copytree(DATA / name, tmp_path / split)
    with pytest.raises(DataError, match=r"holds train/ and test/, not the folder names the download "
                                        r"fetches and verifies.* Fix: if they hold the course's images, "
                                        r"rename train/ to Data_train/ and test/ to Data_test/ \(the "
                                        r"download then verifies"):
        download.download(tmp_path, base_url=f"{site}/good", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test", "train"]
    for split, name in folders.SPLITS.items():  # the fix, followed
        (tmp_path / split).rename(tmp_path / name)
    monkeypatch.setattr(download, "_fetch", lambda url, timeout: pytest.fail(f"fetched {url}"))
    assert download.download(tmp_path, progress=False) == tmp_path


def test_download_beside_a_split_folder_named_in_another_case_names_the_rename(tmp_path):
    """Data_Train/: "1470 missing ... Fix: move or delete them", deleting a good copy, where the
    name's case was all that was wrong."""
    make_root(tmp_path)
    (tmp_path / "Data_train").rename(tmp_path / "Data_Train")
    if (tmp_path / "Data_train").exists():
        pytest.skip("a file system that ignores case: Data_Train/ is Data_train/")
    with pytest.raises(DataError, match=r"holds Data_Train/, not the folder names .*case-sensitive.* "
                                        r"rename Data_Train/ to Data_train/ \(the download then"):
        download.download(tmp_path, base_url="http://127.0.0.1:9", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Data_Train", "Data_test"]


def test_download_beside_a_class_folder_named_in_another_case_names_the_rename(data_copy):
    """Data_train/lychee/: "490 missing ... 490 extra ... Fix: move or delete those files",
    deleting good images, where the name's case was all that was wrong."""
    dest = data_copy
    (dest / "Data_train" / "Lychee").rename(dest / "Data_train" / "lychee")
    if (dest / "Data_train" / "Lychee").exists():
        pytest.skip("a file system that ignores case: lychee/ is Lychee/")
    with pytest.raises(DataError, match=r"holds Data_train/lychee/: the course's Data_train/Lychee/ in "
                                        rf"another case .* Fix: rename {dest}/Data_train/lychee to "
                                        rf"{dest}/Data_train/Lychee, then download again"):
        download.download(dest, base_url="http://127.0.0.1:9", progress=False)
    (dest / "Data_train" / "lychee").rename(dest / "Data_train" / "Lychee")  # the fix, followed
    assert download.verify(dest).ok


def test_the_note_on_a_copy_whose_class_folder_is_named_in_another_case_names_the_rename(data_copy):
    """Data_train/lychee/ and Data_test/lychee/ trained (the classes match) with the note
    "`download DEST` fetches it into another folder", where the name's case was all that was wrong."""
    root = data_copy
    for split in ("Data_train", "Data_test"):
        (root / split / "Lychee").rename(root / split / "lychee")
    if (root / "Data_train" / "Lychee").exists():
        pytest.skip("a file system that ignores case: lychee/ is Lychee/")
    assert download.course_copy_note(root).endswith(
        f"; rename {root}/Data_test/lychee to {root}/Data_test/Lychee and {root}/Data_train/lychee to "
        f"{root}/Data_train/Lychee (folder names are case-sensitive), then `python -m hw3lib download "
        f"{root}` verifies it")
    for split in ("Data_train", "Data_test"):  # the fix, followed
        (root / split / "lychee").rename(root / split / "Lychee")
    assert download.course_copy_note(root) is None


def test_move_into_rolls_back_half_done_move(tmp_path, monkeypatch):
    staged = make_root(tmp_path / "staged")
    dest = tmp_path / "dest"
    rename = os.rename

    def fail_on_test_split(src, dst):
        if Path(dst).name == "Data_test" and Path(dst).parent == dest:
            raise OSError(18, "Invalid cross-device link")
        rename(src, dst)

    monkeypatch.setattr(os, "rename", fail_on_test_split)
    with pytest.raises(DataError, match=r"could not move the downloaded files into .*dest: .*cross-device link.*\. Fix: make .*dest writable"):
        download._move_into(staged, dest)
    assert not dest.exists() and sorted(p.name for p in staged.iterdir()) == ["Data_test", "Data_train"]


@pytest.mark.parametrize("whole", [True, False])
def test_two_downloads_into_one_folder(tmp_path, site, monkeypatch, whole):
    """The second to end found the first's Data_train/ in place: "could not move the downloaded
    files into DEST: Directory not empty. Fix: make DEST writable", a folder that was writable
    and held a verified copy (or one the files fetched complete)."""
    dest = tmp_path / "d"
    fetch_all = download._fetch_all

    def other_download_ends_first(*args):
        fetch_all(*args)
        copy_splits(DATA, dest)  # the other download's rename
        if not whole:
            (dest / FIRST_FILE).unlink()

    monkeypatch.setattr(download, "_fetch_all", other_download_ends_first)
    assert download.download(dest, base_url=f"{site}/good", progress=False) == dest
    assert leftovers(tmp_path) == [] and leftovers(dest) == [] and download.verify(dest).ok


def fetched_files(monkeypatch) -> list[str]:
    """The URLs that download fetches from now on, as a list it fills."""
    urls, fetch = [], download._fetch
    monkeypatch.setattr(download, "_fetch", lambda url, timeout: urls.append(url) or fetch(url, timeout))
    return urls


def test_download_completes_a_copy_cut_short_or_damaged(tmp_path, site, monkeypatch, capsys):
    """A copy with a split missing, a file missing and an image damaged was refused ("move or
    delete them, then download again"), where train's advice for the damaged image is to fetch
    a fresh copy with `python -m hw3lib download`: a third step, and all 1968 files again. The
    command says what it replaced (an image may have been changed on purpose)."""
    dest = tmp_path / "data"
    shutil.copytree(DATA / "Data_train", dest / "Data_train")
    (dest / "Data_train" / "Pear" / "Pear_train_7.png").unlink()
    damaged = dest / "Data_train" / "Lychee" / "Lychee_train_5.png"
    damaged.write_bytes(damaged.read_bytes()[:100])
    (dest / "notes.md").write_text("kept")
    monkeypatch.setenv("HW3_DATA", str(dest))
    with pytest.raises(DataError, match=r"Lychee_train_5.png is a truncated or corrupt PNG file.*Fix: "
                                        r".*fetch a fresh copy with `python -m hw3lib download"):
        load_split(split="train")
    urls = fetched_files(monkeypatch)
    capsys.readouterr()
    assert hw3lib_main(["download", "--base-url", f"{site}/good", "--no-progress"]) == 0
    missing = sorted(rel for rel in download.read_manifest() if rel.startswith("Data_test/"))
    assert capsys.readouterr().out == (
        f"restored the course's files that {dest} lacked or held changed ({len(missing) + 1} missing "
        f"(first: {missing[0]}), 1 changed (first: Data_train/Lychee/Lychee_train_5.png))\n"
        f"verified dataset at {dest}\n")
    assert sorted(url.removeprefix(f"{site}/good/") for url in urls) == sorted(
        [rel for rel in download.read_manifest() if rel.startswith("Data_test/")]
        + ["Data_train/Lychee/Lychee_train_5.png", "Data_train/Pear/Pear_train_7.png"])
    assert download.verify(dest).ok and (dest / "notes.md").read_text() == "kept"
    assert leftovers(dest) == [] and leftovers(tmp_path) == []
    load_split(split="train")


def test_the_fix_for_a_damaged_course_image_names_the_folder_read(tmp_path, site, monkeypatch):
    """`train --data X`: the fix said `python -m hw3lib download`, which fetched into $HW3_DATA
    (or data/), never X, whose damaged image stayed."""
    dest = copy_splits(DATA, tmp_path / "my fruits")
    damaged = dest / FIRST_FILE
    damaged.write_bytes(damaged.read_bytes()[:100])
    monkeypatch.setenv("HW3_DATA", str(tmp_path / "elsewhere"))
    follow_the_fix(lambda: load_split(dest, "test"), site)
    assert download.verify(dest).ok and not (tmp_path / "elsewhere").exists()


def follow_the_fix(read, site):
    """``read()`` fails with a fix naming a download: run as given (from the test's server), it
    restores the data, which ``read()`` then reads."""
    with pytest.raises(DataError) as err:
        read()
    command = re.search(r"`python -m hw3lib download ([^`]*)`", str(err.value))
    assert command and command[1] != "DEST", err.value  # a folder named, not one to choose
    assert hw3lib_main(["download", *shlex.split(command[1]), "--base-url", f"{site}/good", "--no-progress"]) == 0
    read()


@pytest.mark.parametrize("split", ["Data_test", "Data_train"])
def test_a_class_folder_of_the_course_gone_from_a_split_gets_the_download_that_restores_it(
        tmp_path, site, split):
    """Data_test/Lychee/ gone: "Fix: ... move about one image in five of each missing class into
    its own folder in Data_test", which makes a copy that is not the course's, its test images
    taken from training."""
    dest = copy_splits(DATA, tmp_path / "data")
    shutil.rmtree(dest / split / "Lychee")
    follow_the_fix(lambda: folders.dataset_files(dest), site)


@pytest.mark.parametrize("split", ["Data_test", "Data_train"])
def test_a_split_of_the_course_gone_gets_the_download_that_restores_it(tmp_path, site, monkeypatch, split):
    """Data_test/ gone, read with --data: the fix was `python -m hw3lib download` (into $HW3_DATA
    or data/), beside setting HW3_DATA or copying the data under data/."""
    monkeypatch.setenv("HW3_DATA", str(tmp_path / "elsewhere"))
    dest = copy_splits(DATA, tmp_path / "data")
    shutil.rmtree(dest / split)
    follow_the_fix(lambda: folders.dataset_files(dest), site)


def test_the_reports_fix_for_a_course_copy_cut_short_restores_it(tmp_path, site):
    """`python -m hw3lib report` refused it with "point HW3_DATA at a verified copy of it
    (`python -m hw3lib download DEST` fetches one into another folder)": two steps, not one."""
    from hw3lib.report import check_course_copy

    dest = copy_splits(DATA, tmp_path / "data")
    (dest / FIRST_FILE).unlink()
    follow_the_fix(lambda: check_course_copy(dest, "HW3_DATA"), site)


@pytest.mark.parametrize("own", ["Data_train/Pear/notes.txt", "Data_test/Kiwi/kiwi_0.png"])
def test_download_leaves_a_copy_with_files_of_ones_own_alone(tmp_path, own):
    dest = copy_splits(DATA, tmp_path / "data") if HAVE_DATA else tmp_path / "data"
    write_png(dest / own)
    (dest / FIRST_FILE).unlink(missing_ok=True)
    with pytest.raises(DataError, match=rf"differ from the manifest \(.*1 extra \(first: {own}\)\), with "
                                        r"files it does not list.*Fix: move or delete those files"):
        download.download(dest, base_url="http://127.0.0.1:9", progress=False)
    assert (dest / own).is_file() and not (dest / FIRST_FILE).exists()


@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize("what", ["a file", "a broken symbolic link"])
def test_download_where_a_split_folder_is_a_file_or_a_broken_link(tmp_path, copy, what):
    """A broken link named Data_train/ was found once all was fetched: "could not move the
    downloaded files ...: Not a directory. Fix: make DEST writable" (beside a Data_test/ to
    complete, "cannot write the download ...: File exists. Fix: choose a writable destination")."""
    if copy:
        make_root(tmp_path, classes=("Pear",), n=1)
        shutil.rmtree(tmp_path / "Data_train")
    if what == "a file":
        (tmp_path / "Data_train").write_text("x")
    else:
        (tmp_path / "Data_train").symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(DataError, match=rf"Data_train is {what}.*, where the download puts a folder\. "
                                        r"Fix: move or delete it"):
        download.download(tmp_path, base_url="http://127.0.0.1:9", progress=False)


def one_disk_only(monkeypatch, name, other):
    """``os.<name>`` (rename or replace) failing as across disks between ``other`` (standing for
    another disk) and the rest."""
    move = getattr(os, name)

    def within_a_disk(src, dst):
        if (other in Path(src).resolve().parents) != (other in Path(dst).resolve().parents):
            raise OSError(18, "Invalid cross-device link")
        move(src, dst)

    monkeypatch.setattr(os, name, within_a_disk)


def test_download_into_a_link_to_another_disk(tmp_path, site, monkeypatch):
    """data/ a link to a folder on a bigger disk: the files are staged on that disk, as a rename
    across disks fails ("Invalid cross-device link": every such download failed at the end)."""
    other = tmp_path / "other"  # stands for the other disk
    (other / "fruits").mkdir(parents=True)
    dest = tmp_path / "repo" / "data"
    dest.parent.mkdir()
    dest.symlink_to(other / "fruits", target_is_directory=True)
    one_disk_only(monkeypatch, "rename", other)
    assert download.download(dest, base_url=f"{site}/good", progress=False) == dest
    assert download.verify(other / "fruits").ok
    assert sorted(p.name for p in (other / "fruits").iterdir()) == ["Data_test", "Data_train"]
    assert list(dest.parent.iterdir()) == [dest]


def test_download_completes_a_split_folder_linked_to_another_disk(tmp_path, site, monkeypatch):
    """data/Data_train a link to a folder on another disk, a file missing there: the file fetched
    was renamed across disks, "Invalid cross-device link. Fix: choose a writable destination"."""
    other = copy_splits(DATA, tmp_path / "other")  # stands for the other disk
    (other / "Data_train" / "Pear" / "Pear_train_3.png").unlink()
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "Data_train").symlink_to(other / "Data_train", target_is_directory=True)
    shutil.copytree(DATA / "Data_test", dest / "Data_test")
    one_disk_only(monkeypatch, "replace", other)
    assert download.download(dest, base_url=f"{site}/good", progress=False) == dest
    assert download.verify(dest).ok
    assert not [name for name in os.listdir(other / "Data_train" / "Pear") if name.startswith(".")]


def test_download_times_out(tmp_path):
    """A wait for the headers that timed out was said as urllib says it, "<urlopen error timed
    out>", where a slow body is "the response took over 1 s" (the dribble test failed so on a
    busy machine, its server slow to send the headers)."""
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        start = time.monotonic()
        with pytest.raises(DataError, match=r"could not fetch .*: the response took over 0\.3 s\. Fix: "):
            download.download(tmp_path / "d", base_url=f"http://127.0.0.1:{silent.getsockname()[1]}", progress=False, timeout=0.3)
    assert time.monotonic() - start < 10
    assert list(tmp_path.iterdir()) == []


def test_a_download_killed_outright_leaves_a_folder_that_the_next_removes(tmp_path, site):
    """SIGKILL (or a power cut) gives no chance to clean up: the next download does, sparing a
    folder whose download still runs."""
    with socket.socket() as server:  # accepts and never answers: the download waits
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        process = subprocess.Popen(
            [sys.executable, "-m", "hw3lib", "download", str(tmp_path / "d"), "--no-progress",
             "--base-url", f"http://127.0.0.1:{server.getsockname()[1]}"],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        server.settimeout(20)
        server.accept()[0].close()  # a fetch has connected: the staging folder exists
        process.kill()
        process.wait()
    [killed] = leftovers(tmp_path)
    running = tmp_path / f".d.download-{os.getpid()}-abc123"  # this process: still running
    running.mkdir()
    assert download.download(tmp_path / "d", base_url=f"{site}/good", progress=False) == tmp_path / "d"
    assert leftovers(tmp_path) == [running.name] and download.verify(tmp_path / "d").ok


def test_a_failed_download_waits_for_its_fetches_that_end_soon(tmp_path, monkeypatch):
    """Offline, every fetch fails at once; exiting while fetch threads were still inside the
    resolver crashed Python ("Segmentation fault", exit status 139) in one run in twenty."""
    first, fetching = threading.Event(), set()

    def offline(url, timeout):
        fetching.add(threading.current_thread())
        if not first.is_set():
            first.set()
            raise DataError(f"could not fetch {url}: Name or service not known")
        time.sleep(0.3)  # the other threads, still in their fetches as the first one fails
        raise DataError(f"could not fetch {url}: Name or service not known")

    monkeypatch.setattr(download, "_fetch", offline)
    with pytest.raises(DataError, match="could not fetch"):
        download.download(tmp_path / "d", progress=False)
    assert len(fetching) > 1 and [t for t in fetching if t.is_alive()] == []
    assert list(tmp_path.iterdir()) == []


@needs_data
def test_download_command_success(capsys):
    assert hw3lib_main(["download", str(DATA), "--no-progress"]) == 0  # already verified: no network
    assert f"verified dataset at {DATA}" in capsys.readouterr().out


@needs_data
def test_download_command_verifies_a_copy_once(monkeypatch):
    """The command verified the copy to say what it would restore, then download verified it
    again (~50 ms for the 1968 files)."""
    read, compute = [], download.compute_manifest
    monkeypatch.setattr(download, "compute_manifest", lambda root: read.append(root) or compute(root))
    assert hw3lib_main(["download", str(DATA), "--no-progress"]) == 0
    assert read == [DATA]


def test_download_command_failure_is_exit_status_2(tmp_path, capsys):
    argv = ["download", str(tmp_path / "d"), "--base-url", "http://127.0.0.1:9", "--no-progress"]
    assert hw3lib_main(argv) == 2
    assert "error: could not fetch http://127.0.0.1:9/" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    argv[1] = str(tmp_path / "new" / "deeper" / "d")  # the folders made for it are removed too
    assert hw3lib_main(argv) == 2
    assert list(tmp_path.iterdir()) == []


def test_offline_the_fix_names_a_copy_at_hand_and_the_destination_and_works(tmp_path, capsys, monkeypatch):
    """Offline, "copy Data_train/ and Data_test/ by hand" said neither where to nor that HW3_DATA
    may point at a copy kept elsewhere."""
    monkeypatch.delenv("HW3_DATA", raising=False)
    dest = tmp_path / "d"
    assert hw3lib_main(["download", str(dest), "--base-url", "http://127.0.0.1:9", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not fetch http://127.0.0.1:9/") and err.count("\n") == 1
    assert err.endswith("Fix: check the network connection and run the download again. Offline, "
                        "with a copy of the data at hand: set HW3_DATA to the folder that holds its "
                        "Data_train/ and Data_test/ (`python -m hw3lib download` then only verifies "
                        f"it), or copy those two folders into {dest}.\n")
    if HAVE_DATA:  # followed: a verified copy is left alone, no network needed
        monkeypatch.setenv("HW3_DATA", str(DATA))
        monkeypatch.setattr(download, "_fetch", lambda url, timeout: pytest.fail(f"fetched {url}"))
        assert hw3lib_main(["download", "--no-progress"]) == 0
        assert capsys.readouterr().out == f"verified dataset at {DATA}\n"


def test_a_file_url_of_a_folder_that_lacks_a_file_names_the_url_not_the_network(tmp_path):
    """It said "Fix: check the network connection", of a folder on this machine."""
    served = make_root(tmp_path / "served", classes=("Pear",), n=1)  # none of the course's files
    with pytest.raises(DataError, match=r"could not read file://.*served/Data_test/Carambula/"
                                        r"Carambula_test_\d+\.png: No such file or directory\. Fix: check "
                                        r"that base_url points at the folder holding Data_train/"):
        download.download(tmp_path / "d", base_url=served.as_uri(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]


@pytest.mark.parametrize("copy, cause", [("missing", "HTTP 404.*Fix: check that --base-url points at"),
                                         ("changed", "with SHA-256 .*Fix: point --base-url at the pinned")])
def test_download_command_advice_names_the_option_base_url(tmp_path, capsys, site, copy, cause):
    argv = ["download", str(tmp_path / "d"), "--base-url", f"{site}/{copy}", "--no-progress"]
    assert hw3lib_main(argv) == 2
    assert re.search(cause, capsys.readouterr().err) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["", "notaurl", "127.0.0.1:8000/data"])
def test_a_base_url_that_is_no_url_is_named_as_the_option(tmp_path, capsys, url):
    """Not urllib's "unknown url type: '/Data_test/...'", which names neither."""
    assert hw3lib_main(["download", str(tmp_path / "d"), "--base-url", url, "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"error: --base-url {url!r} is not a URL. Fix: give the URL of the folder holding Data_train/ "
        f"and Data_test/ (default {download.DEFAULT_BASE_URL}).\n")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_ends_a_download_stalled_on_the_network_at_once(tmp_path):
    """A server that accepts and never answers: each fetch would wait its 30 s timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        dest = tmp_path / "fruits"
        process = subprocess.Popen(
            [sys.executable, "-m", "hw3lib", "download", str(dest), "--no-progress",
             "--base-url", f"http://127.0.0.1:{server.getsockname()[1]}"],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            stderr=subprocess.PIPE, text=True)
        server.settimeout(20)
        first, _ = server.accept()  # a fetch has connected: the fetches are waiting now
        with first:
            process.send_signal(signal.SIGINT)
            interrupted = time.monotonic()
            _, stderr = process.communicate(timeout=25)  # before the fix: ~27 s, the fetches' timeouts
    assert time.monotonic() - interrupted < 10
    assert process.returncode == 130 and stderr == "error: interrupted\n"
    assert list(tmp_path.iterdir()) == []  # no destination, no staging folder


@needs_data
def test_train_notes_a_copy_of_the_course_data_that_is_not_the_verified_one(tmp_path, capsys):
    """A copy with a file missing trained, its results taken for the report's, without a word."""
    assert download.course_copy_note(DATA, download.dataset_sha256(DATA)) is None  # the verified copy
    copy = copy_splits(DATA, tmp_path / "copy")
    (copy / "Data_train" / "Pear" / "Pear_train_7.png").unlink()
    note = download.course_copy_note(copy, download.dataset_sha256(copy))
    assert note == (f"note: {copy} holds the course's fruit classes, but not their verified copy (1 "
                    "missing (first: Data_train/Pear/Pear_train_7.png)), so its results are not the "
                    f"report's; `python -m hw3lib download {copy}` restores it there")
    copy_splits(copy, tmp_path / "extra")
    write_png(tmp_path / "extra" / "Data_train" / "Pear" / "mine.png")  # one's own: left alone
    assert download.course_copy_note(tmp_path / "extra").endswith(
        "`python -m hw3lib download DEST` fetches it into another folder")
    assert download.course_copy_note(make_root(tmp_path / "own"), "0" * 64) is None  # one's own data
    code = hw3lib_main(["train", "--data", str(copy), "--epochs", "1", "--no-progress",
                        "--out", str(tmp_path / "run")])
    assert code in (0, 3) and note in capsys.readouterr().out.splitlines()
    code = hw3lib_main(["sweep", "--param", "lr=1e-3", "--set", "epochs=1", "--workers", "1", "--data",
                        str(copy), "--no-progress", "--out", str(tmp_path / "sweep")])
    assert code == 0 and note in capsys.readouterr().out.splitlines()
