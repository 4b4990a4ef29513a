"""What every argument check of the package counts as an integer or a number, and the check
that refuses a bad integer by name."""
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
