"""Other processes: whether one runs, and when it started (where the system says).

Locks and temporary folders name the process that holds them; these tell a holder that is
gone, or a number that a new process got since, from one at work.
"""
import os
import re
from pathlib import Path


def process_running(pid: int) -> bool:
    """Whether a process ``pid`` runs (on POSIX; elsewhere assumed to, as os.kill would end it)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's
        pass
    return True


def start_ticks(pid):
    """When process ``pid`` started, in clock ticks after boot (field 22 of Linux's
    ``/proc/PID/stat``): OSError where it is gone, or where there is no ``/proc``."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def start_seconds(pid):
    """When process ``pid`` started, in seconds since the epoch (:func:`start_ticks` after the
    boot's ``btime`` in ``/proc/stat``); None where that cannot be told."""
    try:
        ticks = start_ticks(pid)
        boot = re.search(r"^btime (\d+)$", Path("/proc/stat").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(boot[1]) + ticks / os.sysconf("SC_CLK_TCK") if boot else None
