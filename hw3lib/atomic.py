"""All or nothing despite Ctrl-C and other processes: the signals that interrupt a command, a
block run whole before one is raised, a file written whole or not at all, a file's lock (waited
for, or for long work, claimed at once or refused)."""
import contextlib
import glob
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C and a plain `kill`
LOCK_TIMEOUT = 60  # seconds; a holder keeps a lock for a checkpoint's read and write
LOCK_POLL = 0.05  # seconds between tries
BUSY = BlockingIOError if fcntl is not None else OSError  # a lock held by another


@contextlib.contextmanager
def interrupts_deferred():
    """Hold a Ctrl-C (SIGINT, also the notebook's stop button) or a SIGTERM back until the
    block has run, then raise it; several count as one. Signals reach only the main thread; in
    other threads, or for a signal that is ignored or left to its default, this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {signum: signal.getsignal(signum) for signum in INTERRUPTS
                if callable(signal.getsignal(signum))}
    for signum in previous:
        signal.signal(signum, lambda signum, frame: received.append((signum, frame)))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        signum, frame = received[0]
        previous[signum](signum, frame)


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file next to ``path``, flush it to disk, then rename
    it over ``path``: readers see the old file or the new one, never a part. Ctrl-C waits
    until the write is done (:func:`interrupts_deferred`). On any failure the temporary file is
    removed and ``path`` is untouched; an OSError (a full disk, a read-only folder, ``path``
    a folder) is raised again naming ``path`` as its ``filename``, never the temporary file."""
    path = Path(path)
    with interrupts_deferred():
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(path)) from err
        try:
            with os.fdopen(fd, "wb") as f:
                if hasattr(os, "fchmod"):  # mkstemp gives 0o600; Windows < 3.13 lacks it
                    os.fchmod(fd, 0o644)
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise OSError(err.errno, err.strerror, str(path)) from err
            raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_leftovers(path):
    """Remove the temporary files that writers of ``path`` killed mid-write (SIGKILL, a power cut)
    left beside it (:func:`atomic_write` removes its own on any error it sees). Only while
    holding a lock that all its writers take (the :func:`locked` lock of ``path``, or the
    :func:`claimed` one of the work that writes it): no write is under way."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        tmp.unlink(missing_ok=True)


class LockTimeout(TimeoutError):
    """A file's lock stayed held by another process (or thread) for the whole wait."""


def lock_path(path):
    """The lock file of ``path``: ``.NAME.lock`` beside it, hidden like :func:`atomic_write`'s
    temporary files."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path, timeout=LOCK_TIMEOUT):
    """Hold the lock of ``path`` through the block, shared with every process and thread that
    takes it: for a read-modify-write of ``path`` that no other may split.

    The lock is the operating system's on the file :func:`lock_path` (``fcntl.flock``;
    ``msvcrt.locking`` on Windows), so it ends with its holder: a process killed or crashed
    holding it never blocks the next. The file is removed on release (and one left by a killed
    process on the next release), so folders hold it only while a lock is held; on Windows, which
    removes no open file, it may stay, empty but for a process number, and harmless.

    Waiting tries every 50 ms, so Ctrl-C ends a wait at once: take the lock outside
    :func:`interrupts_deferred`, which would hold a Ctrl-C back for the whole wait. A holder
    keeps it for a read and a write, well under a second, so a lock held ``timeout`` seconds
    means a holder that is alive but stopped (suspended with Ctrl-Z, paused in a debugger) or
    hung (a stalled network drive): rather than hang too, with no word, the wait ends in
    :class:`LockTimeout` naming the file and the holder's process number. The lock is not
    reentrant: taken again inside the block, it waits on itself until the timeout."""
    lock, deadline, held = lock_path(path), time.monotonic() + timeout, []
    try:
        while True:
            with interrupts_deferred():  # a lock taken is always in held, and so released
                _try_to_lock(path, lock, held)
            if held:
                break
            if time.monotonic() >= deadline:
                holder, ours = _holder(lock)
                cause = ("The lock is not reentrant: taken again inside the block that holds "
                         "it, it waits on itself. Take it once, around the whole read and write "
                         "(where another thread of this process holds it, let that one finish)"
                         if ours else
                         "That process is likely stopped without having ended (suspended with "
                         "Ctrl-Z, paused in a debugger) or stuck on a stalled drive: let it go on "
                         "(fg, or kill -CONT) or end it, which frees the lock, then try again")
                raise LockTimeout(f"{path} is locked by {holder}: its lock {lock} has been "
                                  f"held for over {timeout:g} s, where reading and writing the file "
                                  f"takes under a second. {cause}")
            time.sleep(LOCK_POLL)
        yield
    finally:
        _release(lock, held)


class LockHeld(BlockingIOError):
    """A lock taken by :func:`claimed` is held by another process (or thread): ``holder`` names
    it in words, ``lock`` is its lock file."""

    def __init__(self, path, lock, holder):
        super().__init__(f"{path} is locked by {holder} (its lock {lock}) for as long as its work "
                         "lasts: let it finish, or end it, then try again")
        self.lock, self.holder = lock, holder


@contextlib.contextmanager
def claimed(path):
    """Hold the lock of ``path`` (:func:`locked`'s file and rules) through the block, or raise
    :class:`LockHeld` at once where another holds it: for long work on ``path`` (a training run)
    that no other may join, whose holder may keep it for hours, so that waiting would not do.
    Like :func:`locked`'s, it ends with its holder: a process killed holding it never blocks the
    next."""
    lock, held = lock_path(path), []
    try:
        with interrupts_deferred():  # a lock taken is always in held, and so released
            _try_to_lock(path, lock, held)
        if not held:
            raise LockHeld(path, lock, _holder(lock)[0])
        yield
    finally:
        _release(lock, held)


def _release(lock, held):
    """Free the lock file ``lock`` whose descriptors (one, or none where it was not taken) are
    ``held``."""
    for fd in held:
        if fcntl is not None:  # removed while held: whoever then takes it makes a new one
            with contextlib.suppress(OSError):
                os.unlink(lock)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        os.close(fd)


def _try_to_lock(path, lock, held):
    """Take the lock file ``lock`` of ``path`` if it is free, appending its descriptor to
    ``held``; an OSError (a read-only folder, a full disk: no room for the process number)
    names ``path``."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from err
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        if os.path.samestat(os.fstat(fd), os.stat(lock)):
            held.append(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
    except (BUSY, FileNotFoundError):  # held by another; removed by its holder meanwhile
        pass
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from err
    finally:
        if fd not in held:
            os.close(fd)


def _holder(lock):
    """``(words, ours)``: who holds the lock file ``lock``, in words, from the process number its
    holder wrote, and whether that is this process."""
    try:
        pid = int(Path(lock).read_text())
    except (OSError, ValueError):
        return "another process", False
    ours = pid == os.getpid()
    return f"process {pid}" + (" (this one: the lock was taken twice, or by another thread)"
                               if ours else ""), ours
