"""The hyperparameter playground of notebook 07: a panel of widgets that trains LeNet-5 on the
fruit data (or the images of another folder: ``Playground(root=...)``) and keeps a table of the
session's runs to compare.

Nothing trains when a control moves. **Train** reads every control into a
:class:`RunSettings`, checks the combination before any work (a kernel larger than its feature
map, say, is refused with a message in the panel, never a traceback) and trains with
:func:`hw3lib.train.fit` in a background thread, so **Stop** ends the run after the current
batch. The progress bar and the loss and accuracy curves update during the run (curves: at
most every :data:`REDRAW_SECONDS`, and when it ends); the runs table gets one row per
run (hyperparameters, best validation accuracy, seconds). **Compare** overlays the validation
curves of the session's runs. The test split is kept for the end: a run's test accuracy is
evaluated only when asked for, with that run's **Test** button (off while a run or sweep
trains), once.

In a notebook::

    panel = Playground()
    panel                                   # shows the panel
    Playground(root="/my/images")           # the same on the data of another folder

Without a browser (tests, scripts), the same handlers run synchronously::

    panel = Playground(threaded=False)
    panel.controls["epochs"].value = 1
    panel.train_button.click()              # trains before it returns
    panel.history["val_acc"], print(panel.runs_table())

**Sweep** trains the controls' settings at half, once and twice their learning rate, with
:data:`SWEEP_SEEDS` each, in worker processes on every core (:func:`hw3lib.sweep.run_sweep`, on
the whole training split of the panel's data folder ``root``, every run to its last epoch: too
few runs to prune), and shows the sweep's table; Stop ends it too. A panel given its own ``load``
sweeps only when also given the ``root`` that ``load`` reads: it cannot tell which data ``load``
loads, and sweeping other data would report another data's learning rate.

The logic is in :mod:`hw3lib.playground_runs`: :class:`RunSettings` (one field per control),
:func:`prepare` (the checks) and :meth:`PreparedRun.train`; :class:`Playground` only reads
widgets and shows results.
"""
import html
import io
import threading
import time
import warnings
import weakref
from dataclasses import fields, replace

import ipywidgets as w
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .checks import is_int
from .config import TrainConfig
from .download import files_stamp
from .folders import resolve_root, split_dirs
from .images import MODES, DataError
from .playground_runs import (IMAGE_SIZES, VAL_SPLITS, RunRecord, RunSettings, check_settings,
                              control_ranges, differences, panel_phrasing, prepare, runs_table)
from .plots import legend_below, plot_live_curves, plot_run_curves
from .runs import run_folder, worth_keeping
from .sweep import NotLearnedWarning, SweepError, run_sweep
from .train import HISTORY_KEYS, OneBatchWarning

REDRAW_SECONDS = 0.5
# Matplotlib is not thread-safe (its mathtext parser is shared): a redraw of the training thread and
# one of a click in the kernel's (Compare runs) at once garble each other's tick labels, and the run fails.
_DRAW_LOCK = threading.Lock()
# The panels made in this process: a new one stops those still training (a panel's cell run
# again leaves the old panel training in its thread, its Stop button no longer shown).
_PANELS = weakref.WeakSet()
SWEEP_SEEDS = (0, 1)
# the datasets a panel keeps loaded, the last used: one per mode, image size, seed and split
# (RGBA 64 x 64 holds 130 MB of the fruits), so that trying seed after seed does not keep them all
DATASETS_KEPT = 3
# Compare's marker of each run, by its tens (runs 1-10 "o", 11-20 "s", ...: tab10's ten colours
# come round again at run 11)
COMPARE_MARKERS = ("o", "s", "^", "D", "v")
# the panel's two columns of controls: training, then the model and its input
CONTROL_COLUMNS = (("lr", "batch_size", "epochs", "optimizer", "train_size", "seed", "split"),
                   ("conv1", "conv2", "kernel_size", "activation", "pooling", "mode", "image_size", "hflip"))
TEST_NOTE = ("Test accuracy is shown only on request: choose a run by its validation accuracy "
             "first, then test that one. A test split used to choose between runs no longer "
             "measures how a run does on new images.")


def _png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def _controls(s, train_max):
    """One widget per :class:`RunSettings` field, holding ``s``'s values (ValueError for one it
    cannot hold, :func:`check_settings`)."""
    def labelled(widget, description):
        widget.description, widget.style = description, {"description_width": "8.5em"}
        widget.layout = w.Layout(width="26em")
        return widget

    check_settings(s, train_max)
    r = control_ranges(train_max)

    def ints(name, description, kind=w.IntSlider):
        low, high = r[name]
        return labelled(kind(value=getattr(s, name), min=low, max=high), description)

    def choice(name, description, options=None):
        return labelled(w.Dropdown(options=options or r[name], value=getattr(s, name)), description)

    modes = [(f"{mode} ({c} channel{'s' * (c > 1)})", mode) for mode, c in MODES.items()]
    return {
        "lr": labelled(w.SelectionSlider(options=[(f"{lr:.2g}", lr) for lr in r["lr"]], value=s.lr),
                       "learning rate"),
        "batch_size": labelled(w.SelectionSlider(options=r["batch_size"], value=s.batch_size), "batch size"),
        "epochs": ints("epochs", "epochs"),
        "optimizer": choice("optimizer", "optimizer"),
        "train_size": ints("train_size", "training images"),
        "seed": ints("seed", "seed", w.BoundedIntText),
        "conv1": ints("conv1", "conv1 channels"),
        "conv2": ints("conv2", "conv2 channels"),
        "kernel_size": ints("kernel_size", "kernel size"),
        "activation": choice("activation", "activation"),
        "pooling": choice("pooling", "pooling"),
        "mode": choice("mode", "input channels", modes),
        # by index: a Dropdown given value=None shows no choice at all, not "as stored"
        "image_size": labelled(w.Dropdown(options=IMAGE_SIZES, index=r["image_size"].index(s.image_size)),
                               "image size"),
        "split": choice("split", "validation split", VAL_SPLITS),
        "hflip": labelled(w.Checkbox(value=s.hflip), "random flips"),
    }


def _stop_earlier_panels():
    """Stop the panels of this process still training (:data:`_PANELS`); a sentence saying so
    for the new panel's message, or ""."""
    earlier = [panel for panel in _PANELS if panel.running]
    for panel in earlier:
        panel.stop()
    return (" A panel made before this one was still training: it stops after its current batch "
            "(its finished epochs stay in its own table)." if earlier else "")


def _ignore_warnings_the_panel_says():
    """Ignore the warnings that the panel's own calls raise and its message line says (a run's
    one-batch note, a sweep's "did not learn"): warned from its thread too, they showed twice,
    once as a Python warning under the panel. Not with ``catch_warnings``, which is not
    thread-safe (it would hide the notebook's other warnings while a run trains), and not on
    import, which a ``catch_warnings`` around it (pytest's collection) undoes: as a panel is
    made, on the kernel's thread. Other callers' warnings stay as they were."""
    warnings.filterwarnings("ignore", category=OneBatchWarning, module=r"hw3lib\.playground_runs\Z")
    warnings.filterwarnings("ignore", category=NotLearnedWarning, module=r"hw3lib\.widgets\Z")


class Playground:
    """The panel: controls, Train, Stop and Sweep, a progress bar, a message line, live curves
    and the runs table. Show it as a notebook cell's last expression.

    ``settings``: the controls' first values. ``root``: the data folder (holding
    ``Data_train/`` and ``Data_test/``; default ``$HW3_DATA``, then ``data/``, read when the
    panel is made), which Train and Sweep both use. ``load(config) -> Dataset`` loads the data
    of a run's channel mode, image size, seed and validation split for Train (default: that of
    ``config.load_data(root, check_model=False)``, see :meth:`TrainConfig.load_data`, split
    from the images of the last mode and image size read, so that another seed or split reads
    no file again, where they take at most :data:`~hw3lib.runs.KEEP_IMAGES_BYTES`); the last
    :data:`DATASETS_KEPT` datasets used stay loaded (the default's until the files at ``root``
    change on disk: Train then reads them again, as the sweep does). The sweep trains in
    worker processes, which load the data themselves from ``root``: a panel given its own
    ``load`` but no ``root`` does not sweep (Sweep says in the panel to pass ``root=``), since it cannot
    know which data ``load`` reads. ``threaded=True`` trains in a background thread (Stop
    works in a live kernel); ``False`` trains inside the Train button's handler. A new panel
    stops the runs of this process's earlier panels still training (as when the panel's cell
    runs again, hiding the old panel's Stop), and says so.

    ``runs`` holds a :class:`RunRecord` per run, ``history`` the current (or last) run's
    history, ``batches`` its rows ``(position in epochs, running loss, running accuracy)``.
    ``compare`` (a toggle) switches the curves to the validation curves of every run;
    ``test_buttons`` holds one button per run that evaluates it on the test split
    (:meth:`test`); ``sweep_result`` the last sweep's :class:`hw3lib.sweep.SweepResult` (None
    while one runs or once one ended early), its
    storage and checkpoints under ``sweep_out`` (default: ``playground-sweep`` in the
    :func:`~hw3lib.runs.run_folder` of the data at ``root`` and the training code, which
    git ignores). ``root`` holds the data folder the sweep uses (None: the panel's ``load``
    reads data the sweep cannot know).
    """

    def __init__(self, settings=RunSettings(), *, root=None, load=None, threaded=True, sweep_out=None):
        if not isinstance(settings, RunSettings):
            raise ValueError(f"settings must be a RunSettings, the controls' first values, e.g. "
                             f"Playground(RunSettings(lr=1e-3, epochs=3)), got a {type(settings).__name__}")
        if load is None or load is TrainConfig.load_data:  # the default: the data at root
            self.root = resolve_root(root)
            load = self._load_root
        else:  # a load of its own: the sweep knows its data only when told its root
            self.root = None if root is None else resolve_root(root)
        _ignore_warnings_the_panel_says()
        self.sweep_out, self.sweep_result = sweep_out, None
        self.threaded, self._load, self._datasets, self._images = threaded, load, {}, None
        self.runs, self.history, self.batches = [], {k: [] for k in HISTORY_KEYS}, []
        self.running, self._thread, self._stop, self._drawn = False, None, threading.Event(), 0.0
        self._settings = None  # those of the run in progress (None: none, or a sweep)
        self.message = w.HTML()
        self._stamp = None  # the files at root as last read (files_stamp), with the default load
        stopped = _stop_earlier_panels()
        _PANELS.add(self)
        try:
            train_max = len(self._dataset(settings.config()).y_train)
            self._say(f"Set the controls, then press Train.{stopped}")
            if is_int(settings.train_size) and settings.train_size > train_max:  # a smaller folder
                self._say(f"Set the controls, then press Train. Training images: all {train_max} of the "
                          f"training split ({settings.train_size} were asked).{stopped}")
                settings = replace(settings, train_size=train_max)
        except DataError as err:  # bounded when Train first loads the data
            train_max = settings.train_size if is_int(settings.train_size) else 1
            self._say(f"Cannot load the data: {err}{stopped}", error=True)
        self._trained_on = self._stamp  # the files the last run trained on (before any: as first read)
        self.controls = _controls(settings, train_max)
        self.train_button = w.Button(description="Train", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.sweep_button = w.Button(description="Sweep lr", icon="th",
                                     tooltip="the learning rate x1/2, x1, x2, two seeds each, on every core")
        self.train_button.on_click(self.train)
        self.stop_button.on_click(self.stop)
        self.sweep_button.on_click(self.sweep)
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="no run yet",
                                        style={"description_width": "8.5em"}, layout=w.Layout(width="34em"))
        self.curves = w.Image(format="png")
        self.compare = w.ToggleButton(value=False, description="Compare runs", icon="line-chart",
                                      tooltip="overlay the validation curves of this session's runs")
        self.compare.observe(lambda _change: self._draw(), names="value")
        self.table, self.sweep_table = w.HTML(), w.HTML()
        self.test_note = w.HTML(f"<i>{html.escape(TEST_NOTE)}</i>")
        self.test_buttons = w.HBox([])
        self._title = "No run yet: press Train"
        self._draw()
        self._show_table()
        c = self.controls
        self.widget = w.VBox([
            w.HTML("<b>LeNet-5 playground</b>: set the controls, press Train; every run goes into "
                   "the table below."),
            w.HBox([w.VBox([c[name] for name in column]) for column in CONTROL_COLUMNS]),
            w.HBox([self.train_button, self.stop_button, self.sweep_button, self.compare, self.progress]),
            self.message, self.curves, self.table, self.test_note, self.test_buttons, self.sweep_table])
        for widget, name in ((self.widget, "playground"), (self.curves, "curves"), (self.table, "runs"),
                             (self.message, "message"), (self.sweep_table, "sweep")):
            widget.add_class(f"hw3-{name}")

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = "LeNet-5 playground (a panel of widgets: open the notebook in JupyterLab)"
        return bundle

    def settings(self):
        """The controls' values as a :class:`RunSettings`."""
        return RunSettings(**{name: widget.value for name, widget in self.controls.items()})

    def runs_table(self):
        """The session's runs as a :class:`Table` (:func:`runs_table`)."""
        return runs_table(self.runs)

    def train(self, _button=None):
        """What Train does: check the controls' settings and start a run, or say in the panel
        why not (invalid settings, missing data, a run in progress)."""
        if self._busy():
            return
        checked = self._checked(self._prepare)
        if checked is None:
            return
        prepared, reread = checked
        settings, number = prepared.settings, len(self.runs) + 1
        self.history, self.batches, self._drawn = {k: [] for k in HISTORY_KEYS}, [], 0.0
        self._title = f"Run {number}: {settings.optimizer}, lr {settings.lr:.2g}, batch {settings.batch_size}"
        if self.runs:  # and what else changed since the last run
            shown = {"optimizer", "lr", "batch_size"}
            changed = differences([self.runs[-1].settings, settings],
                                  [f.name for f in fields(RunSettings) if f.name not in shown])[1]
            self._title += f"; since run {number - 1}: {changed}" if changed else ""
        self._settings = settings
        self._start("starting")
        self._say(f"Run {number}: training on {settings.train_size} images for {settings.epochs} epoch(s)..."
                  f"{reread}")
        self._draw()
        self._trained_on = self._stamp
        self._go(self._run, prepared, number, self._stamp)

    def sweep(self, _button=None):
        """What Sweep does: check the controls' settings, then sweep their learning rate (x1/2,
        x1, x2) over :data:`SWEEP_SEEDS` in worker processes, or say in the panel why not."""
        if self._busy():
            return
        if self.root is None:
            self._say("Not swept: this panel loads its data with its own load, so the sweep cannot "
                      "tell which data to train on. Pass the folder that load reads (holding "
                      "Data_train/ and Data_test/): Playground(..., load=..., root=FOLDER).", error=True)
            return
        settings = self.settings()
        checked = self._checked(lambda: self._sweep_base(settings))
        if checked is None:
            return
        base = checked
        space = {"lr": [settings.lr / 2, settings.lr, settings.lr * 2]}
        self._settings = None
        self.sweep_result, self.sweep_table.value = None, ""  # not the last sweep's, under this one's message
        self._start("sweep")
        self._say(f"Sweep: learning rates {', '.join(f'{lr:.2g}' for lr in space['lr'])}, "
                  f"{len(SWEEP_SEEDS)} seeds each, on the whole training split of {self.root}...")
        self._go(self._sweep, space, base)

    def _sweep_base(self, settings):
        """The sweep's base, ``settings``' :class:`TrainConfig`, once the data's folders at
        ``root`` are found and its model takes the data's images (a kernel larger than images
        loaded as stored is refused here, as Train refuses it, not by the sweep once started)."""
        config = settings.config()
        split_dirs(self.root)  # the data's folders, before the sweep's folder is named by its hash
        config.check_fit(self._dataset(config).image_size)
        return config

    def _sweep(self, space, base):
        def on_progress(done, total):
            self.progress.value, self.progress.description = done / total, f"sweep {done}/{total}"

        try:
            out = self.sweep_out if self.sweep_out is not None else run_folder(self.root) / "playground-sweep"
            self.sweep_result = run_sweep(space, base, seeds=SWEEP_SEEDS, out=out, pruner="none",
                                          root=self.root, progress=False, on_progress=on_progress,
                                          stop=self._stop)
        except KeyboardInterrupt as err:
            self.progress.bar_style = "warning"
            if self._stop.is_set():  # Stop pressed: what the student asked for, no error
                self._say(f"Sweep stopped: {str(err).replace('run it again', 'press Sweep lr again')}"
                          " (with the same settings).")
            else:
                self._say(f"Sweep ended early: {err}", error=True)
        except (ValueError, OSError, DataError, SweepError) as err:
            self.progress.bar_style = "warning"
            self._say(f"Sweep ended early: {err}", error=True)
        else:  # reported before Train comes back, which a run started then would see overwritten
            self._report_sweep()
        finally:
            self._set_running(False)

    def _report_sweep(self):
        """Say the finished sweep's best learning rate, whether it learned (as the sweep judges
        it, :attr:`~hw3lib.sweep_results.SweepResult.learned`, each run against its own
        validation split) and how many of its runs failed (the first's error), and show its table."""
        best, failed = self.sweep_result.best, self.sweep_result.failures()
        self.progress.bar_style = "warning" if failed else "success"
        said = "Sweep done."
        if best:
            said = (f"Sweep done: best learning rate {best.params['lr']:.2g}, mean validation accuracy "
                    f"{best.mean:.3f} over {len(best.values)} seeds.")
            if self.sweep_result.learned is False:
                said += f" None of the rates learned. Warning: {self.sweep_result.not_learned}."
                self.progress.bar_style = "warning"
        every = len(failed) == len(self.sweep_result.runs)
        if failed:  # each in the table with its error; the first said here, as `sweep` says it
            said += (f" {'Every run' if every else f'{len(failed)} of its {len(self.sweep_result.runs)} runs'} "
                     f"failed (the first: {failed[0].error}).")
        self._say(said, error=bool(failed) and every)
        self.sweep_table.value = (f"<b>Sweep of the learning rate</b><pre style='font-size: 12px'>"
                                  f"{html.escape(str(self.sweep_result.table()))}</pre>")

    def test(self, number):
        """Evaluate run ``number`` (1-based) on the test split, once, and show it in the table;
        not while a run or sweep goes on (said in the panel), whose message it would replace."""
        if self._busy():
            return
        run = self.runs[number - 1]
        try:
            accuracy = run.test()
        except ValueError as err:
            self._say(f"Run {number}: {err}", error=True)
            return
        self._show_table()
        tested = sum(r.test_acc is not None for r in self.runs)
        caution = (f" {tested} runs of this panel are tested now: choosing among them by test "
                   "accuracy makes the test split a validation split." if tested > 1 else "")
        self._say(f"Run {number}: test accuracy {accuracy:.3f} (best validation accuracy "
                  f"{run.best_val_acc:.3f}, epoch {run.best_epoch}).{caution}")

    def stop(self, _button=None):
        """What Stop does: end the run (or the sweep) after the current batch (its finished
        epochs count)."""
        if self.running:
            self._stop.set()
            self._say("Stopping after the current batch...")

    def wait(self, timeout=None):
        """Wait for a threaded run to end; True when no run is going on."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _size_train_control(self, train_max):
        """Bound the "training images" slider by the training split's ``train_max`` images,
        its value cut to them."""
        control = self.controls["train_size"]
        with control.hold_trait_notifications():  # min, max and value checked together
            control.min, control.max = control_ranges(train_max)["train_size"]
            control.value = min(control.value, train_max)

    def _load_root(self, config):
        """The data of ``config`` at ``root`` (for every model the panel sets), split from the
        images of the last mode and image size read (:meth:`TrainConfig.read_images`): another
        seed or split reads no file again, where the images take at most
        :data:`~hw3lib.runs.KEEP_IMAGES_BYTES`."""
        if not self._holds_images(config):
            self._images = None  # freed before others are read
            self._images = config.read_images(self.root, check_model=False)
        data = config.split_images(self._images, check_model=False)
        if not worth_keeping(self._images):
            self._images = None  # as a sweep's worker: too large to hold twice
        return data

    def _holds_images(self, config):
        """Whether the panel holds the images ``config`` splits (the default load)."""
        return self._images is not None and config.reads_like(self._images)

    def _dataset(self, config):
        """The data of ``config`` from ``load``, loaded again once the panel has used
        :data:`DATASETS_KEPT` others since, or (the default load) once the files at ``root``
        changed on disk: Train reads what the sweep's workers read."""
        if self._load == self._load_root:
            stamp = files_stamp(self.root)
            if stamp != self._stamp:
                self._datasets.clear()
                self._images = None
                self._stamp = stamp
        key = (config.mode, config.image_size, config.seed, config.val_fraction, config.split)
        if key not in self._datasets and not self._holds_images(config):  # seconds for a folder of photos
            self._say(f"Reading the images{f' of {self.root}' if self.root else ''}...")
        data = self._datasets.pop(key) if key in self._datasets else self._load(config)
        self._datasets[key] = data  # the last used, last
        for oldest in list(self._datasets)[:-DATASETS_KEPT]:
            del self._datasets[oldest]
        return data

    def _run(self, prepared, number, data):
        epochs = prepared.config.epochs

        def redraw():  # a drawing takes about 0.1 s: once an epoch, it took 2/3 of a run of short epochs
            if time.perf_counter() - self._drawn >= REDRAW_SECONDS:
                self._draw()

        def on_batch(stats):
            position = stats["epoch"] - 1 + stats["batch"] / stats["batches"]
            self.batches.append((position, stats["running_loss"], stats["running_acc"]))
            self.progress.value = position / epochs
            self.progress.description = f"epoch {stats['epoch']}/{epochs}"
            redraw()

        def on_epoch(history):
            self.history = history
            redraw()

        start, failure = time.perf_counter(), None
        try:
            try:
                record = prepared.train(on_batch=on_batch, on_epoch=on_epoch, stop=self._stop)
            except BaseException as err:  # in the table too: the next run does not take its number
                failure = err
                record = RunRecord(prepared.settings, self.history, 0, time.perf_counter() - start, "failed",
                                   f"{type(err).__name__}: {err}")
            record.data = data
            self._settings = None  # in the table now, no longer the run in progress of Compare
            self.runs.append(record)
            self.history = record.history
            self._draw()
            self._show_table()
            self._report(number, record)
            if failure is not None:
                raise failure  # for its traceback
        finally:
            self._set_running(False)

    def _report(self, number, record):
        if record.status == "failed":
            self.progress.bar_style, self.progress.description = "danger", "failed"  # not "epoch 1/3" as if running
            self._say(f"Run {number} failed: {record.message}", error=True)
            return
        done = len(record.history["epoch"])
        self.progress.bar_style = {"done": "success", "diverged": "danger"}.get(record.status, "warning")
        self.progress.description = f"{record.status} {done}/{record.settings.epochs}"
        if record.status == "diverged":
            self._say(f"Run {number} diverged: {record.message}", error=True)
        elif record.best_epoch:
            self._say(f"Run {number} {record.status} after {done} epoch(s) in {record.seconds:.1f} s: best "
                      f"validation accuracy {record.best_val_acc:.3f} (epoch {record.best_epoch})."
                      + (f" Warning: {record.warning}." if record.warning else "")
                      + (f" Note: {record.note}." if record.note else ""),
                      error=bool(record.warning))
            if record.warning:
                self.progress.bar_style = "warning"
        else:
            self._say(f"Run {number} {record.status} before its first epoch ended: nothing to evaluate.")

    def _busy(self):
        """Whether a run or sweep is in progress, said in the panel (Train and Sweep then do nothing)."""
        if self.running:
            self._say("A run is in progress: press Stop to end it first.", error=True)
        return self.running

    def _checked(self, check):
        """``check()``, or None after saying in the panel why not: data that cannot load
        (DataError) or settings that cannot work (ValueError)."""
        try:
            return check()
        except DataError as err:
            self._say(f"Cannot load the data: {err}", error=True)
        except ValueError as err:
            self._say(f"Refused, nothing was trained: {err}", error=True)
        return None

    def _prepare(self):
        """The controls' run, checked and its data loaded (:func:`prepare`), and a sentence for
        the panel when the files at ``root`` differ from those the last run trained on (before
        any run, those read as the panel was made), whether Train or Sweep read them, else "".
        The "training images" slider is bounded by the training split first wherever its size
        changed: data that did not load when the panel was made (images of two sizes, say), a
        folder that grew or shrank."""
        data = self._dataset(self.settings().config())
        train_max = len(data.y_train)
        if self.controls["train_size"].max != train_max:
            self._size_train_control(train_max)
        changed = self._trained_on is not None and self._stamp != self._trained_on
        return prepare(self.settings(), lambda _config: data), (
            f" The files at {self.root} changed since they were read: read again, {train_max} "
            "training images now (the table's data column tells the runs on them from earlier runs)."
            if changed else "")

    def _start(self, description):
        """Clear Stop, disable Train and Sweep, and reset the progress bar to ``description``."""
        self._stop.clear()
        self._set_running(True)
        self.progress.value, self.progress.bar_style, self.progress.description = 0.0, "", description

    def _go(self, work, *args):
        """``work(*args)`` in a background thread, or here when the panel is not ``threaded``."""
        if self.threaded:
            self._thread = threading.Thread(target=work, args=args, daemon=True)
            self._thread.start()
        else:
            work(*args)

    def _set_running(self, running):
        """Train, Sweep and the Test buttons off while a run or sweep goes on, Stop on; ``running``
        set once the buttons show it (a test started as a run ends finds its buttons built)."""
        self.train_button.disabled = self.sweep_button.disabled = running
        self.stop_button.disabled = not running
        self._show_test_buttons(running)
        self.running = running

    def _say(self, text, error=False):
        """Show ``text`` in the message line, the settings it names as the controls set them
        (:func:`panel_phrasing`), its lines kept (an error naming several files, one a line)."""
        color = "#b00020" if error else "inherit"
        self.message.value = (f'<span style="color: {color}; white-space: pre-line">'
                              f'{html.escape(panel_phrasing(text))}</span>')

    def _draw(self):
        """Draw the curves, one panel at a time (:data:`_DRAW_LOCK`)."""
        with _DRAW_LOCK:
            self.curves.value = _png(self._figure())
            self._drawn = time.perf_counter()

    def _figure(self):
        """The curves' figure, its legend below the two panels: the live curves of the current
        (or last) run, or with Compare the validation curves of every run (the legend one line a run,
        the figure as tall as they need: inside the accuracy panel, a dozen runs' legend covered
        it), each run told apart by colour and, past tab10's ten colours, by its marker."""
        if not self.compare.value:
            figure = Figure(figsize=(9, 3.4))
            plot_live_curves(self.history, self.batches, self._title, figure=figure)
            return figure
        # each run named with the settings in which the runs differ
        runs = [(f"run {n}", run.settings, run.history) for n, run in enumerate(self.runs, start=1)]
        if self.running and self._settings is not None:
            runs.append((f"run {len(self.runs) + 1} (running)", self._settings, self.history))
        histories = {f"{label}: {changed}" if changed else label: history for (label, _, history), changed
                     in zip(runs, differences([settings for _, settings, _ in runs]))}
        figure = Figure(figsize=(9, 3.4))
        plot_run_curves(histories, "Validation curves of this session's runs", splits=("val",), figure=figure)
        if not (len(figure.axes) == 2 and figure.axes[1].get_legend()):  # no finished epoch: a hint
            return figure
        ax_loss, ax_acc = figure.axes
        for ax in (ax_loss, ax_acc):
            for k, line in enumerate(ax.get_lines()):
                line.set(marker=COMPARE_MARKERS[k // 10 % len(COMPARE_MARKERS)], markersize=4)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # epochs, not 1.2, 1.4
        ax_acc.get_legend().remove()
        legend_below(figure, ax_acc.get_lines(), list(histories), lines=len(histories) + 1,
                     title="validation curves (the settings in which the runs differ; all in the table)",
                     title_fontsize=8, alignment="left")
        return figure

    def _show_table(self):
        text = str(self.runs_table()) if self.runs else "No runs yet."
        self.table.value = (f"<b>Runs of this session</b><pre style='font-size: 12px; overflow-x: auto'>"
                            f"{html.escape(text)}</pre>")
        self._show_test_buttons(self.running)

    def _show_test_buttons(self, running):
        """A Test button per run, off for a run tested or without kept weights, and all off while
        ``running`` (a test then replaced the run's message in the panel)."""
        buttons = []
        for number, run in enumerate(self.runs, start=1):
            tested = run.test_acc is not None
            button = w.Button(description=f"Test run {number}", icon="check" if tested else "flask",
                              disabled=running or tested or not run.best_epoch,
                              tooltip="evaluate this run's kept weights on the test split, once")
            button.on_click(lambda _button, number=number: self.test(number))
            buttons.append(button)
        self.test_buttons.children = buttons
