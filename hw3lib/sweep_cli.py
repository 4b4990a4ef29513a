"""``python -m hw3lib sweep``: a hyperparameter sweep from the command line (:mod:`hw3lib.sweep`)."""
import argparse
import contextlib
import json
import re
import sys
import warnings
from dataclasses import fields
from pathlib import Path

import matplotlib
from optuna.distributions import FloatDistribution, IntDistribution

from .atomic import atomic_write
from .checks import is_number
from .cli import (Parser, add_data_option, add_progress_option, announce_reading, folder, int_at_least,
                  parse_seeds, print_error, show_progress)
from .config import TrainConfig
from .cores import more_than_cores
from .download import course_copy_note
from .images import DataError
from .out_folders import refuse_file_in_data, refuse_out
from .phrasing import TRAIN_OPTIONS, phrase_settings
from .sweep import JOURNAL, NOT_LEARNED, PRUNERS, NotLearnedWarning, SweepError, default_workers, run_sweep
from .sweep_study import home_storage, storage_file
from .tables import value_text

EXAMPLES = """examples:
  python -m hw3lib sweep --param lr=2.5e-4,5e-4,1e-3 --param hflip=true,false \\
      --seeds 0-2
  python -m hw3lib sweep --param lr=1e-4:1e-2:log --param batch_size=16,32,64 \\
      --trials 20
  python -m hw3lib sweep --param model.kernel_size=3,5 --set epochs=12 \\
      --workers 2
several machines share one study through a database (the same command on each):
  python -m hw3lib sweep --param lr=1e-4:1e-2:log --trials 40 \\
      --storage postgresql://USER:PASSWORD@HOST/DB

Exit status: 0 done; 2 an error (one line "error: ...": bad option, data, --out
or storage; or every run failed); 3 none of the best setting's runs learned
(train's test, run by run; a "warning:" line says so, and the JSON line holds
"learned": false); 130 interrupted (Ctrl-C or a plain kill; the finished runs
are kept: run the same command again to go on).
"""


def _value(text):
    """A command-line value: JSON where it parses (numbers, true/false, also True/False),
    else the text."""
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# the settings as train's options name them where TrainConfig's field has another name
TRAIN_NAMES = {option.removeprefix("--"): name for name, option in TRAIN_OPTIONS.items()
               if option.removeprefix("--") != name}


def _assignment(text, option):
    """``NAME=VALUE`` given to ``option`` (--set, --param) as ``(name, value)``; a name as train's
    options give it (``channels``, ``image-size``) is refused, naming the setting."""
    name, equals, value = text.partition("=")
    if not equals or not name or not value:
        raise ValueError(f"{option} {text!r}: write NAME=VALUE")
    name, value = name.strip(), value.strip()
    if name in TRAIN_NAMES:
        raise ValueError(f"{option} {text!r}: train's --{name} is the setting {TRAIN_NAMES[name]} here "
                         f"(a sweep names settings as TrainConfig does): {option} {TRAIN_NAMES[name]}={value}")
    return name, value


def parse_param(text):
    """``NAME=V1,V2,...`` (a grid axis) or ``NAME=LOW:HIGH[:log]`` (a range, sampled) as
    ``(name, values or an Optuna distribution)``; a range whose ends are both integers draws
    integers, unless the field's default is a float (lr=1:10 stays a float range)."""
    name, value = _assignment(text, "--param")
    if "[" in value:
        example = json.dumps({name.removeprefix("model."): [4, 8]})
        raise ValueError(f"--param {text!r}: a sweep varies single values, not lists; fix a list "
                         f"for every run with --set, e.g. --set 'model={example}'")
    if ":" not in value:
        return name, [_value(v.strip()) for v in value.split(",")]
    low, high, *scale = (v.strip() for v in value.split(":"))
    if scale not in ([], ["log"]):
        raise ValueError(f"--param {text!r}: a range is LOW:HIGH or LOW:HIGH:log")
    low, high, log = _value(low), _value(high), scale == ["log"]
    if not all(is_number(v) for v in (low, high)):
        raise ValueError(f"--param {text!r}: a range's ends must be numbers")
    try:
        if isinstance(low, int) and isinstance(high, int) and not isinstance(getattr(TrainConfig, name, None), float):
            return name, IntDistribution(low, high, log=log)
        return name, FloatDistribution(low, high, log=log)
    except ValueError as err:  # Optuna's: low > high, log of a value <= 0
        raise ValueError(f"--param {text!r}: {err}") from None


MAX_SEEDS = 10_000  # a range beyond this is a typo (0-1000000 for 0-10), not a sweep to queue


def _naming(what):
    """An argparse ``type`` for the name of ``what``: any text but an empty or blank one."""
    def parse(text):
        if not text.strip():
            raise argparse.ArgumentTypeError(f"must name {what}, got {text!r}")
        return text
    return parse


def _storage(text):
    """An argparse ``type`` for ``--storage``: a journal file's path or a database URL, a leading
    ``~`` of the journal's or SQLite database's path the home folder
    (:func:`~hw3lib.sweep_study.home_storage`)."""
    try:
        return home_storage(_naming("a journal file or a database URL")(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv=None):
    """``python -m hw3lib sweep``: run (or go on with) a sweep, print its table, the best
    setting and the failures, write the figures, and as the last line one JSON object."""
    parser = Parser(prog="python -m hw3lib sweep", epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Train LeNet5 with many settings, several seeds each, in "
                                 "parallel, through\nOptuna; scored on the validation split. Run "
                                 "the same command again to go on\nafter an interruption.")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUES",
                        help="a swept setting: a TrainConfig field (not seed, split or "
                             "val_fraction) or model.KEY, with values "
                             "V1,V2,... (a grid) or a range LOW:HIGH[:log] (sampled); repeatable")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a fixed setting of every run (default: TrainConfig's), e.g. epochs=12, "
                             "image_size=28 (resizes every image; or HxW), mode=RGB (the channels), "
                             "val_fraction=0.2")
    parser.add_argument("--seeds", default="0",
                        help="the seeds of every setting, FIRST-LAST or a list; default 0")
    parser.add_argument("--trials", type=int_at_least(1), metavar="N",
                        help="how many settings a sampled search tries: needed where a --param is a "
                             "range (lr=1e-4:1e-2:log), refused for a grid of lists alone")
    parser.add_argument("--workers", type=int_at_least(1), default=default_workers(), metavar="N",
                        help="worker processes on this machine; default %(default)s (one per core)")
    parser.add_argument("--out", type=folder, default=Path("runs/sweep"),
                        help="checkpoints, figures and the default storage; default %(default)s")
    parser.add_argument("--storage", type=_storage, metavar="URL",
                        help="a journal file's path, or a database URL that several machines "
                             f"share (default: the journal file OUT/{JOURNAL})")
    parser.add_argument("--study-name", type=_naming("a study"), metavar="NAME",
                        help="default: sweep- and a hash of the sweep's settings")
    parser.add_argument("--pruner", choices=PRUNERS, default="percentile",
                        help="stop runs clearly behind the others; default %(default)s")
    add_data_option(parser)
    add_progress_option(parser, reads_images=True)
    args = parser.parse_args(argv)
    try:  # a plain `kill` is a Ctrl-C too (hw3lib.__main__): the workers stop, their runs kept
        return _sweep_command(args)
    except KeyboardInterrupt as err:
        print_error(str(err) or "interrupted: run the same command again to go on")
        return 130
    except SweepError as err:
        print_error(str(err))
        return 2
    except (DataError, ValueError) as err:  # the library names settings as TrainConfig(NAME=VALUE)
        err.args = (_phrased(str(err), [text.partition("=")[0].strip() for text in args.param]),)
        raise


def _phrased(message, swept=()):
    """``message`` with the settings it names put as --set gives them (those ``swept``, a value
    to list in their --param), and run_sweep's arguments ``out``, ``storage``, ``seeds``,
    ``trials`` and ``workers`` as the options that give them."""
    message = re.sub(r"^(out|storage|seeds|trials|workers)\b", r"--\1", message)
    message = re.sub(r"another (out|storage)\b", r"another --\1", message)
    return phrase_settings(message, lambda name, value: f"--{'param' if name in swept else 'set'} "
                                                        f"{name}={value}")


def _sweep_command(args):
    space = {}
    for name, values in map(parse_param, args.param):
        if name in space:
            raise ValueError(f"--param {name} is given twice: list all its values in one --param")
        space[name] = values
    seeds = parse_seeds(args.seeds, MAX_SEEDS, "a sweep")
    if not space and len(seeds) < 2:
        raise ValueError("nothing to sweep: name a setting (e.g. --param lr=2.5e-4,5e-4,1e-3) or "
                         "several seeds (--seeds 0-4)")
    names = {f.name for f in fields(TrainConfig)}
    fixed = {}
    for text in args.set:
        name, value = _assignment(text, "--set")
        if name.startswith("model.") and name not in names:  # as --param names a model argument
            example = json.dumps({name[6:]: _value(value)})
            raise ValueError(f"--set {text!r}: a fixed model argument goes in the model dict, e.g. "
                             f"--set 'model={example}'")
        if name not in names:
            raise ValueError(f"--set {text!r}: unknown setting {name!r}; TrainConfig has {sorted(names)}")
        if name == "seed":
            raise ValueError(f"--set {text!r}: a sweep's seeds are --seeds (e.g. --seeds {value})")
        if name in space:
            raise ValueError(f"--set {text!r}: {name} is swept by --param; give it one or the other")
        if name in fixed:
            raise ValueError(f"--set {name} is given twice: give each setting once")
        if value.startswith(("{", "[")):  # a dict or list must be JSON, not read as a string
            try:
                json.loads(value)
            except json.JSONDecodeError as err:
                raise ValueError(f"--set {text!r}: {value} is not JSON ({err.msg}): write names and "
                                 "strings in double quotes and lists in brackets, the whole in single "
                                 """quotes, e.g. --set 'model={"conv_channels": [8, 16]}'""") from None
        fixed[name] = _value(value)
    try:
        base = TrainConfig(**fixed)
    except ValueError as err:
        raise ValueError(f"--set: {err}") from None
    refuse_out(args.out, args.data, Path.home() / "runs" / "sweep")  # before any work
    storage_in = args.storage and storage_file(args.storage)  # a journal or SQLite file, which the sweep creates
    if storage_in:
        refuse_file_in_data(storage_in, args.data, "--storage", args.storage)
    for note in (more_than_cores("--workers", args.workers, "workers"),
                 course_copy_note(args.data)):
        if note:
            print(note)
    with warnings.catch_warnings():  # _report says it, in the command's words
        warnings.simplefilter("ignore", NotLearnedWarning)
        result = run_sweep(space, base, seeds=seeds, trials=args.trials, workers=args.workers,
                           out=args.out, storage=args.storage, study_name=args.study_name,
                           pruner=args.pruner, root=args.data, progress=show_progress(args),
                           on_note=print, on_reading=None if args.no_progress else announce_reading)
    try:
        return _report(args, space, result)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted after every run of sweep {result.study_name} had "
                                "finished, while its results were written: run the same command "
                                "again for them, which trains nothing more") from None


def _report(args, space, result):
    """Print the finished sweep ``result``'s table, failures, best setting and summary line and
    write its figures into ``--out``: the command's exit status."""
    print(result.table())
    for run in result.failures():
        print(f"run {run.number} ({_settings_text(run.params)}, seed {run.seed}) failed: "
              f"{_phrased(run.error, space)}")
    matplotlib.use("Agg")
    figures = [("sweep.png", result.plot())] if space else []
    if len(space) >= 2:
        figures.append(("heatmap.png", result.heatmap()))
    for name, figure in figures:  # whole or not at all: two sweeps on one --out may end together
        atomic_write(args.out / name, lambda file: figure.savefig(file, format="png", dpi=100))
    stale = []  # an earlier sweep's figure in this --out: not this sweep's, so not left beside it
    for name in {"sweep.png", "heatmap.png"} - {name for name, _ in figures}:
        with contextlib.suppress(FileNotFoundError):
            (args.out / name).unlink()
            stale.append(str(args.out / name))
    best = result.best
    if best is not None:
        print(f"best: {_settings_text(best.params) or 'the base settings'}, validation accuracy {best.mean:.4f} over "
              f"{len(best.values)} seed(s)")
        print(_checkpoints_text(result.best_checkpoints, result.checkpoints))
    wrote = ", ".join(str(args.out / name) for name, _ in figures)
    removed = f"; removed {', '.join(sorted(stale))} (an earlier sweep's)" if stale else ""
    print(f"study {result.study_name}" + (f"; wrote {wrote}" if wrote else "") + removed)
    counts = {state: sum(r.state == state for r in result.runs) for state in ("done", "pruned", "failed")}
    if result.not_learned:
        print(f"warning: {NOT_LEARNED}: {_phrased(result.not_learned, space)}", file=sys.stderr)
    print(json.dumps(dict(study=result.study_name, best=best.params if best else None,
                          val_acc=round(best.mean, 6) if best else None, runs=counts,
                          learned=result.learned)))
    if counts["done"] == 0 and counts["failed"]:
        print_error(f"every run of the sweep failed (the first: "
                    f"{_phrased(result.failures()[0].error, space)})")
        return 2
    return 3 if result.not_learned else 0


def _checkpoints_text(kept, folder):
    """The line naming the best setting's finished checkpoints in ``folder`` (``kept``, as
    :attr:`~hw3lib.sweep_results.SweepResult.best_checkpoints` gives them): a run trained on another machine of the storage, or with
    another --out, left its file there."""
    here = [path for _, path, trained in kept if trained is not None]
    elsewhere = (f"{len(kept) - len(here)} of its {len(kept)} runs left no finished checkpoint in {folder} "
                 "(a run trained on another machine, or with another --out, keeps it there)")
    if not here:
        return elsewhere
    shown = ", ".join(map(str, here[:3])) + (f" and {len(here) - 3} more" if len(here) > 3 else "")
    if len(here) < len(kept):
        return f"its runs' checkpoints here (`python -m hw3lib predict` takes any): {shown}; {elsewhere}"
    return f"its runs' checkpoints, one per seed (`python -m hw3lib predict` takes any): {shown}"


def _settings_text(params):
    """Settings in the table's words (:func:`~hw3lib.tables.value_text`): ``hflip=no, lr=0.00123``."""
    return ", ".join(f"{k}={value_text(v)}" for k, v in params.items())
