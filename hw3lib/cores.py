"""The cores this process may use, and a note where a command is given more threads or workers
than that.
"""
import os


def usable_cores():
    """The number of cores this process may use (its CPU affinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def more_than_cores(option, count, what):
    """A note when ``count``, given as ``option``, is more than :func:`usable_cores`: ``what``
    shares them and runs no faster than with one per core; None otherwise."""
    cores = usable_cores()
    if count > cores:
        return (f"note: {option} {count} on the {cores} core(s) this process may use: the {what} "
                f"share them, so it runs no faster than with {option} {cores}")
    return None
