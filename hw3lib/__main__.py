"""Command line: ``python -m hw3lib {bench,download,audit,train,predict,report,sweep} ...``.

Exit status: 0 done; 1 ``predict`` could not read some of its files (each named in a line
``error: ...``) and classified the others; 2 an error, said in one line ``error: ...`` (bad
arguments, bad data, an unknown command), never a traceback; 3 ``train`` ran but the model did
not learn, or ``sweep``'s best setting did not; 130 interrupted (Ctrl-C, or SIGTERM: a plain ``kill``). After the first interrupt
further ones are ignored until the process ends, so the command's clean-up (temporary files,
the files of finished epochs) always completes and the status stays 130. As a process
(``python -m hw3lib``, the ``hw3lib`` script: :func:`run`) an interrupt that comes after the
command has finished is ignored too, so the status is the command's.
"""
import difflib
import importlib
import os
import signal
import sys
import threading

from .atomic import INTERRUPTS
from .cli import print_error
from .images import DataError

# name -> (the module whose main(argv) runs it and returns its exit status, help)
COMMANDS = {
    "bench": ("hw3lib.bench", "time a training epoch against PyTorch"),
    "download": ("hw3lib.download_cli", "fetch and verify the fruit dataset"),
    "audit": ("hw3lib.audit_cli", "audit a data folder's splits for leakage (near-copies)"),
    "train": ("hw3lib.train_cli", "train LeNet5 on the fruit data or your own images"),
    "predict": ("hw3lib.predict_cli", "classify image files with a trained run"),
    "report": ("hw3lib.report", "execute the notebooks and export the HW3 report"),
    "sweep": ("hw3lib.sweep_cli", "train many settings and seeds in parallel (Optuna)"),
}
USAGE = "usage: python -m hw3lib COMMAND [options]   (COMMAND --help for its options)\n\ncommands:\n" + \
    "\n".join(f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items())


def _interrupt_once(signum, frame):
    """The first Ctrl-C or SIGTERM raises KeyboardInterrupt; any later one is ignored."""
    for interrupt in INTERRUPTS:
        signal.signal(interrupt, signal.SIG_IGN)
    raise KeyboardInterrupt


def _to_devnull(stream):
    """Point ``stream`` (the standard output or error) at /dev/null, so that what is still
    buffered for a reader that went away (``| head -1``) is dropped, not raised again as Python
    flushes it at exit."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError):  # no file descriptor (a captured or replaced stream)
        pass


def main(argv=None, restore_signals=True):
    """Run the command ``argv`` (default: ``sys.argv[1:]``) -> its exit status. Ctrl-C and
    SIGTERM interrupt it (see the module docstring); after it, their handlers are restored, or
    with ``restore_signals=False`` (:func:`run`) ignored."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        try:
            print(USAGE, flush=True)
        except BrokenPipeError:  # `--help | head -1`: as argparse's help for a command, quietly
            _to_devnull(sys.stdout)
        return 0
    if not argv or argv[0] not in COMMANDS:
        problem = "no command given"
        if argv:
            close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
            problem = f"unknown command {argv[0]!r}" + (f" (did you mean {close[0]}?)" if close else "")
        print(f"error: {problem}; the commands are {', '.join(COMMANDS)} (python -m hw3lib --help "
              "says what each does)", file=sys.stderr)
        return 2
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, _interrupt_once)
                for signum in (INTERRUPTS if main_thread else ())}
    try:
        return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:]) or 0
    except BrokenPipeError as err:  # `| head -1`: the reader of the output went away, not a full disk
        _to_devnull(sys.stdout)
        kept = "".join(f"; {note}" for note in getattr(err, "__notes__", ()))  # what train kept
        try:
            print_error(f"the output was closed before {argv[0]} finished (a broken pipe: the "
                        f"program reading it, such as head, exited){kept}", lines=False)
        except BrokenPipeError:  # `2>&1 | head -1`: the errors' reader is gone too (not Python's 1)
            _to_devnull(sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # a tool of the report or playground, not the library's
        print(f"error: {argv[0]} needs the Python package {err.name!r}, which is not installed: "
              "install the pinned tools with `pip install -r requirements.txt` (make report "
              "does)", file=sys.stderr)
        return 2
    except (ValueError, OSError, DataError) as err:  # a file name's tab or escape code as \t, \x1b
        print_error(str(err))
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # no interrupt came
            for signum, handler in previous.items():
                signal.signal(signum, handler if restore_signals else signal.SIG_IGN)


def _names_printable():
    """Let the standard output write file names that are not UTF-8 (``bad\\xff.png``, which
    Python holds as lone surrogates) as their own bytes, as ``ls`` does, where it would raise
    "surrogates not allowed" (a UTF-8 locale other than C.UTF-8 makes it strict)."""
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")


def run():
    """The process's entry point: the command's exit status, which an interrupt that comes
    while the process exits (Python's handler, a traceback and 130; SIGTERM's default, 143)
    cannot change."""
    _names_printable()
    sys.exit(main(restore_signals=False))


if __name__ == "__main__":
    run()
