"""hw3lib.widgets, the playground panel, and hw3lib.playground_runs, its runs, without a
browser: build it, set the controls, press its buttons, check the runs, the history, the curves
and the table; and plot_live_curves."""
import html
import os
import shutil
import threading
import time
import warnings
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from threadpoolctl import threadpool_info, threadpool_limits

from datasets import count_decodes, png_bytes, write_banded_root, write_png
from hw3lib.data import Dataset, dataloader, fit_normalizer, normalize
from hw3lib.images import DataError
from hw3lib.losses import CrossEntropyLoss
from hw3lib.optim import SGD
from hw3lib import plots, widgets
from hw3lib import runs as runs_module
from hw3lib.config import TrainConfig
from hw3lib.plots import plot_live_curves
from hw3lib.evaluation import evaluate
from hw3lib.train import OneBatchWarning
from hw3lib.playground_runs import (OPTIMIZERS, RunRecord, RunSettings, control_ranges, differences,
                                    panel_phrasing, prepare, runs_table, subset)
from hw3lib.widgets import Playground

DATA = Path(os.environ.get("HW3_DATA", Path(__file__).parents[1] / "data"))
HAVE_DATA = (DATA / "Data_train").is_dir() and (DATA / "Data_test").is_dir()
# Small and fast: 40 of 60 synthetic training images, batches of 16 (3 per epoch, the last of 8).
SMALL = RunSettings(epochs=2, batch_size=16, train_size=40, conv1=3, conv2=4)


def patterned(n, channels, rng):
    """32x32 images ``(n, channels, 32, 32)`` whose class (0-2) brightens one quadrant, and labels."""
    y = np.arange(n) % 3
    X = rng.random((n, channels, 32, 32), dtype=np.float32) * 0.6
    for k in range(3):
        X[y == k, :, (k // 2) * 16:(k // 2) * 16 + 16, (k % 2) * 16:(k % 2) * 16 + 16] += 0.4
    return X, y


class FakeLoad:
    """``load(config)`` for the panel: synthetic data of the config's channels, counting calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, config):
        self.calls.append((config.mode, config.seed, config.split))
        rng = np.random.default_rng(config.seed)
        (X, y), (Xv, yv), (Xt, yt) = (patterned(n, config.channels, rng) for n in (60, 30, 30))
        mean, std = fit_normalizer(X)
        return Dataset(X, y, Xv, yv, Xt, yt, ["a", "b", "c"], mean, std)


def panel_of(settings=SMALL, threaded=False, load=None):
    return Playground(settings, load=load or FakeLoad(), threaded=threaded)


def table_rows(panel):
    """The runs table's text lines after the header."""
    return str(panel.runs_table()).splitlines()[1:]

def without_seconds(history):
    return {k: v for k, v in history.items() if k != "seconds"}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# --- the panel's controls -------------------------------------------------------------------

def test_there_is_one_control_per_setting_holding_its_value():
    panel = panel_of()
    assert set(panel.controls) == {f.name for f in fields(RunSettings)}
    assert panel.settings() == SMALL
    assert panel.controls["train_size"].max == 60  # the training split's size
    assert panel.controls["optimizer"].options == tuple(OPTIMIZERS) and len(OPTIMIZERS) == 4
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "playground" in bundle["text/plain"]


def test_the_controls_hold_the_ranges_of_control_ranges():
    panel = panel_of()
    ranges = control_ranges(60)
    assert set(ranges) == set(panel.controls)
    for name, widget in panel.controls.items():
        if isinstance(ranges[name], list):  # the choices
            values = [False, True] if name == "hflip" else [o[1] if isinstance(o, tuple) else o
                                                            for o in widget.options]
            assert values == ranges[name], name
        else:
            assert (widget.min, widget.max) == ranges[name], name


LR_STEPS = r"one of the slider's steps, 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten from 1e-05 to 1"


@pytest.mark.parametrize("name, value, allowed", [
    ("epochs", 50, "an integer from 1 to 30"), ("lr", 2.0, LR_STEPS), ("lr", 1e-7, LR_STEPS),
    ("lr", 3.3e-4, LR_STEPS), ("conv1", 64, "an integer from 1 to 32"),
    ("conv2", 65, "an integer from 1 to 64"), ("kernel_size", 16, "an integer from 1 to 15"),
    ("train_size", 5, "an integer from 10 to 60"), ("train_size", 40.0, "an integer from 10 to 60"),
    ("batch_size", 100, r"one of \[8, 16, 32, 64, 128, 256\]"),
    ("split", "kfold", r"one of \['blocked', 'random'\]"),
    ("image_size", 40, r"one of \[None, 16, 28, 32, 64\]")])
def test_settings_a_control_cannot_hold_are_refused_naming_the_range(name, value, allowed):
    """A slider would clamp them (epochs 50 to 30), and Train run other settings than asked.
    (Kernel 16 at 64 x 64, where the model takes it.)"""
    size = dict(image_size=64) if name == "kernel_size" else {}
    with pytest.raises(ValueError, match=f"{name} must be {allowed}.*, got {value!r}"):
        panel_of(replace(SMALL, **size, **{name: value}))


def test_the_learning_rate_slider_steps_through_exact_decimals_as_train_lr_reads_them():
    """A logarithmic slider stepped its exponent by 0.1: the browser moved 5e-4, the course's
    rate, to 10**-3.3 = 0.000501..., which read 5.0e-4 and 0.0005 in the table but trained
    another rate than `train --lr 5e-4`. Each step is now the decimal its label shows."""
    panel = panel_of(replace(SMALL, lr=5e-4))
    slider = panel.controls["lr"]
    labels = [label for label, _ in slider.options]
    assert [value for _, value in slider.options] == [float(label) for label in labels]
    assert labels[:11] == ["1e-05", "1.2e-05", "1.5e-05", "2e-05", "2.5e-05", "3e-05", "4e-05", "5e-05",
                           "6e-05", "8e-05", "0.0001"] and labels[-1] == "1"
    assert slider.label == "0.0005" and panel.settings().lr == 5e-4
    slider.index += 1  # what moving it one step does in the browser
    assert slider.label == "0.0006" and panel.settings().lr == 6e-4 == float("6e-4")
    slider.index -= 1
    panel.train_button.click()
    [run] = panel.runs
    assert run.settings.lr == TrainConfig(lr=5e-4).lr == 5e-4 and table_rows(panel)[0].split()[2] == "0.0005"


def test_more_training_images_than_the_split_holds_train_on_all_of_them_and_say_so():
    """RunSettings' default 600 on a folder of fewer images opens the panel, as before."""
    panel = panel_of(replace(SMALL, train_size=100))
    assert panel.controls["train_size"].value == 60
    assert "Training images: all 60 of the training split (100 were asked)." in panel.message.value


def test_moving_the_controls_trains_nothing():
    panel = panel_of(threaded=True)
    curves = panel.curves.value
    new = dict(lr=0.01, batch_size=8, epochs=5, optimizer="SGD", conv1=4, conv2=8, kernel_size=3,
               activation="tanh", pooling="avg", mode="RGB", seed=3, train_size=30, split="random",
               hflip=False)
    for name, value in new.items():
        panel.controls[name].value = value
    assert panel.settings() == RunSettings(**new)
    assert panel.runs == [] and panel.batches == [] and panel._thread is None and not panel.running
    assert panel.progress.value == 0 and panel.curves.value == curves and "No runs yet" in panel.table.value


# --- a run ----------------------------------------------------------------------------------

def test_train_runs_the_controls_settings_and_updates_history_progress_curves_and_table():
    panel = panel_of()
    panel.controls["lr"].value = 0.01
    panel.controls["optimizer"].value = "AdamGD, no bias correction"
    empty_curves = panel.curves.value
    panel.train_button.click()
    [run] = panel.runs
    assert run.settings == panel.settings() and run.status == "done"
    assert panel.history is run.history and run.history["epoch"] == [1, 2]
    assert run.best_val_acc == max(run.history["val_acc"]) and run.test_acc is None  # test on request
    assert len(panel.batches) == 2 * 3 and panel.batches[-1][0] == 2.0
    assert panel.progress.value == 1.0 and panel.progress.bar_style == "success"
    assert panel.curves.value != empty_curves and bytes(panel.curves.value).startswith(b"\x89PNG")
    assert not panel.train_button.disabled and panel.stop_button.disabled
    assert "Run 1 done after 2 epoch(s)" in panel.message.value
    [row] = table_rows(panel)
    assert row.split()[:5] == ["1", "AdamGD,", "no", "bias", "correction"]
    assert f"{run.best_val_acc:.3f}" in row and row.split()[-3] == "-" and row.endswith("done")
    assert row in panel.table.value and "blocked" in row.split()


def test_test_accuracy_is_shown_only_on_request_once_per_run():
    panel = panel_of()
    panel.train_button.click()
    panel.train_button.click()
    first, second = panel.runs
    assert "only on request" in panel.test_note.value
    buttons = panel.test_buttons.children
    assert [b.description for b in buttons] == ["Test run 1", "Test run 2"]
    assert not any(b.disabled for b in buttons) and first.result.test_evaluations == 0
    buttons[1].click()
    assert first.test_acc is None and second.test_acc == second.result.test_record.accuracy
    expected = second.result.evaluate(*second.test_split)[1]
    assert second.test_acc == expected and second.result.test_evaluations == 1
    assert f"Run 2: test accuracy {expected:.3f}" in panel.message.value
    assert "runs of this panel are tested" not in panel.message.value  # one run tested: no caution
    table = panel.runs_table()
    assert [row[table.columns.index("test acc")] for row in table.rows] == [None, expected]  # None: "-"
    assert panel.test_buttons.children[1].disabled and not panel.test_buttons.children[0].disabled
    panel.test(2)
    assert second.result.test_evaluations == 1  # asked again: the recorded evaluation, not a new one
    buttons[0].click()
    assert "2 runs of this panel are tested now: choosing among them by test accuracy makes the " \
           "test split a validation split." in panel.message.value


def test_the_caution_counts_the_tested_runs_not_all_of_them():
    panel = panel_of()
    for _ in range(3):
        panel.train_button.click()
    panel.test(3)
    assert "runs of this panel are tested" not in panel.message.value
    panel.test(1)
    assert "Run 1: test accuracy" in panel.message.value
    assert "). 2 runs of this panel are tested now" in panel.message.value


def test_compare_overlays_the_validation_curves_of_every_run():
    panel = panel_of()
    panel.compare.value = True
    hint = panel.curves.value
    panel.train_button.click()
    panel.controls["lr"].value = 0.01
    panel.train_button.click()
    figure = Figure()
    plots.plot_run_curves({f"run {n}": run.history for n, run in enumerate(panel.runs, start=1)},
                          splits=("val",), figure=figure)
    assert len(figure.axes[1].lines) == 2  # one validation line per run, no training lines
    assert [line.get_label() for line in figure.axes[1].lines] == ["run 1: validation", "run 2: validation"]
    assert panel.curves.value != hint
    panel.compare.value = False  # back to the live curves of the last run
    assert panel.curves.value != hint


def test_the_table_keeps_every_run_and_equal_settings_give_equal_runs():
    panel = panel_of()
    for optimizer in ["AdamGD", "SGD, momentum 0.9", "AdamGD"]:
        panel.controls["optimizer"].value = optimizer
        panel.train_button.click()
    first, second, third = panel.runs
    assert without_seconds(first.history) == without_seconds(third.history)
    assert first.test() == third.test()
    assert without_seconds(first.history) != without_seconds(second.history)
    rows = table_rows(panel)
    assert [r.split()[:2] for r in rows] == [["1", "AdamGD"], ["2", "SGD,"], ["3", "AdamGD"]]


def test_the_table_tells_apart_runs_that_differ_in_any_one_control():
    other = dict(lr=0.01, batch_size=8, epochs=5, optimizer="SGD", conv1=4, conv2=8, kernel_size=3,
                 activation="tanh", pooling="avg", mode="RGB", seed=3, train_size=30, split="random",
                 hflip=False, image_size=28)
    assert set(other) == {f.name for f in fields(RunSettings)}
    empty = {"epoch": [], "val_acc": []}
    runs = [RunRecord(settings, empty, 0, 0.0, "done") for settings in
            [SMALL] + [replace(SMALL, **{name: value}) for name, value in other.items()]]
    rows = [line.split(None, 1)[1] for line in str(runs_table(runs)).splitlines()[1:]]  # without the number
    assert len(set(rows)) == len(rows)
    table = runs_table(runs[:1] + runs[-1:])
    size = table.columns.index("size")
    assert [row[size] for row in table.rows] == ["as stored", "28 x 28"]


def test_the_curves_name_the_settings_in_which_the_runs_differ(monkeypatch):
    drawn = []
    monkeypatch.setattr(widgets, "plot_run_curves", lambda histories, *a, **k: drawn.append(list(histories)))
    panel = panel_of()
    panel.train_button.click()
    panel.controls["kernel_size"].value = 3
    panel.controls["lr"].value = 0.01
    panel.train_button.click()
    assert panel._title == "Run 2: AdamGD, lr 0.01, batch 16; since run 1: kernel_size=3"
    panel.controls["optimizer"].value = "SGD"
    panel.train_button.click()
    assert panel._title == "Run 3: SGD, lr 0.01, batch 16"
    for name, value in dict(conv1=4, conv2=5, activation="tanh", mode="RGB").items():
        panel.controls[name].value = value
    panel.train_button.click()
    assert panel._title == ("Run 4: SGD, lr 0.01, batch 16; since run 3: conv1=4, conv2=5, "
                            "activation='tanh', ...")
    panel.runs.pop()
    panel.compare.value = True
    assert drawn[-1] == ["run 1: lr=0.001, optimizer='AdamGD', kernel_size=5",
                         "run 2: lr=0.01, optimizer='AdamGD', kernel_size=3",
                         "run 3: lr=0.01, optimizer='SGD', kernel_size=3"]


def test_compare_names_each_run_by_settings_that_tell_it_apart_from_the_others():
    """Compare's legend showed the first three settings that vary in field order: runs that
    differed from each other only in a later one (the image size) read alike, "run 3: lr=0.003,
    batch_size=64, optimizer='SGD', ..." twice."""
    runs = [replace(SMALL, lr=1e-3), replace(SMALL, lr=3e-3, mode="RGB", image_size=64),
            replace(SMALL, lr=3e-3, batch_size=64, optimizer="SGD", split="random"),
            replace(SMALL, lr=3e-3, batch_size=64, optimizer="SGD", split="random", image_size=16)]
    labels = differences(runs)
    assert len(set(labels)) == len(labels)
    assert labels[3] == "lr=0.003, batch_size=64, image_size=16 x 16, ..."
    assert differences(runs[2:]) == ["image_size=as stored", "image_size=16 x 16"]
    assert differences(runs[:2]) == ["lr=0.001, mode='L', image_size=as stored",  # two: field order
                                     "lr=0.003, mode='RGB', image_size=64 x 64"]


def test_a_runs_title_and_the_runs_table_say_the_image_size_as_the_panels_control():
    """A run's title and Compare's legend wrote image_size=None (and image_size=28) where the
    panel's control says "as stored" ("28 x 28"), and the table wrote 28x28."""
    panel = panel_of()
    panel.train_button.click()
    panel.controls["image_size"].value = 32
    panel.train_button.click()
    assert panel._title == "Run 2: AdamGD, lr 0.001, batch 16; since run 1: image_size=32 x 32"
    panel.controls["image_size"].index = 0  # as stored, as a click chooses it
    panel.train_button.click()
    assert panel._title == "Run 3: AdamGD, lr 0.001, batch 16; since run 2: image_size=as stored"
    table = panel.runs_table()
    size = table.columns.index("size")
    assert [row[size] for row in table.rows] == ["as stored", "32 x 32", "as stored"]
    assert [panel.controls["image_size"].options[k][0] for k in (0, 3)] == ["as stored", "32 x 32"]


def test_compare_drawn_as_a_run_ends_shows_it_once_not_also_as_running(monkeypatch):
    """The curves drawn when a run ended named it twice, as run 2 and as "run 3 (running)" with
    run 2's curves, until Compare was pressed again."""
    drawn = []
    monkeypatch.setattr(widgets, "plot_run_curves", lambda histories, *a, **k: drawn.append(list(histories)))
    panel = panel_of(replace(SMALL, epochs=1))
    panel.compare.value = True
    panel.train_button.click()
    assert drawn[-1] == ["run 1"]
    panel.controls["lr"].value = 0.01
    panel.train_button.click()
    assert "run 2 (running): lr=0.01" in drawn[-2] and drawn[-1] == ["run 1: lr=0.001", "run 2: lr=0.01"]


def test_the_curves_are_redrawn_at_most_every_redraw_seconds_not_every_short_epoch(monkeypatch):
    """A drawing takes about 0.1 s: drawn after every epoch, 30 epochs of the fruits' 1029
    images took 5.1 s in the panel against 1.6 s of training, and its seconds column said so."""
    drawn = []
    monkeypatch.setattr(widgets, "plot_live_curves", lambda history, *a, **k: drawn.append(len(history["epoch"])))
    monkeypatch.setattr(widgets, "REDRAW_SECONDS", 3600)
    panel = panel_of(replace(SMALL, epochs=30))
    drawn.clear()
    panel.train_button.click()
    assert drawn == [0, 30]  # as it starts and when it ends

@pytest.mark.parametrize("optimizer, momentum", [("SGD", 0.0), ("SGD, momentum 0.9", 0.9)])
def test_sgd_runs_take_plain_sgd_steps(optimizer, momentum):
    """An SGD run of the panel is exactly the report's loop with hw3lib.SGD."""
    load = FakeLoad()
    settings = RunSettings(epochs=1, batch_size=16, train_size=40, optimizer=optimizer, lr=0.05, hflip=False)
    record = prepare(settings, load).train()
    config = settings.config()
    data = subset(load(config), 40, settings.seed)
    model, cost = config.build_model(3), CrossEntropyLoss()
    optimizer = SGD(settings.lr, model.get_params(), momentum)
    for X, y in dataloader(normalize(data.X_train, data.mean, data.std), data.y_train, 16, seed=0, epoch=1):
        y_pred = model.forward(X)
        cost.get(y_pred, y)
        model.set_params(optimizer.update_params(model.backward(y_pred, y)))
    expected = evaluate(model, normalize(data.X_val, data.mean, data.std), data.y_val)
    assert (record.history["val_loss"][0], record.history["val_acc"][0]) == expected


def test_a_run_trains_on_one_blas_thread_as_the_sweep_and_the_notebooks_do(monkeypatch):
    """A Jupyter kernel's BLAS runs a thread per core: the panel's run of lr 0.01, seed 0 on the
    fruits validated at 0.948, 0.896, 0.921 where the sweep's run of those settings (one thread
    a worker) had 0.952, 0.921, 0.950."""
    import hw3lib.playground_runs as playground_runs

    fit, threads = playground_runs.fit, []

    def counting(*args, **kwargs):
        threads.append({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
        return fit(*args, **kwargs)

    monkeypatch.setattr(playground_runs, "fit", counting)
    with threadpool_limits(limits=2, user_api="blas"):
        prepare(SMALL, FakeLoad()).train()
    assert threads == [{1}]

def array_bytes(obj):
    """The bytes of the numpy arrays that ``obj`` reaches through its fields, dicts, lists and tuples."""
    seen, stack, total = set(), [obj], 0
    while stack:
        one = stack.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        if isinstance(one, np.ndarray):
            total += one.nbytes
        elif isinstance(one, dict):
            stack.extend(one.values())
        elif isinstance(one, (list, tuple)):
            stack.extend(one)
        elif hasattr(one, "__dict__"):
            stack.extend(vars(one).values())
    return total


def test_a_run_keeps_its_weights_and_test_split_not_its_training_images_or_activations():
    """A session keeps every run: each kept its copy of the training images drawn for it and
    the model's activations of its last batch, megabytes a run (85 MB at RGBA 64 x 64), so
    a session of runs grew without end."""
    load = FakeLoad()
    record = prepare(SMALL, load).train()
    data = load(SMALL.config())
    needed = sum(p.nbytes for p in record.result.model.get_params().values()) + data.X_test.nbytes \
        + data.y_test.nbytes + data.mean.nbytes + data.std.nbytes
    assert array_bytes(record) <= needed
    assert record.test() == record.result.evaluate(data.X_test, data.y_test)[1]


def test_adam_with_and_without_bias_correction_differ():
    runs = [prepare(RunSettings(**{**SMALL.__dict__, "optimizer": name}), FakeLoad()).train()
            for name in ("AdamGD", "AdamGD, no bias correction")]
    assert runs[0].history["train_loss"] != runs[1].history["train_loss"]


def test_the_data_of_a_mode_and_seed_is_loaded_once_and_the_model_follows_the_mode():
    load = FakeLoad()
    panel = panel_of(load=load)
    panel.train_button.click()
    panel.controls["mode"].value = "RGBA"
    panel.train_button.click()
    panel.train_button.click()
    assert load.calls == [("L", 0, "blocked"), ("RGBA", 0, "blocked")]
    assert [run.status for run in panel.runs] == ["done"] * 3


def test_the_panel_says_it_reads_the_images_while_it_does():
    """Train read a folder of photos (seconds, a minute) with the last run's message still shown
    and nothing else moving."""
    fake, said, made = FakeLoad(), [], []

    def load(config):
        said.extend(html.unescape(panel.message.value) for panel in made)
        return fake(config)

    panel = panel_of(load=load)
    made.append(panel)
    panel.controls["seed"].value = 1
    panel.train_button.click()
    assert "Reading the images..." in said[-1] and "Run 1 done" in panel.message.value
    panel.train_button.click()  # loaded already: read no more
    assert len(said) == 1

def test_the_panel_keeps_the_data_of_its_last_seeds_not_of_every_seed_tried():
    """Each seed draws its own split, so each was a dataset kept for the session: 130 MB more a
    seed at RGBA 64 x 64."""
    load = FakeLoad()
    panel = panel_of(replace(SMALL, epochs=1), load=load)
    for seed in (1, 2, 3, 4, 3, 1):
        panel.controls["seed"].value = seed
        panel.train_button.click()
    assert [seed for _, seed, _ in load.calls] == [0, 1, 2, 3, 4, 1]  # 3 kept, 1 dropped by then
    assert len(panel._datasets) == widgets.DATASETS_KEPT == 3
    assert [run.status for run in panel.runs] == ["done"] * 6


def test_the_image_size_control_resizes_the_data_and_the_model_follows():
    sizes = []

    def load(config):
        sizes.append(config.image_size)
        data = FakeLoad()(config)
        size = config.image_size or (32, 32)
        return replace(data, **{f"X_{split}": getattr(data, f"X_{split}")[..., :size[0], :size[1]]
                                for split in ("train", "val", "test")})

    panel = panel_of(load=load)
    assert panel.controls["image_size"].value is None and panel.controls["image_size"].label == "as stored"
    panel.controls["image_size"].value = 28
    panel.train_button.click()
    assert sizes == [None, (28, 28)] and panel.runs[-1].status == "done"
    assert panel.settings().config().build_model().input_shape == (1, 28, 28)
    assert panel_of(replace(SMALL, image_size=28)).controls["image_size"].label == "28 x 28"
    with pytest.raises(ValueError, match=r"image_size must be one of \[None, 16, 28, 32, 64\]"):
        panel_of(replace(SMALL, image_size=40))


def test_a_run_that_does_not_learn_is_said_in_the_panel():
    panel = panel_of(replace(SMALL, lr=1.0))
    panel.train_button.click()
    record = panel.runs[-1]
    assert record.status == "done" and "chance" in record.warning
    assert panel.runs_table().rows[-1][-1] == "did not learn"  # the message line's warning goes, the table keeps it
    assert "Warning: the model did not learn" in panel.message.value
    assert "learning rate 1 is too large, try a smaller one, e.g. 0.1." in panel.message.value
    assert panel.progress.bar_style == "warning"
    panel.controls["lr"].value = 0.003
    panel.controls["epochs"].value = 8
    panel.train_button.click()
    assert panel.runs[-1].warning is None and "Warning" not in panel.message.value


def test_a_run_of_too_few_steps_is_told_to_train_longer_in_the_panel():
    """One epoch of one batch (40 images, batches of 64): the advice follows the run's settings.
    That each epoch is one batch is said in the panel, not again as a Python warning under it."""
    panel = panel_of(replace(SMALL, epochs=1, batch_size=64, lr=1e-5))
    with warnings.catch_warnings(record=True) as seen:
        panel.train_button.click()
    assert seen == [], [(w.category, w.filename, str(w.message)[:80]) for w in seen]
    assert ("Note: batch size 64 is more than the 40 training images, so each epoch is one batch of all "
            "of them (one optimizer step); a smaller batch size gives more steps per epoch.") in panel.message.value
    with pytest.warns(OneBatchWarning):  # the notebook's own code is still warned
        warnings.warn("each epoch is one batch", OneBatchWarning)
    assert panel.runs[-1].warning.endswith("only 1 optimizer step(s) (1 epoch(s) of 1 batch: all 40 training "
                                           "images, batch size 64), "
                                           "too few to learn: train longer, with more epochs or a smaller "
                                           "batch size")
    assert "Warning: the model did not learn" in panel.message.value
    assert "smaller one" not in panel.message.value


# --- refusals, stops, divergence --------------------------------------------------------------

@pytest.mark.parametrize("kernel", [11, 12, 15])
def test_a_kernel_larger_than_its_feature_map_is_refused_in_the_panel(kernel):
    panel = panel_of()
    panel.controls["kernel_size"].value = kernel
    panel.train_button.click()
    assert "Refused, nothing was trained" in panel.message.value
    assert f"kernel_size={kernel} does not fit 32x32" in panel.message.value
    # advice the panel can follow: 34 pixels a side for kernel 11, which its image sizes are not
    assert "Fix: larger images, e.g. image size 64 x 64, or a smaller kernel" in panel.message.value
    assert "TrainConfig" not in panel.message.value
    assert panel.runs == [] and panel.batches == [] and panel.progress.value == 0
    assert not panel.running and not panel.train_button.disabled


def test_a_panel_refuses_settings_that_are_no_run_settings():
    """A dict failed on settings.config()."""
    with pytest.raises(ValueError, match=r"settings must be a RunSettings.*got a dict"):
        Playground({"lr": 0.1}, load=FakeLoad(), threaded=False)


def test_settings_refuse_what_cannot_work():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        RunSettings(optimizer="Adam").config()
    with pytest.raises(ValueError, match=r"optimizer must be one of .*got \['AdamGD'\]"):
        RunSettings(optimizer=["AdamGD"]).config()  # failed as unhashable
    with pytest.raises(ValueError, match="train_size must be an integer from 1 to 60"):
        prepare(RunSettings(train_size=61), FakeLoad())


def test_the_panel_names_the_settings_of_messages_as_its_controls_set_them():
    assert panel_phrasing("Fix: larger images, e.g. TrainConfig(image_size=34).") == \
        "Fix: larger images, e.g. image size 64 x 64."
    assert panel_phrasing("Fix: e.g. TrainConfig(image_size=16).") == "Fix: e.g. image size 16 x 16."
    assert panel_phrasing("Fix: e.g. TrainConfig(image_size='100x80').") == "Fix: e.g. image size 64 x 64."
    assert panel_phrasing("Fix: TrainConfig(mode='LA').") == "Fix: input channels LA."
    assert panel_phrasing("Fix: TrainConfig(val_fraction=0.3).") == "Fix: TrainConfig(val_fraction=0.3)."
    assert panel_phrasing("Try a smaller learning rate, e.g. TrainConfig(lr=0.1)") == \
        "Try a smaller learning rate, e.g. learning rate 0.1"
    assert panel_phrasing("e.g. TrainConfig(epochs=12), TrainConfig(batch_size=8)") == "e.g. epochs 12, batch size 8"


def test_missing_data_is_said_in_the_panel():
    def load(config):
        raise DataError("no dataset files under /nowhere. Fix: set HW3_DATA")

    panel = Playground(SMALL, load=load, threaded=False)
    assert "Cannot load the data: no dataset files under /nowhere" in panel.message.value
    panel.message.value = ""
    panel.train_button.click()
    assert "Cannot load the data" in panel.message.value and panel.runs == []


def test_sweep_on_a_missing_folder_names_the_folder_not_hw3_data(tmp_path):
    """As Train does, before any work: the sweep named its folder by the data's hash first, which
    failed with advice for the course's data ('set HW3_DATA ..., put those two folders under
    data/') for a root= that does not exist."""
    panel = Playground(SMALL, root=tmp_path / "nowhere", threaded=False)
    panel.sweep_button.click()
    message = html.unescape(panel.message.value)
    assert f"Cannot load the data: no dataset at {tmp_path / 'nowhere'}: the folder does not exist" in message
    assert "HW3_DATA to a folder" not in message and panel.sweep_result is None
    assert not panel.running and panel.progress.description == "no run yet"


def stop_at(panel, epoch, batch):
    """Press Stop when batch ``batch`` of epoch ``epoch`` has been reported."""
    def watch(change):
        if panel.batches and panel.batches[-1][0] == epoch - 1 + batch / 3:
            panel.stop_button.click()
    panel.progress.observe(watch, "value")


def test_stop_ends_the_run_after_the_current_batch_and_keeps_the_finished_epochs():
    panel = panel_of()
    stop_at(panel, epoch=2, batch=1)
    panel.train_button.click()
    [run] = panel.runs
    assert run.status == "stopped" and run.history["epoch"] == [1] and run.best_epoch == 1
    assert len(panel.batches) == 4 and run.test() is not None
    assert table_rows(panel)[0].split()[4] == "1/2" and table_rows(panel)[0].endswith("stopped")
    assert "Run 1 stopped after 1 epoch(s)" in panel.message.value
    assert panel.progress.bar_style == "warning" and not panel.running and panel.stop_button.disabled


def test_stop_in_the_first_epoch_records_a_run_without_accuracy():
    panel = panel_of()
    stop_at(panel, epoch=1, batch=2)
    panel.train_button.click()
    [run] = panel.runs
    assert run.history["epoch"] == [] and run.best_val_acc is None and run.test_acc is None
    assert "before its first epoch ended" in panel.message.value
    assert panel.test_buttons.children[0].disabled
    panel.test(1)
    assert "no kept weights to test" in panel.message.value
    assert table_rows(panel)[0].split()[-4:-2] == ["-", "-"]


def test_a_diverging_run_is_recorded_with_fits_message_not_raised():
    panel = panel_of(RunSettings(optimizer="SGD, momentum 0.9", lr=1.0, epochs=3, batch_size=8, train_size=40,
                                 pooling="avg"))
    panel.train_button.click()
    [run] = panel.runs
    assert run.status == "diverged" and "Try a smaller learning rate" in run.message
    assert "diverged" in panel.message.value and "Try a smaller learning rate" in panel.message.value
    assert "e.g. learning rate 0.1" in panel.message.value and "TrainConfig" not in panel.message.value
    assert panel.progress.bar_style == "danger" and table_rows(panel)[0].endswith("diverged")


def test_a_run_that_fails_leaves_the_progress_bar_saying_so(monkeypatch):
    """An unexpected error in training (out of memory, say): the message said 'failed' while
    the progress bar stayed at 'epoch 1/2', unstyled, as if the run went on."""
    import hw3lib.playground_runs as playground_runs

    def fails(*args, on_batch=None, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(playground_runs, "fit", fails)
    panel = panel_of()
    try:
        panel.train_button.click()
    except MemoryError:  # re-raised for its traceback, where the click's handler lets it through
        pass
    assert "Run 1 failed: MemoryError: out of memory" in panel.message.value
    assert (panel.progress.description, panel.progress.bar_style) == ("failed", "danger")
    assert not panel.running and not panel.train_button.disabled and panel.stop_button.disabled



def test_a_run_that_fails_is_in_the_table_and_the_next_run_takes_the_next_number(monkeypatch):
    """The failed run went nowhere: the next one was "Run 1" again, its number the failed one's."""
    import hw3lib.playground_runs as playground_runs

    fit = playground_runs.fit

    def fails_in_epoch_2(*args, on_epoch=None, **kwargs):
        on_epoch({"epoch": [1], "train_loss": [1.0], "train_acc": [0.5], "val_loss": [1.1], "val_acc": [0.4],
                  "seconds": [0.1]})
        raise MemoryError("out of memory")

    monkeypatch.setattr(playground_runs, "fit", fails_in_epoch_2)
    panel = panel_of()
    panel.train_button.click()  # its traceback logged by the click's handler
    monkeypatch.setattr(playground_runs, "fit", fit)
    panel.train_button.click()
    assert "Run 2 done after 2 epoch(s)" in panel.message.value
    failed, done = panel.runs
    assert (failed.status, failed.message, failed.best_val_acc) == ("failed", "MemoryError: out of memory", None)
    assert table_rows(panel)[0].split()[4] == "1/2" and table_rows(panel)[0].endswith("failed")
    assert panel.test_buttons.children[0].disabled and not panel.test_buttons.children[1].disabled
    panel.test(1)
    assert "Run 1: the run failed (MemoryError: out of memory): there are no kept weights" in panel.message.value
    panel.compare.value = True  # its finished epoch among the validation curves
    assert [t.get_text() for t in panel._figure().legends[0].get_texts()] == ["run 1", "run 2"]

# --- the background thread ------------------------------------------------------------------

def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_threaded_run_equals_a_synchronous_one():
    threaded, synchronous = panel_of(threaded=True), panel_of()
    threaded.train_button.click()
    synchronous.train_button.click()
    assert threaded.wait(timeout=60)
    assert without_seconds(threaded.runs[0].history) == without_seconds(synchronous.runs[0].history)
    assert threaded.runs[0].test() == synchronous.runs[0].test()
    assert threaded.runs_table().rows[0][:-2] == synchronous.runs_table().rows[0][:-2]  # but seconds


def test_stop_ends_a_threaded_run_and_train_is_refused_meanwhile():
    panel = panel_of(RunSettings(**{**SMALL.__dict__, "epochs": 30, "batch_size": 8}), threaded=True)
    panel.train_button.click()
    wait_for(lambda: panel.batches)
    assert panel.running and panel.train_button.disabled and not panel.stop_button.disabled
    panel.train_button.click()
    assert "A run is in progress" in panel.message.value
    panel.stop_button.click()
    assert panel.wait(timeout=60)
    [run] = panel.runs
    assert run.status == "stopped" and len(run.history["epoch"]) < 30
    assert not panel.train_button.disabled and panel.stop_button.disabled



def test_the_test_buttons_are_off_while_a_run_trains():
    """Testing run 1 while run 2 trained replaced run 2's "training..." message, and both
    threads rebuilt the Test buttons."""
    panel = panel_of(threaded=True)
    panel.train_button.click()
    assert panel.wait(timeout=60) and not panel.test_buttons.children[0].disabled
    panel.controls["epochs"].value, panel.controls["batch_size"].value = 30, 8
    panel.train_button.click()
    wait_for(lambda: panel.batches)
    assert [b.disabled for b in panel.test_buttons.children] == [True]
    panel.test(1)
    assert "A run is in progress" in panel.message.value and panel.runs[0].test_acc is None
    panel.stop_button.click()
    assert panel.wait(timeout=60)
    assert [b.description for b in panel.test_buttons.children] == ["Test run 1", "Test run 2"]
    assert not panel.test_buttons.children[0].disabled
    panel.test(1)
    assert "Run 1: test accuracy" in panel.message.value

def test_a_new_panel_stops_an_earlier_one_still_training():
    """The playground's cell run again while its run trains: the old panel, its Stop button no
    longer shown, trained on in its thread; the new one stops it and says so."""
    old = panel_of(RunSettings(**{**SMALL.__dict__, "epochs": 30, "batch_size": 8}), threaded=True)
    old.train_button.click()
    wait_for(lambda: old.batches)
    new = panel_of()
    assert old.wait(timeout=60) and old.runs[0].status == "stopped"
    assert "A panel made before this one was still training: it stops" in new.message.value
    assert "made before" not in panel_of().message.value  # none training now


def test_compare_clicked_while_a_run_redraws_waits_for_that_drawing(monkeypatch):
    """Matplotlib is not thread-safe: the training thread's redraw and a Compare click in the
    kernel's thread at once garbled tick labels (mathtext's ParseException) and failed the run."""
    panel, inside, overlaps = panel_of(), threading.Event(), []

    def live(*args, **kwargs):  # the training thread's redraw, slow
        inside.set()
        time.sleep(0.3)
        inside.clear()

    monkeypatch.setattr(widgets, "plot_live_curves", live)
    monkeypatch.setattr(widgets, "plot_run_curves", lambda *a, **k: overlaps.append(inside.is_set()))
    redraw = threading.Thread(target=panel._draw)
    redraw.start()
    assert inside.wait(10)
    panel.compare.value = True  # the click: draws the runs' curves
    redraw.join()
    assert overlaps == [False]


# --- the sweep ------------------------------------------------------------------------------

def test_sweep_trains_three_learning_rates_with_two_seeds_each_and_shows_the_table(tmp_path, monkeypatch):
    """On the panel's root, not $HW3_DATA (here a folder without data)."""
    monkeypatch.setenv("HW3_DATA", str(tmp_path / "not-this-data"))
    root = write_banded_root(tmp_path / "data")
    panel = Playground(RunSettings(**{**SMALL.__dict__, "lr": 0.01}), root=root, load=FakeLoad(),
                       threaded=False, sweep_out=tmp_path / "sweep")
    panel.sweep_button.click()
    result = panel.sweep_result
    assert result is not None, html.unescape(panel.message.value)
    assert sorted(s.params["lr"] for s in result.settings()) == [0.005, 0.01, 0.02]
    assert [r.seed for r in result.runs] == [0, 1] * 3 and {r.epochs for r in result.runs} == {2}
    assert all(r.state in ("done", "pruned") for r in result.runs)
    assert str(result.table()).splitlines()[1] in html.unescape(panel.sweep_table.value)
    assert "Sweep done: best learning rate" in panel.message.value
    assert panel.progress.value == 1.0 and panel.progress.description == "sweep 6/6"
    assert not panel.running and not panel.sweep_button.disabled and panel.runs == []


def test_a_sweep_where_no_rate_learned_says_it_in_the_panel_not_again_as_a_warning(tmp_path):
    root = write_banded_root(tmp_path / "data")
    panel = Playground(RunSettings(**{**SMALL.__dict__, "lr": 1e-5, "epochs": 1}), root=root, load=FakeLoad(),
                       threaded=False, sweep_out=tmp_path / "sweep")
    with warnings.catch_warnings(record=True) as seen:
        panel.sweep_button.click()
    assert panel.sweep_result.learned is False and "None of the rates learned" in panel.message.value
    assert seen == [], [(w.category, w.filename, str(w.message)[:80]) for w in seen]


def test_a_sweep_that_ends_early_does_not_show_the_last_sweeps_table(tmp_path, monkeypatch):
    """A second sweep, at another rate, stopped: the first one's table stayed under 'Sweep ended
    early', its rates read as this sweep's."""
    root = write_banded_root(tmp_path / "data")
    panel = Playground(SMALL, root=root, load=FakeLoad(), threaded=False, sweep_out=tmp_path / "sweep")
    first = SimpleNamespace(best=None, table=lambda: "lr 0.0005 0.001 0.002", failures=list, runs=[])
    monkeypatch.setattr(widgets, "run_sweep", lambda *a, **k: first)
    panel.sweep_button.click()
    assert "0.0005" in panel.sweep_table.value and panel.sweep_result is first

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("sweep interrupted with 0 of 6 runs finished")

    monkeypatch.setattr(widgets, "run_sweep", stopped)
    panel.controls["lr"].value = 0.01
    panel.sweep_button.click()
    assert "Sweep ended early" in panel.message.value
    assert panel.sweep_table.value == "" and panel.sweep_result is None


def test_a_sweep_stopped_with_stop_says_so_without_an_error_and_how_to_go_on(tmp_path, monkeypatch):
    """Stop pressed during a sweep showed, in red, 'Sweep ended early: ... run it again to go on',
    the command line's words, as if it had failed; a stopped run is said plainly."""
    root = write_banded_root(tmp_path / "data")
    panel = Playground(SMALL, root=root, load=FakeLoad(), threaded=False, sweep_out=tmp_path / "sweep")

    def stopped(*args, stop, **kwargs):
        panel.stop_button.click()
        assert stop.is_set()
        raise KeyboardInterrupt("sweep s interrupted with 2 of 6 runs finished, kept in j.log: run it again to go on")

    monkeypatch.setattr(widgets, "run_sweep", stopped)
    panel.sweep_button.click()
    message = html.unescape(panel.message.value)
    assert "Sweep stopped: sweep s interrupted with 2 of 6 runs finished" in message
    assert "press Sweep lr again to go on (with the same settings)." in message
    assert "#b00020" not in message and panel.progress.bar_style == "warning" and not panel.running


@pytest.mark.parametrize("learned", [False, True, None])
def test_a_sweep_where_no_rate_learned_says_so_as_the_sweep_judges_it(tmp_path, monkeypatch, learned):
    """Rates so large that every run falls back to chance (on the fruits from about 0.05 up):
    the panel says that none learned, and why, as the sweep judges it (SweepResult.learned: each
    run against its own validation split); it judged the mean over the seeds by a rule of its
    own, which could disagree, and told the student to train a rate alone to be told why."""
    root = write_banded_root(tmp_path / "data")
    panel = Playground(SMALL, root=root, threaded=False, sweep_out=tmp_path / "sweep")
    best = SimpleNamespace(params={"lr": 0.4}, mean=0.5, values=[0.5, 0.5])
    why = None if learned is not False else "the model did not learn: best validation accuracy 0.5"
    result = SimpleNamespace(best=best, table=lambda: "", failures=list, runs=[], learned=learned, not_learned=why)
    monkeypatch.setattr(widgets, "run_sweep", lambda *a, **k: result)
    panel.sweep_button.click()
    message = html.unescape(panel.message.value)
    assert "Sweep done: best learning rate 0.4, mean validation accuracy 0.500 over 2 seeds." in message
    assert ("None of the rates learned. Warning: the model did not learn: best validation accuracy 0.5."
            in message) is (learned is False)
    assert panel.progress.bar_style == ("warning" if learned is False else "success")


@pytest.mark.parametrize("failed", [1, 4])
def test_a_sweep_whose_runs_failed_says_how_many_and_the_first_error(tmp_path, monkeypatch, failed):
    """Every run of a sweep failing (its workers unable to read the data, say) left the panel at
    "Sweep done." with nothing more: the reasons were only in the sweep's table."""
    root = write_banded_root(tmp_path / "data")
    panel = Playground(SMALL, root=root, threaded=False, sweep_out=tmp_path / "sweep")
    runs = [SimpleNamespace(error=f"cannot read image {i}") for i in range(failed)] + [SimpleNamespace()] * (4 - failed)
    best = SimpleNamespace(params={"lr": 0.4}, mean=1.0, values=[1.0, 1.0]) if failed < 4 else None
    monkeypatch.setattr(widgets, "run_sweep", lambda *a, **k: SimpleNamespace(
        best=best, table=lambda: "", failures=lambda: runs[:failed], runs=runs, learned=True))
    panel.sweep_button.click()
    message = html.unescape(panel.message.value)
    said = "Every run" if failed == 4 else "1 of its 4 runs"
    assert f"{said} failed (the first: cannot read image 0)." in message
    assert ("#b00020" in message) is (failed == 4) and panel.progress.bar_style == "warning"


def test_a_finished_sweep_is_reported_before_train_is_enabled_again(tmp_path, monkeypatch):
    """Train came back while the sweep's thread still loaded the data to judge its best rate:
    a run started then had its message and progress bar overwritten by "Sweep done"."""
    root = write_banded_root(tmp_path / "data")
    panel = Playground(SMALL, root=root, threaded=False, sweep_out=tmp_path / "sweep")
    best = SimpleNamespace(params={"lr": 0.4}, mean=1.0, values=[1.0, 1.0])
    monkeypatch.setattr(widgets, "run_sweep", lambda *a, **k: SimpleNamespace(best=best, table=lambda: "", failures=list,
                                                                              runs=[], learned=True))
    panel._datasets.clear()  # the data to judge the best rate by is loaded again after the sweep
    said = []
    panel.message.observe(lambda change: said.append((panel.running, html.unescape(change["new"]))), "value")
    panel.sweep_button.click()
    running, last = said[-1]
    assert "Sweep done: best learning rate 0.4" in last and running  # said before Train came back
    assert not panel.running and not panel.train_button.disabled and panel.progress.bar_style == "success"



@pytest.mark.parametrize("damage", ["removed", "corrupted"])
def test_a_data_folder_broken_during_a_sweep_leaves_its_report_and_train_names_the_fix(tmp_path, monkeypatch,
                                                                                      damage):
    """The report read the data again to judge the best rate: a folder broken while the sweep
    trained raised there, the message left at "Sweep: ..." (or "Reading the images...") and a
    traceback shown. The sweep trained on the files as they were; Train then says what broke."""
    root = write_banded_root(tmp_path / "data")
    panel = Playground(SMALL, root=root, threaded=False, sweep_out=tmp_path / "sweep")
    best = SimpleNamespace(params={"lr": 0.4}, mean=1.0, values=[1.0, 1.0])

    def breaking(*args, **kwargs):
        if damage == "removed":
            shutil.rmtree(root / "Data_train")
        else:
            (root / "Data_train" / "A" / "A_train_0.png").write_bytes(b"not a png")
        return SimpleNamespace(best=best, table=lambda: "", failures=list, runs=[], learned=None)

    monkeypatch.setattr(widgets, "run_sweep", breaking)
    panel.sweep_button.click()
    assert "Sweep done: best learning rate 0.4, mean validation accuracy 1.000" in panel.message.value
    assert not panel.running and panel.progress.bar_style == "success"
    panel.train_button.click()
    message = html.unescape(panel.message.value)
    assert "Cannot load the data: " in message and "Fix: " in message and not panel.running

def fake_sweep(monkeypatch, tmp_path):
    """Replace run_folder (a folder per data root) and run_sweep (workers that die at once);
    returns the list of ``(out, root)`` of each sweep started."""
    import hw3lib.widgets as widgets

    seen = []
    monkeypatch.setattr(widgets, "run_folder", lambda root=None: tmp_path / "runs" / Path(root).name)

    def died(space, base, **kwargs):
        seen.append((kwargs["out"], kwargs["root"]))
        raise widgets.SweepError("the workers stopped (exit status [1]) with 6 of 6 runs not done")

    monkeypatch.setattr(widgets, "run_sweep", died)
    return seen


def test_sweep_goes_to_the_folder_of_the_data_and_code_and_says_when_workers_died(tmp_path, monkeypatch):
    seen = fake_sweep(monkeypatch, tmp_path)
    for split in ("Data_train", "Data_test"):  # the sweep checks that the data's folders exist
        (tmp_path / "mine" / split).mkdir(parents=True)
    panel = Playground(SMALL, root=tmp_path / "mine", load=FakeLoad(), threaded=False)
    panel.sweep_button.click()
    assert seen == [(tmp_path / "runs" / "mine" / "playground-sweep", tmp_path / "mine")]
    assert "Sweep ended early: the workers stopped" in panel.message.value and not panel.running


@pytest.mark.filterwarnings("ignore::hw3lib.train.OneBatchWarning")  # a few images, fewer than a batch
@pytest.mark.parametrize("load", [None, TrainConfig.load_data])
def test_the_default_load_trains_and_sweeps_the_data_at_root_not_hw3_data(tmp_path, monkeypatch, load):
    monkeypatch.setenv("HW3_DATA", str(tmp_path / "not-this-data"))
    root = write_banded_root(tmp_path / "mine", per_class=20, test_per_class=2)
    seen = fake_sweep(monkeypatch, tmp_path)
    panel = Playground(replace(SMALL, epochs=1, train_size=10), root=root, load=load, threaded=False)
    assert panel.root == root
    assert panel.controls["train_size"].max == len(SMALL.config().load_data(root).y_train)
    panel.train_button.click()
    assert panel.runs[-1].status == "done" and panel.runs[-1].result.classes == ["A", "B", "C"]
    panel.sweep_button.click()
    assert seen == [(tmp_path / "runs" / "mine" / "playground-sweep", root)]


@pytest.mark.filterwarnings("ignore::hw3lib.train.OneBatchWarning")  # a few images, fewer than a batch
def test_the_default_load_decodes_the_images_once_for_every_seed_and_split_tried(tmp_path, monkeypatch):
    """Each seed and split method holds out other images, and the panel read and decoded every
    file again for each (seconds a seed for a folder of photos): it splits the images it read,
    the data of each as TrainConfig.load_data loads it; another mode or image size, or files
    changed on disk, are read again."""
    root = write_banded_root(tmp_path / "mine", per_class=20, test_per_class=2)
    files = len(list(root.glob("*/*/*.png")))
    decoded = count_decodes(monkeypatch)
    panel = Playground(replace(SMALL, epochs=1, train_size=10), root=root, threaded=False)
    said, say = [], panel._say
    panel._say = lambda text, **kwargs: (said.append(text), say(text, **kwargs))
    for seed, split in ((1, "blocked"), (2, "blocked"), (2, "random"), (3, "random")):
        panel.controls["seed"].value, panel.controls["split"].value = seed, split
        panel.train_button.click()
    assert [run.status for run in panel.runs] == ["done"] * 4 and len(decoded) == files
    assert not [text for text in said if text.startswith("Reading the images")]  # none read
    config = panel.settings().config()
    expected = config.load_data(root, check_model=False)
    got = panel._dataset(config)
    assert all(np.array_equal(getattr(got, k), getattr(expected, k)) for k in ("X_train", "X_val", "y_val", "mean"))
    decoded.clear()  # load_data's
    panel.controls["mode"].value = "RGB"
    panel.train_button.click()
    assert len(decoded) == files and [text for text in said if text.startswith("Reading the images")]
    write_png(next(root.glob("Data_train/A/*.png")), 30)
    panel.train_button.click()
    assert len(decoded) == 2 * files and [run.status for run in panel.runs] == ["done"] * 6


def test_the_default_load_reads_again_for_each_seed_where_keeping_the_images_would_cost_too_much(
        tmp_path, monkeypatch):
    """Beside the datasets it keeps, the panel's decoded images hold the training images once
    more: above KEEP_IMAGES_BYTES it reads them for each seed, as a sweep's worker does. The
    bound is hw3lib.runs', as the README names it (the panel had a copy of its own, which
    setting the README's did not change)."""
    root = write_banded_root(tmp_path / "mine", per_class=20, test_per_class=2)
    files = len(list(root.glob("*/*/*.png")))
    monkeypatch.setattr(runs_module, "KEEP_IMAGES_BYTES", 0)
    decoded = count_decodes(monkeypatch)
    panel = Playground(replace(SMALL, epochs=1, train_size=10), root=root, threaded=False)
    for seed in (1, 2):
        panel.controls["seed"].value = seed
        panel.train_button.click()
    assert [run.status for run in panel.runs] == ["done"] * 2
    assert len(decoded) == 3 * files  # as the panel is made (its first settings), then each seed
    assert panel._images is None


def test_the_default_load_keeps_images_for_every_model_the_panel_may_set(tmp_path):
    """12x12 images are too small for the panel's 5x5 kernels, not for 3x3 ones: the panel loads
    them (its data serve every model), as TrainConfig.load_data without check_model does."""
    root = write_banded_root(tmp_path / "small", per_class=4, test_per_class=1)
    for image in root.glob("*/*/*.png"):
        image.write_bytes(png_bytes(100, size=(12, 12)))
    panel = Playground(SMALL, root=root, threaded=False)
    assert panel.controls["train_size"].max == 9 and "Set the controls" in panel.message.value


@pytest.mark.filterwarnings("ignore::hw3lib.train.OneBatchWarning")  # a few images, fewer than a batch
def test_a_kernel_larger_than_the_stored_images_is_refused_before_training(tmp_path):
    """12x12 images as stored and the 5x5 kernels: TrainConfig checks the model at 32x32 when no
    image size is set, so the run started and failed in its thread ('Run 1 failed: ValueError',
    a traceback, the progress bar left at 'starting'); it is refused as other settings are."""
    root = write_banded_root(tmp_path / "small", per_class=4, test_per_class=1)
    for image in root.glob("*/*/*.png"):
        image.write_bytes(png_bytes(100, size=(12, 12)))
    panel = Playground(replace(SMALL, epochs=1), root=root, threaded=False)
    panel.train_button.click()
    message = html.unescape(panel.message.value)
    assert "Refused, nothing was trained: LeNet5 with kernel_size=5 does not fit 12x12" in message
    assert panel.runs == [] and panel.progress.description == "no run yet" and not panel.running
    panel.controls["kernel_size"].value = 3
    panel.train_button.click()
    assert panel.runs[-1].status == "done", html.unescape(panel.message.value)


@pytest.mark.filterwarnings("ignore::hw3lib.train.OneBatchWarning")  # a few images, fewer than a batch
def test_a_kernel_that_fits_the_stored_images_trains_though_it_would_not_fit_32x32(tmp_path):
    """64x64 images as stored and kernel 15 (46 pixels a side needed): TrainConfig checked the
    model at 32x32 when no image size is set, and the panel refused it as not fitting '32x32
    inputs', images the folder does not hold."""
    root = write_banded_root(tmp_path / "large", per_class=4, test_per_class=1)
    for image in root.glob("*/*/*.png"):
        image.write_bytes(png_bytes(100, size=(64, 64)))
    panel = Playground(replace(SMALL, epochs=1), root=root, threaded=False)
    panel.controls["kernel_size"].value = 15
    panel.train_button.click()
    assert panel.runs[-1].status == "done", html.unescape(panel.message.value)
    assert panel.runs[-1].result.config.model["kernel_size"] == 15


def test_a_folder_that_loads_only_resized_trains_on_all_its_images_once_resized(tmp_path):
    """Photos of two sizes do not load as stored, so the panel cannot size its "training images"
    slider when made; once "image size" is set, Train bounds it by the training split (42 here),
    not by the 600 asked, and trains."""
    root = write_banded_root(tmp_path / "photos", per_class=20, test_per_class=2)
    next(root.glob("Data_train/A/*.png")).write_bytes(png_bytes(100, size=(40, 30)))
    panel = Playground(replace(SMALL, epochs=1, train_size=600), root=root, threaded=False)
    assert "Cannot load the data: images of different sizes" in panel.message.value
    panel.controls["image_size"].value = 32
    panel.train_button.click()
    assert panel.runs[-1].status == "done", panel.message.value
    assert panel.runs[-1].settings.train_size == panel.controls["train_size"].max == 42


def test_train_reads_the_folder_again_once_its_files_changed_as_the_sweep_does(tmp_path):
    """Train trained on the images the panel had read first, the sweep's workers on the files
    as they are: images added to the folder (or removed) were left out of every run, and a
    smaller folder refused "training images" at the slider's old maximum."""
    root = write_banded_root(tmp_path / "mine", per_class=20, test_per_class=2)
    panel = Playground(replace(SMALL, epochs=1, train_size=42), root=root, threaded=False)
    said = []
    panel.message.observe(lambda change: said.append(html.unescape(change["new"])), "value")
    panel.train_button.click()
    assert len(panel.runs[-1].test_split[1]) == 6 and not any("changed" in line for line in said)
    for split, per_class in (("Data_train", 10), ("Data_test", 2)):
        for name in "ABC":
            for i in range(per_class):
                write_png(root / split / name / f"{name}_new_{i}.png", 100 + 50 * (name == "B"))
    panel.train_button.click()
    grown = len(SMALL.config().load_data(root).y_train)
    assert panel.runs[-1].status == "done" and len(panel.runs[-1].test_split[1]) == 12
    assert panel.controls["train_size"].max == grown > 42 and panel.controls["train_size"].value == 42
    assert f"The files at {root} changed since they were read: read again, {grown} training images now" in said[-2]
    for path in sorted(root.glob("Data_train/*/*.png"))[::3]:
        path.unlink()
    panel.controls["train_size"].value = grown
    panel.train_button.click()
    shrunk = len(SMALL.config().load_data(root).y_train)
    assert panel.runs[-1].status == "done", said[-1]
    assert panel.runs[-1].settings.train_size == panel.controls["train_size"].max == shrunk < grown
    (root / "Data_train" / "A" / "A_link.png").symlink_to(tmp_path / "nowhere.png")  # named as loading names it
    panel.train_button.click()
    assert "A_link.png is a broken symbolic link" in html.unescape(panel.message.value)

def test_train_says_the_files_changed_when_a_sweep_read_them_first(tmp_path, monkeypatch):
    """The sentence compared the files with those last read, by either button: a Sweep that
    read the changed files first left Train's run on them unsaid, though the table numbered
    its data apart from the run before."""
    root = write_banded_root(tmp_path / "mine", per_class=20, test_per_class=2)
    panel = Playground(replace(SMALL, epochs=1), root=root, threaded=False, sweep_out=tmp_path / "sweep")
    monkeypatch.setattr(widgets, "run_sweep", lambda *a, **k: SimpleNamespace(
        best=None, table=lambda: "", failures=list, runs=[]))
    said = []
    panel.message.observe(lambda change: said.append(html.unescape(change["new"])), "value")
    panel.train_button.click()
    write_png(root / "Data_train" / "A" / "A_new.png", 200)
    panel.sweep_button.click()
    assert "Sweep done." in said[-1]
    for run in (2, 3):
        said.clear()
        panel.train_button.click()
        assert panel.runs[-1].status == "done", said[-1]
        assert any(f"The files at {root} changed since they were read" in line for line in said) is (run == 2)
    table = panel.runs_table()
    assert [row[table.columns.index("data")] for row in table.rows] == [1, 2, 2]


def test_the_table_tells_runs_on_the_files_before_a_change_from_those_after(tmp_path):
    """Runs on the folder before and after its files changed read as the same data in the
    table, their accuracies compared as if only the settings differed."""
    root = write_banded_root(tmp_path / "mine", per_class=20, test_per_class=2)
    panel = Playground(replace(SMALL, epochs=1), root=root, threaded=False)
    panel.train_button.click()
    panel.train_button.click()
    assert "data" not in panel.runs_table().columns  # one data: no column
    (root / "Data_train" / "A" / "A_broken.png").write_bytes(b"")
    panel.train_button.click()  # refused: no run on these files, no number for them
    assert "Cannot load the data" in panel.message.value and len(panel.runs) == 2
    (root / "Data_train" / "A" / "A_broken.png").unlink()
    write_png(root / "Data_train" / "A" / "A_new.png", 200)
    panel.train_button.click()
    panel.train_button.click()
    table = panel.runs_table()
    assert [row[table.columns.index("data")] for row in table.rows] == [1, 1, 2, 2]
    assert table.columns[table.columns.index("data") - 1] == "images" and "data" in panel.table.value

def test_the_panel_names_every_bad_image_one_a_line(tmp_path):
    root = write_banded_root(tmp_path / "photos", per_class=20, test_per_class=2)
    bad = sorted(root.glob("Data_train/A/*.png"))[:2]
    for path in bad:
        path.write_bytes(b"")
    panel = Playground(replace(SMALL, epochs=1), root=root, threaded=False)
    assert "white-space: pre-line" in panel.message.value
    lines = panel.message.value.splitlines()
    assert "2 of the 60 images" in lines[0] and [str(p) in line for p, line in zip(bad, lines[1:])] == [True] * 2


def test_without_root_the_default_panel_uses_hw3_data(tmp_path, monkeypatch):
    monkeypatch.setenv("HW3_DATA", str(tmp_path / "env"))
    seen = fake_sweep(monkeypatch, tmp_path)
    panel = Playground(SMALL, threaded=False)
    assert panel.root == tmp_path / "env" and "Cannot load the data" in panel.message.value
    write_banded_root(tmp_path / "env", per_class=4, test_per_class=1)  # the sweep checks the model fits its images
    panel.sweep_button.click()
    assert seen == [(tmp_path / "runs" / "env" / "playground-sweep", tmp_path / "env")]


def test_a_custom_load_without_root_is_not_swept_on_other_data(tmp_path, monkeypatch):
    """The sweep's workers cannot call load: without root they would sweep $HW3_DATA, not load's data."""
    seen = fake_sweep(monkeypatch, tmp_path)
    panel = panel_of()
    panel.sweep_out = tmp_path / "sweep"
    panel.sweep_button.click()
    message = html.unescape(panel.message.value)
    assert "Not swept" in message and "root=FOLDER" in message and "\n" not in message
    assert seen == [] and panel.sweep_result is None and not (tmp_path / "sweep").exists()
    assert not panel.running and not panel.sweep_button.disabled and panel.progress.value == 0
    panel.train_button.click()  # Train still trains on load's data
    assert panel.runs[-1].status == "done"


def test_sweep_refuses_bad_settings_before_any_work(tmp_path):
    panel = Playground(SMALL, root=tmp_path / "data", load=FakeLoad(), threaded=False,
                       sweep_out=tmp_path / "sweep")
    panel.controls["kernel_size"].value = 15
    panel.controls["image_size"].value = 32  # as stored, the images' size is known when they load
    panel.sweep_button.click()
    assert "Refused, nothing was trained: LeNet5 with kernel_size=15" in panel.message.value
    assert not (tmp_path / "sweep").exists() and panel.sweep_result is None and not panel.running



def test_sweep_refuses_a_kernel_larger_than_the_stored_images_as_train_does(tmp_path):
    """With "image size" as stored, the sweep started (its progress bar, its folder) and its
    thread said "Sweep ended early" for a kernel that Train refuses before any work."""
    root = write_banded_root(tmp_path / "data", per_class=20, test_per_class=2)
    panel = Playground(replace(SMALL, kernel_size=15), root=root, threaded=False, sweep_out=tmp_path / "sweep")
    panel.sweep_button.click()
    message = html.unescape(panel.message.value)
    assert "Refused, nothing was trained: LeNet5 with kernel_size=15 does not fit 32x32" in message
    assert "image size 64 x 64" in message and "ended early" not in message
    assert not (tmp_path / "sweep").exists() and panel.progress.description == "no run yet"

# --- subset and the curves ------------------------------------------------------------------

def test_subset_draws_the_training_images_by_seed_and_keeps_the_rest():
    data = FakeLoad()(SMALL.config())
    part = subset(data, 20, seed=1)
    assert len(part.y_train) == 20 and part.X_val is data.X_val and part.X_test is data.X_test
    assert part.mean is data.mean and part.std is data.std
    rows = {data.X_train[i].tobytes(): i for i in range(60)}
    picked = [rows[x.tobytes()] for x in part.X_train]
    assert picked == sorted(picked) and np.array_equal(part.y_train, data.y_train[picked])
    assert np.array_equal(subset(data, 20, seed=1).X_train, part.X_train)
    assert not np.array_equal(subset(data, 20, seed=2).X_train, part.X_train)
    assert subset(data, 60, seed=1) is data
    for bad in (0, 61, 2.5, True):
        with pytest.raises(ValueError, match="train_size must be an integer from 1 to 60"):
            subset(data, bad, seed=0)


def test_plot_live_curves_draws_batches_with_a_gap_per_epoch_and_the_epoch_points():
    history = dict(epoch=[1, 2], train_loss=[1.0, 0.5], train_acc=[0.5, 0.8], val_loss=[1.1, 0.6],
                   val_acc=[0.4, 0.7], seconds=[0.1, 0.1])
    batches = [(0.5, 1.2, 0.3), (1.0, 1.1, 0.4), (1.5, 0.9, 0.6), (2.0, 0.7, 0.7)]
    fig = plot_live_curves(history, batches, title="Run 1")
    assert fig._suptitle.get_text() == "Run 1"
    ax_loss, ax_acc = fig.axes
    for ax, column, name in ((ax_loss, 1, "loss"), (ax_acc, 2, "acc")):
        assert ax.get_title() and ax.get_xlabel() == "epoch" and ax.get_ylabel()
        trace, train, val = ax.lines
        assert np.array_equal(trace.get_xdata(), [0.5, 1.0, np.nan, 1.5, 2.0], equal_nan=True)
        assert np.array_equal(trace.get_ydata(), [b[column] for b in batches[:2]] + [np.nan]
                              + [b[column] for b in batches[2:]], equal_nan=True)
        assert list(train.get_ydata()) == history[f"train_{name}"]
        assert list(val.get_ydata()) == history[f"val_{name}"]
        assert ax.get_xlim() == pytest.approx((0, 2.06))
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()][2].startswith("validation")


def test_the_live_legend_stands_below_the_panels_clear_of_a_low_accuracy():
    """It stood in the accuracy panel's lower right, over the curves of a run stuck near chance."""
    low = dict(epoch=[1, 2, 3], train_loss=[1.1, 1.1, 1.1], train_acc=[0.3, 0.32, 0.34],
               val_loss=[1.1, 1.1, 1.1], val_acc=[0.3, 0.33, 0.35], seconds=[0.1] * 3)
    figure = plot_live_curves(low, [(e / 2, 1.1, 0.3) for e in range(1, 7)], figure=Figure(figsize=(9, 3.4)))
    renderer = FigureCanvasAgg(figure).get_renderer()
    [legend] = [ax.get_legend() for ax in figure.axes if ax.get_legend()] + figure.legends
    box, frame = legend.get_window_extent(renderer), figure.bbox
    assert all(not box.overlaps(ax.get_window_extent(renderer)) for ax in figure.axes)
    assert all(box.y1 <= ax.get_tightbbox(renderer).y0 for ax in figure.axes)  # below the tick labels too
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0  # all of it shown


def test_plot_live_curves_draws_an_empty_run_into_a_given_figure_off_pyplot():
    empty = dict(epoch=[], train_loss=[], train_acc=[], val_loss=[], val_acc=[], seconds=[])
    figure = Figure()
    assert plot_live_curves(empty, figure=figure) is figure
    assert plt.get_fignums() == [] and figure.axes[0].get_xlim() == pytest.approx((0, 1))
    assert [t.get_text() for t in figure.axes[0].texts] == ["No run yet: press Train"]


# --- the real data ------------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_DATA, reason=f"real dataset not found at {DATA}: set HW3_DATA")
def test_the_default_panel_learns_the_fruits():
    panel = Playground(threaded=False)
    panel.train_button.click()
    [run] = panel.runs
    assert panel.controls["train_size"].max == 1029 and run.settings == RunSettings()
    assert run.best_val_acc > 0.95 and run.test() > 0.9


def test_compare_of_many_runs_keeps_its_legend_off_the_curves_and_tells_every_run_apart():
    """A dozen runs' legend inside the accuracy panel covered it and rose into the title; runs 1
    and 11 had one colour (tab10's ten) and one marker."""
    panel = panel_of(replace(SMALL, epochs=1))
    for seed in range(12):
        panel.controls["seed"].value = seed
        panel.train_button.click()
    panel.compare.value = True
    figure = panel._figure()
    ax_loss, ax_acc = figure.axes
    assert ax_acc.get_legend() is None
    [legend] = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == [f"run {n}: seed={n - 1}" for n in range(1, 13)]
    renderer = FigureCanvasAgg(figure).get_renderer()
    top = legend.get_window_extent(renderer).y1
    assert all(top <= ax.get_tightbbox(renderer).y0 for ax in figure.axes)  # below the panels, labels too
    assert legend.get_window_extent(renderer).y0 >= 0  # inside the figure
    looks = [(line.get_color(), line.get_marker()) for line in ax_acc.get_lines()]
    assert len(set(looks)) == 12
    assert all(float(tick).is_integer() for tick in ax_acc.get_xticks())  # whole epochs, not 0.96, 0.98


def test_compare_before_any_finished_epoch_says_so_inside_its_panels():
    """The hint ran past both panels' frames, into the gap between them."""
    panel = panel_of()
    panel.compare.value = True
    figure = panel._figure()
    renderer = FigureCanvasAgg(figure).get_renderer()
    for ax in figure.axes:
        [hint] = ax.texts
        assert "press Train, then compare" in hint.get_text()
        inside, frame = hint.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert frame.x0 < inside.x0 and inside.x1 < frame.x1
