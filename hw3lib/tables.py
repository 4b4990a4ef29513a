"""Small text tables, and errors as text, that print the same on every machine (notebooks
compare them with nbval)."""
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np


def display_width(text: str) -> int:
    """The columns ``text`` takes in a terminal: a wide or full-width character (Chinese,
    Japanese, Korean) two, a combining mark (an accent stored apart, as macOS names files) none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0 controls (tab, newline), DEL, C1 controls
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?")  # 12, -0.125, 1e-03, 45%


def escaped(text: str, lines: bool = False) -> str:
    """``text`` with each control character written as in a Python string's repr (a tab
    ``\\t``, a newline ``\\n``, an escape ``\\x1b``), so that it prints on one line, in columns;
    with ``lines``, its newlines kept (a message of several lines, such as an error listing
    images, whose other control characters came from file names)."""
    return CONTROL.sub(lambda m: m[0] if lines and m[0] == "\n" else repr(m[0])[1:-1], text)


def numeric(value) -> bool:
    """Whether ``value`` belongs in a right-aligned column of numbers: an int or float (not a
    bool: it prints as yes/no), a text that reads as one (a number formatted before: ``"0.1234"``,
    ``"1e-03"``, ``"45%"``) or a missing value (None, ``"-"``, ``""``)."""
    if isinstance(value, str):
        return value in ("-", "") or NUMBER.fullmatch(value) is not None
    return value is None or (isinstance(value, (int, float, np.integer, np.floating))
                             and not isinstance(value, bool))


def value_text(value) -> str:
    """A setting's value as people read it, in a table, a line or a tick label: a boolean
    yes/no (as :class:`Table` prints one), a float with 3 significant digits (a sampled one
    has more), else ``str``."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Table:
    """A small analysis result: ``columns`` and ``rows`` of values; ``str()`` prints it.

    Columns of numbers (:func:`numeric`) are right-aligned, their header too, other columns
    left-aligned (control characters :func:`escaped`), in a terminal's columns
    (:func:`display_width`); floats are printed with ``digits`` decimals (a rounded -0 prints
    as 0), booleans as yes/no and None as "-", so the text is the same on every machine.
    ``formats`` maps a column to a format of its own, e.g. ``{"ratio": "{:.3g}x"}``.
    """

    columns: list[str]
    rows: list[tuple]
    digits: int = 3
    formats: dict = field(default_factory=dict)

    def __post_init__(self):
        wrong = [i for i, row in enumerate(self.rows) if len(row) != len(self.columns)]
        if wrong:
            raise ValueError(f"each row of a Table holds one value per column ({len(self.columns)}: "
                             f"{list(self.columns)}), but row {wrong[0]} holds {len(self.rows[wrong[0]])}: "
                             f"{self.rows[wrong[0]]!r}")

    def _cell(self, value, column=None) -> str:
        if value is None:
            return "-"
        if column in self.formats:
            return self.formats[column].format(value)
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        if isinstance(value, (float, np.floating)):
            return f"{round(float(value), self.digits) + 0.0:.{self.digits}f}"
        return escaped(str(value))

    def value(self, key: tuple, column: str):
        """The value in ``column`` of the one row whose first values are ``key``, e.g.
        ``pixel_stats(...).value(("train", "Pear"), "mean")``; KeyError naming the key when
        no row or several rows start so, or the column when there is none of that name."""
        if column not in self.columns:
            raise KeyError(f"no column {column!r}; columns {self.columns}")
        matches = [row for row in self.rows if tuple(row[: len(key)]) == tuple(key)]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} rows start with {key!r}; columns {self.columns}")
        return matches[0][self.columns.index(column)]

    def __str__(self) -> str:
        header, line = self.line_format()
        return "\n".join([header, *map(line, self.rows)])

    def line_format(self, like=None):
        """``(header, line)``: the header's line, and a function giving a row's line, the
        columns aligned as over the rows ``like`` (default: :attr:`rows`). Rows at least as
        wide as any to come make a table that prints each row as it comes."""
        like = self.rows if like is None else like
        cells = [[self._cell(v, c) for v, c in zip(row, self.columns)] for row in like]
        widths = [max(map(display_width, column)) for column in zip(self.columns, *cells)]
        left = [not all(numeric(row[i]) for row in like) for i in range(len(self.columns))]

        def join(texts):
            pads = [" " * (w - display_width(t)) for t, w in zip(texts, widths)]
            return "  ".join(t + pad if lft else pad + t for t, pad, lft in zip(texts, pads, left)).rstrip()
        return join(self.columns), lambda row: join([self._cell(v, c) for v, c in zip(row, self.columns)])


def format_error(error, tolerance):
    """An error as text that does not change from run to run: ``"below 1e-13"`` when it is
    under ``tolerance`` (rounding-level errors vary with the CPU, BLAS and memory alignment),
    else the value, e.g. ``"4.2e+00"``."""
    return f"below {tolerance:.0e}" if error < tolerance else f"{error:.1e}"
