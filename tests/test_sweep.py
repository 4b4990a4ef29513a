"""hw3lib.sweep and the sweep command: grids and sampled searches over TrainConfig fields run by
worker processes through Optuna, on a journal file or a real PostgreSQL server; interrupted and
killed sweeps resume; failed runs are recorded; bad settings are refused before any work.

Every sweep here trains a tiny LeNet-5 on a tiny generated dataset (60 images per class)."""
import argparse
import contextlib
import errno
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import types
import tomllib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import matplotlib.figure
import numpy as np
import optuna
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from datasets import count_decodes, make_root, name_at_random, write_banded_root, write_png, write_videos
from conftest import missing
from hw3lib import cores, data, out_folders
from hw3lib import results
from hw3lib import runs as runs_module
from hw3lib import sweep as sweep_module
from hw3lib import sweep_cli, sweep_study
from hw3lib.__main__ import main as hw3lib_main
from hw3lib.atomic import INTERRUPTS, claimed
from hw3lib.checkpoint import load_checkpoint
from hw3lib.config import TrainConfig
from hw3lib.engine import engine_code
from hw3lib.images import DataError
from hw3lib.plots import plot_sweep, plot_sweep_heatmap
from hw3lib.runs import checkpoint_path, load_or_train
from hw3lib.sweep import JOURNAL, Sweep, load_sweep, open_storage, open_study, run_sweep, work
from hw3lib.sweep_results import Run, Setting, SweepResult
from hw3lib.sweep_space import setting_label
from hw3lib.train import OneBatchWarning

REPO = Path(__file__).resolve().parents[1]
TINY = dict(conv_channels=[3, 4], hidden=[16, 8])
BASE = TrainConfig(epochs=4, batch_size=8, lr=3e-3, model=TINY)
TINY_SETS = ["--set", "batch_size=8", "--set", 'model={"conv_channels": [3, 4], "hidden": [16, 8]}']


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_banded_root(tmp_path_factory.mktemp("banded"))


def trials_of(storage, name):
    return optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials(deepcopy=False)


def assert_every_run_done_once(trials, sweep):
    """Each (setting, seed) of ``sweep`` has exactly one COMPLETE trial, and nothing else is left."""
    done = [(json.dumps(t.params, sort_keys=True), t.user_attrs["seed"]) for t in trials
            if t.state == TrialState.COMPLETE]
    expected = {(json.dumps(s, sort_keys=True), seed) for s in sweep.settings() for seed in sweep.seeds}
    assert sorted(done) == sorted(expected)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def command(*args, out, root):
    return [sys.executable, "-m", "hw3lib", "sweep", *args, "--out", str(out), "--data", str(root),
            "--no-progress"]


def environment():
    return {**os.environ, "PYTHONPATH": str(REPO)}


# --- a grid on two worker processes --------------------------------------------------------

def test_two_workers_on_the_journal_finish_a_grid_each_run_once_and_a_rerun_trains_nothing(tmp_path, root):
    space, base = {"lr": [3e-3, 1e-2, 3e-2], "hflip": [True, False]}, replace(BASE, epochs=12)
    # 12 epochs: long enough that the second worker starts before the first has done them all
    result = run_sweep(space, base, seeds=[0, 1], workers=2, out=tmp_path, root=root,
                       pruner="none", progress=False)
    sweep = Sweep.define(space, base, (0, 1), pruner="none")
    trials = trials_of(tmp_path / JOURNAL, result.study_name)
    assert len(trials) == 12 == sweep.total
    assert_every_run_done_once(trials, sweep)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers took runs
    assert len(list((tmp_path / "checkpoints" / runs_module.run_key(runs_module.dataset_sha256(root))).glob("*.npz"))) == 12
    assert [r.state for r in result.runs] == ["done"] * 12
    for run in result.runs:
        assert run.epochs == 12 and run.val_acc == max(run.curve) and len(run.curve) == 12
    rows = str(result.table()).splitlines()
    assert rows[0].split() == ["lr", "hflip", "val", "acc", "spread", "min", "max",
                               "val", "loss", "kept", "epochs", "s/run", "runs"]
    best_row = rows[1].split()  # best first: the loss and kept epochs of the best setting's runs
    assert best_row[6:8] == [f"{np.mean([r.val_loss for r in result.best.runs]):.4f}",
                             ",".join(str(r.best_epoch) for r in result.best.runs)]
    untimed = str(result.table(timings=False)).splitlines()
    assert "s/run" not in untimed[0] and [r.split()[:2] for r in untimed] == [r.split()[:2] for r in rows]
    assert len(rows) == 7 and all(row.endswith(" 2 done") for row in rows[1:])
    best = result.best
    assert best.mean == max(s.mean for s in result.settings()) and len(best.values) == 2
    assert best.config == replace(base, **best.params)

    again = run_sweep(space, base, seeds=[0, 1], workers=2, out=tmp_path, root=root, pruner="none",
                      progress=False)
    assert again.runs == result.runs
    assert [(t.number, t.datetime_complete) for t in trials_of(tmp_path / JOURNAL, result.study_name)] \
        == [(t.number, t.datetime_complete) for t in trials]


def test_notebook_06_studies_find_the_runs_of_a_sweep_in_its_checkpoint_folder(tmp_path, root, monkeypatch):
    """A notebook sweeps first (every core), then test_over_seeds and load_or_train load each
    run from the checkpoints, training nothing."""
    grid = {"hflip": [False, True]}
    result = run_sweep(grid, BASE, seeds=[0, 1], workers=2, out=tmp_path / "sweep",
                       checkpoints=tmp_path / "runs", root=root, pruner="none", progress=False)
    monkeypatch.setattr(runs_module, "fit", lambda *args, **kwargs: pytest.fail("trained again"))
    for run in result.runs:
        config = replace(BASE, hflip=run.params["hflip"], seed=run.seed)
        loaded = load_or_train(config, checkpoint_path(config, tmp_path / "runs"), root=root)
        assert loaded.history["val_acc"] == run.curve and loaded.best_epoch == run.best_epoch
    runs, _ = results.test_over_seeds({"best": result.best.config}, [0, 1], root=root,
                                      folder=tmp_path / "runs")
    assert [r.test_evaluations for r, _ in runs["best"].values()] == [1, 1]


def test_a_sweep_of_seeds_alone_repeats_the_base_settings(tmp_path, root):
    result = run_sweep({}, BASE, seeds=[0, 1, 2], workers=2, out=tmp_path, root=root, progress=False)
    [setting] = result.settings()
    assert setting.params == {} and setting.config == BASE and [r.seed for r in setting.runs] == [0, 1, 2]
    assert result.best == setting and len(str(result.table()).splitlines()) == 2
    assert setting.spread == pytest.approx(np.std(setting.values, ddof=1))


def test_the_command_names_the_base_settings_best_of_a_sweep_of_seeds_alone(tmp_path, root, capsys):
    argv = ["sweep", "--seeds", "0-1", "--set", "epochs=2", "--set", "lr=1e-2", *TINY_SETS, "--out", str(tmp_path),
            "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) == 0
    out = capsys.readouterr().out
    assert "\nbest: the base settings, validation accuracy " in out
    # the best setting's checkpoints are named, one per seed, and predict takes them
    [line] = [line for line in out.splitlines() if line.startswith("its runs' checkpoints")]
    files = line.split(": ", 1)[1].split(", ")
    assert len(files) == 2 and all(Path(f).is_file() for f in files)
    assert hw3lib_main(["predict", files[1], str(next(Path(root).rglob("*.png")))]) == 0
    assert hw3lib_main(["predict", str(tmp_path), str(next(Path(root).rglob("*.png")))]) == 2
    assert "it is a sweep's --out, which keeps one checkpoint per run under" in capsys.readouterr().err


def test_a_sweep_whose_trials_another_sweep_raised_meanwhile_ends_with_them_all(tmp_path, root, monkeypatch):
    """Another sweep of the same space with more --trials, started while this one ran, queued
    the trials it lacked, which this one's workers ran too: done counted past this sweep's own
    total, and it ended in "the workers stopped ... with -1 of 2 runs ... not done"."""
    space = {"lr": FloatDistribution(1e-3, 3e-2, log=True)}
    opened = sweep_module.open_study

    def raised_meanwhile(sweep, storage, *args):
        study = opened(sweep, storage, *args)
        opened(Sweep.define(space, BASE, (0,), 3, pruner="none"), storage, *args)  # `--trials 3`
        return study

    monkeypatch.setattr(sweep_module, "open_study", raised_meanwhile)
    progress = []
    result = run_sweep(space, BASE, trials=2, workers=1, out=tmp_path, root=root, progress=False,
                       pruner="none", on_progress=lambda done, total: progress.append((done, total)))
    assert len(result.runs) == 3 and progress[-1] == (3, 3)


def test_a_sampled_search_draws_each_setting_once_and_runs_it_with_every_seed(tmp_path, root):
    space = {"lr": FloatDistribution(1e-3, 3e-2, log=True), "hflip": [True, False]}
    result = run_sweep(space, BASE, seeds=[0, 1], trials=3, workers=2, out=tmp_path, root=root,
                       progress=False)
    settings = result.settings()
    assert len(settings) == 3 and len(result.runs) == 6
    for setting in settings:
        assert sorted(r.seed for r in setting.runs) == [0, 1]
        assert 1e-3 <= setting.params["lr"] <= 3e-2 and setting.params["hflip"] in (True, False)
    assert all(r.state in ("done", "pruned") for r in result.runs)


# --- failures, pruning, refusals -------------------------------------------------------------

def run_here(tmp_path, root, space, base=BASE, seeds=(0, 1), pruner="none"):
    """Create the study and run its one worker in this process."""
    sweep = Sweep.define(space, base, seeds, pruner=pruner)
    storage = tmp_path / JOURNAL
    study = open_study(sweep, storage)
    work(storage, study.study_name, root=root, checkpoints=tmp_path / "checkpoints")
    return load_sweep(storage, study.study_name)


def test_a_diverging_run_is_recorded_as_failed_with_its_reason_and_the_others_finish(tmp_path, root):
    result = run_here(tmp_path, root, {"lr": [1e-2, 1e300]}, replace_base(optimizer="sgd"))
    by_lr = {s.params["lr"]: s for s in result.settings()}
    assert [r.state for r in by_lr[1e-2].runs] == ["done", "done"]
    failed = by_lr[1e300].runs  # the first step's weights overflow
    assert [r.state for r in failed] == ["failed", "failed"] and result.failures() == failed
    for run in failed:
        assert run.error.startswith("TrainingError: the weights stopped being finite at epoch 1, batch 1/")
        assert "Try a smaller learning rate" in run.error and run.val_acc is None
    assert result.best.params == {"lr": 1e-2}
    assert str(result.table()).splitlines()[-1].split()[-2:] == ["2", "failed"]


def test_a_worker_reads_and_hashes_the_data_once_not_once_a_run_and_again_once_a_file_changed(
        tmp_path, root, monkeypatch):
    """Each run read and hashed every file of the data again: seconds a run for a large folder.
    A file written between runs must still be read and hashed again, its runs stamped so."""
    data = shutil.copytree(root, tmp_path / "data")
    reads, fits, read_images, fit = [], [], TrainConfig.read_images, runs_module.fit

    def hashed(where):
        reads.append("hash")
        return sweep_module.dataset_sha256(where)

    def read(self, *args, **kwargs):
        reads.append("read")
        return read_images(self, *args, **kwargs)

    def fitted(*args, **kwargs):
        fits.append(kwargs["data_sha256"])
        if len(fits) == 2:  # after the second run: a file written
            write_png(data / "Data_train" / "A" / "A_train_0.png", 200)
        return fit(*args, **kwargs)

    monkeypatch.setattr(runs_module, "_KNOWN", {})  # as a fresh worker
    monkeypatch.setattr(runs_module, "dataset_sha256", hashed)
    monkeypatch.setattr(TrainConfig, "read_images", read)
    monkeypatch.setattr(runs_module, "fit", fitted)
    result = run_here(tmp_path, data, {"lr": [1e-3, 2e-3, 3e-3]}, seeds=(0,))
    assert [r.state for r in result.runs] == ["done"] * 3
    assert reads == ["hash", "read", "hash", "read"]  # the first run's, and the third's after the change
    assert fits[0] == fits[1] != fits[2] == sweep_module.dataset_sha256(data)


def test_a_worker_decodes_the_images_once_for_all_seeds_and_trains_each_as_on_its_own_loaded_data(
        tmp_path, root, monkeypatch):
    """Each seed draws another validation split, and a worker read and decoded every image again
    for each (about 10 s a run for 25,000 images). It decodes them once and splits them per seed;
    each run's checkpoint is the one trained on the data loaded for its seed alone, bit for bit."""
    monkeypatch.setattr(runs_module, "_KNOWN", {})  # as a fresh worker
    decoded = count_decodes(monkeypatch)
    result = run_here(tmp_path, root, {}, seeds=(0, 1, 2))
    assert [r.state for r in result.runs] == ["done"] * 3
    files = sorted(path.resolve() for path in root.glob("*/*/*.png"))
    assert sorted(path.resolve() for path in decoded) == files, f"{len(decoded)} decoded of {len(files)} files"
    for seed in (0, 1, 2):
        config = replace(BASE, seed=seed)
        swept = load_checkpoint(checkpoint_path(config, tmp_path / "checkpoints"))
        alone = load_checkpoint(load_or_train(config, tmp_path / "alone" / f"{seed}.npz",
                                              data=config.load_data(root)).checkpoint_path)
        for name in ("params", "best_params", "optimizer"):
            mine, theirs = getattr(swept, name), getattr(alone, name)
            assert mine.keys() == theirs.keys() and all(
                mine[k].tobytes() == theirs[k].tobytes() for k in mine), (seed, name)
        assert swept.mean.tobytes() == alone.mean.tobytes() and swept.std.tobytes() == alone.std.tobytes()
        assert {k: v for k, v in swept.history.items() if k != "seconds"} == {
            k: v for k, v in alone.history.items() if k != "seconds"}


def test_a_worker_decodes_the_images_for_each_seed_where_keeping_them_would_cost_too_much_memory(
        tmp_path, root, monkeypatch):
    """Kept beside a run's split, the decoded images hold the training images twice: above
    KEEP_IMAGES_BYTES a worker reads them again for each seed, as before, and trains the same."""
    monkeypatch.setattr(runs_module, "_KNOWN", {})
    monkeypatch.setattr(runs_module, "KEEP_IMAGES_BYTES", 0)
    decoded = count_decodes(monkeypatch)
    result = run_here(tmp_path, root, {}, seeds=(0, 1, 2))
    assert [r.state for r in result.runs] == ["done"] * 3
    assert "images" not in runs_module._KNOWN
    files = sorted(path.resolve() for path in root.glob("*/*/*.png"))
    assert sorted(path.resolve() for path in decoded) == sorted(files * 3)


def replace_base(**changes):
    return TrainConfig(**{**BASE.to_dict(), **changes})


def test_runs_clearly_behind_are_pruned(tmp_path, root):
    """Runs that stay at chance (a learning rate far too small) fall below the 25th percentile of
    the finished runs and stop early; the others train every epoch."""
    result = run_here(tmp_path, root, {"lr": [3e-3, 1e-2, 1e-8]}, replace_base(epochs=6),
                      pruner="percentile")
    by_lr = {s.params["lr"]: s for s in result.settings()}
    for lr in (3e-3, 1e-2):
        assert [(r.state, r.epochs) for r in by_lr[lr].runs] == [("done", 6)] * 2
    assert [r.state for r in by_lr[1e-8].runs] == ["pruned"] * 2
    assert all(r.epochs < 6 for r in by_lr[1e-8].runs)
    assert "2 pruned" in str(result.table())
    one_epoch = run_here(tmp_path / "one", root, {"lr": [3e-3, 1e-2, 1e-8]}, replace_base(epochs=1),
                         pruner="percentile")
    assert [r.state for r in one_epoch.runs] == ["done"] * 6  # nothing to save at the last epoch


@pytest.mark.parametrize("pruner, stopped", [("percentile", [0.15]), ("median", [0.15, 0.22])])
def test_the_percentile_pruner_stops_the_bottom_quarter_and_the_median_the_bottom_half(pruner, stopped):
    sweep = Sweep.define({"lr": [1e-3, 1e-2]}, replace(BASE, epochs=4), pruner=pruner)
    study = optuna.create_study(direction="maximize", pruner=sweep.pruner_for_study())
    for value in (0.1, 0.2, 0.3, 0.4):  # finished runs at epoch 1: quartiles 0.175, 0.25, 0.325
        done = study.ask()
        done.report(value, 1)
        study.tell(done, value)
    pruned = []
    for value in (0.15, 0.22, 0.30, 0.36):
        run = study.ask()
        run.report(value, 1)
        if run.should_prune():
            pruned.append(value)
        study.tell(run, state=TrialState.PRUNED)  # the finished runs stay the four above
    assert pruned == stopped


def test_the_pruner_counts_done_runs_only_and_compares_a_runs_best_so_far():
    """README: once four runs are done (pruned and failed ones not counted), a run whose best
    validation accuracy so far is in the bottom quarter at that epoch is stopped."""
    study = optuna.create_study(direction="maximize", pruner=Sweep.define(
        {"lr": [1e-3, 1e-2]}, replace(BASE, epochs=4)).pruner_for_study())
    for state in [TrialState.PRUNED] * 3 + [TrialState.FAIL] * 3 + [TrialState.COMPLETE] * 3:
        ended = study.ask()
        ended.report(0.9, 1)
        ended.report(0.9, 2)
        study.tell(ended, 0.9 if state == TrialState.COMPLETE else None, state=state)
    behind = study.ask()
    behind.report(0.1, 1)
    assert not behind.should_prune()  # three done runs
    done = study.ask()
    done.report(0.9, 1)
    done.report(0.9, 2)
    study.tell(done, 0.9)
    assert behind.should_prune()
    fell_back = study.ask()
    fell_back.report(0.95, 1)
    fell_back.report(0.1, 2)
    assert not fell_back.should_prune()


@pytest.mark.parametrize("epochs, first", [(4, 1), (5, 2), (6, 2), (24, 6)])
def test_the_pruner_stops_a_run_only_once_a_quarter_of_its_epochs_are_done(epochs, first):
    pruner = Sweep.define({"lr": [1e-3, 1e-2]}, replace(BASE, epochs=epochs)).pruner_for_study()
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(4):  # finished runs far ahead at every epoch
        ahead = study.ask()
        for epoch in range(1, epochs + 1):
            ahead.report(0.9, epoch)
        study.tell(ahead, 0.9)
    behind = study.ask()
    for epoch in range(1, epochs + 1):
        behind.report(0.1, epoch)
        if behind.should_prune():
            break
    assert epoch == first


@pytest.mark.parametrize("space, kwargs, message", [
    ({"lr": [1e-3, 0.0]}, {}, "lr=0.0: lr must be a positive finite number"),
    ({"lr": FloatDistribution(0.0, 1e-2)}, {"trials": 2}, "lr=0.0: lr must be a positive finite number"),
    ({"model.kernel_size": [5, 40]}, {}, "model.kernel_size=40: LeNet5 with kernel_size=40 does not fit"),
    ({"optimiser": ["adam"]}, {}, "unknown setting 'optimiser'"),
    # a list argument of LeNet5 is fixed for every run: the sweep varies single values
    ({"model.conv_channels": [8, 16]}, {}, "model.conv_channels: a sweep varies single values, and "
     "conv_channels is a list; fix it for every run in the base settings' model"),
    ({"model.hidden": [(16, 8), (8, 4)]}, {}, "model.hidden: a sweep varies single values"),
    ({"seed": [0, 1]}, {}, "seed: seeds repeat every setting"),
    # the model is built for the data's size: another input_size fails every run
    ({"model.input_size": [16, 24]}, {}, "model.input_size: the model takes the images' size; to "
     "try other sizes, sweep image_size"),
    # the validation split is what every setting is scored on: the random split's leaky images
    # would win (its validation loss is far lower), a smaller share is a noisier score
    ({"split": ["blocked", "random"]}, {}, "split: a sweep scores every setting on the validation split"),
    ({"lr": [1e-3], "val_fraction": [0.2, 0.3]}, {},
     "val_fraction: a sweep scores every setting on the validation split"),
    ({"lr": []}, {}, "lr: give a non-empty list"),
    ({"lr": [1e-3, 1e-3]}, {}, "lr lists a value twice"),
    ({"lr": FloatDistribution(1e-4, 1e-2)}, {}, "trials: a sampled search needs the number"),
    ({"lr": [1e-3]}, {"trials": 5}, "trials: a grid runs each of its settings once"),
    ({"epochs": IntDistribution(1, 3), "hflip": [True, False]}, {"trials": 7},
     "trials: the space holds 6 settings in all, fewer than the 7 trials asked for"),
    ({"lr": [1e-3]}, {"seeds": []}, "seeds must be a non-empty list"),
    ({"lr": [1e-3]}, {"seeds": 3}, "seeds must be a list of seeds, e.g. range(3"),  # iterated an int
    ({"lr": [1e-3]}, {"seeds": [-1]}, "seed=-1: seed must be an integer >= 0"),
    ({"lr": [1e-3]}, {"workers": 0}, "workers must be an integer >= 1"),
    ({"lr": [1e-3]}, {"pruner": "hyperband"}, "pruner must be one of"),
])
def test_bad_settings_are_refused_before_any_work_naming_the_setting(tmp_path, root, space, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        run_sweep(space, BASE, out=tmp_path / "out", root=root, progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kernels, trials", [([3, 9], None), (IntDistribution(3, 9), 2)])
def test_a_model_setting_that_does_not_fit_the_images_own_size_is_refused_before_any_work(
        tmp_path, kernels, trials):
    # the images are 20x20: kernel 9 fits 32x32 inputs, not these
    for split in ("train", "test"):
        for name in "AB":
            for i in range(3):
                write_png(tmp_path / "data" / split / name / f"{i}.png", 10 * i, size=(20, 20))
    with pytest.raises(ValueError, match=r"model.kernel_size=9: LeNet5 with kernel_size=9 does not "
                                         r"fit 20x20 inputs"):
        run_sweep({"model.kernel_size": kernels}, BASE, trials=trials, out=tmp_path / "out",
                  root=tmp_path / "data", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_fixed_model_input_size_that_is_not_the_images_is_refused_before_any_work(tmp_path, root):
    base = TrainConfig(epochs=1, batch_size=8, model={**TINY, "input_size": 64})
    with pytest.raises(ValueError, match=r"model input_size 64 differs from the images' size, \d+x\d+"):
        run_sweep({"lr": [1e-3, 2e-3]}, base, out=tmp_path / "out", root=root, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, values, why, fix", [
    ("split", ["blocked", "random"], "the random split's images are near-copies of training frames",
     "TrainConfig(split='blocked')"),
    ("val_fraction", [0.2, 0.3], "a noisier score wins a max more often", "TrainConfig(val_fraction=0.3)"),
])
def test_a_swept_validation_setting_is_refused_saying_why_and_what_to_fix_instead(name, values, why, fix):
    with pytest.raises(ValueError) as err:
        Sweep.define({name: values}, BASE)
    assert why in str(err.value) and f"Fix it for every run, e.g. {fix}" in str(err.value)
    with pytest.raises(ValueError, match="unknown setting 'optimiser'") as err:
        Sweep.define({"optimiser": ["adam"]}, BASE)
    assert "'lr'" in str(err.value) and f"'{name}'" not in str(err.value)  # sweepable ones only
    assert "'kernel_size'" in str(err.value)
    assert "'conv_channels'" not in str(err.value) and "'hidden'" not in str(err.value)  # lists


def test_workers_that_stop_at_once_are_said_to_need_the_main_guard(tmp_path, root, monkeypatch):
    class Dead:  # a worker process that exited at once, as one without the __main__ guard does
        exitcode = 1

        def is_alive(self):
            return False

    monkeypatch.setattr(sweep_module, "_start_workers", lambda count, *args: [Dead()] * count)
    with pytest.raises(sweep_module.SweepError, match=r"the workers stopped \(exit status \[1\]\) "
                       r"with 1 of 1 runs .* not done: run the sweep again to go on; workers that "
                       r"stop at once, from a script, mean it lacks `if __name__ == '__main__':`"):
        run_sweep({"lr": [1e-3]}, BASE, out=tmp_path, root=root, progress=False, workers=1)
    Dead.exitcode = -9  # killed (kill -9, the kernel out of memory): a script's guard is no cause
    with pytest.raises(sweep_module.SweepError) as err:
        run_sweep({"lr": [1e-3]}, BASE, out=tmp_path, root=root, progress=False, workers=1)
    assert str(err.value).endswith("(exit status [-9]) with 1 of 1 runs of "
                                   f"{Sweep.define({'lr': [1e-3]}, BASE).name} not done: run the sweep again to go on")


@pytest.mark.filterwarnings("ignore::hw3lib.train.OneBatchWarning")  # a few images, fewer than a batch
def test_images_the_base_model_cannot_take_are_refused_at_once_unless_a_swept_setting_changes_it(
        tmp_path, monkeypatch):
    small = make_root(tmp_path / "small")
    for image in small.glob("*/*/*.png"):
        write_png(image, size=(12, 12))  # LeNet5's 5x5 kernels need 16x16
    with pytest.raises(ValueError, match=r"does not fit 12x12 inputs.*TrainConfig\(image_size=16\)"):
        run_sweep({"lr": [1e-3]}, BASE, out=tmp_path / "a", root=small, progress=False, workers=1)
    monkeypatch.setattr(sweep_module, "_start_workers", lambda count, *args: [])  # past the data checks
    for space in ({"image_size": [16, 20]}, {"model.kernel_size": [3]}):
        with pytest.raises(sweep_module.SweepError, match="the workers stopped"):
            run_sweep(space, BASE, out=tmp_path / "b", root=small, progress=False, workers=1)


@pytest.mark.filterwarnings("ignore::hw3lib.train.OneBatchWarning")  # a few images, fewer than a batch
def test_images_of_mixed_sizes_pass_the_data_check_when_image_size_is_swept(tmp_path, monkeypatch):
    mixed = make_root(tmp_path / "mixed")
    write_png(sorted(mixed.glob("*/*/*.png"))[-1], size=(40, 36))
    with pytest.raises(DataError, match="images of different sizes"):
        run_sweep({"lr": [1e-3]}, BASE, out=tmp_path / "a", root=mixed, progress=False, workers=1)
    monkeypatch.setattr(sweep_module, "_start_workers", lambda count, *args: [])  # past the data checks
    with pytest.raises(sweep_module.SweepError, match="the workers stopped"):
        run_sweep({"image_size": [32, 36]}, BASE, out=tmp_path / "b", root=mixed, progress=False,
                  workers=1)
    assert Sweep.define({"image_size": [32, 36], "lr": [1e-3]}, BASE).data_config() == replace(
        BASE, image_size=(32, 32))


def test_a_study_name_holding_another_sweep_is_refused(tmp_path, root):
    storage = tmp_path / JOURNAL
    open_study(Sweep.define({"lr": [1e-3, 1e-2]}, BASE), storage, "mine")
    with pytest.raises(ValueError, match=r"the study 'mine' runs another sweep \(swept lr: "):
        open_study(Sweep.define({"lr": [1e-3, 3e-2]}, BASE), storage, "mine")
    with pytest.raises(ValueError, match="the study 'mine' runs another sweep"):
        open_study(Sweep.define({"lr": [1e-3, 1e-2]}, BASE, seeds=(0, 1)), storage, "mine")
    with pytest.raises(ValueError) as refused:  # each setting that differs, not two whole definitions
        open_study(Sweep.define({"lr": [1e-3, 1e-2], "hflip": [True]}, replace(BASE, epochs=5)), storage, "mine")
    assert str(refused.value) == (
        "the study 'mine' runs another sweep (epochs: 4 there, 5 here; swept hflip: not swept there, "
        "True here): give the same settings or another study name (--study-name)")
    with pytest.raises(ValueError) as refused:  # as --param takes them, not Optuna's repr
        open_study(Sweep.define({"lr": [1e-3, 3e-2]}, BASE), storage, "mine")
    assert "(swept lr: 0.001,0.01 there, 0.001,0.03 here)" in str(refused.value)
    open_study(Sweep.define({"lr": FloatDistribution(1e-4, 1e-2, log=True)}, BASE, trials=2), storage, "ranged")
    with pytest.raises(ValueError) as refused:
        open_study(Sweep.define({"lr": FloatDistribution(1e-4, 1e-1, log=True)}, BASE, trials=2), storage,
                   "ranged")
    assert "(swept lr: 0.0001:0.01:log there, 0.0001:0.1:log here)" in str(refused.value)
    for blank in ("", "  ", 3):  # "" was the default name, silently
        with pytest.raises(ValueError, match=f"study_name must name a study \\(or be None: sweep-"):
            open_study(Sweep.define({"lr": [1e-3, 1e-2]}, BASE), storage, blank)


@pytest.mark.filterwarnings("ignore::hw3lib.sweep.NotLearnedWarning")  # its one-epoch runs learn nothing, as the test needs no more
def test_a_study_of_other_data_or_other_code_is_refused(tmp_path, root):
    storage, sweep = tmp_path / JOURNAL, Sweep.define({"lr": [1e-3, 1e-2]}, BASE)
    open_study(sweep, storage, "mine", "a" * 64, "hw3lib 000000000000")
    open_study(sweep, storage, "mine", "a" * 64, "hw3lib 000000000000")  # the same: joined
    with pytest.raises(ValueError, match="the study 'mine' was run on other data .* or run a sweep "
                       r"of this data under another study name \(--study-name\)"):
        open_study(sweep, storage, "mine", "b" * 64, "hw3lib 000000000000")
    with pytest.raises(ValueError, match=r"the study 'mine' was run by other code \(hw3lib "
                       r"000000000000; this code is hw3lib 111111111111\), .* revert it, or run this "
                       r"code's sweep under another study name \(--study-name\)"):
        open_study(sweep, storage, "mine", "a" * 64, "hw3lib 111111111111")
    run_sweep({"lr": [1e-3]}, replace(BASE, epochs=1), out=tmp_path / "out", root=root, progress=False,
              workers=1)
    study = optuna.load_study(study_name=Sweep.define({"lr": [1e-3]}, replace(BASE, epochs=1)).name,
                              storage=open_storage(tmp_path / "out" / JOURNAL))
    assert study.user_attrs["code"] == engine_code()
    ours = tmp_path / "out" / "checkpoints" / runs_module.run_key(runs_module.dataset_sha256(root))
    before = {p.name: p.read_bytes() for p in ours.iterdir()}
    other = write_banded_root(tmp_path / "other", seed=1)  # other data, another study, same --out
    other_key = runs_module.run_key(runs_module.dataset_sha256(other))
    with pytest.raises(ValueError, match="was run on other data"):  # the same study: refused
        run_sweep({"lr": [1e-3]}, replace(BASE, epochs=1), out=tmp_path / "out", root=other,
                  progress=False, workers=1)
    assert not (tmp_path / "out" / "checkpoints" / other_key).exists()  # no empty run folder left
    run_sweep({"lr": [1e-3]}, replace(BASE, epochs=1), out=tmp_path / "out", root=other,
              study_name="other data", progress=False, workers=1)
    assert {p.name: p.read_bytes() for p in ours.iterdir()} == before  # not overwritten
    assert len(list((tmp_path / "out" / "checkpoints" / runs_module.run_key(runs_module.dataset_sha256(other))).glob("*.npz"))) == 1


def test_an_out_or_checkpoint_folder_that_cannot_be_written_is_refused_before_any_run(tmp_path, root,
                                                                                      monkeypatch, capsys):
    """Before the images are read (it was after them and their hashing: minutes of a large
    folder), creating nothing; a full disk, whose room the data tells, once they are."""
    storage = tmp_path / "elsewhere" / JOURNAL
    monkeypatch.setattr(sweep_module, "_start_workers", lambda *args: pytest.fail("runs were taken"))

    class ReadOnly:  # folders named ro* read-only (tests run as root: chmod does not make one)
        mkdtemp = staticmethod(tempfile.mkdtemp)

        @staticmethod
        def TemporaryFile(dir):
            if not Path(dir).name.startswith("ro"):
                return tempfile.TemporaryFile(dir=dir)
            raise OSError(30, "Read-only file system", str(dir))

    with monkeypatch.context() as patched:
        patched.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("an image was read"))
        with pytest.raises(ValueError, match=r"^out /proc/hw3-sweep: cannot write there \(No such file"):
            run_sweep({"lr": [1e-3]}, BASE, out="/proc/hw3-sweep", storage=storage, root=root, progress=False)
        assert hw3lib_main(["sweep", "--param", "lr=1e-3", "--out", "/proc/hw3-sweep", "--data", str(root)]) == 2
        assert capsys.readouterr().err == ("error: --out /proc/hw3-sweep: cannot write there (No such file or "
                                           "directory); choose a writable folder with room for the checkpoints\n")
        (tmp_path / "out2").mkdir()
        (tmp_path / "out2" / "checkpoints").touch()
        with pytest.raises(ValueError, match=r"^out .*/out2: .*/out2/checkpoints is a file, not a folder"):
            run_sweep({"lr": [1e-3]}, BASE, out=tmp_path / "out2", storage=storage, root=root, progress=False)
        patched.setattr(out_folders, "tempfile", ReadOnly)
        (tmp_path / "ro-out").mkdir()
        (tmp_path / "ro").mkdir()
        with pytest.raises(ValueError, match=r"^out .*/ro-out: cannot write there \(Read-only file system\); "
                           "choose a writable folder"):
            run_sweep({"lr": [1e-3]}, BASE, out=tmp_path / "ro-out", storage=storage, root=root, progress=False)
        with pytest.raises(ValueError, match=r"^checkpoints .*/ro: cannot write there \(Read-only"):
            run_sweep({"lr": [1e-3]}, BASE, out=tmp_path / "out", checkpoints=tmp_path / "ro", storage=storage,
                      root=root, progress=False)
        assert not (tmp_path / "out").exists()

    class NoRoom(io.BytesIO):
        def write(self, data):
            raise OSError(28, "No space left on device")

    class Full:  # folders named full* on a full disk: an empty file fits, its bytes do not
        mkdtemp = staticmethod(tempfile.mkdtemp)

        @staticmethod
        def TemporaryFile(dir):
            return NoRoom() if Path(dir).name.startswith("full") else tempfile.TemporaryFile(dir=dir)

    monkeypatch.setattr(out_folders, "tempfile", Full)
    with pytest.raises(ValueError, match=r"^out .*/full: cannot write there \(No space left on device\); "
                       "choose a writable folder with room"):
        run_sweep({"lr": [1e-3]}, BASE, out=tmp_path / "full", storage=storage, root=root, progress=False)
    monkeypatch.undo()
    assert optuna.get_all_study_names(open_storage(storage)) == []  # no study, no run failed


@pytest.mark.parametrize("storage, error", [
    ("/proc/hw3-sweep/" + JOURNAL, "--storage /proc/hw3-sweep/{journal}: cannot create the journal (No such "
     "file or directory); choose a writable folder\n"),
    ("{tmp}/a_file/" + JOURNAL, "--storage {tmp}/a_file/{journal}: {tmp}/a_file is a file, not a folder; "
     "choose another --storage\n"),
    ("{tmp}/a_file", "--storage {tmp}/a_file is not an Optuna journal: give the journal a sweep wrote "
     "(OUT/{journal}) or a database URL\n"),
    ("sqlite:////proc/hw3-sweep/sweep.db", "--storage sqlite:////proc/hw3-sweep/sweep.db: cannot create the "
     "database (No such file or directory); choose a writable folder\n"),
    ("sqlite://", "--storage sqlite:// is a database in this process's memory, which the worker processes "
     "cannot open: "),
    ("postgres://me:secret@127.0.0.1:1/db", "--storage postgres://me@127.0.0.1:1/db: SQLAlchemy knows no "
     "database 'postgres': "),
    ("postgresql://me:secret@127.0.0.1:1/db", "cannot open the storage postgresql://me@127.0.0.1:1/db: "),
])
def test_a_storage_that_cannot_be_created_or_opened_is_refused_before_any_image_is_read(
        tmp_path, root, monkeypatch, capsys, storage, error):
    """It was opened after the images were read and hashed: minutes of a large folder."""
    (tmp_path / "a_file").write_text("not a journal\n")
    monkeypatch.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("an image was read"))
    storage = storage.format(tmp=tmp_path)
    assert hw3lib_main(["sweep", "--param", "lr=1e-3", "--out", str(tmp_path / "out"), "--storage", storage,
                        "--data", str(root)]) == 2
    err = capsys.readouterr().err  # nor the line announcing the read
    assert err.startswith("error: " + error.format(tmp=tmp_path, journal=JOURNAL)) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_study_of_another_sweep_or_code_or_a_damaged_journal_is_refused_before_any_image_is_read(
        tmp_path, root, monkeypatch):
    """They were found after the images were read and hashed, minutes of a large folder; only a
    study of other data needs the images (their SHA-256) to be told."""
    out = tmp_path / "out"
    out.mkdir()
    open_study(Sweep.define({"lr": [1e-3, 1e-2]}, BASE), out / JOURNAL, "mine")
    open_study(Sweep.define({"lr": [1e-3, 1e-2]}, BASE), out / JOURNAL, "coded", None, "hw3lib 000000000000")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / JOURNAL).write_text("not a journal\n")
    monkeypatch.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("an image was read"))
    with pytest.raises(ValueError, match=r"^the study 'mine' runs another sweep \(swept lr: "):
        run_sweep({"lr": [1e-3]}, BASE, out=out, study_name="mine", root=root, progress=False)
    with pytest.raises(ValueError, match=r"^the study 'coded' was run by other code \(hw3lib 000000000000; "):
        run_sweep({"lr": [1e-3, 1e-2]}, BASE, out=out, study_name="coded", root=root, progress=False)
    with pytest.raises(ValueError) as refused:  # not --storage's advice: none was given
        run_sweep({"lr": [1e-3]}, BASE, out=tmp_path / "damaged", root=root, progress=False)
    assert str(refused.value) == (
        f"out {tmp_path / 'damaged'}: {tmp_path / 'damaged' / JOURNAL}, the journal of the sweeps "
        "there, is not an Optuna journal (damaged, or another program's file): move it away to "
        "start afresh, or give another out")
    with pytest.raises(ValueError, match=r"^the study 'mine' runs another sweep"):  # a given storage too
        run_sweep({"lr": [1e-3]}, BASE, out=tmp_path / "elsewhere", storage=out / JOURNAL,
                  study_name="mine", root=root, progress=False)
    assert not (tmp_path / "elsewhere").exists()


def test_a_study_name_that_names_no_study_is_refused_before_anything_is_read_or_created(
        tmp_path, root, monkeypatch):
    """It was checked as the study was opened: after every image was read and hashed, with
    --out and its checkpoint folder made and the journal created."""
    monkeypatch.setattr(data, "read_image", lambda *args, **kwargs: pytest.fail("an image was read"))
    for storage in (None, tmp_path / "elsewhere" / JOURNAL):
        with pytest.raises(ValueError, match=r"^study_name must name a study \(or be None: sweep-"):
            run_sweep({"lr": [1e-3]}, BASE, out=tmp_path / "out", storage=storage, study_name=" ", root=root,
                      progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "elsewhere").exists()


def test_a_run_this_machine_cannot_write_is_queued_again_and_its_worker_stops(tmp_path, root, monkeypatch):
    """A full disk or a folder turned read-only mid-sweep: not the run's fault. Its run is failed
    with the reason and queued again, the worker stops (rather than fail every run it takes), and
    a worker that can write trains it later."""
    sweep = Sweep.define({"lr": [3e-3, 1e-2]}, BASE, (0,), pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)

    def unwritable(config, path, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(sweep_module, "load_or_train", unwritable)
    with pytest.raises(OSError, match="No space left"):
        work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path / "checkpoints")
    [failed, untouched, retry] = trials_of(tmp_path / JOURNAL, study.study_name)
    assert failed.state == TrialState.FAIL and failed.user_attrs["error"].startswith(
        "OSError: [Errno 28] No space left on device: ")
    assert failed.user_attrs["error"].endswith("this machine could not write the run's files; queued again")
    assert (retry.state, retry.system_attrs["failed_trial"]) == (TrialState.WAITING, failed.number)
    assert retry.user_attrs == {"seed": failed.user_attrs["seed"]}  # not the attempt's error or worker
    assert untouched.state == TrialState.WAITING  # the worker stopped: not failed too

    class Stopped:  # a worker process that stopped so (_worker_main's exit status)
        exitcode = sweep_module.CANNOT_WRITE

        def is_alive(self):
            return False

    monkeypatch.setattr(sweep_module, "_start_workers", lambda count, *args: [Stopped()])
    with pytest.raises(sweep_module.SweepError, match=r"a worker stopped with 2 of 2 runs of sweep-\w+ not "
                       r"done: OSError: \[Errno 28\] No space left on device: .*; queued again: make room "
                       "or fix the folder's permissions, then run the sweep again to go on"):
        run_sweep({"lr": [3e-3, 1e-2]}, BASE, seeds=[0], out=tmp_path, root=root, pruner="none",
                  progress=False)
    monkeypatch.undo()
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path / "checkpoints")
    result = load_sweep(tmp_path / JOURNAL, study.study_name)
    assert [r.state for r in result.runs] == ["done", "done"] and result.failures() == []


def test_workers_that_cannot_open_the_database_say_so_not_that_they_could_not_write(tmp_path, root, monkeypatch):
    """A PostgreSQL server refusing the workers' connections (past its max_connections, which the
    command that opened it did not reach) is not a full disk or a read-only folder."""
    real_start, refused = sweep_module._start_workers, "postgresql://me:secret@127.0.0.1:1/db"
    monkeypatch.setattr(sweep_module, "_start_workers",
                        lambda count, storage, *args: real_start(count, refused, *args))
    with pytest.raises(sweep_module.SweepError) as stopped:
        run_sweep({"lr": [3e-3, 1e-2]}, BASE, seeds=[0], workers=2, out=tmp_path, root=root, pruner="none",
                  progress=False)
    assert re.fullmatch(r"a worker stopped with 2 of 2 runs of sweep-\w+ not done: cannot open the storage "
                        r"postgresql://me@127.0.0.1:1/db: \(psycopg.OperationalError\) .*Connection refused "
                        r"\(each worker holds connections of its own, and a database server refuses those past "
                        r"its limit, PostgreSQL's max_connections: give fewer workers \(--workers\) or raise "
                        r"it\); run the sweep again to go on", str(stopped.value))


def lost_database():
    """What Optuna raises where its database went away mid-commit (a server restarted)."""
    try:
        raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("terminating connection due to "
                                                                        "administrator command"))
    except sqlalchemy.exc.OperationalError as err:
        try:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit. "
                                                         "This typically happens due to invalid data") from err
        except optuna.exceptions.StorageInternalError as internal:
            return internal


def test_a_database_lost_mid_run_is_not_the_runs_failure(tmp_path, root, monkeypatch):
    """A PostgreSQL server restarted while a run reported its epoch: the run was failed for good
    with Optuna's "invalid data in the commit", its setting never best. The worker now stops,
    saying why, and the run, left running, is queued again once its worker is gone."""
    sweep = Sweep.define({"lr": [3e-3, 1e-2]}, BASE, (0,), pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)

    def restarted(config, path, **kwargs):
        raise lost_database()

    monkeypatch.setattr(sweep_module, "load_or_train", restarted)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path / "checkpoints")
    assert [t.state for t in trials_of(tmp_path / JOURNAL, study.study_name)] == [TrialState.RUNNING,
                                                                                 TrialState.WAITING]
    monkeypatch.setattr(sweep_module, "work", lambda *args, **kwargs: restarted(None, None))
    monkeypatch.setattr(sweep_module.signal, "signal", lambda *args: None)  # the worker's handlers: not here
    told = sweep_module.SPAWN.Array("c", 1000)
    with pytest.raises(SystemExit) as stopped:
        sweep_module._worker_main("postgresql://me:secret@db/sweeps", "s", 0, root, tmp_path, os.getppid(),
                                  sweep_module.SPAWN.Event(), told)
    assert stopped.value.code == sweep_module.NO_STORAGE
    assert told.value.decode() == ("lost the storage postgresql://me@db/sweeps ((builtins.Exception) "
                                   "terminating connection due to administrator command)")


def test_a_database_lost_while_the_sweep_runs_stops_it_saying_so(tmp_path, root, monkeypatch):
    started = []

    class Running:  # a worker process, which stops when told
        exitcode = 0

        def is_alive(self):
            return False

        def join(self, timeout=None):
            started.append("joined")

    def reading(study):
        raise lost_database()

    monkeypatch.setattr(sweep_module, "_start_workers", lambda *args: [Running()])
    monkeypatch.setattr(sweep_module, "sweep_result", reading)
    with pytest.raises(sweep_module.SweepError) as lost:
        run_sweep({"lr": [3e-3, 1e-2]}, BASE, out=tmp_path, root=root, pruner="none", progress=False)
    assert str(lost.value) == (f"lost the storage {tmp_path / JOURNAL} ((builtins.Exception) terminating "
                               "connection due to administrator command): the workers stopped; run the "
                               "sweep again to go on once it answers (a run cut short resumes from its "
                               "checkpoint)")
    assert started == ["joined"]


def test_a_folder_turned_read_only_with_the_journal_in_it_is_named_though_no_run_recorded_why(
        tmp_path, root, monkeypatch):
    """The journal in the same folder: the worker could record nothing, and the sweep names the
    folder and its error from what it finds, not a bare "could not write"."""
    read_only = threading.Event()

    class Tempfile:
        mkdtemp = staticmethod(tempfile.mkdtemp)

        @staticmethod
        def TemporaryFile(dir):
            if read_only.is_set():
                raise OSError(30, "Read-only file system", str(dir))
            return tempfile.TemporaryFile(dir=dir)

    class Stopped:  # a worker that stopped so, its run's error unrecorded
        exitcode = sweep_module.CANNOT_WRITE

        def is_alive(self):
            return False

    def start(*args):
        read_only.set()  # mid-sweep, after the folders were checked
        return [Stopped()]

    monkeypatch.setattr(out_folders, "tempfile", Tempfile)
    monkeypatch.setattr(sweep_module, "_start_workers", start)
    with pytest.raises(sweep_module.SweepError, match=r"a worker stopped with 2 of 2 runs of sweep-\w+ not "
                       r"done: cannot write in .*/checkpoints/\w+ \(Read-only file system\): make room"):
        run_sweep({"lr": [3e-3, 1e-2]}, BASE, seeds=[0], out=tmp_path, root=root, pruner="none",
                  progress=False)


def interrupted_setup(monkeypatch, after):
    """Make the study's setup stop with a Ctrl-C when it queues its ``after``-th run."""
    enqueue, calls = optuna.Study.enqueue_trial, []

    def ctrl_c(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == after:
            raise KeyboardInterrupt
        return enqueue(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "enqueue_trial", ctrl_c)


@pytest.mark.parametrize("space, kwargs", [({"lr": [3e-3, 1e-2], "hflip": [True, False]}, {}),
                                           ({"lr": FloatDistribution(1e-3, 1e-2, log=True)}, {"trials": 3})])
def test_a_setup_interrupted_while_queueing_is_completed_by_the_same_command(tmp_path, root, monkeypatch,
                                                                            space, kwargs):
    sweep = Sweep.define(space, BASE, (0, 1), pruner="none", **kwargs)
    monkeypatch.setattr(sweep_study, "QUEUE_IDLE_SECONDS", 0.5)
    with monkeypatch.context() as patched:
        interrupted_setup(patched, after=3)
        with pytest.raises(KeyboardInterrupt):
            open_study(sweep, tmp_path / JOURNAL)
    assert len(trials_of(tmp_path / JOURNAL, sweep.name)) == 2  # two of the queue's runs
    started = time.monotonic()
    study = open_study(sweep, tmp_path / JOURNAL)  # the same sweep: goes on, not refused
    assert time.monotonic() - started < 10 and study.user_attrs["queued"] is True
    assert len(study.get_trials()) == (4 * 2 if sweep.grid else 3)  # each run (slot) queued once
    assert open_study(sweep, tmp_path / JOURNAL).get_trials() == study.get_trials()  # nothing more
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path / "checkpoints")
    result = load_sweep(tmp_path / JOURNAL, study.study_name)
    assert len(result.runs) == sweep.total and {r.state for r in result.runs} == {"done"}
    assert sorted(len(s.runs) for s in result.settings()) == [2] * (sweep.total // 2)


def test_a_run_whose_lines_were_deleted_from_the_journal_is_queued_again_by_the_same_command(tmp_path):
    sweep = Sweep.define({"lr": [1e-3, 2e-3]}, BASE, (0, 1), pruner="none")
    journal = tmp_path / JOURNAL
    open_study(sweep, journal)
    lines = journal.read_text().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if json.loads(line)["op_code"] == 4)  # a trial made
    journal.write_text("".join(lines[:last] + lines[last + 1:]))  # deleted by hand, to tidy up
    assert len(trials_of(journal, sweep.name)) == 3  # the sweep would stop, "run it again to go on"
    study = open_study(sweep, journal)
    assert sorted((t.system_attrs["fixed_params"]["lr"], t.user_attrs["seed"]) for t in study.trials) \
        == [(lr, seed) for lr in (1e-3, 2e-3) for seed in (0, 1)]


def test_a_study_left_without_its_definition_by_its_creator_is_taken_over(tmp_path, root, monkeypatch):
    sweep = Sweep.define({"lr": [3e-3, 1e-2]}, BASE, pruner="none")
    optuna.create_study(storage=open_storage(tmp_path / JOURNAL), study_name=sweep.name)  # then Ctrl-C
    monkeypatch.setattr(sweep_study, "DEFINE_SECONDS", 0.5)
    study = open_study(sweep, tmp_path / JOURNAL, data_sha256="a" * 64, code="hw3lib 0")
    assert Sweep.from_json(study.user_attrs["sweep"]) == sweep and study.user_attrs["code"] == "hw3lib 0"
    assert len(study.get_trials()) == 2
    other = optuna.create_study(storage=open_storage(tmp_path / JOURNAL), study_name="not a sweep")
    other.enqueue_trial({"x": 1})
    with pytest.raises(ValueError, match="the study 'not a sweep' is not a sweep of hw3lib"):
        open_study(sweep, tmp_path / JOURNAL, "not a sweep")


def test_a_run_queued_twice_by_two_processes_at_once_is_trained_once(tmp_path, root):
    sweep = Sweep.define({"lr": [3e-3, 1e-2]}, BASE, pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)
    study.enqueue_trial({"lr": 1e-2}, user_attrs={"seed": 0})  # as a second setup would queue it
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path / "checkpoints")
    twin = trials_of(tmp_path / JOURNAL, study.study_name)[-1]
    assert (twin.state, twin.user_attrs["repeat_of"]) == (TrialState.FAIL, 1)
    result = load_sweep(tmp_path / JOURNAL, study.study_name)
    assert [(r.params, r.state) for r in result.runs] == [({"lr": 3e-3}, "done"), ({"lr": 1e-2}, "done")]


def take_waiting_runs(storage, name, taken):
    """A worker's loop (:func:`hw3lib.sweep.work`) without the training: take waiting trials
    until none is left, and put their ids in the queue ``taken``."""
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    taken.put(list(iter(study._pop_waiting_trial_id, None)))


def test_a_sqlite_database_hands_each_waiting_run_to_exactly_one_worker(tmp_path):
    # SQLite ignores the SELECT ... FOR UPDATE with which Optuna takes a waiting trial: unless the
    # file is locked as the transaction begins, two workers read it as waiting and both take it
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    study = optuna.create_study(study_name="queue", storage=open_storage(storage))
    for x in range(100):
        study.enqueue_trial({"x": x})
    context = multiprocessing.get_context("spawn")
    taken = context.Queue()
    workers = [context.Process(target=take_waiting_runs, args=(storage, "queue", taken)) for _ in range(4)]
    for process in workers:
        process.start()
    ids = [trial_id for _ in workers for trial_id in taken.get(timeout=120)]
    for process in workers:
        process.join()
    assert len(ids) == len(set(ids)) == 100


def test_workers_wait_their_turn_for_a_sqlite_databases_lock_for_a_minute(tmp_path):
    # each transaction takes the lock: a dozen workers on two cores wait more than SQLite's 5 s
    engine = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}").engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000


def test_two_commands_creating_one_sqlite_database_at_once_both_open_it(tmp_path, monkeypatch):
    # the second finds a table the first created after it looked: SQLite's "already exists"
    real, tries = sweep_study.RDBStorage, []

    def racing(url, **kwargs):
        tries.append(url)
        if len(tries) == 1:
            real(url, **kwargs)  # the other command, creating the tables meanwhile
            raise sqlalchemy.exc.OperationalError("CREATE TABLE studies", {},
                                                  sqlite3.OperationalError("table studies already exists"))
        return real(url, **kwargs)
    monkeypatch.setattr(sweep_study, "RDBStorage", racing)
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    assert len(tries) == 2 and optuna.create_study(storage=storage, study_name="s").study_name == "s"


def test_an_sqlite_file_is_created_with_its_folder_as_a_journal_is_or_refused_naming_why(tmp_path):
    for name in ("sweep.db", "journal.log"):
        assert not (tmp_path / "new" / name).exists()
    url = f"sqlite:///{tmp_path / 'new' / 'sweep.db'}"  # SQLite said "unable to open database file"
    assert optuna.create_study(storage=open_storage(url), study_name="s").study_name == "s"
    assert optuna.create_study(storage=open_storage(tmp_path / "new" / "journal.log"), study_name="s")
    (tmp_path / "file").touch()
    for storage in (f"sqlite:///{tmp_path / 'file' / 'sweep.db'}", tmp_path / "file" / JOURNAL):
        with pytest.raises(ValueError, match=f"^storage {re.escape(str(storage))}: {tmp_path / 'file'} is "
                           "a file, not a folder; choose another storage"):
            open_storage(storage)
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    if not os.access(tmp_path / "ro", os.W_OK):  # read-only but to root
        with pytest.raises(ValueError, match=r"^storage sqlite:///.*/ro/sweep.db: cannot create the "
                           r"database \(Permission denied\); choose a writable folder"):
            open_storage(f"sqlite:///{tmp_path / 'ro' / 'sweep.db'}")


def test_reading_a_sweep_back_creates_nothing_and_names_a_path_that_is_no_journal(tmp_path):
    for path, message in [(tmp_path / "nowhere" / JOURNAL, "no such journal file"),
                          (tmp_path, "is a folder: give a journal file's path"),
                          (REPO / "README.md", "is not an Optuna journal")]:
        with pytest.raises(ValueError, match=f"^storage {path}.*{message}"):
            load_sweep(path, "x")
    png = tmp_path / "x.png"
    write_png(png, size=(8, 8))
    with pytest.raises(ValueError, match=f"^storage {png} is not an Optuna journal"):
        load_sweep(png, "x")
    with pytest.raises(ValueError, match="no such database file"):
        load_sweep(f"sqlite:///{tmp_path / 'none.db'}", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]  # nothing created
    other = tmp_path / "notes.db"  # another program's database: Optuna's tables are not added to it
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text)")
    with pytest.raises(ValueError, match=f"^storage sqlite:///{other} holds no Optuna study"):
        load_sweep(f"sqlite:///{other}", "x")
    assert sqlalchemy.inspect(sqlalchemy.create_engine(f"sqlite:///{other}")).get_table_names() == ["notes"]


@pytest.mark.parametrize("text", [b"notes\n", b"notes", b'{"op": 1}'])
def test_a_file_of_one_line_that_is_no_journal_is_refused_and_left_as_it_was(tmp_path, root, capsys, text):
    notes = tmp_path / "notes.txt"  # Optuna reads past a bad last line, and appends to the file
    notes.write_bytes(text)
    with pytest.raises(ValueError, match=f"^storage {notes} is not an Optuna journal"):
        load_sweep(notes, "x")
    assert hw3lib_main(["sweep", "--param", "lr=1e-3", "--storage", str(notes), "--data", str(root),
                        "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"error: --storage {notes} is not an Optuna journal: give the "
                                       f"journal a sweep wrote (OUT/{JOURNAL}) or a database URL\n")
    assert notes.read_bytes() == text


def test_a_machine_joining_a_finished_sweep_with_a_new_out_writes_its_figures_there(tmp_path, root, capsys):
    args = ["sweep", "--param", "lr=3e-3,1e-2", "--set", "epochs=1", *TINY_SETS, "--workers", "1",
            "--storage", str(tmp_path / "shared" / JOURNAL), "--data", str(root), "--no-progress"]
    assert hw3lib_main([*args, "--out", str(tmp_path / "first")]) == 0
    capsys.readouterr()
    assert hw3lib_main([*args, "--out", str(tmp_path / "second" / "new")]) == 0  # no run left to take
    out = capsys.readouterr().out
    assert "wrote " in out and (tmp_path / "second" / "new" / "sweep.png").stat().st_size
    # the best setting's checkpoints are in the first --out: the second names none of its own
    folder = tmp_path / "second" / "new" / "checkpoints" / runs_module.run_key(runs_module.dataset_sha256(root))
    assert (f"\n1 of its 1 runs left no finished checkpoint in {folder} (a run trained on another machine, or "
            "with another --out, keeps it there)\n") in out and not any(folder.iterdir())
    assert json.loads(out.splitlines()[-1])["learned"] is None  # not true: its runs are not here to tell


def test_a_password_given_in_the_storage_urls_query_is_not_shown_either(tmp_path, root, capsys):
    """libpq takes the password as a query parameter too: README promises it is never shown."""
    url = "postgresql://me@127.0.0.1:1/db?sslmode=disable&password=s3cret&connect_timeout=1"
    assert hw3lib_main(["sweep", "--param", "lr=1e-3", "--storage", url, "--out", str(tmp_path),
                        "--data", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open the storage postgresql://me@127.0.0.1:1/db?sslmode=disable&"
                          "connect_timeout=1: ") and "s3cret" not in err
    assert sweep_module.shown_storage("postgresql://me:pw@host/db?password=s3cret") == "postgresql://me@host/db"


def test_a_run_cut_short_here_and_finished_elsewhere_is_not_named_as_its_checkpoint(tmp_path, root, capsys):
    """A run interrupted on this machine and finished by another one (or another --out) leaves
    its first epochs here: the best line names no such file for predict, nor judges it learned."""
    args = ["sweep", "--param", "lr=3e-3", "--seeds", "0-1", "--set", "epochs=2", *TINY_SETS, "--workers", "1",
            "--storage", str(tmp_path / "shared" / JOURNAL), "--data", str(root), "--no-progress"]
    assert hw3lib_main([*args, "--out", str(tmp_path / "elsewhere")]) == 0
    folder = tmp_path / "here" / "checkpoints" / runs_module.run_key(runs_module.dataset_sha256(root))
    config = replace(BASE, epochs=2, seed=1)

    def interrupted(history):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # this machine's attempt, stopped after its first epoch
        load_or_train(config, checkpoint_path(config, folder), root=root, on_epoch=interrupted)
    seed0 = checkpoint_path(replace(config, seed=0), folder)
    shutil.copy(tmp_path / "elsewhere" / "checkpoints" / folder.name / seed0.name, seed0)  # and a finished one
    capsys.readouterr()
    assert hw3lib_main([*args, "--out", str(tmp_path / "here")]) == 0  # no run left to take
    out = capsys.readouterr().out
    assert (f"\nits runs' checkpoints here (`python -m hw3lib predict` takes any): {seed0}; 1 of its 2 runs "
            f"left no finished checkpoint in {folder} (a run trained on another machine, or with another "
            "--out, keeps it there)\n") in out
    assert json.loads(out.splitlines()[-1])["learned"] is None


def test_the_sweep_command_refuses_bad_options_in_one_line(tmp_path, root, capsys):
    for argv, message in [
        (["--param", "lr=1e-3,0"], "error: lr=0: lr must be a positive finite number, got 0"),
        (["--param", "lr=1e-3:1e-2:cubic"], "error: --param 'lr=1e-3:1e-2:cubic': a range is LOW:HIGH"),
        (["--param", "lr"], "error: --param 'lr': write NAME=VALUE"),
        (["--param", "lr=1e-3", "--set", "epochs=0"], "error: --set: epochs must be an integer >= 1"),
        (["--param", "lr=1e-3", "--set", "epoch=3"], "error: --set 'epoch=3': unknown setting 'epoch'"),
        # train's option names, which a user of train types first: the setting named, not 17 fields
        (["--param", "lr=1e-3", "--set", "channels=RGB"], "error: --set 'channels=RGB': train's --channels "
         "is the setting mode here (a sweep names settings as TrainConfig does): --set mode=RGB\n"),
        (["--param", "image-size=28,32"], "error: --param 'image-size=28,32': train's --image-size is the "
         "setting image_size here (a sweep names settings as TrainConfig does): --param image_size=28,32\n"),
        (["--param", "lr=1e-3", "--set", "val-fraction=0.2"], "error: --set 'val-fraction=0.2': train's "
         "--val-fraction is the setting val_fraction here"),
        (["--param", "batch-size=8,16"], "error: --param 'batch-size=8,16': train's --batch-size is the "
         "setting batch_size here"),
        (["--param", "lr=1e-3", "--set", "model.kernel_size=3"], "error: --set 'model.kernel_size=3': a "
         "fixed model argument goes in the model dict, e.g. --set 'model={\"kernel_size\": 3}'\n"),
        (["--param", "lr=1e-3", "--seeds", "a-b"], "error: --seeds 'a-b': give FIRST-LAST"),
        (["--param", "lr=1e-3", "--seeds", "3-1"], "error: --seeds '3-1': the range is reversed "
                                                   "(no seed from 3 up to 1); give FIRST-LAST with "
                                                   "FIRST <= LAST, e.g. 1-3"),
        (["--param", "lr=1e-3", "--set", "epochs=1", "--set", "epochs=2"],
         "error: --set epochs is given twice: give each setting once"),
        # a Python dict is not JSON: not "model must be a dict ..., got '{...}'"
        (["--param", "lr=1e-3", "--set", "model={'conv_channels': [8, 16]}"],
         "error: --set \"model={'conv_channels': [8, 16]}\": {'conv_channels': [8, 16]} is not JSON "
         "(Expecting property name enclosed in double quotes): write names and strings in double quotes"),
        (["--param", "lr=1e-3", "--set", 'model={"conv_channels": (8, 16)}'],
         """error: --set 'model={"conv_channels": (8, 16)}': {"conv_channels": (8, 16)} """
         "is not JSON (Expecting value): write names and strings in double quotes and lists in brackets, "
         """the whole in single quotes, e.g. --set 'model={"conv_channels": [8, 16]}'"""),
        (["--param", "lr=1e-3", "--storage", str(tmp_path)],
         f"error: --storage {tmp_path} is a folder: give a journal file's path (e.g. "
         f"{tmp_path / JOURNAL}) or a database URL"),
        (["--param", "lr=1e-3", "--param", "lr=5e-4"], "error: --param lr is given twice"),
        *[(["--param", "lr=1e-3", "--storage", memory], f"error: --storage {memory} is a database in this "
           "process's memory, which the worker processes cannot open: give a database file (sqlite:///PATH), ")
          for memory in ("sqlite://", "sqlite:///:memory:", "sqlite+pysqlite:///:memory:")],
        (["--param", "lr=1e-3", "--out", ""], "error: argument --out: must name a folder"),
        (["--param", "lr=1e-3", "--storage", ""], "error: argument --storage: must name a journal file "
         "or a database URL, got ''"),
        (["--param", "lr=1e-3", "--study-name", " "], "error: argument --study-name: must name a study, "
         "got ' '"),  # was the default name, silently
        (["--param", "lr=1e-3", "--set", "seed=5"], "error: --set 'seed=5': a sweep's seeds are --seeds"),
        (["--param", "lr=1e-3", "--set", "lr=5e-4"], "error: --set 'lr=5e-4': lr is swept by --param"),
        (["--param", "model.hidden=[16,8],[8,4]"],
         """error: --param 'model.hidden=[16,8],[8,4]': a sweep varies single values, not lists; fix a """
         """list for every run with --set, e.g. --set 'model={"hidden": [4, 8]}'"""),
        (["--param", "hflip=True,False", "--set", "epochs=0"], "error: --set: epochs must be"),  # True parses
        ([], "error: nothing to sweep: name a setting"),
        (["--param", "lr=1e-4:1e-2"], "error: --trials: a sampled search needs the number of settings "
                                      "to try (an integer >= 1), none given\n"),  # not "got None"
        (["--param", "lr=1e-4:1e-2", "--trials", "0"], "error: argument --trials: must be an integer >= 1, got '0'"),
        (["--param", "lr=1e-3", "--trials", "2"], "error: --trials: a grid runs each of its settings once"),
        (["--param", "lr=1e-3", "--workers", "0"], "error: argument --workers: must be an integer >= 1, got '0'"),
        (["--param", "lr=1e-3", "--seeds", "0,0"], "error: --seeds must be a non-empty list of different seeds"),
        (["--param", "lr=1e-3", "--seeds", "0-99999999999"], "error: --seeds '0-99999999999': "
         "100000000000 seeds, more than a sweep takes (at most 10,000); give fewer, e.g. 0-4"),
        (["--param", "lr=1e-3", "--storage", "postgresql://me:secret@127.0.0.1:1/db"],
         "error: cannot open the storage postgresql://me@127.0.0.1:1/db: "),  # no password shown
        (["--param", "lr=1e-3", "--storage", "postgres://me:secret@127.0.0.1:1/db"],
         "error: --storage postgres://me@127.0.0.1:1/db: SQLAlchemy knows no database 'postgres': give "
         "postgresql://USER:PASSWORD@HOST:5432/DB, sqlite:///PATH or a journal file's path"),
        (["--param", "lr=1e-3", "--data", str(tmp_path / "nowhere")], "error: no dataset at "),
        # a size to try is one more value of the swept image_size, which --set would refuse
        (["--param", "image_size=4,32"], "error: image_size=4: LeNet5 with kernel_size=5 does not fit 4x4 "
         "inputs: it needs at least 16 pixels a side. Fix: larger images, e.g. --param image_size=16, "),
    ]:
        # --no-progress: without it, the line saying how many images are read goes before some
        assert hw3lib_main(["sweep", "--data", str(root), "--out", str(tmp_path / "out"), "--no-progress",
                            *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
    a_file = tmp_path / "a_file"
    a_file.touch()
    for out in (a_file, a_file / "sweep"):
        assert hw3lib_main(["sweep", "--data", str(root), "--param", "lr=1e-3", "--out", str(out)]) == 2
        assert capsys.readouterr().err == f"error: --out {out}: {a_file} is a file, not a folder; choose another --out\n"


def test_a_setting_drawn_again_is_not_trained_twice_and_an_undrawn_one_runs_instead(tmp_path, root, monkeypatch):
    class Lowest(optuna.samplers.RandomSampler):  # a sampler that keeps drawing the same setting
        def sample_independent(self, study, trial, name, distribution):
            return distribution.low

    monkeypatch.setattr(optuna.samplers, "TPESampler", lambda **kwargs: Lowest())
    sweep = Sweep.define({"epochs": IntDistribution(1, 3)}, BASE, seeds=(0, 1), trials=2, pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path)
    trials = trials_of(tmp_path / JOURNAL, study.study_name)
    repeats = [t for t in trials if "repeat_of" in t.user_attrs]
    assert [(t.params, t.user_attrs["repeat_of"], t.state) for t in repeats] == [({"epochs": 1}, 0, TrialState.FAIL)]
    assert len(trials) == 5  # 2 settings x 2 seeds, and the repeat
    result = load_sweep(tmp_path / JOURNAL, study.study_name)
    assert sorted((r.params["epochs"], r.seed, r.state) for r in result.runs) == [
        (1, 0, "done"), (1, 1, "done"), (2, 0, "done"), (2, 1, "done")]
    assert result.failures() == []


def test_a_run_two_commands_queued_at_once_draws_nothing_so_every_setting_is_drawn_once(tmp_path, root,
                                                                                        monkeypatch):
    """The later copy of a run queued twice drew a setting before it was left out, which
    _undrawn then counted as drawn: that setting was never trained; and the copy of a run whose
    draw was left out (drawn again) ran as a run of its own, one more than --trials. Either kept
    the sweep drawing for ever, with a sampler that draws the same setting."""
    class Scripted(optuna.samplers.RandomSampler):  # 2 for trial 1 (a copy), else 1
        def sample_independent(self, study, trial, name, distribution):
            return distribution.high if trial.number == 1 else distribution.low

    monkeypatch.setattr(optuna.samplers, "TPESampler", lambda **kwargs: Scripted())
    sweep = Sweep.define({"epochs": IntDistribution(1, 2)}, BASE, trials=2, pruner="none")
    study = optuna.create_study(storage=open_storage(tmp_path / JOURNAL), study_name=sweep.name)
    sweep_study._define(study, sweep, None, None)
    calls = {command: [] for command in "AB"}
    for command in "AB":  # each reads the study before the other queues: both queue every slot
        queued = lambda *args, **kwargs: calls[command].append((args, kwargs))
        sweep_study._queue_runs(SimpleNamespace(get_trials=lambda **_: [], enqueue_trial=queued), sweep)
    for pair in zip(calls["A"], calls["B"]):  # their writes interleaved: slot 0 twice, slot 1 twice
        for args, kwargs in pair:
            study.enqueue_trial(*args, **kwargs)
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path,
         stop=lambda: len(study.get_trials(deepcopy=False)) > 8)  # else it draws 1 for ever
    trials = trials_of(tmp_path / JOURNAL, study.study_name)
    assert_every_run_done_once(trials, Sweep.define({"epochs": [1, 2]}, BASE, pruner="none"))
    copies = [t for t in trials if t.user_attrs.get("error", "").endswith("queued twice; this copy is left out")]
    assert [(t.number, t.user_attrs["slot"], t.params) for t in copies] == [(1, 0, {}), (3, 1, {})]


def test_a_copy_that_an_earlier_hw3lib_let_draw_leaves_its_setting_to_be_drawn(tmp_path, root, monkeypatch):
    """In a study from before copies drew nothing, the later copy of a run queued twice holds
    the setting it drew before it was left out: _undrawn counted it as drawn, so that setting
    was never trained (the sweep drew on for ever, with a sampler that draws the same one)."""
    class Same(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):
            return distribution.low

    monkeypatch.setattr(optuna.samplers, "TPESampler", lambda **kwargs: Same())
    space = {"epochs": IntDistribution(1, 2)}
    sweep = Sweep.define(space, BASE, trials=2, pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)  # slots 0 and 1 queued
    study.add_trial(optuna.trial.create_trial(  # slot 0's copy, as such an hw3lib left it
        state=TrialState.FAIL, params={"epochs": 2}, distributions=space,
        user_attrs={"seed": sweep.seeds[0], "slot": 0, "repeat_of": 0,
                    "error": "run 0 was queued twice; this copy is left out"}))
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path,
         stop=lambda: len(study.get_trials(deepcopy=False)) > 8)  # else it draws 1 for ever
    assert_every_run_done_once(trials_of(tmp_path / JOURNAL, study.study_name),
                               Sweep.define({"epochs": [1, 2]}, BASE, pruner="none"))


def test_a_sampled_sweep_started_again_draws_new_settings_not_the_ones_it_drew_before(tmp_path, root):
    sweep = Sweep.define({"lr": FloatDistribution(1e-3, 1e-2, log=True)}, BASE, trials=4, pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)
    finished = lambda: sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path, stop=lambda: finished() >= 2)
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path)  # the same worker again
    trials = trials_of(tmp_path / JOURNAL, study.study_name)
    assert [t.user_attrs.get("repeat_of") for t in trials] == [None] * 4
    assert len({t.params["lr"] for t in trials}) == 4 and load_sweep(tmp_path / JOURNAL, study.study_name).failures() == []
    with pytest.raises(ValueError, match=f"^no study 'nope' in .*: it holds '{study.study_name}'$"):
        load_sweep(tmp_path / JOURNAL, "nope")  # a name mistyped: the study there is named


def test_more_trials_go_on_with_the_same_study_and_fewer_are_refused(tmp_path, root, capsys):
    """The study's name hashed --trials: a sampled search given more started a new study, its
    runs done ignored, and one given more under its --study-name was refused as another sweep."""
    argv = ["sweep", "--param", "lr=1e-3:1e-2:log", "--set", "epochs=2", *TINY_SETS, "--pruner", "none",
            "--workers", "1", "--out", str(tmp_path), "--data", str(root), "--no-progress"]
    assert hw3lib_main([*argv, "--trials", "2"]) in (0, 3)
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    trials = trials_of(tmp_path / JOURNAL, first["study"])
    assert hw3lib_main([*argv, "--trials", "3"]) in (0, 3)
    more = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert more["study"] == first["study"] and more["runs"] == {"done": 3, "pruned": 0, "failed": 0}
    grown = trials_of(tmp_path / JOURNAL, first["study"])
    assert [(t.params, t.state) for t in grown[:2]] == [(t.params, t.state) for t in trials]  # kept
    assert len(grown) == 3 and len({t.params["lr"] for t in grown}) == 3
    assert hw3lib_main([*argv, "--trials", "3", "--study-name", first["study"]]) in (0, 3)  # as it is
    capsys.readouterr()
    assert hw3lib_main([*argv, "--trials", "2"]) == 2
    assert capsys.readouterr().err == (
        f"error: --trials: the study '{first['study']}' holds 3 trials, more than the 2 asked for, and "
        "runs them all: ask for 3 or more to go on with it, or run a sweep of 2 under another study "
        "name (--study-name)\n")
    assert len(trials_of(tmp_path / JOURNAL, first["study"])) == 3


# --- the command ------------------------------------------------------------------------------

def test_the_sweep_command_prints_the_table_failures_best_and_writes_the_figures(tmp_path, root, capsys,
                                                                                monkeypatch):
    monkeypatch.setattr(cores, "usable_cores", lambda: 2)  # no note of more workers than cores
    argv = ["sweep", "--param", "lr=0.1,1e300", "--param", "momentum=0,0.9", "--set", "optimizer=sgd",
            "--set", "epochs=2", *TINY_SETS, "--workers", "2",
            "--out", str(tmp_path), "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["lr", "momentum", "val", "acc"]
    assert sum("failed" in line for line in out[1:5]) == 2
    failures = [line for line in out if line.startswith("run ")]
    assert len(failures) == 2 and all("lr=1e+300" in f and "failed: TrainingError" in f for f in failures)
    assert out[-4].startswith("best: lr=0.1, momentum=") and out[-3].startswith("its runs' checkpoints")
    summary = json.loads(out[-1])
    assert summary["best"]["lr"] == 0.1 and summary["runs"] == {"done": 2, "pruned": 0, "failed": 2}
    assert summary["learned"] is True
    assert (tmp_path / "sweep.png").stat().st_size > 0 and (tmp_path / "heatmap.png").stat().st_size > 0


def test_the_table_and_the_best_line_say_a_settings_value_in_the_same_words(tmp_path, root, capsys):
    """The table said no and 0.00123 where the best line said hflip=False and lr=0.00123456
    (its JSON line keeps false and every digit)."""
    argv = ["sweep", "--param", "hflip=false", "--param", "lr=0.00123456", "--set", "epochs=1", *TINY_SETS,
            "--workers", "1", "--out", str(tmp_path), "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) in (0, 3)  # 3: one epoch did not learn, which does not matter here
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["hflip", "lr"] and out[1].split()[:2] == ["no", "0.00123"]
    [best] = [line for line in out if line.startswith("best: ")]
    assert best.startswith("best: hflip=no, lr=0.00123, validation accuracy ")
    assert json.loads(out[-1])["best"] == {"hflip": False, "lr": 0.00123456}


def test_a_figure_of_an_earlier_sweep_in_the_same_out_is_not_left_beside_this_ones(tmp_path, root, capsys):
    """A sweep of lr and momentum wrote heatmap.png; a sweep of lr alone in the same --out left it
    there, a heat map of other settings beside this sweep's sweep.png; a sweep of seeds alone
    left both figures of the sweep before."""
    common = ["--set", "epochs=2", *TINY_SETS, "--workers", "1", "--out", str(tmp_path), "--data", str(root),
              "--no-progress"]
    assert hw3lib_main(["sweep", "--param", "lr=0.03,0.1", "--param", "momentum=0,0.9", "--set",
                        "optimizer=sgd", *common]) == 0
    assert (tmp_path / "heatmap.png").is_file()
    capsys.readouterr()
    assert hw3lib_main(["sweep", "--param", "lr=3e-3,1e-2", *common]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "heatmap.png").exists() and (tmp_path / "sweep.png").is_file()
    assert f"removed {tmp_path / 'heatmap.png'}" in out
    assert hw3lib_main(["sweep", "--seeds", "0-1", "--set", "lr=1e-2", *common]) == 0
    assert not (tmp_path / "sweep.png").exists()


def test_a_sweep_whose_best_setting_did_not_learn_says_so_and_exits_3_as_train(tmp_path, root, capsys):
    """Every run at chance (learning rates far too small) was reported best at 0.333 with status
    0 and no word, where train warns and exits 3."""
    argv = ["sweep", "--param", "lr=1e-9,2e-9", "--set", "epochs=1", *TINY_SETS, "--workers", "1",
            "--out", str(tmp_path), "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) == 3
    out, err = capsys.readouterr()
    assert err.startswith("warning: the best setting did not learn: the model did not learn: best "
                          "validation accuracy 0.333") and err.count("\n") == 1, err
    assert json.loads(out.splitlines()[-1])["learned"] is False


def test_a_sweep_from_python_whose_best_setting_did_not_learn_warns_and_says_so(tmp_path, root):
    """From Python (as notebook 06 runs it) such a sweep gave no sign of it, only the sweep
    command judged it: now run_sweep warns and its result tells (the command's judgement)."""
    with pytest.warns(sweep_module.NotLearnedWarning, match="^the best setting did not learn: the "
                      "model did not learn: best validation accuracy 0.333"):
        result = run_sweep({"lr": [1e-9, 2e-9]}, replace(BASE, epochs=1), out=tmp_path, root=root,
                           progress=False, workers=1)
    assert result.learned is False
    assert result.not_learned.startswith("the model did not learn: best validation accuracy 0.333")
    assert len(result.best_checkpoints) == 1 and result.best_checkpoints[0][2] is not None
    read_back = load_sweep(tmp_path / JOURNAL, result.study_name)  # no checkpoints to judge by
    assert read_back.learned is None and read_back.not_learned is None
    # the data gone since the runs trained (a folder broken during the playground's sweep): the
    # sweep is not failed at its end for it (a DataError once every run had trained), only not judged
    gone = replace(result, root=tmp_path / "gone")
    assert gone.learned is None and gone.not_learned is None


def test_a_batch_larger_than_the_training_split_is_noted_once_by_the_sweep_not_by_each_run(tmp_path, root,
                                                                                            capfd):
    """fit warns of it (OneBatchWarning): each worker's runs printed that Python warning, file
    and line, into the sweep command's output; the sweep notes it once, before any run."""
    argv = ["sweep", "--param", "lr=1e-3,2e-3", "--set", "batch_size=100000", "--set", "epochs=1",
            *TINY_SETS[2:], "--workers", "2", "--out", str(tmp_path), "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) in (0, 3)  # 3: one step does not learn, which does not matter here
    out, err = capfd.readouterr()
    noted = [line for line in out.splitlines() if "100000" in line]
    assert len(noted) == 1 and re.fullmatch(
        r"note: batch_size 100000 is more than the \d+ training images, so each epoch is one batch of "
        r"all of them \(one optimizer step\); a smaller batch_size gives more steps per epoch", noted[0]), noted
    assert "Warning" not in err, err
    with (pytest.warns(OneBatchWarning, match=noted[0].removeprefix("note: ").split(",")[0]),  # from Python
          pytest.warns(sweep_module.NotLearnedWarning)):
        run_sweep({"lr": [1e-3]}, replace(BASE, batch_size=100000, epochs=1), out=tmp_path / "py", root=root,
                  progress=False, workers=1)


def test_the_sweep_help_names_both_layouts_of_a_dataset_folder_as_train_does(capsys):
    """sweep --help named only Data_train/ and Data_test/, though train/ and test/ work too (and
    train's and audit's --help say so)."""
    with pytest.raises(SystemExit):
        hw3lib_main(["sweep", "--help"])
    assert "(or train/ and test/)" in " ".join(capsys.readouterr().out.split())


def test_a_figure_is_written_whole_or_not_at_all(tmp_path, root, capsys, monkeypatch):
    """sweep.png was written in place: a full disk (or a second sweep on the same --out ending
    at once) left a part of it, which no viewer opens."""
    argv = ["sweep", "--param", "lr=3e-3,1e-2", "--set", "epochs=1", *TINY_SETS, "--workers", "1",
            "--out", str(tmp_path), "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) == 0
    before = (tmp_path / "sweep.png").read_bytes()

    def disk_full(figure, file, **kwargs):
        (file.write if hasattr(file, "write") else Path(file).write_bytes)(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", disk_full)
    assert hw3lib_main(argv) == 2  # the runs are loaded, the figure cannot be written
    assert "No space left on device" in capsys.readouterr().err
    assert (tmp_path / "sweep.png").read_bytes() == before
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


def test_more_workers_than_cores_are_noted_before_the_sweep_runs_and_no_more_than_its_runs_start(
        tmp_path, root, capsys, monkeypatch):
    monkeypatch.setattr(cores, "usable_cores", lambda: 1)
    started = []

    def start_workers(count, *args):
        started.append(count)
        return real_start(count, *args)
    real_start = sweep_module._start_workers
    monkeypatch.setattr(sweep_module, "_start_workers", start_workers)
    argv = ["sweep", "--param", "lr=3e-3,1e-2", "--set", "epochs=1", *TINY_SETS, "--workers", "2",
            "--out", str(tmp_path), "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "note: --workers 2 on the 1 core(s) this process may use: the workers share them, so it "
        "runs no faster than with --workers 1")
    argv[argv.index("--workers") + 1] = "16"  # 2 runs: 2 workers, not 16 processes
    assert hw3lib_main([*argv[:-5], "--out", str(tmp_path / "again"), *argv[-3:]]) == 0
    assert started == [2, 2]


def test_frames_named_out_of_order_are_noted_before_the_sweep_runs_where_a_run_holds_out_the_blocked_split(
        tmp_path, capsys):
    """Frames named at random: every run's blocked split held out frames whose neighbours
    trained, and the sweep said nothing (train says so)."""
    root = name_at_random(write_videos(tmp_path / "frames", frames=60, test_frames=6))
    argv = ["sweep", "--param", "lr=1e-3,2e-3", "--set", "epochs=1", *TINY_SETS, "--workers", "1",
            "--data", str(root), "--no-progress"]
    assert hw3lib_main([*argv, "--out", str(tmp_path / "blocked")]) in (0, 3)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("note: consecutive files of class A (and of B) sit ") and "not neighbours in file-name order" in first
    assert hw3lib_main([*argv, "--set", "split=random", "--out", str(tmp_path / "random")]) in (0, 3)
    assert "note:" not in capsys.readouterr().out


def test_before_its_runs_the_sweep_shows_its_reading_hashing_and_file_order_check_as_train_does(
        tmp_path, root, capsys, monkeypatch):
    """train shows a bar for its read of the images, its hash of the files and its check of their
    order once each takes a while; the sweep, doing the same before any run, showed none of them:
    minutes of nothing on the screen at a large folder. On a terminal it shows them now (never
    into a file, nor with --no-progress)."""
    from hw3lib import data, download, file_order

    def stop(*args, **kwargs):  # after the checks, before any worker starts
        raise ValueError("stop here")

    monkeypatch.setattr(sweep_module, "open_study", stop)
    for module in (data, download, file_order):  # each bar at once
        monkeypatch.setattr(module, "PROGRESS_DELAY", 0)
    argv = ["sweep", "--param", "lr=1e-3,2e-3", *TINY_SETS, "--data", str(root)]
    for terminal, quiet in ((True, []), (False, []), (True, ["--no-progress"])):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
        assert hw3lib_main([*argv, *quiet, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        bars = ["reading:" in err, "fitting mean and std:" in err, "hashing:" in err, "checking file order:" in err]
        assert bars == [terminal and not quiet] * 4, err


def test_the_sweep_says_how_many_images_it_reads_as_train_does_listing_the_folders_once(
        tmp_path, root, capsys, monkeypatch):
    """train (and audit) say on stderr how many images they are about to read, minutes of work
    at a large folder before the first line; the sweep, reading the same images, said nothing.
    It says it now, unless --no-progress, from the one listing its read uses too."""
    from hw3lib import cli, folders
    listed = []

    def split_files(*args):
        listed.append(args[1])
        return folders_split_files(*args)

    def stop(*args, **kwargs):  # after the read, before any worker starts
        raise ValueError("stop here")

    folders_split_files = folders.split_files
    monkeypatch.setattr(folders, "split_files", split_files)
    monkeypatch.setattr(cli, "split_files", split_files)
    monkeypatch.setattr(sweep_module, "open_study", stop)
    argv = ["sweep", "--param", "lr=1e-3,2e-3", *TINY_SETS, "--data", str(root), "--out", str(tmp_path)]
    assert hw3lib_main(argv) == 2
    counts = [len(list((Path(root) / split).rglob("*.png"))) for split in ("Data_train", "Data_test")]
    assert capsys.readouterr().err.startswith(
        f"reading {counts[0]} training and {counts[1]} test images from {root} ...\n")
    assert listed == ["train", "test"]
    assert hw3lib_main([*argv, "--no-progress"]) == 2
    assert "reading" not in capsys.readouterr().err


def test_an_out_inside_a_split_folder_of_the_data_is_refused_before_any_run(tmp_path, capsys):
    """A sweep's checkpoints written into train/ or test/ would become part of the dataset, which
    every later read of it then refuses."""
    root = write_banded_root(tmp_path / "data")
    out = root / "Data_train" / "sweep"
    argv = ["sweep", "--param", "lr=1e-3,2e-3", "--set", "epochs=1", *TINY_SETS, "--workers", "1",
            "--out", str(out), "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out} is inside the dataset's train split folder") and not out.exists()


def test_a_journal_inside_a_split_folder_of_the_data_is_refused_before_any_run(tmp_path, capsys):
    """--out and audit's --list were refused there, --storage's journal file was created in it, and
    every run of the sweep (and every later read of the dataset) then refused the dataset."""
    root = write_banded_root(tmp_path / "data")
    journal = root / "Data_train" / "A" / JOURNAL
    argv = ["sweep", "--param", "lr=1e-3", "--set", "epochs=1", *TINY_SETS, "--workers", "1",
            "--out", str(tmp_path / "out"), "--storage", str(journal), "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: --storage {journal} is inside the dataset's train split folder {root / 'Data_train'}: "
        "the file written there would become part of the dataset and break it. Give a file outside "
        f"{root / 'Data_train'}\n")
    assert not journal.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("storage, folder, why", [
    ("val/" + JOURNAL, "val", "would put the file in {folder}, a validation split's folder"),
    ("train/" + JOURNAL, "train", "would create {folder}, a second train split folder"),
    ("sqlite:///{root}/Data_test/sweep.db", "Data_test", "is inside the dataset's test split folder {folder}"),
    ("sqlite+pysqlite:///{root}/Validation/sweep.db", "Validation", "would put the file in {folder}, a validation"),
])
def test_a_storage_file_where_an_out_would_break_the_data_is_refused_before_any_run(tmp_path, capsys, storage,
                                                                                  folder, why):
    """--out was refused in val/ (which every read of the dataset refuses) and in a train/ beside
    Data_train/ (a second training split); --storage's journal was not, nor an SQLite database
    file anywhere. The rule is --out's, for the file's folder."""
    root = make_root(tmp_path / "data")
    storage = storage.format(root=root) if "://" in storage else str(root / storage)
    argv = ["sweep", "--param", "lr=1e-3", "--out", str(tmp_path / "out"), "--storage", storage,
            "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --storage {storage} " + why.format(folder=root / folder)), err
    assert err.endswith(f"Give a file outside {root / folder}\n"), err
    assert not (root / folder).exists() or folder == "Data_test"
    assert not (tmp_path / "out").exists() and not list((root / "Data_test").glob("*.db"))


def test_a_storage_file_in_the_data_root_itself_is_fine(tmp_path):
    """A read of the dataset looks at its split folders alone: a file named val or train there is none."""
    root = make_root(tmp_path / "data")
    for name in (JOURNAL, "val", "train", "Data_Train"):
        out_folders.refuse_file_in_data(root / name, root, "--storage")


@pytest.mark.parametrize("storage, expanded", [
    ("~/sweep.db", "{home}/sweep.db"),
    ("sqlite:///~/sweeps/sweep.db", "sqlite:///{home}/sweeps/sweep.db"),
    ("sqlite+pysqlite:///~/sweep.db?timeout=5", "sqlite+pysqlite:///{home}/sweep.db?timeout=5"),
    ("sqlite:///sweeps/~/sweep.db", "sqlite:///sweeps/~/sweep.db"),
    ("postgresql://me:secret@host/~db", "postgresql://me:secret@host/~db"),
])
def test_a_storage_files_leading_tilde_is_the_home_folder(tmp_path, monkeypatch, storage, expanded):
    """sqlite:///~/sweep.db was a folder named ~ in the current one, as a journal's ~ once was."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert sweep_cli._storage(storage) == expanded.format(home=tmp_path)
    with pytest.raises(argparse.ArgumentTypeError, match="this machine has no user 'no-such-user-hw3'"):
        sweep_cli._storage("sqlite:///~no-such-user-hw3/sweep.db")


@pytest.mark.parametrize("storage", ["~/sweeps/j.log", "sqlite:///~/sweeps/sweep.db"])
def test_a_storage_given_from_python_with_a_leading_tilde_is_in_the_home_folder(tmp_path, monkeypatch, storage):
    """run_sweep(storage="~/...") from a notebook made a folder named ~ in the working folder:
    only the command line's --storage expanded it."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    open_storage(storage)
    assert (tmp_path / "home" / "sweeps").is_dir() and not (tmp_path / "~").exists()


@pytest.mark.parametrize("also", [[], ["--param", "momentum=0,0.9"]])  # with a heat map too
def test_a_sweep_whose_every_run_failed_ends_with_an_error(tmp_path, root, capsys, also):
    argv = ["sweep", "--param", "lr=1e300,2e300", *also, "--set", "optimizer=sgd", "--set", "epochs=1",
            *TINY_SETS, "--workers", "1", "--out", str(tmp_path), "--data", str(root), "--no-progress"]
    assert hw3lib_main(argv) == 2
    captured = capsys.readouterr()
    failed = 4 if also else 2  # 2 x 2 settings, or 2
    assert json.loads(captured.out.splitlines()[-1])["runs"] == {"done": 0, "pruned": 0, "failed": failed}
    assert captured.err.startswith("error: every run of the sweep failed (the first: TrainingError")
    assert "e.g. --param lr=" in captured.err and "--set lr" not in captured.out + captured.err  # lr is swept


# --- interrupted and killed sweeps resume --------------------------------------------------------

def start_sweep(tmp_path, root):
    """The sweep command in its own process group, as a terminal runs it: 3 settings x 2 seeds,
    20 epochs each (about a second a run)."""
    args = ["--param", "lr=3e-3,1e-2,2e-2", "--seeds", "0-1", "--set", "epochs=20", *TINY_SETS,
            "--pruner", "none", "--workers", "2"]
    return subprocess.Popen(command(*args, out=tmp_path, root=root), env=environment(),
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True), args


def wait_until_runs_done(process, tmp_path, count, timeout=120):
    """Wait until ``count`` runs are done and another is running; return the done trials."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if (tmp_path / JOURNAL).exists():
            names = optuna.get_all_study_names(open_storage(tmp_path / JOURNAL))
            trials = trials_of(tmp_path / JOURNAL, names[0]) if names else []
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            if len(done) >= count and any(t.state == TrialState.RUNNING for t in trials):
                return names[0], done
        time.sleep(0.1)
    raise AssertionError("the sweep did not get going")


def resume_and_check(tmp_path, root, args, name, done_before):
    """Run the same command again: it finishes every run once and leaves the done ones alone."""
    finished = subprocess.run(command(*args, out=tmp_path, root=root), env=environment(),
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    trials = trials_of(tmp_path / JOURNAL, name)
    sweep = load_sweep(tmp_path / JOURNAL, name).sweep
    assert_every_run_done_once(trials, sweep)
    by_number = {t.number: t for t in trials}
    for t in done_before:
        assert by_number[t.number].datetime_complete == t.datetime_complete
    return trials


def test_an_interrupted_sweep_stops_its_workers_and_resumes_without_repeating_finished_runs(tmp_path, root):
    process, args = start_sweep(tmp_path, root)
    name, done_before = wait_until_runs_done(process, tmp_path, 2)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the parent and its workers
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1].startswith(f"error: sweep {name} interrupted with "), stderr
    assert stderr.strip().endswith("run it again to go on")
    interrupted = [t for t in trials_of(tmp_path / JOURNAL, name) if t.state == TrialState.FAIL]
    assert interrupted and all(t.user_attrs["error"] == "interrupted; queued again" for t in interrupted)
    trials = resume_and_check(tmp_path, root, args, name, done_before)
    retried = [t for t in trials if t.system_attrs.get("failed_trial") in {i.number for i in interrupted}]
    assert len(retried) == len(interrupted) and all(t.state == TrialState.COMPLETE for t in retried)
    def runs(trials):
        return sorted((json.dumps(t.params, sort_keys=True), t.user_attrs["seed"]) for t in trials)
    assert runs(retried) == runs(interrupted)


def test_a_run_queued_again_shows_as_waiting_until_it_resumes_from_its_checkpoint(tmp_path, root):
    """A run queued again after Ctrl-C kept the interrupted attempt's summary: the table showed
    the waiting run with its kept epoch and seconds, as if it had results."""
    sweep = Sweep.define({"lr": [3e-3]}, BASE, (0,), pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)
    two_epochs = lambda: len(study._storage.get_trial(0).intermediate_values) >= 2  # then Ctrl-C
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path, stop=two_epochs)
    result = load_sweep(tmp_path / JOURNAL, study.study_name)
    [run] = result.runs
    assert (run.state, run.epochs, run.best_epoch, run.val_acc, run.seconds) == ("waiting", 0, 0, None, 0.0)
    assert str(result.table()).splitlines()[1].split() == ["0.003", *"-----", "0", "-", "1", "waiting"]
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path)
    [run] = load_sweep(tmp_path / JOURNAL, study.study_name).runs  # resumed: every epoch counted
    assert (run.state, run.epochs, len(run.curve)) == ("done", 4, 4) and run.best_epoch >= 1


def test_a_waiting_retry_that_an_earlier_hw3lib_queued_shows_no_results(tmp_path):
    """A run queued again by an hw3lib from before retries dropped the attempt's summary kept it:
    in such a study the table still showed the waiting run with its kept epoch and seconds."""
    sweep = Sweep.define({"lr": [3e-3]}, BASE, (0,), pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)
    [waiting] = study.get_trials(deepcopy=False)
    kept = dict(epochs=2, best_epoch=2, val_acc=0.5, val_loss=1.0, seconds=3.0)  # the attempt's
    study._storage.set_trial_user_attr(waiting._trial_id, "run", kept)
    result = load_sweep(tmp_path / JOURNAL, study.study_name)
    [run] = result.runs
    assert (run.state, run.epochs, run.best_epoch, run.val_acc, run.seconds) == ("waiting", 0, 0, None, 0.0)
    assert str(result.table()).splitlines()[1].split() == ["0.003", *"-----", "0", "-", "1", "waiting"]


def test_a_worker_killed_mid_run_leaves_no_warning_after_the_last_line(tmp_path, root):
    """A worker killed (kill -9, out of memory) held nothing that Python's resource tracker
    reports as leaked when the command ends: a progress bar's lock was such a thing."""
    process, _ = start_sweep(tmp_path, root)
    name, _ = wait_until_runs_done(process, tmp_path, 1)
    running = [t for t in trials_of(tmp_path / JOURNAL, name)
               if t.state == TrialState.RUNNING and "worker" in t.user_attrs]
    os.kill(int(running[0].user_attrs["worker"].split(":")[1]), signal.SIGKILL)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "leaked" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(f"error: sweep {name} interrupted with "), stderr


def test_ctrl_c_while_the_workers_start_is_one_line_too(tmp_path, root):
    """Ctrl-C the moment the command takes it again after starting its workers (a Ctrl-C in
    the milliseconds after that, while the progress bar was made, skipped stopping the workers
    and said "interrupted" without the sweep's name)."""
    process, _ = start_sweep(tmp_path, root)

    def workers():  # the command's children but multiprocessing's resource tracker
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        return [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]

    def ignores_ctrl_c():  # as the command does while it starts them
        status = Path(f"/proc/{process.pid}/status").read_text()
        return int(re.search(r"^SigIgn:\s*(\w+)", status, re.M)[1], 16) & 1 << signal.SIGINT - 1

    deadline = time.monotonic() + 60
    while (len(workers()) < 2 or ignores_ctrl_c()) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGINT)  # the workers are importing hw3lib now (~0.5 s)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert stderr.startswith("error: sweep ") and stderr.count("\n") == 1, stderr


def test_ctrl_c_before_the_sweep_starts_says_so(tmp_path, root, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_cli, "run_sweep", interrupted)
    assert hw3lib_main(["sweep", "--param", "lr=1e-3,5e-4", "--out", str(tmp_path), "--data", str(root)]) == 130
    assert capsys.readouterr().err == "error: interrupted: run the same command again to go on\n"


def test_ctrl_c_after_every_run_finished_does_not_say_to_go_on(tmp_path, root, capsys, monkeypatch):
    """A Ctrl-C while the finished sweep's table or figures were made said "run the same command
    again to go on", with nothing left to go on with."""
    def interrupted():
        raise KeyboardInterrupt

    result = types.SimpleNamespace(study_name="sweep-abc", table=interrupted)
    monkeypatch.setattr(sweep_cli, "run_sweep", lambda *args, **kwargs: result)
    assert hw3lib_main(["sweep", "--param", "lr=1e-3,5e-4", "--out", str(tmp_path), "--data", str(root)]) == 130
    assert capsys.readouterr().err == ("error: interrupted after every run of sweep sweep-abc had "
                                       "finished, while its results were written: run the same "
                                       "command again for them, which trains nothing more\n")


def test_ctrl_c_the_instant_the_workers_started_stops_them_and_names_the_sweep(tmp_path, root,
                                                                              monkeypatch):
    """A Ctrl-C taken as soon as this process heeds it again, the workers just started."""
    started, stopped = [object()], []
    real = sweep_module._interrupts_ignored

    @contextlib.contextmanager
    def then_ctrl_c():
        with real():
            yield
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_module, "_interrupts_ignored", then_ctrl_c)
    monkeypatch.setattr(sweep_module, "_start_workers", lambda *args: started)
    monkeypatch.setattr(sweep_module, "_stop_workers", stopped.append)
    with pytest.raises(KeyboardInterrupt, match=r"^sweep \S+ interrupted with 0 of 1 runs finished"):
        run_sweep({"lr": [1e-3]}, BASE, out=tmp_path, root=root, progress=False, workers=1)
    assert stopped == [started]


def test_a_stopped_sweep_reports_the_runs_finished_while_its_workers_stopped(tmp_path, root, monkeypatch):
    """The playground's bar said "sweep 2/6" beside "interrupted with 4 of 6 runs finished"."""
    finished = iter([2, 4])
    monkeypatch.setattr(sweep_module, "_start_workers", lambda *args: [SimpleNamespace(is_alive=lambda: True)])
    monkeypatch.setattr(sweep_module, "_stop_workers", lambda procs: None)
    monkeypatch.setattr(sweep_module, "sweep_result",
                        lambda study: SimpleNamespace(finished=lambda n=next(finished): [None] * n,
                                                      sweep=SimpleNamespace(total=6)))
    stop, seen = threading.Event(), []
    stop.set()
    with pytest.raises(KeyboardInterrupt, match=r"interrupted with 4 of 6 runs finished"):
        run_sweep({"lr": [1e-3, 2e-3, 3e-3]}, BASE, seeds=(0, 1), out=tmp_path, root=root, progress=False,
                  workers=1, on_progress=lambda done, total: seen.append((done, total)), stop=stop)
    assert seen == [(2, 6), (4, 6)]


def test_a_sweep_stopped_after_all_its_runs_finished_says_so_not_to_go_on(tmp_path, root, monkeypatch):
    """It said "interrupted with 2 of 2 runs finished ...: run it again to go on": nothing was left."""
    monkeypatch.setattr(sweep_module, "_start_workers", lambda *args: [SimpleNamespace(is_alive=lambda: True)])
    monkeypatch.setattr(sweep_module, "_stop_workers", lambda procs: None)
    monkeypatch.setattr(sweep_module, "sweep_result", lambda study: SimpleNamespace(
        finished=lambda: [None] * 2, sweep=SimpleNamespace(total=2)))
    stop = threading.Event()
    stop.set()
    with pytest.raises(KeyboardInterrupt, match=r"^sweep \S+ interrupted after all 2 of its runs had "
                                                r"finished \(kept in .+\): run it again for their "
                                                r"results, which trains nothing more$"):
        run_sweep({"lr": [1e-3, 2e-3]}, BASE, out=tmp_path, root=root, progress=False, workers=1, stop=stop)


def test_workers_are_started_ignoring_interrupts_which_are_heeded_again_after():
    """Ctrl-C and SIGTERM are ignored while the workers start (a SIGTERM cut the start short,
    leaving the workers started so far unstopped), and by the processes started then, until
    they set their own handlers; in a thread, which sets no handlers, nothing changes."""
    def child_ignores():  # the signals a process started now ignores, from /proc
        return int(subprocess.run([sys.executable, "-c", "import re; print(re.search(r'SigIgn:\\s*(\\w+)', "
                                   "open('/proc/self/status').read())[1])"],
                                  capture_output=True, text=True, check=True).stdout, 16)
    both = (1 << signal.SIGINT - 1) | (1 << signal.SIGTERM - 1)
    before = [signal.getsignal(signum) for signum in INTERRUPTS]
    with sweep_module._interrupts_ignored():
        assert [signal.getsignal(signum) for signum in INTERRUPTS] == [signal.SIG_IGN] * 2
        assert child_ignores() & both == both
    assert [signal.getsignal(signum) for signum in INTERRUPTS] == before and child_ignores() & both == 0
    errors = []

    def in_a_thread():
        try:
            with sweep_module._interrupts_ignored():
                assert [signal.getsignal(signum) for signum in INTERRUPTS] == before
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert errors == []


def stopped_sweep(tmp_path, root, before_stop=lambda: None):
    """A sweep of 6 runs on 2 workers stopped once a run is done and others run, just after
    ``before_stop()``; its trials."""
    space, base, stop = {"lr": [3e-3, 1e-2, 2e-2]}, replace(BASE, epochs=20), threading.Event()

    def stop_after_a_run(done, total):
        if done and not stop.is_set():
            before_stop()
            stop.set()

    with pytest.raises(KeyboardInterrupt, match="interrupted with"):
        run_sweep(space, base, seeds=[0, 1], workers=2, out=tmp_path, root=root, pruner="none",
                  progress=False, on_progress=stop_after_a_run, stop=stop)
    return trials_of(tmp_path / JOURNAL, Sweep.define(space, base, (0, 1), pruner="none").name)


def test_a_stopped_sweep_tells_its_workers_without_a_signal_which_on_windows_ends_them(tmp_path, root,
                                                                                       monkeypatch):
    """On Windows os.kill ends a process outright (TerminateProcess): workers stopped with a
    SIGINT left their runs RUNNING, and running the sweep again waited on them for ever."""
    kill = os.kill
    monkeypatch.setattr(os, "kill", lambda pid, signum: kill(pid, signal.SIGKILL if signum else 0))
    trials = stopped_sweep(tmp_path, root)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and all(t.user_attrs["error"] == "interrupted; queued again" for t in interrupted)


def test_the_runs_of_workers_killed_as_the_sweep_stops_are_queued_again_on_windows_too(tmp_path, root,
                                                                                    monkeypatch):
    """Workers that do not stop within STOP_SECONDS are killed; their runs stayed RUNNING until
    a rerun found their processes gone, which on Windows nothing tells: it waited for ever."""
    def freeze_workers():  # stuck mid-batch: they cannot heed the stop
        for process in multiprocessing.active_children():
            if process.name.startswith("hw3lib-sweep-"):
                os.kill(process.pid, signal.SIGSTOP)

    monkeypatch.setattr(sweep_module, "STOP_SECONDS", 0)
    monkeypatch.setattr(sweep_module, "_dead_here", lambda worker: False)  # as on Windows
    monkeypatch.setattr(sweep_study, "LOCK_GRACE_SECONDS", 3)  # the journal's lock, if frozen holding it
    trials = stopped_sweep(tmp_path, root, freeze_workers)
    assert not [t for t in trials if t.state == TrialState.RUNNING and "worker" in t.user_attrs]
    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert killed and all(t.user_attrs["error"].endswith("stopped before the run ended; queued again")
                          for t in killed)


def test_a_plain_kill_of_the_command_stops_its_workers_too(tmp_path, root):
    process, args = start_sweep(tmp_path, root)
    name, _ = wait_until_runs_done(process, tmp_path, 1)
    process.terminate()  # SIGTERM to the command alone, not to its workers
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "interrupted with" in stderr
    trials = trials_of(tmp_path / JOURNAL, name)
    assert not [t for t in trials if t.state == TrialState.RUNNING]  # the workers recorded their runs
    for worker in {t.user_attrs["worker"] for t in trials if "worker" in t.user_attrs}:
        assert not Path(f"/proc/{worker.split(':')[1]}").exists()


def test_runs_of_killed_workers_are_failed_and_run_again_on_resume(tmp_path, root):
    process, args = start_sweep(tmp_path, root)
    name, done_before = wait_until_runs_done(process, tmp_path, 1)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    left = [t for t in trials_of(tmp_path / JOURNAL, name) if t.state == TrialState.RUNNING]
    assert left  # killed mid-run: nobody recorded their end
    trials = resume_and_check(tmp_path, root, args, name, done_before)
    by_number = {t.number: t for t in trials}
    for t in left:  # killed with its run, or between taking the run and naming itself in it
        assert by_number[t.number].state == TrialState.FAIL
        assert by_number[t.number].user_attrs["error"].endswith(("stopped before the run ended; queued again",
                                                                 "before naming itself; queued again"))


def test_a_worker_told_to_stop_while_another_process_trains_its_run_stops_at_once(tmp_path, root):
    path, raised = checkpoint_path(BASE, tmp_path), []  # two sweeps on one --out share checkpoints

    def take_the_run():
        try:
            load_or_train(BASE, path, root=root, stop=lambda: True)  # as a worker after Ctrl-C
        except KeyboardInterrupt as err:
            raised.append(str(err))

    with claimed(path.with_name(path.name + ".training")):  # another process trains it
        waiting = threading.Thread(target=take_the_run, daemon=True)
        waiting.start()
        waiting.join(timeout=10)  # it waited for that run to end: the sweep killed it after a minute
        assert raised == [f"stopped while process {os.getpid()} (this one: the lock was taken twice, or "
                          f"by another thread) trained {path.name}; run again to load or resume it"]
    assert not path.exists()


def test_a_worker_whose_run_was_failed_meanwhile_goes_on_to_the_next_run(tmp_path, root, monkeypatch):
    # a machine that stopped answering for a minute (suspended, its network down) comes back to
    # find its run failed and queued again by another machine: that run is the other's now
    sweep = Sweep.define({"lr": [3e-3, 1e-2]}, BASE, (0,), pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)
    real, storage = sweep_module.load_or_train, study._storage

    def failed_by_another_machine(config, path, **kwargs):
        if config.lr == 3e-3 and not storage.get_trial(0).state.is_finished():
            storage.set_trial_user_attr(0, "error", "its machine stopped answering; queued again")
            storage.set_trial_state_values(0, TrialState.FAIL)
            sweep_module._queue_again(study, storage.get_trial(0))
        return real(config, path, **kwargs)
    monkeypatch.setattr(sweep_module, "load_or_train", failed_by_another_machine)
    work(tmp_path / JOURNAL, study.study_name, root=root, checkpoints=tmp_path / "checkpoints")
    trials = trials_of(tmp_path / JOURNAL, study.study_name)
    assert_every_run_done_once(trials, sweep)
    assert trials[0].user_attrs["error"] == "its machine stopped answering; queued again"


def test_a_run_taken_by_a_worker_that_died_before_naming_itself_is_run_again(tmp_path, root, monkeypatch):
    sweep = Sweep.define({"lr": [3e-3, 1e-2]}, BASE, (0,), pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)
    taken = study._pop_waiting_trial_id()  # Study.ask's first step: RUNNING, before run_trial names its worker
    sweep_module.recover(study)
    assert study._storage.get_trial(taken).state == TrialState.RUNNING  # its worker may be naming itself now
    monkeypatch.setattr(sweep_module, "UNNAMED_SECONDS", 0)
    sweep_module.recover(study)
    orphan = study._storage.get_trial(taken)
    assert orphan.state == TrialState.FAIL
    assert orphan.user_attrs["error"] == "its worker stopped right after taking it, before naming itself; queued again"
    stop = threading.Event()  # without the recovery, the sweep would wait for that run forever
    deadline = threading.Timer(120, stop.set)
    deadline.start()
    try:
        result = run_sweep({"lr": [3e-3, 1e-2]}, BASE, seeds=[0], workers=1, out=tmp_path, root=root,
                           pruner="none", progress=False, stop=stop)
    finally:
        deadline.cancel()
    trials = trials_of(tmp_path / JOURNAL, result.study_name)
    assert_every_run_done_once(trials, sweep)
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == orphan.number]
    assert [(t.state, t.params) for t in retried] == [(TrialState.COMPLETE, orphan.system_attrs["fixed_params"])]


def test_a_retry_just_taken_is_not_failed_for_the_worker_of_the_attempt_before(tmp_path):
    """Optuna's retry copies the failed attempt's user attributes: its dead worker's name must
    not come along, or any process's recover() fails the retry that a live worker just took."""
    sweep = Sweep.define({"lr": [3e-3]}, BASE, (0,), pruner="none")
    study = open_study(sweep, tmp_path / JOURNAL)
    first = study._pop_waiting_trial_id()
    gone = f"{socket.gethostname()}:{os.getpid()}:0"  # this pid, started at another time
    study._storage.set_trial_user_attr(first, "worker", gone)
    sweep_module.recover(study)
    retry = study._pop_waiting_trial_id()  # a live worker takes it; it names itself next
    assert study._storage.get_trial(retry).system_attrs["failed_trial"] == study._storage.get_trial(first).number
    sweep_module.recover(study)
    assert study._storage.get_trial(retry).state == TrialState.RUNNING
    assert "worker" not in study._storage.get_trial(retry).user_attrs
    assert study._storage.get_trial(first).user_attrs["worker"] == gone


def test_a_journal_lock_left_by_a_killed_process_is_broken_after_the_grace_period(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep_study, "LOCK_GRACE_SECONDS", 3)
    relative = Path("sweep") / JOURNAL  # --out sweep: Optuna's lock links to the journal's path as given
    open_storage(relative)._backend._lock.acquire()  # as a process killed while writing leaves it
    assert Path(f"{relative}.lock").is_symlink() and Path(f"{relative}.lock").exists()
    started = time.monotonic()
    created = []
    writer = threading.Thread(target=lambda: created.append(optuna.create_study(storage=open_storage(relative))),
                              daemon=True)
    writer.start()
    writer.join(timeout=60)  # a dangling link is never broken: the writer would wait forever
    assert created and 3 <= time.monotonic() - started < 60


@pytest.mark.parametrize("whole", [1, 0])  # a torn record after a whole one, or the journal's first
def test_a_journal_record_cut_short_by_a_crash_or_a_full_disk_is_dropped_not_joined_to_the_next(tmp_path,
                                                                                              whole):
    journal = tmp_path / JOURNAL
    optuna.create_study(storage=open_storage(journal), study_name="s")
    optuna.create_study(storage=open_storage(journal), study_name="t")
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:whole]) + lines[whole][:30])  # its writer stopped mid-line
    opened = open_storage(journal)  # a torn last line is not read: not yet written, for Optuna
    assert optuna.get_all_study_names(opened) == ["s"][:whole]
    optuna.create_study(storage=opened, study_name="after")  # appended on a line of its own
    assert optuna.get_all_study_names(open_storage(journal)) == [*["s"][:whole], "after"]

def test_a_journal_with_a_line_that_is_no_record_names_the_line_and_what_to_do(tmp_path, root, capsys):
    journal = tmp_path / JOURNAL
    for name in "stu":
        optuna.create_study(storage=open_storage(journal), study_name=name)
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(lines[0] + lines[1][:30] + b"\n" + lines[2])  # an edit that cut a record
    blank = tmp_path / "blank.log"  # an edit that left a blank line at the end, written after
    blank.write_bytes(b"".join(lines) + b"\n")
    with pytest.raises(ValueError, match=f"^the journal {blank} cannot be read: its line 4 is not a whole"):
        optuna.create_study(storage=open_storage(blank), study_name="v")
    said = (f"the journal {journal} cannot be read: its line 2 is not a whole record (edited, or "
            "written over): undo the edit (a blank line too), restore the file from a copy, or move it "
            "aside and run the same command again")
    with pytest.raises(ValueError, match=f"^{re.escape(said)}"):
        load_sweep(journal, "s")
    assert hw3lib_main(["sweep", "--param", "lr=1e-3", "--data", str(root), "--out", str(tmp_path),
                        "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {said}")


def test_a_journal_on_windows_takes_its_lock_without_a_symbolic_link(tmp_path, monkeypatch):
    def no_privilege(*args, **kwargs):  # Windows without Developer Mode or administrator rights
        raise OSError(errno.EPERM, "A required privilege is not held by the client")

    monkeypatch.setattr(os, "symlink", no_privilege)
    monkeypatch.setattr(sys, "platform", "win32")
    study = optuna.create_study(storage=open_storage(tmp_path / JOURNAL), study_name="s")
    study.enqueue_trial({"x": 1})
    assert len(study.get_trials()) == 1 and not Path(f"{tmp_path / JOURNAL}.lock").exists()


@pytest.mark.skipif(not Path("/proc/self/ns/pid").exists(), reason="Linux's PID namespaces")
def test_a_worker_of_another_machine_of_this_host_name_on_a_database_is_left_to_its_heartbeat(
        tmp_path, monkeypatch):
    """Machines cloned from one image, or containers on one host's network, share a host name: on
    a database they share, a worker of the other one (its process number no process here) was
    taken for a dead worker of this machine, and its run failed and queued again, on and on. A
    journal, which one machine holds, without heartbeats, still counts any worker of this host
    name as its own (a reboot gives the machine another boot id), an earlier hw3lib's too."""
    readlink, pid = os.readlink, f":{2**22 + 1}:"  # above Linux's largest process number: none here

    def running_elsewhere():  # a worker that runs with that number, as worker_id named it
        return sweep_module.worker_id(os.getpid()).replace(f":{os.getpid()}:", pid)

    with monkeypatch.context() as other:  # a process in another PID namespace
        other.setattr(os, "readlink", lambda path: "pid:[1]" if path == "/proc/self/ns/pid" else readlink(path))
        theirs = running_elsewhere()
    sweep = Sweep.define({"lr": [3e-3]}, BASE, (0,), pruner="none")
    for storage in (f"sqlite:///{tmp_path / 'sweep.db'}", tmp_path / JOURNAL):
        journal = "://" not in str(storage)
        for worker, dead in [(theirs, journal), (running_elsewhere(), True),
                             (f"{socket.gethostname()}{pid}1", journal)]:  # an earlier hw3lib's
            study = open_study(sweep, storage, f"s{len(optuna.get_all_study_names(open_storage(storage)))}")
            taken = study._pop_waiting_trial_id()
            study._storage.set_trial_user_attr(taken, "worker", worker)
            sweep_module.recover(study)
            assert (study._storage.get_trial(taken).state == TrialState.FAIL) is dead, (storage, worker)


def test_without_proc_as_on_macos_a_worker_that_is_gone_is_known_dead(monkeypatch):
    read_text = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda path, *args, **kwargs: (
        read_text(path, *args, **kwargs) if path.parts[1:2] != ("proc",) else open("/no/proc")))
    process = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    worker = sweep_module.worker_id(process.pid)
    alive = sweep_module._dead_here(worker)
    process.communicate(b"\n")
    assert not alive and sweep_module._dead_here(worker)

# --- PostgreSQL, as several machines share a study --------------------------------------------

def test_the_postgres_extra_brings_the_driver_of_a_plain_postgresql_url():
    """README: `pip install -e '.[postgres]'`. SQLAlchemy loads psycopg 3 for postgresql:// from
    2.1 on; 2.0 (which Optuna allows) loads psycopg2, which the extra does not install."""
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["postgres"]
    assert "psycopg[binary]>=3.1" in extra and "sqlalchemy>=2.1" in extra
    assert sqlalchemy.engine.make_url("postgresql://me@host/db").get_dialect().driver == "psycopg"


def _postgres_bin():
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@pytest.fixture
def postgres_url():
    """A PostgreSQL server of Debian's package on 127.0.0.1 (as the user nobody when run as root),
    in a temporary folder, stopped afterwards. CI (HW3_REQUIRE_POSTGRES=1) fails without it."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        missing("PostgreSQL's server (Debian: apt-get install postgresql) is not installed",
                "HW3_REQUIRE_POSTGRES")
    folder = Path(tempfile.mkdtemp(prefix="hw3-postgres-"))
    user = "nobody" if os.geteuid() == 0 else None  # the server refuses to run as root
    if user:
        shutil.chown(folder, user)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = dict(user=user, cwd=folder, check=True, capture_output=True, text=True, timeout=120)
    try:
        subprocess.run([bin_dir / "initdb", "-D", folder / "db", "-U", "postgres", "-A", "trust"], **run)
        subprocess.run([bin_dir / "pg_ctl", "-D", folder / "db", "-l", folder / "log", "-w", "start",
                        "-o", f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off"], **run)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([bin_dir / "pg_ctl", "-D", folder / "db", "-m", "fast", "-w", "stop"], user=user,
                       cwd=folder, capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_machines_share_one_study_on_a_postgresql_server(tmp_path, root, postgres_url):
    """Two sweep commands with the same --storage, each with its own folder and one worker, as
    two machines would run them: together they train every run of the grid once."""
    args = ["--param", "lr=3e-3,1e-2,2e-2", "--param", "hflip=true,false", "--seeds", "0-1",
            "--set", "epochs=15", *TINY_SETS, "--pruner", "none", "--workers", "1",
            "--storage", postgres_url, "--study-name", "shared"]
    machines = [subprocess.Popen(command(*args, out=tmp_path / f"machine{i}", root=root), env=environment(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    for machine in machines:
        _, stderr = machine.communicate(timeout=300)
        assert machine.returncode == 0, stderr
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    sweep = Sweep.from_json(study.user_attrs["sweep"])
    assert len(trials) == sweep.total == 12
    assert_every_run_done_once(trials, sweep)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both machines trained runs
    checkpoints = [len(list((tmp_path / f"machine{i}" / "checkpoints").glob("*/*.npz"))) for i in (1, 2)]
    assert sum(checkpoints) == 12 and min(checkpoints) > 0


def test_a_run_whose_machine_stopped_answering_is_failed_and_run_again(tmp_path, root, postgres_url,
                                                                      monkeypatch):
    """Another machine took a run and died: once its heartbeat is older than the grace period,
    a worker here fails it, and the run is queued again and trained once."""
    monkeypatch.setattr(sweep_study, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(sweep_study, "GRACE_SECONDS", 2)
    sweep = Sweep.define({"lr": [3e-3, 1e-2]}, BASE, pruner="none")
    study = open_study(sweep, postgres_url, "crashed")
    storage, taken = study._storage, study._pop_waiting_trial_id()  # as the other machine did
    storage.set_trial_user_attr(taken, "worker", "another-machine:4242:1")
    storage.record_heartbeat(taken)
    time.sleep(3)
    deadline = time.monotonic() + 60  # a worker waits while a run is RUNNING: do not hang here
    work(postgres_url, "crashed", root=root, checkpoints=tmp_path, stop=lambda: time.monotonic() > deadline)
    trials = optuna.load_study(study_name="crashed", storage=postgres_url).get_trials()
    assert_every_run_done_once(trials, sweep)
    [dead] = [t for t in trials if t._trial_id == taken]
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert dead.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert dead.user_attrs["error"] == ("its machine stopped answering (no heartbeat from its worker "
                                        "another-machine:4242:1); queued again")
    assert retry.params == dead.system_attrs["fixed_params"] and len(trials) == 3


def test_a_storage_url_is_shown_without_its_password(tmp_path, root, postgres_url, monkeypatch):
    secret = postgres_url.replace("postgres@", "postgres:S3CRETPW@")  # trust: any password passes
    assert sweep_module.shown_storage(secret) == postgres_url
    with pytest.raises(ValueError, match=f"^storage {postgres_url} holds no Optuna study"):
        load_sweep(secret, "nope")  # and creates none of Optuna's tables there
    open_storage(secret)  # creates them
    with pytest.raises(ValueError, match="no study 'nope' in ") as refused:
        load_sweep(secret, "nope")
    assert "S3CRETPW" not in str(refused.value) and postgres_url in str(refused.value)
    assert str(refused.value).endswith(": it holds no study")

    class Running:
        def is_alive(self):
            return True

    monkeypatch.setattr(sweep_module, "_start_workers", lambda *args: [Running()])
    monkeypatch.setattr(sweep_module, "_stop_workers", lambda workers: None)
    stop = threading.Event()
    stop.set()  # Ctrl-C
    with pytest.raises(KeyboardInterrupt) as interrupted:
        run_sweep({"lr": [1e-3]}, BASE, out=tmp_path, storage=secret, root=root, progress=False, stop=stop)
    assert "S3CRETPW" not in str(interrupted.value) and f"kept in {postgres_url}:" in str(interrupted.value)


# --- figures ---------------------------------------------------------------------------------

def test_a_settings_status_counts_its_runs_by_state_and_the_seeds_not_queued_yet():
    def run(state):
        return Run(0, {}, 0, state, None, None, 0, 0, 0.0, [], None)

    done = Setting({}, [run("done")] * 3, BASE)
    assert done.status(3) == "3 done"
    assert Setting({}, [run("done"), run("pruned"), run("done")], BASE).status(3) == "2 done, 1 pruned"
    assert Setting({}, [run("running")], BASE).status(3) == "1 running, 2 not queued"
    # one order, whichever seed's run ended first
    assert Setting({}, [run("pruned"), run("done")], BASE).status(2) == "1 done, 1 pruned"
    assert Setting({}, [run("waiting"), run("failed"), run("done")], BASE).status(3) == \
        "1 done, 1 failed, 1 waiting"


def test_a_settings_accuracy_and_loss_average_the_same_runs():
    def run(state, acc, loss):
        return Run(0, {}, 0, state, acc, loss, 1, 1, 0.0, [acc], None)

    setting = Setting({}, [run("done", 0.9, 0.3), run("pruned", 0.7, 0.5), run("failed", 0.5, 2.0),
                           run("running", 0.6, 1.0)], BASE)
    assert setting.values == [0.9, 0.7] and setting.mean == pytest.approx(0.8)
    assert setting.loss == pytest.approx(0.4)  # not the failed or the running run's
    assert Setting({}, [run("running", 0.6, 1.0)], BASE).loss is None


def test_the_seconds_per_run_average_the_runs_that_trained_not_those_waiting_or_failed_at_once():
    def run(lr, seed, state, epochs, seconds):
        return Run(seed, {"lr": lr}, seed, state, 0.9 if epochs else None, 0.3 if epochs else None,
                   epochs, epochs, seconds, [0.9] * epochs, None)

    sweep = Sweep.define({"lr": [1e-3, 1e-2]}, BASE, seeds=(0, 1, 2))
    result = SweepResult(sweep, "s", [run(1e-3, 0, "done", 4, 8.0), run(1e-3, 1, "pruned", 2, 4.0),
                                      run(1e-3, 2, "waiting", 0, 0.0), run(1e-2, 0, "failed", 0, 0.0)])
    rows = {row.split()[0]: row.split() for row in str(result.table()).splitlines()[1:]}
    assert rows["0.001"][6:8] == ["4,2,0", "6.000"]  # not 4.000, the waiting run's 0 s counted
    assert rows["0.01"][6:8] == ["0", "-"]


def test_swept_settings_are_named_for_people():
    assert [setting_label(n) for n in ("lr", "hflip", "batch_size", "model.conv_channels")] == \
        ["learning rate", "random flips", "batch size", "conv channels"]


def test_plot_sweep_draws_every_run_and_the_mean_per_value_of_each_setting():
    params = [dict(lr=1e-3, hflip=True), dict(lr=1e-2, hflip=True), dict(lr=1e-3, hflip=False)]
    values = [[0.9, 0.8], [0.5, 0.7], [1.0, 1.0]]
    fig = plot_sweep(params, values, ["lr", "hflip"], log=["lr"], labels={"hflip": "random flips"})
    ax_lr, ax_flip = fig.axes
    runs, means = ax_lr.lines
    assert list(runs.get_xdata()) == [1e-3, 1e-3, 1e-2, 1e-2, 1e-3, 1e-3]
    assert list(runs.get_ydata()) == [0.9, 0.8, 0.5, 0.7, 1.0, 1.0]
    assert list(means.get_xdata()) == [1e-3, 1e-2] and list(means.get_ydata()) == pytest.approx([0.925, 0.6])
    assert ax_lr.get_xscale() == "log" and ax_lr.get_xlabel() == "lr"
    assert [t.get_text() for t in ax_flip.get_xticklabels()] == ["no", "yes"]
    assert ax_flip.get_xlabel() == ax_flip.get_title() == "random flips"
    assert list(ax_flip.lines[1].get_ydata()) == pytest.approx([1.0, 0.725])


def test_plot_sweep_draws_a_pruned_run_hollow_and_says_so():
    """A pruned run's accuracy (its best epoch before it was stopped) was drawn as any run's,
    though it is no finished run's score; only the heat map marked it."""
    params = [dict(lr=1e-3), dict(lr=1e-2)]
    fig = plot_sweep(params, [[0.9, 0.8], [0.5, 0.7]], ["lr"], pruned=[[False, False], [True, False]])
    (ax,) = fig.axes
    full, cut, _ = ax.lines
    assert list(full.get_ydata()) == [0.9, 0.8, 0.7] and list(cut.get_ydata()) == [0.5]
    assert cut.get_markerfacecolor() == "none" and full.get_markerfacecolor() != "none"
    assert "a run pruned (stopped early)" in [t.get_text() for t in fig.legends[0].get_texts()]


@pytest.mark.parametrize("names", [["lr"], ["lr", "hflip"]])
def test_the_sweep_figure_legend_hides_no_run(names):
    """The legend stood inside the last panel's lower right, over the runs there: a setting's
    worst runs (at the largest value, the lowest accuracy) were hidden behind it."""
    params = [dict(lr=lr, hflip=flip) for lr in (5e-4, 1e-3) for flip in (False, True)]
    fig = plot_sweep(params, [[0.873], [0.859], [0.961], [0.86]], names)
    fig.canvas.draw()
    legend = (fig.legends or [ax.get_legend() for ax in fig.axes if ax.get_legend()])[0]
    box = legend.get_window_extent()
    for ax in fig.axes:
        for line in ax.lines:
            for x, y in ax.transData.transform(line.get_xydata()):
                assert not (box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1), (ax.get_xlabel(), x, y)


def test_plot_sweep_heatmap_shows_the_best_mean_of_each_pair():
    params = [dict(lr=1e-3, hflip=True, bs=8), dict(lr=1e-3, hflip=True, bs=16),
              dict(lr=1e-2, hflip=False, bs=8)]
    fig = plot_sweep_heatmap(params, [0.5, 0.75, 0.9], "lr", "hflip")
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    assert grid.shape == (2, 2) and grid[1, 0] == 0.75 and grid[0, 1] == 0.9
    assert np.isnan(np.ma.filled(grid, np.nan)[[0, 1], [0, 1]]).all()  # no run: blank
    assert sorted(t.get_text() for t in ax.texts) == ["0.750", "0.900"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("lr", "hflip")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["no", "yes"]
    assert ax.images[0].get_clim() == (0.75, 1.0)  # from the lowest mean, below 0.95


def test_a_heatmap_of_a_sweep_of_three_settings_says_each_cell_is_the_best_over_the_third():
    """Notebook 06's study with a third setting in its grid: each cell of study.heatmap("lr",
    "hflip") showed the best mean over the batch sizes, under a title and a colour bar saying
    the mean validation accuracy, and nothing said that the batch size was chosen per cell."""
    sweep = Sweep.define({"lr": [1e-3, 1e-2], "hflip": [True], "batch_size": [16, 32]}, BASE)

    def run(lr, batch_size, acc):
        return Run(0, {"lr": lr, "hflip": True, "batch_size": batch_size}, 0, "done", acc, 0.1, 1, 1,
                   0.0, [acc], None)

    fig = SweepResult(sweep, "s", [run(1e-3, 16, 0.9), run(1e-3, 32, 0.8), run(1e-2, 16, 0.7),
                                   run(1e-2, 32, 0.95)]).heatmap("lr", "hflip")
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0.900", "0.950"]
    [note] = fig.texts
    assert note.get_text() == "each cell: the best mean over the batch size, which varies too (the table has each)"
    two = plot_sweep_heatmap([dict(lr=1, h=1, bs=8), dict(lr=2, h=1, bs=8)], [0.9, 0.8], "lr", "h",
                             partial=[True, False])
    assert [t.get_text()[:16] for t in two.texts] == ["* not every run "]  # bs=8 throughout: no note


def test_plot_sweep_heatmap_names_its_axes_and_keeps_small_differences_small():
    params = [dict(lr=lr, hflip=flip) for flip in (False, True) for lr in (1e-3, 2e-3)]
    fig = plot_sweep_heatmap(params, [0.979, 0.998, 1.0, 1.0], "lr", "hflip",
                             labels={"lr": "learning rate", "hflip": "random flips"})
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("learning rate", "random flips")
    assert ax.images[0].get_clim() == (0.95, 1.0)  # not 0.979 to 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.002"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.979", "0.998", "1.000", "1.000"]


def test_the_heatmap_marks_settings_whose_runs_did_not_all_train_every_epoch(root):
    sweep = Sweep.define({"lr": [1e-3, 1e-2], "hflip": [True, False]}, BASE, seeds=(0, 1))

    def run(lr, hflip, seed, state, acc):
        return Run(0, {"lr": lr, "hflip": hflip}, seed, state, acc, 0.1, 1, 1, 0.0, [acc], None)

    runs = [run(1e-3, True, 0, "done", 0.99), run(1e-3, True, 1, "pruned", 0.5),
            run(1e-2, True, 0, "done", 0.98), run(1e-2, True, 1, "done", 0.96),
            run(1e-3, False, 0, "done", 0.97)]  # its second seed not queued yet
    fig = SweepResult(sweep, "s", runs).heatmap()
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0.745*", "0.970", "0.970*"]
    [note] = fig.texts
    assert note.get_text().startswith("* not every run of it trained all its epochs (pruned, failed")
    unmarked = plot_sweep_heatmap([{"lr": 1, "h": 1}], [0.9], "lr", "h")
    assert [t.get_text() for t in unmarked.axes[0].texts] == ["0.900"] and not unmarked.texts
    cut = SweepResult(sweep, "s", runs).plot().axes[0].lines[1]  # the pruned run, hollow
    assert list(cut.get_ydata()) == [0.5] and cut.get_markerfacecolor() == "none"


def test_a_heatmap_it_cannot_draw_says_what_to_draw_instead():
    """Notebook 06's study with its grid cut to the learning rate alone: study.heatmap("lr",
    "hflip") said "a heat map needs two different swept settings among ['lr'], got x='lr',
    y='hflip'", and not what to do."""
    one = SweepResult(Sweep.define({"lr": [1e-3, 1e-2]}, BASE), "s", [])
    with pytest.raises(ValueError, match=r"hflip is not swept.*sweep 2 settings.*or draw this one with "
                                         r"\.plot\(\)"):
        one.heatmap("lr", "hflip")
    with pytest.raises(ValueError, match=r"only lr is swept.*\.plot\(\)"):
        one.heatmap()
    two = SweepResult(Sweep.define({"lr": [1e-3, 1e-2], "hflip": [True, False]}, BASE), "s", [])
    with pytest.raises(ValueError, match=r"momentum is not swept: choose x and y among \['lr', 'hflip'\]"):
        two.heatmap("lr", "momentum")
    with pytest.raises(ValueError, match=r"x and y must differ"):
        two.heatmap("lr", "lr")


def test_a_setting_with_no_score_keeps_its_row_and_column_blank():
    sweep = Sweep.define({"lr": [1e-3, 1e300], "hflip": [True, False]}, BASE)

    def run(lr, hflip, state, acc):
        return Run(0, {"lr": lr, "hflip": hflip}, 0, state, acc, 0.1, 1, 1, 0.0, [acc], None)

    runs = [run(1e-3, True, "done", 0.97), run(1e300, True, "failed", None),
            run(1e-3, False, "failed", None), run(1e300, False, "failed", None)]
    ax = SweepResult(sweep, "s", runs).heatmap().axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "1e+300"]  # every lr, one failed
    assert [t.get_text() for t in ax.texts] == ["0.970"] and ax.images[0].get_clim() == (0.95, 1.0)
    nothing = SweepResult(sweep, "s", [replace(r, state="failed", val_acc=None) for r in runs]).heatmap()
    assert nothing.axes[0].images[0].get_array().mask.all() and not nothing.axes[0].texts


@pytest.mark.parametrize("lrs", [[6e-4, 6.7e-4, 8.5e-4, 2e-3, 2.2e-3, 6.2e-3],  # a sampled search's
                                 [2.5e-4, 5e-4, 1e-3], [2e-4, 3e-4], list(np.geomspace(1e-5, 1e-1, 40)),
                                 [1e-3, 1.1e-3, 1.2e-3, 1.3e-3]])
def test_a_log_axis_of_the_sweep_figure_has_tick_labels_that_do_not_overlap(lrs):
    fig = plot_sweep([{"lr": lr} for lr in lrs], [[0.9]] * len(lrs), ["lr"], log=["lr"])
    ax = fig.axes[0]
    fig.canvas.draw()
    low, high = ax.get_xlim()
    shown = [t for t in ax.get_xticklabels(which="both") if t.get_text() and low <= t.get_position()[0] <= high]
    assert len(shown) >= (1 if len(lrs) == 1 else 2)
    boxes = sorted((t.get_window_extent() for t in shown), key=lambda box: box.x0)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in shown]
    if lrs == [2.5e-4, 5e-4, 1e-3]:  # a grid's few values: its own values, as the table prints them
        assert [t.get_text() for t in shown] == ["0.00025", "0.0005", "0.001"]
