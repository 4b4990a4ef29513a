"""The checkpoint's lock: processes testing and training one run at once never lose a count.

Each race is made certain, not left to timing: the first process pauses inside its
read-modify-write of the checkpoint (in save_checkpoint, after its read) until the second has
found the lock held, or, without a lock, has done its whole read-modify-write."""
import contextlib
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_train import tiny_config, tiny_data

import hw3lib.train as train
import hw3lib.trained as trained
from hw3lib.atomic import LockTimeout, lock_path, locked
from hw3lib.checkpoint import CheckpointError, load_checkpoint
from hw3lib.checkpoint import test_data_sha256 as sha256_of  # a name pytest leaves alone
from hw3lib.train import fit
from hw3lib.trained import FitResult
from hw3lib.train_cli import _kept_when_writing_fails

SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter, as another command would be
WAIT = 60  # seconds: only a broken test waits this long


def wait_for(condition):
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- in the child processes --------------------------------------------------------------------

def pause_in_save(inside, go, epoch=None):
    """Make save_checkpoint (of ``epoch``, or any) set ``inside``, then wait for ``go``: as fit
    (hw3lib.train) and a run's test (hw3lib.trained) call it."""
    real = train.save_checkpoint

    def paused(path, ckpt):
        if epoch in (None, ckpt.epoch):
            inside.set()
            assert go.wait(WAIT)
        real(path, ckpt)
    train.save_checkpoint = trained.save_checkpoint = paused


def note_a_wait(blocked):
    """Make the checkpoint's lock set ``blocked`` when it finds the lock held, then wait for it."""
    real = trained.locked

    @contextlib.contextmanager
    def noting(path):
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(real(path, timeout=0))
            except LockTimeout:
                blocked.set()
                stack.enter_context(real(path))
            yield
    trained.locked = noting


def child_tests(name, path, X, y, pause, blocked, out):
    """Load the run at ``path`` and test it on ``X``, ``y``: ``(name, "tested", count, sha)``
    or ``(name, "refused", message)`` into the queue ``out``."""
    if pause:
        pause_in_save(*pause)
    if blocked:
        note_a_wait(blocked)
    run = FitResult.load(path)
    try:
        record = run.test(X, y)
    except CheckpointError as err:
        out.put((name, "refused", str(err)))
    else:
        out.put((name, "tested", run.test_evaluations, record.data_sha256))


def child_trains(name, path, data, config, pause, blocked, out):
    """Resume the run at ``path`` up to ``config.epochs``: ``(name, "trained", its count)``."""
    if pause:
        pause_in_save(*pause, epoch=config.epochs)
    if blocked:
        note_a_wait(blocked)
    result = fit(config.build_model(3), data, config, checkpoint_path=path, resume=path, progress=False)
    out.put((name, "trained", result.test_evaluations))


def child_holds_the_lock(path, taken, release):
    with locked(path):
        taken.set()
        release.wait(WAIT)


# --- in this process ---------------------------------------------------------------------------

def race(first, second):
    """Run ``first`` (a child function and its arguments but the last three) until it pauses
    in its save, then ``second`` until it finds the lock held or ends; then let both finish.
    Their reports, by name, and whether ``second`` found the lock held."""
    inside, go, blocked, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=first[0], args=(*first[1:], (inside, go), None, out)),
             SPAWN.Process(target=second[0], args=(*second[1:], None, blocked, out))]
    try:
        procs[0].start()
        wait_for(inside.is_set)
        procs[1].start()
        wait_for(lambda: blocked.is_set() or not procs[1].is_alive())
        go.set()
        reports = {name: report for name, *report in (out.get(timeout=WAIT) for _ in procs)}
    finally:
        go.set()  # a test that failed leaves no child waiting
        for proc in procs:
            if proc.pid is not None:
                proc.join(WAIT)
    assert [proc.exitcode for proc in procs] == [0, 0]
    return reports, blocked.is_set()


def trained_run(path):
    """A run of 2 epochs saved at ``path``: its data and settings."""
    data, config = tiny_data(), tiny_config(epochs=2)
    fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    return data, config


def test_two_processes_testing_one_run_at_once_count_both_evaluations(tmp_path):
    path = tmp_path / "c.npz"
    data, _ = trained_run(path)
    X, y = data.X_test, data.y_test
    reports, waited = race((child_tests, "first", path, X, y),
                           (child_tests, "second", path, X[:-1], y[:-1]))
    assert reports == {"first": ["tested", 1, sha256_of(X, y)],
                       "second": ["tested", 2, sha256_of(X[:-1], y[:-1])]}
    saved = load_checkpoint(path)
    assert saved.test_evaluations == 2 and saved.test.data_sha256 == sha256_of(X[:-1], y[:-1])
    assert saved.epoch == 2 and waited and not lock_path(path).exists()


def test_a_run_tested_while_another_process_trains_it_on_keeps_the_count(tmp_path):
    """The test pauses in its write: training on waits, then keeps the count with its epoch."""
    path = tmp_path / "c.npz"
    data, config = trained_run(path)
    reports, waited = race((child_tests, "test", path, data.X_test, data.y_test),
                           (child_trains, "train", path, data, replace(config, epochs=3)))
    assert reports == {"test": ["tested", 1, sha256_of(data.X_test, data.y_test)],
                       "train": ["trained", 1]}
    saved = load_checkpoint(path)
    assert (saved.epoch, saved.test_evaluations, saved.test.epoch) == (3, 1, 2) and waited


def test_a_run_trained_on_while_another_process_tests_it_refuses_the_test(tmp_path):
    """Training on pauses in its write of epoch 3: the test, of epoch 2's run, waits, then finds
    the run trained on and gives no figures, so nothing is shown uncounted."""
    path = tmp_path / "c.npz"
    data, config = trained_run(path)
    reports, waited = race((child_trains, "train", path, data, replace(config, epochs=3)),
                           (child_tests, "test", path, data.X_test, data.y_test))
    assert reports["train"] == ["trained", 0] and reports["test"][0] == "refused"
    assert "trained on since this run was loaded" in reports["test"][1]
    saved = load_checkpoint(path)
    assert (saved.epoch, saved.test_evaluations) == (3, 0) and waited


def test_a_run_tested_while_it_trains_on_keeps_the_count_it_read_before(tmp_path):
    """The run was read at the start of training; tested since, its count is kept."""
    path = tmp_path / "c.npz"
    data, config = trained_run(path)

    def test_after_epoch_3(history):
        if len(history["epoch"]) == 3:
            FitResult.load(path).test(data.X_test, data.y_test)

    result = fit(config.build_model(3), data, replace(config, epochs=4), checkpoint_path=path,
                 resume=path, on_epoch=test_after_epoch_3, progress=False)
    saved = load_checkpoint(path)
    assert (saved.epoch, saved.test_evaluations, saved.test.epoch) == (4, 1, 3)
    assert result.test_evaluations == 1 and result.test_record.loss == saved.test.loss


def assert_not_written_over(tmp_path, data, config, epoch):
    """A fresh run of ``config`` into c.npz, where the tested run tested.npz is copied in at
    ``epoch``'s first batch, refuses to save that epoch there and leaves the copy as it is."""
    path = tmp_path / "c.npz"

    def written_meanwhile(stats):
        if (stats["epoch"], stats["batch"]) == (epoch, 1):
            shutil.copy(tmp_path / "tested.npz", path)

    with pytest.raises(ValueError, match=r"c\.npz holds another run now .* evaluated 1 time\(s\); "
                                         rf"saving this run's epoch {epoch} there would lose that record"):
        fit(config.build_model(3), data, config, checkpoint_path=path, on_batch=written_meanwhile,
            progress=False)
    assert path.read_bytes() == (tmp_path / "tested.npz").read_bytes()


def test_a_fresh_run_never_overwrites_a_run_tested_there_since_it_started(tmp_path):
    data, config = trained_run(tmp_path / "tested.npz")
    FitResult.load(tmp_path / "tested.npz").test(data.X_test, data.y_test)
    assert_not_written_over(tmp_path, data, config, epoch=1)


def test_each_epoch_reads_the_checkpoint_only_when_another_wrote_it_since(tmp_path, monkeypatch):
    """Reading the checkpoint back before each epoch's write costs a load (4 ms at the course's
    size, 3% of an epoch): done only where the file is no longer the one this run wrote."""
    path = tmp_path / "c.npz"
    data, config = trained_run(path)
    reads = []
    monkeypatch.setattr(train, "load_checkpoint", lambda p: reads.append(p) or load_checkpoint(p))

    def touched_after_epoch_3(history):  # another process's write: the same run, written anew
        if len(history["epoch"]) == 3:
            ckpt = load_checkpoint(path)
            train.save_checkpoint(path, ckpt)

    fit(config.build_model(3), data, replace(config, epochs=5), checkpoint_path=path, resume=path,
        on_epoch=touched_after_epoch_3, progress=False)
    assert len(reads) == 3  # resume's own read, then the first epoch's write and the one after the touch


def test_a_fresh_run_never_overwrites_a_shorter_tested_run_put_there_since_it_started(tmp_path):
    """The tested run has fewer epochs than the fresh one wrote: its history, not its length,
    tells it is another run."""
    data, other = tiny_data(), tiny_config(epochs=1, seed=1)
    fit(other.build_model(3), data, other, checkpoint_path=tmp_path / "tested.npz", progress=False)
    FitResult.load(tmp_path / "tested.npz").test(data.X_test, data.y_test)
    assert_not_written_over(tmp_path, data, tiny_config(epochs=2), epoch=2)


def test_an_older_copy_of_the_run_put_there_mid_run_never_lowers_its_count(tmp_path):
    """The run was tested twice; a copy saved after its first test is put back while it trains
    on: its epoch keeps the count of two, and the second test's record."""
    path = tmp_path / "c.npz"
    data, config = trained_run(path)
    X, y = data.X_test, data.y_test
    FitResult.load(path).test(X, y)
    shutil.copy(path, tmp_path / "tested once.npz")
    FitResult.load(path).test(X[:-1], y[:-1])

    def copied_back(stats):
        if stats["batch"] == 1:
            shutil.copy(tmp_path / "tested once.npz", path)

    fit(config.build_model(3), data, replace(config, epochs=3), checkpoint_path=path, resume=path,
        on_batch=copied_back, progress=False)
    saved = load_checkpoint(path)
    assert (saved.epoch, saved.test_evaluations) == (3, 2)
    assert saved.test.data_sha256 == sha256_of(X[:-1], y[:-1])


# --- the lock itself ---------------------------------------------------------------------------

def test_a_lock_held_times_out_naming_the_holder_and_one_of_a_killed_process_does_not_block(tmp_path):
    path = tmp_path / "c.npz"
    taken, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=child_holds_the_lock, args=(path, taken, release))
    holder.start()
    try:
        wait_for(taken.is_set)
        with pytest.raises(LockTimeout, match=rf"c\.npz is locked by process {holder.pid}: its lock "
                                              rf".*\.c\.npz\.lock has been held for over 0\.2 s.*Ctrl-Z"):
            with locked(path, timeout=0.2):
                pass
    finally:
        holder.kill()  # SIGKILL: no clean-up runs
        holder.join(WAIT)
    assert lock_path(path).exists()  # left behind, and no obstacle
    start = time.monotonic()
    with locked(path, timeout=5):
        assert time.monotonic() - start < 1
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_ends_a_wait_for_the_lock_at_once(tmp_path):
    path, taken, release = tmp_path / "c.npz", threading.Event(), threading.Event()
    holder = threading.Thread(target=child_holds_the_lock, args=(path, taken, release))
    ctrl_c = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    holder.start()
    try:
        taken.wait(WAIT)
        ctrl_c.start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            with locked(path, timeout=WAIT):  # another thread's: the lock is the file's, not the process's
                pass
        assert time.monotonic() - start < 5
    finally:
        ctrl_c.cancel()  # a lock that did not wait: no Ctrl-C for whatever runs next
        release.set()
        holder.join(WAIT)
    assert list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def lock_held_by_a_thread(path):
    taken, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=child_holds_the_lock, args=(path, taken, release))
    holder.start()
    try:
        assert taken.wait(WAIT)
        yield
    finally:
        release.set()
        holder.join(WAIT)


def test_ctrl_c_ends_a_test_waiting_for_the_lock_at_once_counting_nothing(tmp_path):
    path = tmp_path / "c.npz"
    data, _ = trained_run(path)
    run = FitResult.load(path)
    ctrl_c = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    with lock_held_by_a_thread(path):
        start = time.monotonic()
        ctrl_c.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                run.test(data.X_test, data.y_test)
        finally:
            ctrl_c.cancel()
        assert time.monotonic() - start < 5
    assert run.test_evaluations == load_checkpoint(path).test_evaluations == 0


def test_ctrl_c_ends_training_waiting_for_the_lock_to_save_an_epoch_at_once(tmp_path):
    data, config, path = tiny_data(), tiny_config(epochs=1), tmp_path / "c.npz"
    timers = []

    def ctrl_c_after_the_last_batch(stats):  # then the epoch is evaluated and waits to be saved
        if stats["batch"] == stats["batches"]:
            timers.append(threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)))
            timers[0].start()

    with lock_held_by_a_thread(path):
        start = time.monotonic()
        try:
            result = fit(config.build_model(3), data, config, checkpoint_path=path,
                         on_batch=ctrl_c_after_the_last_batch, progress=False)
        finally:
            for timer in timers:
                timer.cancel()
        assert time.monotonic() - start < 5
    assert result.stopped == "interrupted" and result.history["epoch"] == [] and not path.exists()


def test_a_test_interrupted_in_its_write_records_it_and_frees_the_lock(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    data, _ = trained_run(path)
    real_save = trained.save_checkpoint

    def save_then_sigint(path, ckpt):
        os.kill(os.getpid(), signal.SIGINT)
        real_save(path, ckpt)

    monkeypatch.setattr(trained, "save_checkpoint", save_then_sigint)
    run = FitResult.load(path)
    with pytest.raises(KeyboardInterrupt):
        run.test(data.X_test, data.y_test)
    assert run.test_evaluations == load_checkpoint(path).test_evaluations == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_the_command_says_a_lock_timeout_as_it_is_not_as_a_full_disk(tmp_path):
    with pytest.raises(LockTimeout, match="^c.npz is locked by process 1$"):
        with _kept_when_writing_fails(tmp_path, tmp_path / "c.npz", tmp_path / "history.json"):
            raise LockTimeout("c.npz is locked by process 1")


def test_the_lock_is_a_hidden_file_beside_the_path_naming_its_holder(tmp_path):
    path = tmp_path / "run" / "c.npz"
    path.parent.mkdir()
    (path.parent / ".c.npz.lock").write_text("4194304123456\n")  # a killed holder's, a longer number
    assert lock_path(path) == tmp_path / "run" / ".c.npz.lock"
    with locked(path):
        assert lock_path(path).read_text() == f"{os.getpid()}\n"
    assert list(path.parent.iterdir()) == []


def test_a_lock_taken_twice_in_one_process_times_out_at_once_saying_so(tmp_path):
    path = tmp_path / "c.npz"
    with locked(path):
        start = time.monotonic()
        with pytest.raises(LockTimeout, match=rf"locked by process {os.getpid()} \(this one: the "
                                              r"lock was taken twice, or by another thread\)") as err:
            with locked(path, timeout=0):
                pass
        assert time.monotonic() - start < 1
        assert "not reentrant" in str(err.value) and "kill -CONT" not in str(err.value)
        lock_path(path).write_text("")  # as between its holder's truncation and its write
        with pytest.raises(LockTimeout, match=r"c\.npz is locked by another process: its lock") as err:
            with locked(path, timeout=0):
                pass
        assert "kill -CONT" in str(err.value) and "not reentrant" not in str(err.value)


def test_a_lock_in_a_missing_folder_names_the_path(tmp_path):
    path = tmp_path / "missing" / "c.npz"
    with pytest.raises(FileNotFoundError) as err:
        with locked(path):
            pass
    assert err.value.filename == str(path)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc/self/fd")
def test_waiting_for_and_taking_the_lock_leaves_no_file_open(tmp_path):
    path = tmp_path / "c.npz"
    before = len(os.listdir("/proc/self/fd"))
    with locked(path):
        with pytest.raises(LockTimeout):
            with locked(path, timeout=0.2):  # tries about 5 times
                pass
    assert len(os.listdir("/proc/self/fd")) == before


def flock_after(monkeypatch, meanwhile):
    """Make the lock's first flock call ``meanwhile(lock file)`` before it locks, as another
    process acting between the lock file's opening and its locking would."""
    import fcntl
    from types import SimpleNamespace

    import hw3lib.atomic as atomic
    calls = []

    def flock(fd, op):
        calls.append(fd)
        if len(calls) == 1:
            meanwhile()
        fcntl.flock(fd, op)
    monkeypatch.setattr(atomic, "fcntl", SimpleNamespace(LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB,
                                                         flock=flock))
    return calls


@pytest.mark.skipif(os.name == "nt", reason="fcntl.flock")
@pytest.mark.parametrize("made_anew", [False, True], ids=["removed", "replaced"])
def test_a_lock_file_its_holder_removed_as_it_was_taken_is_taken_anew(tmp_path, monkeypatch, made_anew):
    """The holder released (removing the file) after this process opened it: locking the removed
    file would hold nothing, as a third process takes the new file."""
    path = tmp_path / "c.npz"
    lock = lock_path(path)

    def release():
        lock.unlink()
        if made_anew:
            lock.write_text("")  # a third process's, not yet locked
    calls = flock_after(monkeypatch, release)
    with locked(path, timeout=5):
        assert len(calls) == 2 and lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(LockTimeout):  # the file at lock_path is the one held
            with locked(path, timeout=0):
                pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name == "nt", reason="fcntl.flock")
def test_ctrl_c_as_the_lock_is_taken_still_frees_it(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    flock_after(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        with locked(path):
            pass
    assert list(tmp_path.iterdir()) == []


class FakeMsvcrt:
    """Windows' ``msvcrt.locking`` as it behaves, for the lock's Windows branch: a lock on the
    bytes from the file's current position, held per descriptor (so two descriptors of one
    process exclude each other), refused at once with an OSError when held (LK_NBLCK), and an
    OSError for unlocking bytes that this descriptor does not hold."""
    LK_UNLCK, LK_NBLCK = 0, 2

    def __init__(self):
        self.held = {}  # (file, first byte) -> descriptor

    def locking(self, fd, mode, nbytes):
        stat, at = os.fstat(fd), os.lseek(fd, 0, os.SEEK_CUR)
        key = (stat.st_dev, stat.st_ino, at, nbytes)
        if mode == self.LK_NBLCK:
            if key in self.held:
                raise PermissionError(13, "Permission denied")
            self.held[key] = fd
        elif self.held.get(key) == fd:
            del self.held[key]
        else:
            raise PermissionError(13, "Permission denied")  # not locked here by this descriptor


def test_on_windows_the_lock_excludes_a_second_taker_and_is_freed_where_it_was_taken(tmp_path, monkeypatch):
    import hw3lib.atomic as atomic

    windows = FakeMsvcrt()
    monkeypatch.setattr(atomic, "fcntl", None)
    monkeypatch.setattr(atomic, "msvcrt", windows, raising=False)
    monkeypatch.setattr(atomic, "BUSY", OSError)
    path = tmp_path / "c.npz"
    with locked(path):
        assert len(windows.held) == 1 and lock_path(path).read_text() == f"{os.getpid()}\n"
        with pytest.raises(LockTimeout, match=r"this one: the lock was taken twice"):
            with locked(path, timeout=0):
                pass
    assert windows.held == {}  # unlocked at byte 0, where it was taken, not after the number written
    assert lock_path(path).exists()  # Windows removes no open file: it stays, harmless
    with locked(path, timeout=0):  # and is taken again at once
        assert len(windows.held) == 1
    assert windows.held == {}


def the_same_run_written_by_another_process(path):
    """Write the run at ``path`` anew as another process training the same settings does: the
    same figures, its own seconds per epoch."""
    ckpt = load_checkpoint(path)
    ckpt.history["seconds"] = [s + 1.0 for s in ckpt.history["seconds"]]
    train.save_checkpoint(path, ckpt)


def test_a_run_whose_checkpoint_another_process_trained_the_same_is_tested_into_it(tmp_path):
    """Two processes trained the same settings into one checkpoint (notebook 05 and notebook 06's
    sweep on a fresh checkout): the same run, its seconds aside, so the first one's test counts
    there, where it said the file held another run."""
    path = tmp_path / "c.npz"
    data, config = tiny_data(), tiny_config(epochs=2)
    first = fit(config.build_model(3), data, config, checkpoint_path=path, progress=False)
    the_same_run_written_by_another_process(path)
    record = first.test(data.X_test, data.y_test)
    saved = load_checkpoint(path)
    assert first.test_evaluations == saved.test_evaluations == 1 and saved.test.loss == record.loss


def test_a_run_trained_on_keeps_the_test_of_the_same_run_by_another_process(tmp_path):
    """While this run trains on, another process that trained the same settings writes its
    epochs (other seconds) and tests them: this run's next epoch keeps that test's count."""
    path = tmp_path / "c.npz"
    data, config = trained_run(path)

    def tested_by_another_after_epoch_3(history):
        if len(history["epoch"]) == 3:
            the_same_run_written_by_another_process(path)
            FitResult.load(path).test(data.X_test, data.y_test)

    fit(config.build_model(3), data, replace(config, epochs=4), checkpoint_path=path, resume=path,
        on_epoch=tested_by_another_after_epoch_3, progress=False)
    saved = load_checkpoint(path)
    assert (saved.epoch, saved.test_evaluations, saved.test.epoch) == (4, 1, 3)


def test_a_run_removes_the_half_written_checkpoints_of_a_writer_killed_mid_write(tmp_path):
    """SIGKILL between atomic_write's temporary file and its rename leaves the file behind (a
    sweep's worker killed, again and again): the next run of that checkpoint, holding its lock,
    removes it, and no other file's."""
    left = []
    for name in ("c.npz", "d.npz"):  # as atomic_write names them
        fd, tmp = tempfile.mkstemp(dir=tmp_path, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        left.append(Path(tmp).name)
    data, config = tiny_data(), tiny_config(epochs=1)
    fit(config.build_model(3), data, config, checkpoint_path=tmp_path / "c.npz", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.npz", left[1]])
