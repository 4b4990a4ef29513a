"""The course's copy of the fruit images: its SHA-256 manifest, verification and download.

:data:`MANIFEST_PATH` (``hw3lib/fruits.sha256``) lists the SHA-256 of all 1968 files in
``sha256sum`` format, written by :func:`write_manifest` and checked by :func:`verify` and
:func:`download`; :func:`dataset_sha256` stamps checkpoints with the data they were trained on.
Failures raise :class:`hw3lib.images.DataError` naming the file or URL and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import posixpath
import queue
import re
import shlex
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .checks import dead_link
from .data import PROGRESS_DELAY
from .folders import (FIX_WHERE, MANIFEST_PATH, SPLIT_FOLDERS, SPLITS, files_under,
                      is_course_data, is_skipped, resolve_root, split_dirs, split_folders)
from .images import DataError, read_bytes, sniff
from .processes import process_running

SOURCE_REPO = "Joker1367/EE6550_ML"
SOURCE_COMMIT = "c2e804f9e271d0c75dbde0fd9c9b1aa1f2439d4a"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{SOURCE_REPO}/{SOURCE_COMMIT}/HW2/Data"
CHECK_BASE_URL = ("check that base_url points at the folder holding Data_train/ and Data_test/ "
                  f"(default {DEFAULT_BASE_URL})")
URL_SCHEMES = ("http", "https", "ftp", "file")  # those urllib.request fetches
PNG_END = b"\0\0\0\0IEND\xaeB`\x82"  # the chunk that ends every PNG
JOIN_SECONDS = 2.0  # how long a failed or interrupted download waits for its fetches to end


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify`: relative POSIX paths that are missing, extra or changed."""

    missing: list[str]
    extra: list[str]
    changed: list[str]

    @property
    def ok(self) -> bool:
        """True when no file is missing, extra or changed."""
        return not (self.missing or self.extra or self.changed)

    def __str__(self) -> str:
        if self.ok:
            return "all files match the manifest"
        parts = {"missing": self.missing, "extra": self.extra, "changed": self.changed}
        return ", ".join(
            f"{len(paths)} {kind} (first: {paths[0]})" for kind, paths in parts.items() if paths
        )



def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compute_manifest(root: str | os.PathLike, progress: bool = False) -> dict[str, str]:
    """SHA-256 of every file under ``root``'s split folders (Data_train and Data_test, or train
    and test: :func:`hw3lib.folders.split_folders`) as :func:`hw3lib.folders.files_under` finds them:
    those :func:`hw3lib.folders.is_skipped` leaves out are not, symbolic links to folders are
    followed as :func:`hw3lib.data.load_split` does (a link back to a folder above it is not).
    With ``progress``, a ``tqdm.auto`` bar counts the files hashed once hashing has taken
    :data:`~hw3lib.data.PROGRESS_DELAY` seconds (every byte is read: seconds at 20,000 images).

    Returns ``{relative POSIX path: hex digest}`` sorted by path; absent folders give no entries.
    """
    root = Path(root)
    paths = list(_hashed_files(root))
    with tqdm(paths, disable=not progress, unit="file", desc="hashing", delay=PROGRESS_DELAY,
              leave=False) as bar:
        return dict(sorted((path.relative_to(root).as_posix(), _sha256(read_bytes(path))) for path in bar))


def _hashed_files(root: Path):
    """The files of :func:`compute_manifest`, in no particular order, none read."""
    return (path for split in SPLITS for split_dir in split_folders(root, split)
            for path in files_under(split_dir))


def files_stamp(root: str | os.PathLike | None = None) -> tuple:
    """A cheap stamp of the files that :func:`dataset_sha256` hashes at ``root`` (default
    ``$HW3_DATA``, then ``data/``), none read: each as ``(path, size, modification time,
    change time)``, sorted. It differs once a file is added, removed, renamed or written (a
    write sets the change time, which no copy or ``touch`` sets back; Windows has none, its
    files' creation time stands there), so a SHA-256 or images read while it holds still hold."""
    def size_and_times(path):
        try:
            stat = path.stat()
        except OSError:  # a broken link, say, which loading names with its fix
            return None, None, None
        return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns

    return tuple(sorted((str(path), *size_and_times(path)) for path in _hashed_files(resolve_root(root))))


def _format_manifest(manifest: Mapping[str, str]) -> str:
    return "".join(f"{sha}  {rel}\n" for rel, sha in sorted(manifest.items()))


def write_manifest(root: str | os.PathLike, path: str | os.PathLike = MANIFEST_PATH) -> None:
    """Write :func:`compute_manifest` of ``root`` to ``path`` in ``sha256sum`` format."""
    Path(path).write_text(_format_manifest(compute_manifest(root)), encoding="utf-8")


def read_manifest(path: str | os.PathLike = MANIFEST_PATH) -> dict[str, str]:
    """Parse a ``sha256sum``-format file into ``{relative path: hex digest}``."""
    path = Path(path)
    manifest = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        sha, _, rel = line.partition("  ")
        if not re.fullmatch(r"[0-9a-f]{64}", sha) or not rel:
            raise DataError(f"{path}:{number}: expected 'sha256  relative/path', got {line!r}")
        manifest[rel] = sha
    return manifest


def verify(
    root: str | os.PathLike | None = None,
    manifest: Mapping[str, str] | str | os.PathLike | None = None,
) -> VerifyReport:
    """Compare the files under ``root`` with ``manifest`` (a mapping, a file, or the packaged one).

    Hidden files are ignored, as in :func:`load_split`; a missing root reports every file missing.
    """
    if not isinstance(manifest, Mapping):
        manifest = read_manifest(MANIFEST_PATH if manifest is None else manifest)
    actual = compute_manifest(resolve_root(root))
    return VerifyReport(
        missing=sorted(manifest.keys() - actual.keys()),
        extra=sorted(actual.keys() - manifest.keys()),
        changed=sorted(rel for rel in manifest.keys() & actual.keys() if manifest[rel] != actual[rel]),
    )


def dataset_sha256(root: str | os.PathLike | None = None, progress: bool = False) -> str:
    """One SHA-256 over the manifest (sorted ``sha256sum`` lines) of the data present under ``root``.

    Equals the SHA-256 of ``hw3lib/fruits.sha256`` when the data is intact; for checkpoint stamps.
    Paths count as their bytes on disk (:func:`os.fsencode`), so names that are not UTF-8 hash too.
    ``progress``: :func:`compute_manifest`'s bar of the files hashed.
    """
    root = resolve_root(root)
    manifest = compute_manifest(root, progress)
    if not manifest:
        split_dirs(root)  # a missing folder named as loading names it, for this root
        raise DataError(f"no dataset files under {root}: its split folders are empty. "
                        + (FIX_WHERE if is_course_data(root) else
                           "Fix: put each class's images in a folder of its own in each split folder."))
    return _sha256(os.fsencode(_format_manifest(manifest)))


def course_sha256() -> str:
    """The :func:`dataset_sha256` of the course's verified copy (its manifest's SHA-256)."""
    return _sha256(MANIFEST_PATH.read_bytes())


def course_copy_note(root: str | os.PathLike | None, sha: str | None = None) -> str | None:
    """A note when ``root`` holds the course's classes but not its verified copy (a file
    missing, extra or changed): a run on it is no run of the report's data. None otherwise.
    ``sha``: its :func:`dataset_sha256`, when known (else computed, for the course's data only)."""
    root = resolve_root(root)
    if not is_course_data(root) or (sha or dataset_sha256(root)) == course_sha256():
        return None
    manifest = read_manifest()
    report = verify(root, manifest)
    renames = _class_folders_in_another_case(report, manifest)
    download_here = f"`python -m hw3lib download {shlex.quote(os.fspath(root))}`"
    fix = (f"{_rename(root, renames)} (folder names are case-sensitive), then {download_here} verifies it"
           if renames else "`python -m hw3lib download DEST` fetches it into another folder" if report.extra
           else f"{download_here} restores it there")
    return (f"note: {root} holds the course's fruit classes, but not their verified copy "
            f"({report}), so its results are not the report's; {fix}")


class Unreachable(DataError):
    """A fetch that failed for the network (no connection, a timeout, a cut-off body);
    :func:`download` adds the fix, which names the destination."""


def _offline_fix(dest: Path) -> str:
    """The fix for a download that could not reach the server: the network, or a copy at hand."""
    return ("Fix: check the network connection and run the download again. Offline, with a copy of "
            "the data at hand: set HW3_DATA to the folder that holds its Data_train/ and Data_test/ "
            "(`python -m hw3lib download` then only verifies it), or copy those two folders into "
            f"{dest}.")


def _fetch(url: str, timeout: float) -> bytes:
    """The body of ``url``, within ``timeout`` seconds in all (urllib's own timeout bounds each
    wait for a packet, so a server sending a byte at a time would never time out)."""
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = []
            while chunk := response.read1(1 << 16):
                body.append(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the response took over {timeout:g} s")
            if getattr(response, "length", None):  # bytes announced and never sent: cut off
                raise http.client.IncompleteRead(b"".join(body), response.length)
            return b"".join(body)
    except urllib.error.HTTPError as exc:
        fix = ("the server failed or limits how often it is asked (GitHub does): wait a few minutes "
               "and run the download again" if exc.code == 429 or exc.code >= 500 else CHECK_BASE_URL)
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}. Fix: {fix}.") from exc
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeout, reset, cut-off body
        reason = getattr(exc, "reason", None)
        if urllib.parse.urlsplit(url).scheme == "file":  # a file absent or unreadable: no network
            raise DataError(f"could not read {url}: {getattr(reason, 'strerror', None) or reason or exc}. "
                            f"Fix: {CHECK_BASE_URL}.") from exc
        # a wait for a packet, the connection or the headers included, as the whole response is
        # said (urllib says "<urlopen error timed out>" of the first ones)
        timed_out = isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)
        why = f"the response took over {timeout:g} s" if timed_out else exc
        raise Unreachable(f"could not fetch {url}: {why}.") from exc


def _fetch_all(
    manifest: Mapping[str, str], base_url: str, target: Path, progress: bool, timeout: float, workers: int
) -> None:
    """Fetch every manifest file into ``target``, checking each SHA-256 before writing it.

    ``workers`` daemon threads fetch; this thread checks and writes. On an error or Ctrl-C it
    returns within :data:`JOIN_SECONDS`, having waited for the fetches that end by then (offline
    they all fail at once; Python exiting while one was still in the resolver crashed it,
    "Segmentation fault" and exit status 139, in about one offline download in twenty); those
    still waiting on the network (up to ``timeout``) are left to end on their own."""
    urls = {rel: f"{base_url.rstrip('/')}/{urllib.parse.quote(rel)}" for rel in manifest}
    todo, done, stop = queue.SimpleQueue(), queue.SimpleQueue(), threading.Event()
    for rel in urls:
        todo.put(rel)

    def fetch():
        while not stop.is_set():
            try:
                rel = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((rel, _fetch(urls[rel], timeout), None))
            except BaseException as exc:  # handed to the writing thread, raised there
                done.put((rel, None, exc))

    threads = [threading.Thread(target=fetch, daemon=True, name="hw3lib-fetch")
               for _ in range(min(workers, len(urls)))]
    for thread in threads:
        thread.start()
    try:
        with tqdm(total=len(urls), disable=not progress, unit="file", desc="fruits") as bar:
            for _ in urls:
                rel, body, exc = done.get()
                if exc is not None:
                    raise exc
                if _sha256(body) != manifest[rel]:
                    png = sniff(body) == "PNG"  # as every file of the dataset; else a sign-in page, say
                    if png and not body.endswith(PNG_END):  # cut off where no length was announced
                        raise Unreachable(f"could not fetch {urls[rel]}: the response broke off after "
                                          f"{len(body)} bytes, before the PNG's end.")
                    got = "bytes" if png else f"{len(body)} bytes that are no PNG (they begin {body[:40]!r})"
                    raise DataError(
                        f"{urls[rel]} returned {got} with SHA-256 {_sha256(body)}, but the manifest "
                        f"expects {manifest[rel]} for {rel}. Fix: "
                        + ("" if png else "sign in to the network or check the proxy, if that page "
                           "asks for it; else ")
                        + f"point base_url at the pinned copy (default {DEFAULT_BASE_URL})."
                    )
                path = target / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
                bar.update()
    finally:
        stop.set()
        deadline = time.monotonic() + JOIN_SECONDS
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _move_into(staged: Path, dest: Path) -> bool:
    """Rename ``staged``/Data_train and Data_test into ``dest``, undoing a half-done move; False
    where one of them is there by then (another download's, say), True once moved."""
    created = not dest.exists()
    dest.mkdir(exist_ok=True)
    moved = []
    try:
        for split_dir in SPLITS.values():
            os.rename(staged / split_dir, dest / split_dir)
            moved.append(split_dir)
    except BaseException as exc:
        for back in moved:
            os.rename(dest / back, staged / back)
        if created:
            with contextlib.suppress(OSError):  # not empty: another process's folder came in
                dest.rmdir()
        if isinstance(exc, OSError) and exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        if isinstance(exc, OSError):
            raise DataError(f"could not move the downloaded files into {dest}: {exc}. Fix: make "
                            f"{dest} writable, or choose another destination, and download again.") from exc
        raise
    return True


def _to_restore(dest: Path, manifest: Mapping[str, str]) -> VerifyReport:
    """:func:`verify`'s report on ``dest``'s Data_train/ and Data_test/, whose files missing or
    changed (an earlier download or copy cut short, a damaged image) :func:`download` fetches
    and puts in place. DataError where those folders hold files the manifest does not list
    (one's own, which it leaves alone)."""
    report = verify(dest, manifest)
    renames = _class_folders_in_another_case(report, manifest)
    if renames:  # the course's images, under a name the manifest does not list
        raise DataError(
            f"{dest} holds {' and '.join(f'{held}/' for held, _ in renames)}: the course's "
            f"{' and '.join(f'{course}/' for _, course in renames)} in another case (folder names are "
            f"case-sensitive), which the download would not verify but fetch again beside. Fix: "
            f"{_rename(dest, renames)}, then download again (it verifies them).")
    if report.extra:
        raise DataError(
            f"{dest} already holds Data_train/ or Data_test/ that differ from the manifest ({report}), "
            "with files it does not list, which the download leaves alone. Fix: move or delete those "
            "files (or the two folders, if they hold other data), then download again: it fetches "
            "the files missing and replaces the changed ones."
        )
    return report


def _class_folders_in_another_case(report: VerifyReport, manifest: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(folder, the course's name)`` for each folder of ``report``'s extra files named as a class
    folder of the course's in another case (``Data_train/lychee`` for ``Data_train/Lychee``)
    where the course's holds none of its files."""
    missing = set(report.missing)
    course = {posixpath.dirname(rel) for rel in manifest}
    empty = course - {posixpath.dirname(rel) for rel in manifest if rel not in missing}
    by_case = {folder.lower(): folder for folder in empty}
    return sorted({(folder, by_case[folder.lower()]) for folder in map(posixpath.dirname, report.extra)
                   if folder.lower() in by_case and folder not in course})


def _rename(root: Path, renames: list[tuple[str, str]]) -> str:
    """The fix for :func:`_class_folders_in_another_case`'s ``renames`` under ``root``."""
    return "rename " + " and ".join(f"{root / held} to {root / course}" for held, course in renames)


def _restore(staged: Path, dest: Path, report: VerifyReport) -> None:
    """Move the files that ``report`` (on ``dest``) finds missing or changed from ``staged`` into
    ``dest``, each replacing its namesake at once (copied beside it first where its folder is
    on another disk, through a link)."""
    for rel in report.missing + report.changed:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staged / rel, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            part = target.with_name(f".{target.name}.part")
            try:
                shutil.copyfile(staged / rel, part)
                os.replace(part, target)
            finally:
                part.unlink(missing_ok=True)


def _remove_stale_staging(dest: Path) -> None:
    """Remove the temporary folders (``.<name>.download-<pid>-*``) in or next to ``dest`` that a
    download killed outright (SIGKILL, a power cut) left behind: those whose process is gone."""
    prefix = f".{dest.name}.download-"
    for here in {dest, dest.parent}:
        with contextlib.suppress(OSError):  # absent, a file, or not readable: nothing to remove
            for stale in here.iterdir():
                pid = re.fullmatch(r"(\d+)-\w+", stale.name.removeprefix(prefix))
                if stale.name.startswith(prefix) and pid and not process_running(int(pid[1])):
                    shutil.rmtree(stale, ignore_errors=True)


def _split_folders_by_other_names(dest: Path) -> list[tuple[Path, str]]:
    """The folders in ``dest`` named as a split but not as the course's, ``train/`` or
    ``Data_Train/`` say, where the course's name (paired with each) is absent: a download would
    fetch a second copy beside them rather than verify them."""
    try:
        entries = sorted(p for p in dest.iterdir() if not is_skipped(p.name) and p.is_dir())
    except OSError:  # absent, a file, or not readable: named elsewhere
        return []
    return [(p, SPLITS[split]) for split, names in SPLIT_FOLDERS.items() for p in entries
            if p.name.lower() in {name.lower() for name in names} and p.name != SPLITS[split]
            and not (dest / SPLITS[split]).exists()]  # exists: the same folder, case-insensitively


def download(
    dest: str | os.PathLike,
    base_url: str = DEFAULT_BASE_URL,
    progress: bool = True,
    timeout: float = 30.0,
    workers: int = 8,
    on_restore: Callable[[VerifyReport], object] | None = None,
) -> Path:
    """Fetch the 1968 images into ``dest``/Data_train and ``dest``/Data_test; return ``dest``.

    Files are listed by the packaged manifest and fetched as ``base_url + "/" + relpath`` (by
    default the pinned commit of the course repository on GitHub), ``timeout`` seconds per
    request, on ``workers`` threads, with a progress bar unless ``progress`` is False. Each
    file's SHA-256 is checked; everything lands in a hidden temporary folder in
    ``dest`` (next to it while it does not exist), on its disk, and is renamed into place only
    when complete, so a failure (HTTP error, changed bytes, interruption, a full disk) leaves
    ``dest`` as it was and removes the temporary folder (one left by a download killed outright
    goes at the next download). A ``dest`` that already holds a verified
    copy is left alone; one whose Data_train/ or Data_test/ lack files of the manifest or hold
    them changed (a copy cut short, a damaged image) gets those files alone, fetched and checked
    as above, each then replacing its namesake at once; one whose folders hold files the
    manifest does not list (one's own) raises DataError, as does one holding train/ or test/
    (the split folders' other names) or Data_Train/ (another case) in their place: a copy beside
    them would leave two folders for a split; other files in ``dest`` stay, the two folders join them.
    ``on_restore(report)``, once such files are in place: :func:`verify`'s report on the copy
    before (what it lacked or held changed; e.g. to say so, as an image may have been changed on
    purpose).
    """
    dest = Path(dest)
    if urllib.parse.urlsplit(base_url).scheme not in URL_SCHEMES:  # urlopen's "unknown url type"
        raise DataError(f"base_url {base_url!r} is not a URL. Fix: give the URL of the folder holding "
                        f"Data_train/ and Data_test/ (default {DEFAULT_BASE_URL}).")
    through = next((p for p in dest.parents if p.exists() and not p.is_dir()), None)
    dead = dead_link(dest)
    problem = ("exists and is not a folder" if dest.exists() and not dest.is_dir() else
               f"is {dead}" if dead else
               f"lies under {through}, which is a file, not a folder" if through else None)
    if problem:  # found before fetching, not as the folders are renamed into it
        raise DataError(f"{dest} {problem}. Fix: choose another destination (DEST, or HW3_DATA "
                        "when none is given).")
    manifest = read_manifest()
    classes = sorted({Path(rel).parent.name for rel in manifest})
    if any((dest / name).is_dir() for name in classes):  # HW3_DATA=.../Data_train, say
        raise DataError(f"{dest} holds class folders ({', '.join(classes)}): it is itself a split "
                        f"folder, where the download would nest a second copy. Fix: give the folder "
                        f"that holds it, {dest.parent} (as DEST, or HW3_DATA when none is given).")
    others = _split_folders_by_other_names(dest)
    if others:  # a copy the download would not verify, and would fetch a second one beside
        held = " and ".join(f"{p.name}/" for p, _ in others)
        renames = " and ".join(f"{p.name}/ to {course}/" for p, course in others)
        raise DataError(
            f"{dest} holds {held}, not the folder names the download fetches and verifies, "
            "Data_train/ and Data_test/ (folder names are case-sensitive): it would fetch a second "
            "copy beside them. "
            f"Fix: if they hold the course's images, rename {renames} (the download then verifies "
            "them); else choose another destination (DEST, or HW3_DATA when none is given).")
    for split_dir in (dest / name for name in SPLITS.values()):  # found before fetching, not after
        what = dead_link(split_dir) or (split_dir.exists() and not split_dir.is_dir() and "a file")
        if what:
            raise DataError(f"{split_dir} is {what}, where the download puts a folder. Fix: move or "
                            "delete it, then download again.")
    _remove_stale_staging(dest)
    fresh = not any((dest / split_dir).exists() for split_dir in SPLITS.values())
    before = None if fresh else _to_restore(dest, manifest)
    wanted = manifest if fresh else {rel: manifest[rel] for rel in before.missing + before.changed}
    if not wanted:  # a verified copy
        return dest
    made = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]  # deepest first
    # staged on dest's own disk (inside it, when it exists: it may be a link or a mount point
    # on another disk than its parent's), so that the two folders can be renamed into it
    here = dest if dest.is_dir() else dest.parent
    try:
        here.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.download-{os.getpid()}-", dir=here))
        try:
            staged = staging / "data"
            _fetch_all(wanted, base_url, staged, progress, timeout, workers)
            report = verify(staged, wanted)  # re-read from disk: what gets moved is what was checked
            if not report.ok:
                raise DataError(f"the files written to {staged} fail verification ({report}). Fix: retry.")
            if not (fresh and _move_into(staged, dest)):  # a copy there (another download's, say)
                _restore(staged, dest, _to_restore(dest, manifest))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException as exc:
        for made_dir in made:  # the folders made for it go too
            with contextlib.suppress(OSError):
                made_dir.rmdir()
        if isinstance(exc, Unreachable):
            raise DataError(f"{exc} {_offline_fix(dest)}") from exc.__cause__
        if isinstance(exc, OSError):
            raise DataError(f"cannot write the download in {here}: {exc}. "
                            "Fix: choose a writable destination with about 10 MB free.") from exc
        raise
    if before is not None and on_restore is not None:
        on_restore(before)
    return dest
