"""hw3lib.tables.Table: a column with a format of its own, a value looked up by its row's key."""
import pytest

from hw3lib.tables import Table, escaped, format_error


def test_a_column_format_overrides_the_decimals_and_keeps_numbers_right_aligned():
    table = Table(["engine", "s", "x ours"], [("loops", 61.44, 819.66), ("ours", 0.07, 1.0),
                                              ("torch", 0.13, 1.684), ("none", 0.5, None)],
                  digits=2, formats={"x ours": "{:.3g}x"})
    assert str(table) == ("engine      s  x ours\n"
                          "loops   61.44    820x\n"
                          "ours     0.07      1x\n"
                          "torch    0.13   1.68x\n"
                          "none     0.50       -")


def test_a_column_of_numbers_formatted_before_is_right_aligned_as_numbers_are():
    """Numbers passed as text ("0.1234", "1e-03", "45%"; missing "-" or None) were left-aligned
    as words: their digits did not line up. A column of any other text stays left-aligned."""
    table = Table(["epoch", "loss", "lr", "near", "test", "kept", "flips"],
                  [(1, "2.3026", "1e-03", "5%", None, "3,4", True),
                   (10, "0.0412", "0.0003", "45%", "-", "10", False)])
    assert str(table) == ("epoch    loss      lr  near  test  kept  flips\n"
                          "    1  2.3026   1e-03    5%     -  3,4   yes\n"
                          "   10  0.0412  0.0003   45%     -  10    no")


def test_format_error_hides_rounding_noise_but_shows_real_errors():
    assert format_error(4.4e-16, 1e-12) == format_error(6.7e-16, 1e-12) == "below 1e-12"
    assert format_error(4.2, 1e-12) == "4.2e+00"
    assert format_error(1e-12, 1e-12) == "1.0e-12"


def test_a_value_is_found_by_its_rows_first_values_and_a_missing_or_ambiguous_key_is_named():
    table = Table(["split", "class", "mean"], [("train", "a", 0.5), ("train", "b", 0.25),
                                               ("val", "a", 0.75)])
    assert table.value(("train", "b"), "mean") == 0.25
    assert table.value(("val",), "class") == "a"
    with pytest.raises(KeyError, match=r"0 rows start with \('test', 'a'\)"):
        table.value(("test", "a"), "mean")
    with pytest.raises(KeyError, match=r"2 rows start with \('train',\)"):
        table.value(("train",), "mean")
    with pytest.raises(KeyError, match=r"no column 'std'; columns \['split', 'class', 'mean'\]"):
        table.value(("train", "b"), "std")


def test_a_row_of_another_length_than_the_columns_is_refused_naming_it():
    """A longer row lost its last values in print without a word, a shorter one failed with an
    IndexError when printed."""
    for rows, holds in (([("a", 1, 2)], "row 0 holds 3"), ([("a", 1), ("b",)], "row 1 holds 1")):
        with pytest.raises(ValueError, match=rf"one value per column \(2: \['name', 'n'\]\), but {holds}"):
            Table(["name", "n"], rows)


def test_escaped_writes_control_characters_as_a_repr_does_and_keeps_newlines_when_asked():
    assert escaped("a\tb\nc\x1b[2J\x7f") == "a\\tb\\nc\\x1b[2J\\x7f"
    assert escaped("a\tb\nc", lines=True) == "a\\tb\nc"
    assert escaped("Карамбола 楊桃 é") == "Карамбола 楊桃 é"
