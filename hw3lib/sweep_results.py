"""What a sweep found (:mod:`hw3lib.sweep`): its runs as the study holds them, grouped by
setting, the table, the best setting and the figures."""
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from .checkpoint import CheckpointError
from .checks import is_number
from .config import TrainConfig
from .data import validation_mask
from .folders import resolve_root, split_files
from .images import DataError
from .learning import learning_warning
from .runs import checkpoint_path
from .sweep_space import Sweep, config_for, setting_label
from .sweep_study import first_attempt, params_of
from .tables import Table, value_text
from .train import epoch_rank
from .trained import FitResult


def run_summary(history):
    """A run's record from fit's ``history``: epochs done, the best epoch (the one fit keeps,
    :func:`hw3lib.train.epoch_rank`), its accuracy and loss, training seconds."""
    if not history["epoch"]:
        return dict(epochs=0, best_epoch=0, val_acc=None, val_loss=None, seconds=0.0)
    rows = [{"val_acc": acc, "val_loss": loss} for acc, loss in zip(history["val_acc"], history["val_loss"])]
    best = max(range(len(rows)), key=lambda i: epoch_rank(rows[i]))  # max keeps the first of equals
    return dict(epochs=len(history["epoch"]), best_epoch=best + 1, val_acc=history["val_acc"][best],
                val_loss=history["val_loss"][best], seconds=float(sum(history["seconds"])))


STATES = {TrialState.COMPLETE: "done", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
          TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


@dataclass(frozen=True)
class Run:
    """One run as the study holds it: trial ``number``, swept ``params``, ``seed``, ``state``
    (``done``, ``pruned``, ``failed``, ``running``, ``waiting``), the best epoch's validation
    ``val_acc`` and ``val_loss``, ``epochs`` done, training ``seconds``, the validation
    accuracy per epoch (``curve``) and, when it failed, ``error``."""

    number: int
    params: dict
    seed: int
    state: str
    val_acc: float | None
    val_loss: float | None
    best_epoch: int
    epochs: int
    seconds: float
    curve: list
    error: str | None


def _run_of(trial):
    # a run not ended has no summary yet (a retry that an earlier hw3lib queued kept its attempt's)
    summary = trial.user_attrs.get("run") if trial.state.is_finished() else None
    summary = summary or run_summary({"epoch": []})
    curve = [trial.intermediate_values[k] for k in sorted(trial.intermediate_values)]
    error = trial.user_attrs.get("error") if trial.state == TrialState.FAIL else None
    return Run(trial.number, dict(params_of(trial)),
               trial.user_attrs.get("seed"), STATES[trial.state], summary["val_acc"],
               summary["val_loss"], summary["best_epoch"], summary["epochs"], summary["seconds"],
               curve, error)


@dataclass(frozen=True)
class Setting:
    """One setting's ``params`` and its ``runs`` (one per seed), with ``config``, the
    TrainConfig it trains (with the base seed)."""

    params: dict
    runs: list
    config: TrainConfig

    @property
    def scored(self):
        """The runs the setting is scored by: each done or pruned run that trained an epoch or
        more (failed and unfinished runs are left out, whatever epochs they trained)."""
        return [r for r in self.runs if r.val_acc is not None and r.state in ("done", "pruned")]

    @property
    def values(self):
        """The best validation accuracy of each :attr:`scored` run."""
        return [r.val_acc for r in self.scored]

    @property
    def mean(self):
        """The mean of :attr:`values` over the seeds; None before a run was scored."""
        return float(np.mean(self.values)) if self.values else None

    @property
    def spread(self):
        """The standard deviation over the seeds (N - 1 in the denominator); None for one."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None

    @property
    def complete(self):
        """Whether each of the setting's :attr:`runs` is done (none pruned, failed, running or
        waiting; seeds not queued yet have no run here)."""
        return all(r.state == "done" for r in self.runs)

    @property
    def loss(self):
        """The mean validation loss at the kept epochs of the :attr:`scored` runs, those
        :attr:`values` counts; None before any of them trained."""
        losses = [r.val_loss for r in self.scored]
        return float(np.mean(losses)) if losses else None

    def rank(self):
        """Sort key, best first: the higher mean validation accuracy, then the lower mean loss."""
        return self.mean is None, -(self.mean or 0.0), self.loss if self.loss is not None else np.inf

    def status(self, seeds):
        """Its runs by state, always in the order of :data:`STATES`, and those of its ``seeds``
        not queued yet: "3 done", "2 done, 1 pruned", "1 running, 2 not queued"."""
        counts = {state: sum(r.state == state for r in self.runs) for state in STATES.values()}
        counts["not queued"] = max(seeds - len(self.runs), 0)
        return ", ".join(f"{n} {state}" for state, n in counts.items() if n)


@dataclass(frozen=True)
class SweepResult:
    """A sweep as its study holds it (:func:`load_sweep`): its :class:`Sweep`, its
    ``study_name`` and ``runs``, the latest attempt of each run; ``checkpoints``, the folder of
    the runs' checkpoints, and ``root``, the data they trained on (None: ``$HW3_DATA``, then
    ``data/``), when :func:`hw3lib.sweep.run_sweep` returns it (checkpoints None from a study)."""

    sweep: Sweep
    study_name: str
    runs: list
    checkpoints: object = None
    root: object = None

    def finished(self):
        """The runs that ended (done, pruned or failed)."""
        return [r for r in self.runs if r.state in ("done", "pruned", "failed")]

    def failures(self):
        """The runs that failed."""
        return [r for r in self.runs if r.state == "failed"]

    def settings(self):
        """The settings, each with its runs by seed (in a sampled search: those sampled yet)."""
        groups = {}
        for run in sorted(self.runs, key=lambda r: r.seed):
            if run.params or self.sweep.grid:
                groups.setdefault(json.dumps(run.params, sort_keys=True), []).append(run)
        return [Setting(runs[0].params, runs, config_for(self.sweep.base, runs[0].params))
                for runs in groups.values()]

    @property
    def best(self):
        """The :class:`Setting` with the highest mean validation accuracy among those whose
        runs all finished (ties: the lower mean validation loss); None before any did."""
        done = [s for s in self.settings() if s.complete]
        if not done:
            return None
        return min(done, key=Setting.rank)

    @cached_property
    def best_checkpoints(self):
        """``[(config, path, trained), ...]`` for each run of :attr:`best` (none without one or
        without ``checkpoints``): its settings, its checkpoint's path in ``checkpoints`` and the
        :class:`~hw3lib.trained.FitResult` kept there, None where no finished run is there: no
        file or an unreadable one (trained on another machine or into another folder), or one
        cut short here (interrupted, then finished elsewhere), whose weights and history are
        not the run the table scored."""
        best, kept = self.best, []
        for run in best.runs if best is not None and self.checkpoints is not None else []:
            config = config_for(self.sweep.base, best.params, run.seed)
            path = checkpoint_path(config, self.checkpoints)
            try:
                trained = FitResult.load(path)
            except (OSError, CheckpointError):
                trained = None
            finished = trained is not None and len(trained.history["epoch"]) >= config.epochs
            kept.append((config, path, trained if finished else None))
        return kept

    @cached_property
    def _learning(self):
        """``(warning, judged)``: where none of :attr:`best`'s runs learned, the first one's
        learning warning (:func:`~hw3lib.learning.learning_warning`, as ``train`` gives it),
        each run judged against its own validation split, made from the labels alone, else
        None; ``judged`` False (and no warning) where there is no best setting, or a run's
        finished checkpoint is not in ``checkpoints`` (:attr:`best_checkpoints`), or the data
        at ``root`` no longer reads (changed or gone since the runs trained), to tell."""
        kept = self.best_checkpoints
        if not kept or any(trained is None for _, _, trained in kept):
            return None, False
        try:
            labels = np.asarray(split_files(resolve_root(self.root), "train")[1])
        except (DataError, OSError):  # a sweep that trained is not failed for it
            return None, False
        found = []
        for config, _, trained in kept:
            is_val = validation_mask(labels, config.val_fraction, config.seed, config.split)
            found.append(learning_warning(trained.history, trained.best_epoch, labels[~is_val],
                                          labels[is_val], config))
        return (None if None in found else found[0]), True

    @property
    def learned(self):
        """Whether :attr:`best` learned: False where none of its runs' validation accuracy is
        clearly above guessing (:func:`~hw3lib.learning.learning_warning`, :attr:`not_learned`
        says why), True where one is; None where there is no best setting, or its runs'
        finished checkpoints are not here to tell (trained on another machine, or a study
        read back by :func:`~hw3lib.sweep.load_sweep`)."""
        warning, judged = self._learning
        return warning is None if judged else None

    @property
    def not_learned(self):
        """Where :attr:`best` did not learn (:attr:`learned` False), why and what to change, in
        ``TrainConfig``'s words; else None."""
        return self._learning[0]

    def table(self, timings=True):
        """:class:`~hw3lib.tables.Table`, best first: the swept settings, the validation
        accuracy's mean, spread (standard deviation), min and max over the seeds, the mean
        validation loss at the kept epochs (the tie-break of :attr:`best`) and each seed's
        kept epoch, the mean training seconds of the runs that trained an epoch or more (unless
        ``timings`` is False: they change from machine to machine), the runs of the seeds by state
        (:meth:`Setting.status`)."""
        rows = []
        for s in sorted(self.settings(), key=Setting.rank):
            trained = [r.seconds for r in s.runs if r.epochs]  # not one waiting, or failed at once
            seconds = [float(np.mean(trained)) if trained else None] if timings else []
            rows.append((*(value_text(s.params[name]) for name in self.sweep.space),
                         s.mean, s.spread, min(s.values, default=None), max(s.values, default=None),
                         None if s.loss is None else f"{s.loss:.4f}",
                         ",".join(str(r.best_epoch) for r in s.runs), *seconds,
                         s.status(len(self.sweep.seeds))))
        return Table([*self.sweep.space, "val acc", "spread", "min", "max", "val loss",
                      "kept epochs", *(["s/run"] if timings else []), "runs"], rows)

    def plot(self, title=None):
        """Validation accuracy against each swept setting (:func:`hw3lib.plots.plot_sweep`), a
        pruned run's dot hollow."""
        from .plots import plot_sweep  # matplotlib: not loaded by the worker processes

        if not self.sweep.space:
            raise ValueError("a sweep of seeds alone has no setting to plot against")
        settings = self.settings()
        return plot_sweep([s.params for s in settings], [s.values for s in settings],
                          list(self.sweep.space), log=self._log_names(), title=title,
                          labels={name: setting_label(name) for name in self.sweep.space},
                          pruned=[[r.state == "pruned" for r in s.scored] for s in settings])

    def heatmap(self, x=None, y=None, title=None):
        """The mean validation accuracy over two swept settings (default the first two; the
        best mean over the others) as a heat map (:func:`hw3lib.plots.plot_sweep_heatmap`),
        its axes named by :func:`hw3lib.sweep_space.setting_label`; a setting whose runs did
        not all finish every epoch (pruned, failed, still to run) is marked with an asterisk, and
        one with no score (every run failed before its first epoch ended) is blank."""
        from .plots import plot_sweep_heatmap

        names = list(self.sweep.space)
        if not names:
            raise ValueError("a sweep of seeds alone has no setting to draw a heat map over")
        x, y = x or names[0], y or (names[1] if len(names) > 1 else None)
        unswept = [name for name in (x, y) if name is not None and name not in names]
        if len(names) < 2:
            said = f"{unswept[0]} is not swept" if unswept else f"only {names[0]} is swept"
            raise ValueError(f"a heat map needs 2 swept settings, x and y: {said}. Fix: sweep 2 "
                             f"settings, or draw this one with .plot()")
        if unswept:
            raise ValueError(f"{unswept[0]} is not swept: choose x and y among {names}")
        if x == y:
            raise ValueError(f"x and y must differ: 2 of {names}, got {x!r} twice")
        settings = self.settings()
        return plot_sweep_heatmap([s.params for s in settings], [s.mean for s in settings], x, y,
                                  title=title, labels={name: setting_label(name) for name in names},
                                  partial=[not s.complete or len(s.runs) < len(self.sweep.seeds)
                                           for s in settings])

    def _log_names(self):
        """Settings drawn on a log scale, or listed as positive numbers spanning a factor of 10."""
        def log(d):
            if isinstance(d, CategoricalDistribution):
                numbers = [v for v in d.choices if is_number(v)]
                return len(numbers) == len(d.choices) and min(numbers) > 0 and max(numbers) >= 10 * min(numbers)
            return d.log
        return [name for name, d in self.sweep.space.items() if log(d)]


def sweep_result(study):
    """The :class:`SweepResult` of an open sweep ``study``: the latest attempt of each run
    (a setting that the sampler drew again is not a run)."""
    latest = {}
    for trial in study.get_trials(deepcopy=False):
        if "repeat_of" in trial.user_attrs:
            continue
        first = first_attempt(trial)
        if first not in latest or trial.number > latest[first].number:
            latest[first] = trial
    runs = [_run_of(t) for t in sorted(latest.values(), key=lambda t: t.number)]
    return SweepResult(Sweep.from_json(study.user_attrs["sweep"]), study.study_name, runs)
