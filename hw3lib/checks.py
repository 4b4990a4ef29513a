"""What every argument check of the package counts as an integer or a number, and the checks
that refuse a bad integer or a value that is no NumPy array by name."""
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
