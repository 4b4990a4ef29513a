"""What every argument check of the package counts as an integer or a number, the checks
that refuse a bad integer or a value that is no NumPy array by name, and how a symbolic link
that leads nowhere is named."""
import errno
import os

import numpy as np


def is_int(value):
    """An integer, NumPy's included, and no bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value):
    """A real number, NumPy's included, and no bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def integer(name, value, least=1, what=None):
    """``value`` as a Python int; a ValueError naming ``name`` (and ``what`` it sets) unless it
    is an integer >= ``least``."""
    if not (is_int(value) and value >= least):
        about = f" ({what})" if what else ""
        raise ValueError(f"{name} must be an integer >= {least}{about}, got {value!r}")
    return int(value)


def check_array(name, value, form):
    """ValueError naming ``name`` and the ``form`` it must have unless ``value`` is a NumPy
    array (a list fails inside on ``.ndim``, ``.shape`` or fancy indexing)."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array {form}, got a {type(value).__name__}; "
                         "convert it with np.asarray")


CURVE_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")  # what a history draws


def check_history(history, name="history"):
    """ValueError naming ``name`` unless ``history`` is a run's history, :func:`hw3lib.train.fit`'s
    dict of per-epoch lists (:data:`CURVE_KEYS` among them, of one length); a FitResult, or a
    dict of several runs' histories, is named with the fix."""
    if isinstance(getattr(history, "history", None), dict):  # a FitResult
        raise ValueError(f"{name} must be a run's history, got a {type(history).__name__}: pass its "
                         ".history")
    if isinstance(history, dict) and history and "epoch" not in history and all(
            isinstance(h, dict) and "epoch" in h for h in history.values()):
        raise ValueError(f"{name} must be one run's history, got a dict of {len(history)} runs' "
                         f"histories ({', '.join(map(repr, history))})")
    if not (isinstance(history, dict) and all(k in history for k in CURVE_KEYS)
            and len({len(history[k]) for k in CURVE_KEYS}) == 1):
        got = ({k: len(v) if hasattr(v, "__len__") else v for k, v in history.items()}
               if isinstance(history, dict) else f"a {type(history).__name__}")
        raise ValueError(f"{name} must be a run's history, fit's dict of per-epoch lists of one "
                         f"length ({', '.join(CURVE_KEYS)}), got {got}")


def dead_link(path):
    """``path`` in words when it is a symbolic link that leads to no file, ``"a broken symbolic
    link (to gone.png)"`` or ``"a symbolic link in a loop (to b.png, which leads back to it)"``;
    else None (no link, or a link to something that exists, readable or not)."""
    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
    except OSError as exc:
        target = os.readlink(path)
        if exc.errno == errno.ELOOP:
            return f"a symbolic link in a loop (to {target}, which leads back to it)"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"a broken symbolic link (to {target})"
    return None
