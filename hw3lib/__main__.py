"""Command line: ``python -m hw3lib {bench,download,train,report,sweep} ...``.

Expected failures (bad data, bad arguments) end in a one-line message and exit status 2,
never a traceback.
"""
import importlib
import sys

from .data import DataError

# name -> ("module" or "module:function", help); the function takes argv and returns an exit status
COMMANDS = {
    "bench": ("hw3lib.bench", "time a training epoch against PyTorch"),
    "download": ("hw3lib.download:main_download", "fetch and verify the fruit dataset"),
    "train": ("hw3lib.train_cli", "train LeNet5 on the fruit data"),
    "report": ("hw3lib.report", "execute the notebooks and export the HW3 report"),
    "sweep": ("hw3lib.sweep_cli", "train many settings and seeds in parallel (Optuna)"),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m hw3lib COMMAND [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module_name, _, function = COMMANDS[argv[0]][0].partition(":")
    command = getattr(importlib.import_module(module_name), function or "main")
    try:
        return command(argv[1:]) or 0
    except (ValueError, OSError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
