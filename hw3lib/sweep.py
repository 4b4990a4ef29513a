"""Hyperparameter sweeps over :class:`~hw3lib.config.TrainConfig` fields, run by Optuna.

A *setting* gives one value to each swept field; its *seeds* repeat it (averaged in the
table: mean and spread), they are never searched. One *run* trains one setting with one
seed, and each run is one Optuna trial: the workers share runs, not settings, so the seeds of
one setting train side by side on the cores, and the pruner compares runs epoch by epoch
(intermediate value: the validation accuracy) and stops those clearly behind.

Typical use (a notebook)::

    result = run_sweep({"lr": [2.5e-4, 5e-4, 1e-3], "hflip": [True, False]},
                       TrainConfig(epochs=12), seeds=range(3))
    print(result.table()); result.best.config; result.plot(); result.heatmap()

From a terminal: ``python -m hw3lib sweep --param lr=2.5e-4,5e-4,1e-3 --seeds 0-2``
(:mod:`hw3lib.sweep_cli`).

- **Space**: ``{field: [values]}`` is a grid; an Optuna distribution
  (``FloatDistribution(1e-4, 1e-2, log=True)``, ``IntDistribution``) makes it a sampled search
  of ``trials`` settings by Optuna's TPE sampler, the lists becoming categorical choices.
  ``model.KEY`` sweeps a :class:`~hw3lib.model.LeNet5` argument. Every setting is checked by
  :class:`TrainConfig` itself before any work (a sampled range at its ends), and its model
  against the images' size, so a bad value is refused with TrainConfig's message naming the field.
- **Trials are queued once**: the process that creates the study writes the sweep's
  definition, then enqueues every run (a grid: each setting and seed; a sampled search:
  ``trials`` empty trials that TPE fills when a worker takes one, which then queues its
  setting's other seeds); a creator interrupted while queueing leaves the rest to the next
  process that opens the study (the same command). Optuna's queue hands each waiting
  trial to exactly one worker (WAITING to RUNNING is one atomic storage update), which
  ``GridSampler`` alone does not promise to several workers (its documentation says a point
  may run twice).
- **Storage**: by default an Optuna journal file, ``OUT/optuna-journal.log``: no server, an
  append-only log written under a file lock, the storage Optuna recommends for several
  processes on one machine (an SQLite file serves them too, each transaction holding its lock,
  :func:`~hw3lib.sweep_study.open_storage`). A database URL (``postgresql://user@host/db``) lets workers on
  several machines share the study; there Optuna's heartbeat fails a trial whose machine
  stopped answering (:data:`~hw3lib.sweep_study.GRACE_SECONDS`) and queues it again.
- **Resuming**: the study's name is a hash of the sweep's definition (but a sampled search's
  ``trials``, so that more of them go on with the same study), so the same command on the
  same storage goes on with the trials it has. Finished runs are never repeated; a run cut
  short (Ctrl-C, or its worker killed: its process is gone, or its heartbeat is stale, or it
  never named itself in the run) is recorded as failed with the reason and queued again, and
  its checkpoint resumes it. A journal's lock left by a killed process is broken after
  :data:`~hw3lib.sweep_study.LOCK_GRACE_SECONDS`, and a record it left cut short is dropped by
  the next write.
- **Failures**: a diverging run (:class:`~hw3lib.train.TrainingError`) or any other error of
  one run is recorded as a failed trial with its message (user attribute ``error``); the
  other runs go on. But an OSError (this machine could not write the run's checkpoint: a full
  disk, a read-only folder) is not the run's fault: its run is failed with the reason and
  queued again, and that worker stops (a worker here or on another machine trains it later).
  ``out`` and the checkpoint folder are created and written to before any run is taken.

The space and its checks are in :mod:`hw3lib.sweep_space`, the table, best setting and
figures in :mod:`hw3lib.sweep_results`, the storage and the study's queue in
:mod:`hw3lib.sweep_study`; this module runs the workers.
"""
import contextlib
import copy
import dataclasses
import hashlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import warnings
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat, get_heartbeat_thread, is_heartbeat_enabled
from optuna.trial import TrialState
from tqdm.auto import tqdm

from .atomic import INTERRUPTS
from .checks import integer
from .cores import usable_cores
from .download import dataset_sha256
from .engine import engine_code
from .file_order import file_order_note
from .folders import dataset_files, resolve_root
from .out_folders import make_folder, refuse_file_in_the_way, try_writing
from .parallel import child_blas_threads, one_blas_thread
from .processes import process_running, start_ticks
from .runs import checkpoint_path, known_data, load_or_train, run_key
from .sweep_results import SweepResult, run_summary, sweep_result
from .sweep_space import PRUNERS, Sweep, config_for
from .sweep_study import (JOURNAL, POLL_SECONDS, STORAGE_ERRORS, NotAJournal, StorageError, check_study,
                          checked_study_name, first_attempt, open_storage, open_study, params_of,
                          shown_storage, storage_lost)
from .train import OneBatchWarning, one_batch_note

__all__ = ["JOURNAL", "PRUNERS", "Sweep", "SweepError", "SweepResult", "default_workers",
           "load_sweep", "open_storage", "open_study", "recover", "run_sweep", "run_trial", "work"]

STOP_SECONDS = 60       # after Ctrl-C, how long workers may take to record their runs
UNNAMED_SECONDS = 60    # a trial RUNNING this long without its worker's name: that worker died
ROOM = 2**20  # bytes a sweep's folders must take (written and synced) before any run starts
SPAWN = multiprocessing.get_context("spawn")  # the workers' start, and their stop event's
CANNOT_WRITE = 3  # the exit status of a worker that stopped because it could not write a run's files
NO_STORAGE = 4    # ... that could not open the storage or lost it (a database refusing connections)
NOT_WRITTEN = "this machine could not write the run's files; queued again"  # a run's error: see run_trial


class SweepError(Exception):
    """The sweep could not finish: its workers stopped with runs left to do."""


class NotLearnedWarning(UserWarning):
    """:func:`run_sweep`'s best setting did not learn (:attr:`SweepResult.not_learned`)."""


NOT_LEARNED = "the best setting did not learn"  # the warning's start, in Python and the sweep command


# --- workers -------------------------------------------------------------------------------

def _start_time(pid):
    try:
        return str(start_ticks(pid))
    except OSError:  # gone, or no /proc (macOS, Windows): whether it runs, its start unknown
        return "running" if process_running(pid) else "gone"


def _machine():
    """This machine as worker ids name it: its host name and, on Linux, 8 hex digits of its boot
    and of the PID namespace that process numbers belong to (:func:`_dead_here`)."""
    try:
        boot, space = Path("/proc/sys/kernel/random/boot_id").read_text().strip(), os.readlink("/proc/self/ns/pid")
    except OSError:  # no /proc (macOS, Windows)
        return socket.gethostname()
    return f"{socket.gethostname()}/{hashlib.sha256(f'{boot} {space}'.encode()).hexdigest()[:8]}"


def worker_id(pid=None):
    """``machine:pid:start`` (:func:`_machine`), naming a process on this machine even after its
    pid is reused."""
    pid = pid or os.getpid()
    return f"{_machine()}:{pid}:{_start_time(pid)}"


def _dead_here(worker, exact=False):
    """Whether the process ``worker`` (:func:`worker_id`) was on this machine and is gone. With
    ``exact`` (a database, which machines of one host name may share: cloned machines, containers
    on one host's network) only a worker of this boot and PID namespace counts as this machine's;
    another is judged by its heartbeat. Else (a journal, which one machine holds, without
    heartbeats) any of this host name does: this machine's before a reboot, or an earlier hw3lib's."""
    machine, pid, start = worker.rsplit(":", 2)
    here = machine == _machine() or not exact and machine.split("/")[0] == socket.gethostname()
    return here and _start_time(int(pid)) != start


def recover(study, killed=()):
    """Fail, with the reason, and queue again the runs left RUNNING by workers that stopped:
    on a database storage those whose heartbeat is stale (any machine), on any storage those
    whose worker process on this machine is gone or among ``killed`` (ids of workers this
    process killed: Windows cannot tell that a process is gone), and those that a worker took
    but stopped before naming itself in them (:data:`UNNAMED_SECONDS` after it took them)."""
    storage = study._storage
    heartbeat = isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)
    stale = storage._get_stale_trial_ids(study._study_id) if heartbeat else []  # as fail_stale_trials
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if trial._trial_id in stale:
            reason = f"its machine stopped answering (no heartbeat from its worker {worker})"
        elif worker and (worker in killed or _dead_here(worker, exact=heartbeat)):
            reason = f"its worker {worker} stopped before the run ended"
        elif not worker and time.time() - trial.datetime_start.timestamp() > UNNAMED_SECONDS:
            reason = "its worker stopped right after taking it, before naming itself"
        else:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "error", f"{reason}; queued again")
            failed = storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:  # another worker recovered it first
            continue
        if failed:
            _queue_again(study, storage.get_trial(trial._trial_id))


def _queue_again(study, trial):
    """Queue a failed ``trial``'s run again (Optuna's retry, which names the first attempt
    in the new trial's ``failed_trial``), without Optuna's notice that the retry is experimental.
    The retry keeps the user attributes but ``worker`` (the failed attempt's worker, dead, would
    have :func:`recover` fail the retry as soon as a worker takes it, before it names itself),
    ``error`` (the attempt's, which a retry that completes would show as its own) and ``run``
    (the attempt's summary, which the waiting retry would show as its results: the retry resumes
    from the checkpoint and, once it ends, sums up every epoch of it)."""
    attempt = copy.copy(trial)  # a journal's get_trial is its own record: left as it is
    attempt.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("worker", "error", "run")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback()(study, attempt)


def _earlier(study, number, same):
    """The first attempt of an earlier run than the trial ``number`` for which ``same(trial,
    mine)`` holds, ``mine`` being that trial as stored (not an attempt at its own run), or None."""
    trials = study.get_trials(deepcopy=False)
    mine = trials[number]
    return next((first_attempt(other) for other in trials[:number]
                 if first_attempt(other) != first_attempt(mine) and same(other, mine)), None)


def _undrawn(study, sweep, seed):
    """In a space of finitely many settings, the first that no run with ``seed`` has (a
    sampler that keeps drawing the same ones would never end); else ``{}``, a fresh draw. A
    trial left out is no run: a copy of a run queued twice drew a setting in a study that an
    earlier hw3lib wrote."""
    drawn = [params_of(t) for t in study.get_trials(deepcopy=False)
             if t.user_attrs.get("seed") == seed and "repeat_of" not in t.user_attrs]
    return next((s for s in sweep.every_setting() or () if s not in drawn), {})


def _suggest(trial, name, dist):
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _queue_seeds(study, params, seeds):
    """Queue runs of ``params`` for those of ``seeds`` that no trial has yet."""
    have = {t.user_attrs.get("seed") for t in study.get_trials(deepcopy=False) if params_of(t) == params}
    for seed in seeds:
        if seed not in have:
            study.enqueue_trial(params, user_attrs={"seed": seed})


def run_trial(study, trial, sweep, *, root=None, checkpoints=None, stop=None):
    """Train the run of ``trial`` (its setting and its ``seed`` user attribute), report the
    validation accuracy after each epoch (the pruner may stop it there) and tell the study how
    it ended: COMPLETE with its best validation accuracy, PRUNED, or FAIL with the reason
    (a Ctrl-C or ``stop``: FAIL and queued again; a run queued twice, its copy drawing nothing,
    or in a sampled search a setting drawn again for the same seed: FAIL, the user attribute
    ``repeat_of`` naming the run, and for a drawn one another drawn). An OSError (this machine
    could not write a checkpoint: a read-only folder, a full disk) fails the trial, queues it
    again for a worker that can, and is raised: the worker stops rather than fail every run it
    takes. A database lost meanwhile (:data:`~hw3lib.sweep_study.STORAGE_ERRORS`) is raised,
    the run left RUNNING: :func:`recover` queues it again once its worker is gone."""
    trial.set_user_attr("worker", worker_id())
    seed, slot = trial.user_attrs["seed"], trial.user_attrs.get("slot")

    def same_setting_and_seed(t, mine):  # a draw left out is no run of its setting
        return ("repeat_of" not in t.user_attrs and t.user_attrs.get("seed") == seed
                and params_of(t) == params_of(mine))

    def same_slot(t, _):  # the slot's first trial holds it, its draw left out or not
        return slot is not None and t.user_attrs.get("slot") == slot

    # before any draw: a copy's draw, left out, would count as drawn (_undrawn) and never be trained
    twin = _earlier(study, trial.number, same_setting_and_seed if sweep.grid else same_slot)
    if twin is not None:  # two processes queued the same run (open_study): trained once
        trial.set_user_attr("repeat_of", twin)
        trial.set_user_attr("error", f"run {twin} was queued twice; this copy is left out")
        study.tell(trial, state=TrialState.FAIL)
        return
    params = {name: _suggest(trial, name, dist) for name, dist in sweep.space.items()}
    if not sweep.grid and seed == sweep.seeds[0]:
        earlier = _earlier(study, trial.number, same_setting_and_seed)
        if earlier is not None:  # not trained twice: failed, left out of the results, and redrawn
            trial.set_user_attr("repeat_of", earlier)
            trial.set_user_attr("error", f"the sampler drew run {earlier}'s setting again; another drawn")
            study.enqueue_trial(_undrawn(study, sweep, seed), user_attrs={"seed": seed})
            study.tell(trial, state=TrialState.FAIL)
            return
        _queue_seeds(study, params, sweep.seeds[1:])
    history, reported = {"epoch": []}, set()

    def on_epoch(h):
        nonlocal history
        history = h
        for epoch, acc in zip(h["epoch"], h["val_acc"]):  # a resumed run reports its earlier epochs too
            if epoch not in reported:
                trial.report(acc, epoch)
                reported.add(epoch)
        if h["epoch"][-1] < config.epochs and trial.should_prune():  # a finished run is kept
            raise optuna.TrialPruned(f"validation accuracy {h['val_acc'][-1]:.3f} after epoch "
                                     f"{h['epoch'][-1]}")

    state, value, retry, failure = TrialState.FAIL, None, False, None
    with get_heartbeat_thread(trial._trial_id, study._storage):
        try:
            config = config_for(sweep.base, params, seed)  # a sampled value inside checked ends
            data, sha = known_data(config, root)  # read and hashed once per worker, not once a run
            result = load_or_train(config, checkpoint_path(config, checkpoints), data=data, data_sha256=sha,
                                   on_epoch=on_epoch, stop=stop)
            history = result.history
            state, value = TrialState.COMPLETE, run_summary(history)["val_acc"]
            for epoch, acc in zip(history["epoch"], history["val_acc"]):
                if epoch not in reported:  # a finished checkpoint: no epoch went through on_epoch
                    trial.report(acc, epoch)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except KeyboardInterrupt:
            trial.set_user_attr("error", "interrupted; queued again")
            retry = True
        except OSError as err:  # this machine's folder or disk, not the run: another worker may
            trial.set_user_attr("error", f"{type(err).__name__}: {err}; {NOT_WRITTEN}")
            retry, failure = True, err
        except STORAGE_ERRORS:  # the database lost, not the run: left running, to be recovered
            raise
        except Exception as err:  # a diverging run (TrainingError), unreadable data, ...: recorded
            history = getattr(getattr(err, "result", None), "history", history)
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
    if "val_acc" in history:
        trial.set_user_attr("run", run_summary(history))
    frozen = study.tell(trial, value, state=state)
    if retry:
        _queue_again(study, frozen)
    if failure is not None:
        raise failure


def _study_for_worker(storage, study_name, index):
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    sweep = Sweep.from_json(study.user_attrs["sweep"])
    study.pruner = sweep.pruner_for_study()
    # workers on several machines must not propose the same setting from the same history, nor
    # a worker started again the settings it drew before it stopped (the runs begun are counted)
    begun = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
    start = f"{_machine()}:{index}:{begun}"
    seed = int(hashlib.sha256(start.encode()).hexdigest()[:8], 16)
    study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return study, sweep


def work(storage, study_name, *, index=0, root=None, checkpoints=None, stop=None):
    """Take waiting runs of the study and train them, one at a time, until none is waiting
    or running (a running one may yet be queued again, or queue its seeds), or ``stop()``."""
    study, sweep = _study_for_worker(storage, study_name, index)
    stop = stop or (lambda: False)
    while not stop():
        recover(study)
        trial_id = study._pop_waiting_trial_id()  # Study.ask's first step, without making a new trial
        if trial_id is not None:
            try:
                run_trial(study, optuna.Trial(study, trial_id), sweep, root=root, checkpoints=checkpoints,
                          stop=stop)
            except UpdateFinishedTrialError:  # failed meanwhile, its heartbeat stale (recover): queued again
                continue
        elif study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            time.sleep(POLL_SECONDS)
        else:
            return


def _worker_main(storage, study_name, index, root, checkpoints, parent, stopped, storage_error):
    """A worker process: one BLAS thread; Ctrl-C or SIGTERM, the event ``stopped`` (set by its
    parent) or its parent gone ends its run after the current batch, recorded to go on later.
    A database storage it cannot open, or loses, ends it, the reason written into the shared
    ``storage_error`` (a :data:`SPAWN` array of characters) for the parent to tell, unless
    another worker's is there."""
    # tqdm's lock, made by any bar, even one switched off, is a multiprocessing lock: in a spawned
    # process a named semaphore, which the parent's resource tracker reports as leaked, after the
    # command's last line, when the worker is killed. A thread lock serves one process as well.
    tqdm.set_lock(threading.RLock())
    stopping = threading.Event()
    for signum in INTERRUPTS:
        signal.signal(signum, lambda *_: stopping.set())
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", OneBatchWarning)  # run_sweep said it once, before any run
    with one_blas_thread():
        try:
            work(storage, study_name, index=index, root=root, checkpoints=checkpoints,
                 stop=lambda: stopping.is_set() or stopped.is_set() or os.getppid() != parent)
        except (StorageError, *STORAGE_ERRORS) as err:  # not its files: its run is recovered later
            reason = (f"{err} (each worker holds connections of its own, and a database server "
                      "refuses those past its limit, PostgreSQL's max_connections: give fewer workers "
                      "(--workers) or raise it)" if isinstance(err, StorageError) else storage_lost(storage, err))
            with storage_error.get_lock():
                if not storage_error.value:
                    storage_error.value = reason.encode()[:len(storage_error) - 1]
            sys.exit(NO_STORAGE)
        except OSError:  # recorded in its run, queued again (run_trial); the parent says so
            sys.exit(CANNOT_WRITE)


@contextlib.contextmanager
def _interrupts_ignored():
    """A context in which this process ignores Ctrl-C and SIGTERM, and so do the processes it
    starts (exec keeps an ignored signal) until they set their own handlers. One sent meanwhile
    is lost (an ignored signal is discarded), not deferred: press Ctrl-C again. In the main
    thread, which sets the handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in INTERRUPTS}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _start_workers(count, storage, study_name, root, checkpoints, stopped, storage_error):
    """``count`` spawned worker processes (no fork after BLAS started its threads), each with
    one BLAS thread from its start, that stop when the :data:`SPAWN` event ``stopped`` is set
    (``storage_error``: see :func:`_worker_main`).
    Started inside :func:`_interrupts_ignored`, a worker ignores Ctrl-C and SIGTERM until it has
    set its own handlers (one while it imports would end it with tracebacks; ``stopped`` stops
    it then)."""
    workers = [SPAWN.Process(target=_worker_main, name=f"hw3lib-sweep-{index}",
                             args=(storage, study_name, index, root, checkpoints, os.getpid(), stopped,
                                   storage_error))
               for index in range(count)]
    with child_blas_threads(1):
        for process in workers:
            process.start()
    return workers


def _stop_workers(workers):
    """Wait up to :data:`STOP_SECONDS` for the workers, told to stop (their event set), to
    record their runs and end; kill those left and return their ids (:func:`worker_id`). Not
    told by a signal: on Windows ``os.kill`` ends a process outright, its run left RUNNING."""
    deadline = time.monotonic() + STOP_SECONDS
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
    killed = []
    for process in workers:
        if process.is_alive():
            killed.append(worker_id(process.pid))  # as the worker named itself, while it runs
            process.kill()
            process.join()
    return killed


def default_workers():
    """One worker per core this process may use (:func:`hw3lib.cores.usable_cores`)."""
    return usable_cores()


def run_sweep(space, base=None, *, seeds=(0,), trials=None, workers=None, out="runs/sweep",
              storage=None, study_name=None, pruner="percentile", root=None, checkpoints=None,
              progress=True, on_progress=None, on_note=None, on_reading=None, stop=None):
    """Run (or go on with) the sweep of ``space`` around ``base`` (a :class:`TrainConfig`,
    default the report's settings) with ``seeds``; return its :class:`SweepResult`
    (with ``checkpoints``, the folder of its runs' checkpoints, and ``root``).

    - ``space``: ``{name: [values]}`` (a grid) or Optuna distributions (a sampled search of
      ``trials`` settings), see :class:`Sweep`. Checked before any work: ValueError.
    - ``workers`` processes on this machine (default one per core, one BLAS thread each).
    - ``out`` (and ``checkpoints``): ValueError where they cannot be created or written in,
      before the data is read (creating nothing), and where they lack room, once it is; they are
      created before any run is taken.
    - ``storage``: a database URL, or the journal file (default ``out/optuna-journal.log``),
      opened before the data is read (once it is found: opening creates its file);
      ``study_name`` defaults to :attr:`Sweep.name`, so running the same sweep again goes on
      from the trials it has and another machine with the same storage joins it.
    - checkpoints go to ``checkpoints`` (default ``out/checkpoints/<key>``, the key naming the
      data and the engine, :func:`hw3lib.runs.run_key`, so that other data, edited code or
      other BLAS kernels never overwrite these runs), one per run, named by
      :func:`hw3lib.runs.checkpoint_path`, so an interrupted run resumes and
      :func:`~hw3lib.runs.load_or_train` finds every finished run's weights.
    - ``root``: the data (default ``$HW3_DATA``, then ``data/``); ``pruner``: see
      :meth:`Sweep.pruner_for_study`; ``progress``: as train's, bars over the images read, the
      files hashed and the file order checked (each shown once it takes a while) and over the
      runs; ``on_progress(done, total)`` after each look at the study; ``on_note(text)`` (e.g.
      ``print``) before any run, with :func:`hw3lib.file_order.file_order_note` where it has
      one and a run holds out the blocked split (not looked for without ``on_note``), and with
      :func:`hw3lib.train.one_batch_note` where a batch size is more than the training images
      (without ``on_note``: a :class:`~hw3lib.train.OneBatchWarning`; not one from each run).
    - ``on_reading(root, files)`` before the images are read, with their listing
      (:func:`~hw3lib.folders.dataset_files`), e.g. :func:`hw3lib.cli.announce_reading`.

    A :class:`NotLearnedWarning` where the best setting did not learn (its validation accuracy
    no better than guessing: :attr:`SweepResult.learned`, :attr:`SweepResult.not_learned`).
    Ctrl-C, or setting the ``threading.Event`` ``stop``, stops the workers after their current
    batch (their runs are queued again) and raises KeyboardInterrupt, also while the study is
    being set up (running it again goes on); :class:`SweepError` when workers died with runs
    left, or stopped since they could not write a run's files (the run queued again), or open
    or keep the storage (a database server refusing their connections, restarted, gone).
    """
    sweep = Sweep.define(space, base, seeds, trials, pruner)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created ..."
    workers = default_workers() if workers is None else workers
    workers = integer("workers", workers)
    study_name = checked_study_name(sweep, study_name)
    out = Path(out)
    for folder, option, given in _folders(out, checkpoints):  # creating nothing, before the data is read
        _writable_folder(folder, option, given, create=False)
    # DataError now rather than in every run; the model's fit too, unless a swept setting changes it
    files = dataset_files(resolve_root(root))  # listed once, for on_reading and the read itself
    # a bad storage before the data is read, rather than after or in every run; opening creates
    # a journal or SQLite file, so only once the data is found (the default journal where it is)
    if storage is None and (out / JOURNAL).is_file():
        try:
            store = open_storage(out / JOURNAL)
        except NotAJournal:  # its advice names --storage, which was not given
            raise ValueError(f"out {out}: {out / JOURNAL}, the journal of the sweeps there, is "
                             "not an Optuna journal (damaged, or another program's file): move "
                             "it away to start afresh, or give another out") from None
        storage = out / JOURNAL
    else:
        store = open_storage(storage) if storage is not None else None
    if store is not None:  # a study of another sweep or code, before the data is read
        check_study(sweep, store, study_name, engine_code())
    if on_reading is not None:
        on_reading(root, files)
    data = sweep.data_config().load_data(root, check_model=not any(
        name == "image_size" or name.startswith("model.") for name in sweep.space), progress=progress,
        files=files)
    for setting, config in sweep.corners():  # each model against the images' own size
        if config.image_size is None:
            try:
                config.check_fit(data.image_size)
            except ValueError as err:
                raise ValueError(f"{', '.join(f'{k}={v!r}' for k, v in setting.items())}: {err}") from None
    checks = time.monotonic()  # the checks after reading: their bars show within one PROGRESS_DELAY, as train's
    sha = dataset_sha256(root, progress=progress)
    # every run trains on as many images: said once here, not by each worker's fit
    one_batch = one_batch_note(max(config.batch_size for _, config in sweep.corners()), len(data.y_train))
    if one_batch and on_note is not None:
        on_note(f"note: {one_batch}")
    elif one_batch:
        warnings.warn(one_batch, OneBatchWarning, stacklevel=2)
    if on_note is not None and any(config.split == "blocked" for _, config in sweep.corners()):
        note = file_order_note(data.X_train, data.y_train, data.X_test, data.classes, progress,
                               quiet_since=checks)
        if note:
            on_note(note)
    folders = _folders(out, checkpoints, sha)  # created and tried for room before any run is taken
    for folder, option, given in folders:
        _writable_folder(folder, option, given)
    checkpoints = folders[-1][0]
    storage = str(storage if storage is not None else out / JOURNAL)
    try:
        study = open_study(sweep, store or open_storage(storage), study_name, sha, engine_code())
    except ValueError:  # a study of another sweep, data or code: no run folder left for it
        with contextlib.suppress(OSError):
            checkpoints.rmdir()  # only when empty
        raise
    recover(study)
    procs, stopped, storage_error = [], SPAWN.Event(), SPAWN.Array("c", 1000)
    bar = tqdm(total=sweep.total, unit="run", desc=study.study_name, disable=not progress)
    try:
        with _interrupts_ignored():  # the milliseconds of the start: never cut short, none left unstopped
            # no more workers than runs: the others would start, find nothing to do and stop
            procs = _start_workers(min(workers, sweep.total), storage, study.study_name, root, checkpoints,
                                   stopped, storage_error)
        while True:
            alive = any(p.is_alive() for p in procs)
            result = sweep_result(study)  # its definition as stored: another sweep may raise its trials
            done, bar.total = len(result.finished()), result.sweep.total
            bar.update(done - bar.n)
            if on_progress is not None:
                on_progress(done, result.sweep.total)
            if not alive:
                break
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        stopped.set()  # each worker ends its run after the current batch, recorded to go on
        recover(study, killed=_stop_workers(procs))  # their runs queued again, on any system
        result = sweep_result(study)
        done, total = len(result.finished()), result.sweep.total
        bar.update(done - bar.n)
        if on_progress is not None:  # and the runs that finished while the workers stopped
            on_progress(done, total)
        kept = f"kept in {shown_storage(storage)}"
        state = (f"after all {done} of its runs had finished ({kept}): run it again for their "
                 "results, which trains nothing more" if done == total else
                 f"with {done} of {total} runs finished, {kept}: run it again to go on")
        raise KeyboardInterrupt(f"sweep {study.study_name} interrupted {state}") from None
    except STORAGE_ERRORS as err:  # a database server restarted or gone: its workers lose it too
        stopped.set()
        _stop_workers(procs)
        raise SweepError(f"{storage_lost(storage, err)}: the workers stopped; run the sweep again to go "
                         "on once it answers (a run cut short resumes from its checkpoint)") from None
    finally:
        bar.close()
    total = result.sweep.total  # the study's: more trials asked meanwhile by another sweep are run too
    left = total - done
    if left:
        codes = sorted({p.exitcode for p in procs})
        if NO_STORAGE in codes:
            raise SweepError(f"a worker stopped with {left} of {total} runs of {study.study_name} not done: "
                             f"{storage_error.value.decode(errors='replace')}; run the sweep again to go on")
        if CANNOT_WRITE in codes:
            raise SweepError(f"a worker stopped with {left} of {total} runs of {study.study_name} "
                             f"not done: {_unwritten(study, checkpoints, storage)}: make room or fix the "
                             "folder's permissions, then run the sweep again to go on")
        guard = ("; workers that stop at once, from a script, mean it lacks `if __name__ == "
                 "'__main__':` around run_sweep" if done == 0 and 1 in codes else "")  # not a kill's -9
        raise SweepError(f"the workers stopped (exit status {codes}) with {left} of {total} "
                         f"runs of {study.study_name} not done: run the sweep again to go on{guard}")
    result = dataclasses.replace(result, checkpoints=checkpoints, root=root)
    if result.not_learned:
        warnings.warn(f"{NOT_LEARNED}: {result.not_learned}", NotLearnedWarning, stacklevel=2)
    return result


def _folders(out, checkpoints, sha=None):
    """The folders a sweep into ``out`` writes, as ``(folder, option, given)`` for
    :func:`_writable_folder`: ``out`` and ``checkpoints``, by default ``out/checkpoints/KEY``, KEY
    naming the data of ``sha`` and the engine (:func:`hw3lib.runs.run_key`); without ``sha``
    (the data not read yet), the folder above it."""
    if checkpoints is not None:
        return [(out, "out", out), (Path(checkpoints), "checkpoints", Path(checkpoints))]
    kept = out / "checkpoints"
    return [(out, "out", out), (kept / run_key(sha) if sha else kept, "out", out)]


def _writable_folder(folder, option, given, create=True):
    """Create ``folder`` and write and sync ROOM bytes in it (then remove them), before any run is
    taken: ValueError naming the ``option`` that was ``given`` when it cannot hold the runs'
    files (read-only, full: an empty file fits on a full disk); without ``create``, the same
    refusals but a full disk's, creating nothing (:func:`~hw3lib.out_folders.make_folder`)."""
    refuse_file_in_the_way(folder, option, given)
    try:
        make_folder(folder, ROOM, create)
    except OSError as err:
        where = "" if folder == given else f" {folder}"
        raise ValueError(f"{option} {given}: cannot write{where or ' there'} ({err.strerror}); "
                         "choose a writable folder with room for the checkpoints") from None


def _unwritten(study, checkpoints, storage):
    """The error of the latest run that a worker on this machine could not write (run_trial);
    when none was recorded (the journal, in a folder turned read-only or full, could not record
    it), why ``checkpoints`` or the journal's folder cannot be written now."""
    here = f"{_machine()}:"
    recorded = next((t.user_attrs["error"] for t in reversed(study.get_trials(deepcopy=False))
                     if t.state == TrialState.FAIL and t.user_attrs.get("error", "").endswith(NOT_WRITTEN)
                     and t.user_attrs.get("worker", "").startswith(here)), None)
    if recorded:
        return recorded
    journal = [] if "://" in storage else [Path(storage).parent]
    for folder in (checkpoints, *journal):
        try:
            try_writing(folder, ROOM)
        except OSError as err:
            return f"cannot write in {folder} ({err.strerror})"
    return NOT_WRITTEN


# --- reading a sweep back ----------------------------------------------------------------

def load_sweep(storage, study_name):
    """The :class:`SweepResult` of the study ``study_name`` in ``storage`` (path or URL);
    creates nothing: a ValueError names a storage that is not there or holds no such sweep."""
    opened = open_storage(storage, create=False)
    try:
        study = optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        names = sorted(optuna.get_all_study_names(opened))
        held = f"it holds {', '.join(map(repr, names))}" if names else "it holds no study"
        raise ValueError(f"no study {study_name!r} in {shown_storage(storage)}: {held}") from None
    if "sweep" not in study.user_attrs:
        raise ValueError(f"the study {study_name!r} in {shown_storage(storage)} is not a sweep of hw3lib")
    return sweep_result(study)


