"""All or nothing despite Ctrl-C: the signals that interrupt a command, a block run whole before
one is raised, a file written whole or not at all."""
import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C and a plain `kill`


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
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as f:
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
