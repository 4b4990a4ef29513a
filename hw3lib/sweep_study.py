"""A sweep's study in its Optuna storage (:mod:`hw3lib.sweep`): opening a journal file or a
database, creating or joining the study, writing the sweep's definition, queueing its runs
(safely interrupted: the same command goes on), and refusing a study of another sweep, other
data or other code."""
import json
import os
import sys
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy
from optuna.distributions import CategoricalDistribution, json_to_distribution
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning, StorageInternalError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalFileSymlinkLock

from .folders import home_path
from .out_folders import refuse_file_in_the_way

JOURNAL = "optuna-journal.log"
HEARTBEAT_SECONDS = 10  # database storages: a running trial's heartbeat, this often
GRACE_SECONDS = 60      # ... older than this, and the trial is failed and queued again
LOCK_GRACE_SECONDS = 30  # a journal's lock held this long was left by a killed process: broken
DEFINE_SECONDS = 10     # a study this long without its definition: its creator stopped
POLL_SECONDS = 0.5
QUEUE_IDLE_SECONDS = 5  # a study's queue this long unfinished and not growing: its creator stopped
SQLITE_WAIT_SECONDS = 60  # an SQLite database's lock waited for this long, not 5 s: many workers share it


def open_storage(storage, create=True):
    """An Optuna storage: a database URL (``postgresql://...``, ``sqlite:///...``: an SQLite
    file, like a journal, created with its folder) with heartbeats, or else the path of a
    journal file (created with its folder, unless ``create`` is False: reading a sweep back
    creates nothing). A path that is no journal (a folder,
    another file), or that cannot be created, and an in-memory SQLite database, which no worker
    process could open, are a ValueError naming it. A leading ``~`` of its file is the home
    folder (:func:`home_storage`), from Python as on the command line."""
    storage = home_storage(storage)
    if "://" not in storage:
        return _open_journal(storage, create)
    if _in_memory(storage):
        raise ValueError(f"storage {storage} is a database in this process's memory, which the worker "
                         "processes cannot open: give a database file (sqlite:///PATH), a PostgreSQL "
                         "URL or a journal file's path")
    database = storage_file(storage)  # an SQLite database's file
    if not create and database and not database.is_file():
        raise ValueError(f"storage {storage}: no such database file")
    if create and database:  # else SQLite's "unable to open database file"
        _make_file(database, shown_storage(storage), "database")
    sqlite = _backend(storage) == "sqlite"
    if not create and not _holds_optuna(storage):  # Optuna would add its tables to the database
        raise ValueError(f"storage {shown_storage(storage)} holds no Optuna study: give the database "
                         "a sweep wrote to (its --storage)")
    for attempt in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            try:
                rdb = RDBStorage(storage, heartbeat_interval=HEARTBEAT_SECONDS,
                                 grace_period=GRACE_SECONDS,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())
                if sqlite:
                    _lock_as_transactions_begin(rdb.engine)
                return rdb
            except sqlalchemy.exc.NoSuchModuleError:  # postgres://, a typo: "Can't load plugin"
                raise ValueError(f"storage {shown_storage(storage)}: SQLAlchemy knows no database "
                                 f"{storage.partition(':')[0]!r}: give postgresql://USER:PASSWORD@HOST:5432/DB, "
                                 "sqlite:///PATH or a journal file's path") from None
            except Exception as err:  # SQLAlchemy's errors name the driver or the server
                error = err
                if not _created_together(err):
                    break
                time.sleep(0.5 + attempt)
    raise StorageError(f"cannot open the storage {shown_storage(storage)}: {str(error).splitlines()[0]}")


class StorageError(OSError):
    """A database that cannot be opened: its server unreachable or refusing the connection (one
    more than PostgreSQL's ``max_connections``), a file SQLite cannot open."""


# what an open database storage raises when it is lost mid-sweep (its server restarted, stopped
# or unreachable): SQLAlchemy's error, or Optuna's around it where it commits
STORAGE_ERRORS = (sqlalchemy.exc.OperationalError, StorageInternalError)


def storage_lost(storage, err):
    """The words for ``err``, one of :data:`STORAGE_ERRORS` from ``storage``: "lost the storage
    URL (the database's reason)", not Optuna's "invalid data in the commit" around it."""
    cause = err.__cause__ if isinstance(err, StorageInternalError) and err.__cause__ else err
    return f"lost the storage {shown_storage(storage)} ({str(cause).splitlines()[0]})"


def storage_file(storage):
    """The file that ``storage`` (a journal file's path or a database URL) keeps its study in:
    the journal file, or an SQLite database's (``sqlite:///PATH``, with any driver); None for a
    database of a server, one in memory, or an SQLite ``file:`` URI (its path read by SQLite)."""
    storage = str(storage)
    if "://" not in storage:
        return Path(storage)
    database = _backend(storage) == "sqlite" and sqlalchemy.engine.make_url(storage).database
    return Path(database) if database and database != ":memory:" and not database.startswith("file:") else None


def home_storage(storage):
    """``storage`` with a leading ``~`` (or ``~USER``) of its file (:func:`storage_file`) made the
    home folder, as a shell makes it (:func:`hw3lib.folders.home_path`: ValueError for one of no
    known home folder); a database URL of no such file as given."""
    storage = str(storage)
    if "://" not in storage:
        return str(home_path(storage))
    url = sqlalchemy.engine.make_url(storage) if storage_file(storage) else None
    if url is None or not url.database.startswith("~"):
        return storage
    return url.set(database=str(home_path(url.database))).render_as_string(hide_password=False)


def _created_together(err):
    """Whether ``err`` is another process creating Optuna's tables in the same new database at the
    same moment (machines, or commands, starting together): PostgreSQL's duplicate, SQLite's
    "table ... already exists"."""
    return (isinstance(err, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError))
            or isinstance(err, sqlalchemy.exc.OperationalError) and "already exists" in str(err))


def _lock_as_transactions_begin(engine):
    """Make each transaction of the SQLite ``engine`` take the database's write lock as it begins
    (SQLAlchemy's recipe): SQLite ignores the SELECT ... FOR UPDATE with which Optuna takes a
    waiting trial, so two workers could both read it as waiting and both take it."""
    def connected(dbapi_connection, _):
        dbapi_connection.isolation_level = None  # no transactions of the driver's own
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_WAIT_SECONDS * 1000}")

    sqlalchemy.event.listen(engine, "connect", connected)
    sqlalchemy.event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    engine.dispose()  # the connections that Optuna opened to create its tables: without the above


def _holds_optuna(url):
    """Whether the database ``url`` has Optuna's tables; True where it cannot be read (opening it
    says why)."""
    try:
        engine = sqlalchemy.create_engine(url)
        try:
            return sqlalchemy.inspect(engine).has_table("version_info")
        finally:
            engine.dispose()
    except Exception:
        return True


def _backend(url):
    """The database of ``url`` (``sqlite``, ``postgresql``, ...), whatever its driver; None
    when it is no URL (opening it says what is wrong)."""
    try:
        return sqlalchemy.engine.make_url(url).get_backend_name()
    except sqlalchemy.exc.ArgumentError:
        return None


def _in_memory(url):
    """Whether the database ``url`` is SQLite in the opening process's memory (``sqlite://``,
    ``sqlite:///:memory:``, with any driver, e.g. ``sqlite+pysqlite://``)."""
    return _backend(url) == "sqlite" and sqlalchemy.engine.make_url(url).database in (None, "", ":memory:")


def _open_journal(given, create):
    path = Path(given).absolute()  # the lock links to it: a relative link would dangle
    if path.is_dir():
        raise ValueError(f"storage {given} is a folder: give a journal file's path (e.g. "
                         f"{Path(given) / JOURNAL}) or a database URL")
    if not create and not path.is_file():
        raise ValueError(f"storage {given}: no such journal file (a sweep's is OUT/{JOURNAL})")
    if create:
        _make_file(path, given, "journal")
    try:
        if path.is_file() and not _starts_as_journal(path):  # Optuna would append to it
            raise ValueError(path)
        # Windows makes a symbolic link only with Developer Mode or as administrator
        lock = (JournalFileOpenLock if sys.platform == "win32" else JournalFileSymlinkLock)(
            str(path), LOCK_GRACE_SECONDS)
        return JournalStorage(_JournalFile(str(path), lock))
    except DamagedJournal:
        raise
    except OSError as err:
        raise ValueError(f"storage {given}: cannot {'create' if create else 'read'} the journal "
                         f"({err.strerror}); "
                         f"{'choose a writable folder' if create else 'check its permissions'}") from None
    except Exception:  # another file's bytes: UnicodeDecodeError, JSONDecodeError, KeyError, ...
        raise NotAJournal(f"storage {given} is not an Optuna journal: give the journal a sweep "
                          f"wrote (OUT/{JOURNAL}) or a database URL") from None


def _make_file(path, given, what):
    """Create the file ``path`` (the storage ``given``'s ``what``: its journal, its database) and
    its folder, where missing: a ValueError naming the storage where they cannot be created."""
    refuse_file_in_the_way(path.parent, "storage", given)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            open(path, "ab").close()
    except OSError as err:
        raise ValueError(f"storage {given}: cannot create the {what} ({err.strerror}); choose a "
                         "writable folder") from None


class NotAJournal(ValueError):
    """A file given as a journal that holds another file's bytes."""


class DamagedJournal(ValueError):
    """A journal with a line that is no record (edited, or written over): Optuna cannot read it."""


class _JournalFile(JournalFileBackend):
    """Optuna's journal file, whose every append first cuts off a last line left unfinished (its
    writer killed, or the disk full, mid-write), which Optuna's readers skip as not yet written:
    appended to, it would join the next record into a line that no process could read again.
    A line that is no record is a :class:`DamagedJournal` naming it and what to do, not
    Optuna's JSON error."""

    def read_logs(self, log_number_from):
        try:
            yield from super().read_logs(log_number_from)
        except ValueError:  # json's error, or Optuna's "Invalid log format."
            raise DamagedJournal(_damaged(self._file_path)) from None

    def append_logs(self, logs):
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        self._lock.acquire()  # as Optuna's append: every writer holds it while it writes
        try:
            with open(self._file_path, "r+b") as f:
                f.truncate(_whole_lines(f))
                f.seek(0, os.SEEK_END)
                f.write(text.encode())
                f.flush()
                os.fsync(f.fileno())
        finally:
            self._lock.release()


def _damaged(path):
    """What :class:`DamagedJournal` says of the journal at ``path``: which line, and what to do."""
    with open(path, "rb") as f:
        number = next((n for n, line in enumerate(f, 1) if _record(line) is None), None)
    line = f"its line {number}" if number else "a line"
    return (f"the journal {path} cannot be read: {line} is not a whole record (edited, or written "
            "over): undo the edit (a blank line too), restore the file from a copy, or move it aside "
            "and run the same command again, "
            "which starts the sweep afresh (a run whose checkpoint is kept loads or resumes it "
            "rather than training again)")


def _record(line):
    """The journal record (a JSON object) that ``line`` holds, else None."""
    try:
        record = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return record if isinstance(record, dict) else None


def _whole_lines(f, chunk=4096):
    """The length of the open file ``f`` up to the end of its last whole line (its last newline)."""
    end = f.seek(0, os.SEEK_END)
    while end > 0:
        start = max(0, end - chunk)
        f.seek(start)
        newline = f.read(end - start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _starts_as_journal(path):
    """Whether the file ``path`` is empty or starts with a journal's record (a JSON object with
    an ``op_code``): Optuna opens a file whose only line is another file's, and appends to it."""
    with open(path, "rb") as f:
        first = f.readline()
    if not first:
        return True
    if not first.endswith(b"\n"):  # its first record, cut short as it was written
        return first.startswith(b'{"op_code":')
    return "op_code" in (_record(first) or {})


def shown_storage(storage):
    """``storage`` (a path or URL) as messages show it: a URL without its password, given before
    its host or as its query's ``password`` (``postgresql://me@host/db?password=...``)."""
    storage = str(storage)
    if "://" not in storage:
        return storage
    scheme, _, rest = storage.partition("://")
    user, at, host = rest.rpartition("@")
    host, _, query = host.partition("?")
    kept = "&".join(p for p in query.split("&") if p and p.partition("=")[0] != "password")
    return f"{scheme}://{user.split(':')[0]}{at}{host}" + (f"?{kept}" if kept else "")


def open_study(sweep, storage, study_name=None, data_sha256=None, code=None):
    """The study of ``sweep`` in ``storage`` (a path or URL, :func:`open_storage`, or an open
    storage): created, or loaded when it exists, after checking that it holds the same sweep
    (and was run on the same data and by the same hw3lib code, when ``data_sha256`` and
    ``code``, an :func:`~hw3lib.engine.engine_code`, are given); with every run queued.

    The definition is written first (user attributes ``data_sha256``, ``code``, ``sweep``),
    then the runs are queued and ``queued`` set: a process that opens a study whose creator
    was interrupted while queueing (Ctrl-C), or whose journal lost a run's lines (an edit),
    queues the runs it lacks, so the same command goes on. A study left without its definition
    (its creator stopped right after creating it) and without trials is taken over. A sampled
    search asking for more ``trials`` than its study holds goes on with it, its definition
    raised to them and the trials it lacks queued; fewer is refused (its trials would all run)."""
    name = checked_study_name(sweep, study_name)
    store = storage if isinstance(storage, BaseStorage) else open_storage(storage)
    try:
        study = optuna.create_study(storage=store, study_name=name, direction="maximize")
    except DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=store)
        if _check_same(study, sweep, data_sha256, code):
            _wait_for_queue(study)
    else:
        _define(study, sweep, data_sha256, code)
    _queue_runs(study, sweep)  # those it lacks: its creator stopped queueing, or a journal was edited
    if not study.user_attrs.get("queued", True):  # studies of earlier hw3lib: queued before defined
        study.set_user_attr("queued", True)
    return study


def _define(study, sweep, data_sha256, code):
    for key, value in (("data_sha256", data_sha256), ("code", code), ("queued", False),
                       ("sweep", sweep.to_json())):
        study.set_user_attr(key, value)


def params_of(trial):
    """A trial's setting: its parameters, or the ones it was queued with before it ran."""
    return trial.params or trial.system_attrs.get("fixed_params", {})


def first_attempt(trial):
    """The number of the first attempt at ``trial``'s run (a retry names it)."""
    return trial.system_attrs.get("failed_trial", trial.number)


def _queue_runs(study, sweep):
    """Queue the runs of ``sweep`` that ``study`` lacks (all of them in a new study): a grid's
    settings with each seed, a sampled search's ``trials`` slots (empty trials that TPE fills,
    user attribute ``slot``). Two processes queueing at once may queue a run twice: the worker
    that takes the later one skips it, before drawing a setting (:func:`run_trial`)."""
    trials = study.get_trials(deepcopy=False)
    if sweep.grid:
        have = {(json.dumps(params_of(t), sort_keys=True), t.user_attrs.get("seed")) for t in trials}
        for params in sweep.settings():
            for seed in sweep.seeds:
                if (json.dumps(params, sort_keys=True), seed) not in have:
                    study.enqueue_trial(params, user_attrs={"seed": seed})
    else:
        have = {t.user_attrs.get("slot") for t in trials}
        for slot in range(sweep.trials):
            if slot not in have:
                study.enqueue_trial({}, user_attrs={"seed": sweep.seeds[0], "slot": slot})


def _wait_for_queue(study):
    """Wait while another process queues the runs of ``study`` (its trials grow), until it is
    done (``queued``) or stops queueing for :data:`QUEUE_IDLE_SECONDS` (it was interrupted)."""
    count, since = -1, time.monotonic()
    while not study.user_attrs.get("queued", True):
        now = len(study.get_trials(deepcopy=False))
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since > QUEUE_IDLE_SECONDS:
            return
        time.sleep(POLL_SECONDS)


def _differences(theirs, ours):
    """What differs between two sweep definitions (:meth:`Sweep.to_json`), setting by setting:
    ``NAME: THEIRS there, OURS here``, a swept one ``swept NAME: VALUES there, ... here`` with
    VALUES as ``--param`` takes them (``V1,V2`` or ``LOW:HIGH[:log]``), not Optuna's repr."""
    def shown(part, value):
        if part != "space":
            return repr(value)
        if value is None:
            return "not swept"
        dist = json_to_distribution(json.dumps(value))
        if isinstance(dist, CategoricalDistribution):
            return ",".join(str(v) for v in dist.choices)
        return f"{dist.low}:{dist.high}" + (":log" if dist.log else "")

    diffs = []
    for part, value in ours.items():
        other = theirs.get(part)
        pairs = ([(name, other.get(name), value.get(name)) for name in {**other, **value}]
                 if part in ("base", "space") and isinstance(other, dict) else [(part, other, value)])
        diffs += [f"{'swept ' * (part == 'space')}{name}: {shown(part, a)} there, {shown(part, b)} here"
                  for name, a, b in pairs if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True)]
    return diffs


def check_study(sweep, storage, study_name=None, code=None):
    """Refuse, before the data is read and changing nothing, what :func:`open_study` would
    refuse of a study already defined in ``storage`` (an open storage) but its data: another
    sweep, other ``code``, fewer trials. Nothing where the study does not exist or has no
    definition yet (:func:`open_study` waits for it)."""
    try:
        study = optuna.load_study(study_name=checked_study_name(sweep, study_name), storage=storage)
    except KeyError:  # no such study
        return
    if "sweep" in study.user_attrs:
        _refuse_another(study, sweep, None, code)


def checked_study_name(sweep, study_name):
    """``study_name``, or the sweep's own name for None; ValueError for anything but a name."""
    if study_name is not None and not (isinstance(study_name, str) and study_name.strip()):
        raise ValueError(f"study_name must name a study (or be None: {sweep.name}), got {study_name!r}")
    return study_name or sweep.name


def _check_same(study, sweep, data_sha256, code):
    """Refuse a study that runs another sweep (a sampled search's fewer trials too; more raise
    its definition's), or ran on other data or by other code; return True, or False when the
    study had no definition and no trials, and is now this sweep's."""
    deadline = time.monotonic() + DEFINE_SECONDS  # its creator may be defining it right now
    while "sweep" not in study.user_attrs:
        if time.monotonic() > deadline:
            if study.get_trials(deepcopy=False):
                raise ValueError(f"the study {study.study_name!r} is not a sweep of hw3lib (it has "
                                 "trials but no sweep definition): choose another study name")
            _define(study, sweep, data_sha256, code)  # its creator stopped before defining it
            return False
        time.sleep(POLL_SECONDS)
    if _refuse_another(study, sweep, data_sha256, code):  # the trials it lacks are queued next
        study.set_user_attr("sweep", sweep.to_json())
    return True


def _refuse_another(study, sweep, data_sha256, code):
    """Refuse the defined ``study`` where it runs another sweep, ran on other data (where
    ``data_sha256`` is given) or by other code, or holds more trials than a sampled ``sweep``
    asks for; return whether it holds fewer (its definition is then to be raised)."""
    theirs, ours = study.user_attrs["sweep"], sweep.to_json()
    sampled = theirs.get("trials") is not None and sweep.trials is not None  # its trials may grow
    diffs = _differences(theirs, {**ours, "trials": theirs["trials"]} if sampled else ours)
    if diffs:
        raise ValueError(f"the study {study.study_name!r} runs another sweep ({'; '.join(diffs)}): "
                         "give the same settings or another study name (--study-name)")
    stored = study.user_attrs.get("data_sha256")
    if data_sha256 and stored and stored != data_sha256:
        raise ValueError(f"the study {study.study_name!r} was run on other data (SHA-256 {stored}, "
                         f"this data {data_sha256}): give every machine of a sweep the same data, "
                         "or run a sweep of this data under another study name (--study-name)")
    stored = study.user_attrs.get("code")
    if code and stored and stored != code:
        raise ValueError(f"the study {study.study_name!r} was run by other code ({stored}; this "
                         f"code is {code}), so its scores are not this code's: if you edited "
                         "hw3lib's training code, revert it, or run this code's sweep under another "
                         "study name (--study-name); every machine of a sweep needs the same hw3lib")
    if sampled and sweep.trials < theirs["trials"]:
        raise ValueError(f"trials: the study {study.study_name!r} holds {theirs['trials']} trials, more "
                         f"than the {sweep.trials} asked for, and runs them all: ask for "
                         f"{theirs['trials']} or more to go on with it, or run a sweep of "
                         f"{sweep.trials} under another study name (--study-name)")
    return sampled and sweep.trials > theirs["trials"]
