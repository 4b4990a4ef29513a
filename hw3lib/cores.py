"""The cores this process may use, and a note where a command is given more threads or workers
than that.
"""
import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")  # where Linux shows control groups, a container's own at its root


def cpu_quota(cgroups=Path("/proc/self/cgroup"), root=CGROUP_ROOT):
    """The cores' worth of CPU time this process's control group may take (Linux; a container's
    ``--cpus``, a Kubernetes CPU limit), rounded up; None where none is set or none can be read.
    ``cgroups`` is ``/proc/self/cgroup``, ``root`` where the groups are mounted: version 2's
    ``cpu.max`` (``quota period`` or ``max period``), else version 1's ``cpu.cfs_quota_us``
    over ``cpu.cfs_period_us`` (-1: none)."""
    try:
        lines = cgroups.read_text().splitlines()
    except OSError:  # not Linux
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # version 2
            files = [root / path.lstrip("/") / "cpu.max", root / "cpu.max"]
        elif "cpu" in controllers.split(","):  # version 1
            files = [root / "cpu" / path.lstrip("/"), root / "cpu"]
        else:
            continue
        for place in dict.fromkeys(files):  # the group's own, or, in a container, the root's
            try:
                if place.name == "cpu.max":
                    quota, period = place.read_text().split()
                else:
                    quota, period = ((place / name).read_text() for name in ("cpu.cfs_quota_us",
                                                                            "cpu.cfs_period_us"))
            except (OSError, ValueError):
                continue
            if quota.strip() in ("max", "-1"):
                break
            return max(math.ceil(int(quota) / int(period)), 1)
    return None


def usable_cores():
    """The number of cores this process may use: its CPU affinity, or fewer where its control
    group's CPU quota is less (:func:`cpu_quota`)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, cpu_quota() or cores)


def more_than_cores(option, count, what):
    """A note when ``count``, given as ``option``, is more than :func:`usable_cores`: ``what``
    shares them and runs no faster than with one per core; None otherwise."""
    cores = usable_cores()
    if count > cores:
        return (f"note: {option} {count} on the {cores} core(s) this process may use: the {what} "
                f"share them, so it runs no faster than with {option} {cores}")
    return None
