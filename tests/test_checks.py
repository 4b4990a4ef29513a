"""The shared argument checks: what counts as an integer or a number, and the refusal's words."""
import numpy as np
import pytest

from hw3lib.checks import integer, is_int, is_number


def test_integers_and_numbers_include_numpys_and_exclude_bools():
    assert all(is_int(v) for v in (0, -3, np.int64(5), np.uint8(2)))
    assert not any(is_int(v) for v in (True, np.True_, 2.0, np.float32(1), "3", None))
    assert all(is_number(v) for v in (1, 2.5, np.float32(1), np.int16(-2), float("nan")))
    assert not any(is_number(v) for v in (False, "1", None, 1j, [1]))


def test_integer_returns_a_python_int_or_names_what_is_wrong():
    value = integer("epochs", np.int64(3))
    assert value == 3 and type(value) is int
    assert integer("seed", 0, 0) == 0
    with pytest.raises(ValueError, match=r"^epochs must be an integer >= 1, got 0$"):
        integer("epochs", 0)
    with pytest.raises(ValueError, match=r"^num_classes must be an integer >= 2 \(one output per "
                                         r"class\), got True$"):
        integer("num_classes", True, 2, "one output per class")
