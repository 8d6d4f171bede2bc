"""Prediction inputs: every bad input is an error naming the column and the row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bpexp.errors import InvalidInputError
from bpexp.export.inputs import features_from_frame, match_columns, read_csv_features

NAMES = ["a", "b", "c"]


def frame(rows=((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))):
    return pd.DataFrame([list(r) for r in rows], columns=NAMES)


def test_frame_to_float64_rows():
    X = features_from_frame(frame(), 3)
    assert X.dtype == np.float64 and X.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert features_from_frame(np.array([[1, 2, 3]]), 3).tolist() == [[1, 2, 3]]
    assert features_from_frame([1, 2, 3], 3).shape == (1, 3)  # one row as a flat list


def test_frame_columns_matched_by_name_in_any_order():
    shuffled = frame()[["c", "a", "b"]]
    assert features_from_frame(shuffled, 3, NAMES).tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize("columns, message", [
    (["a", "b"], r"has 2 columns but the model expects its 3 features \['a', 'b', 'c'\]: missing column\(s\) \['c'\]"),
    (["a", "b", "c", "target"], r"unexpected column\(s\) \['target'\]"),
    (["a", "b", "b"], r"missing column\(s\) \['c'\]; repeated column\(s\) \['b'\]"),
])
def test_wrong_columns_by_name(columns, message):
    with pytest.raises(InvalidInputError, match=message):
        match_columns(columns, 3, NAMES, "input")


def test_wrong_number_of_columns_by_position():
    with pytest.raises(InvalidInputError, match="input has 4 columns, the model expects 3"):
        features_from_frame(np.ones((2, 4)), 3)
    with pytest.raises(InvalidInputError, match="has 2 columns, the model expects 3"):
        features_from_frame(frame()[["a", "b"]], 3)


def test_non_numeric_value_names_row_and_column():
    df = frame().astype(object)
    df.loc[1, "b"] = "abc"
    with pytest.raises(InvalidInputError, match=r"input row 1, column 'b': 'abc' is not a number"):
        features_from_frame(df, 3, NAMES)
    with pytest.raises(InvalidInputError, match=r"row 0, column 2: 'x' is not a number"):
        features_from_frame(np.array([[1, 2, "x"]], dtype=object), 3)


@pytest.mark.parametrize("value, kind", [(np.nan, r"a missing value \(empty or NaN\)"),
                                             (None, r"a missing value \(empty or NaN\)"),
                                         (np.inf, r"inf \(infinite\)"), (-np.inf, r"-inf \(infinite\)")])
def test_nan_and_inf_name_row_and_column(value, kind):
    df = frame().astype(object)
    df.loc[1, "c"] = value
    with pytest.raises(InvalidInputError, match=rf"input row 1, column 'c': {kind}; every feature must be a finite"):
        features_from_frame(df, 3, NAMES)


def test_empty_and_misshapen_inputs():
    with pytest.raises(InvalidInputError, match="has no rows"):
        features_from_frame(frame().iloc[:0], 3)
    with pytest.raises(InvalidInputError, match=r"must be a table of rows, got an array of shape \(2, 2, 2\)"):
        features_from_frame(np.ones((2, 2, 2)), 3)


def test_booleans_and_integers_are_numbers():
    df = pd.DataFrame({"a": [1, 2], "b": [True, False], "c": np.array([1, 2], dtype=np.int8)})
    assert features_from_frame(df, 3).tolist() == [[1, 1, 1], [2, 0, 2]]


# ------------------------------------------------------------------------------ CSV files
def write(tmp_path, text, name="in.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_read_by_name_with_blank_lines_and_bom(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes("\ufeffc,b,a\n3,2,1\n\n6,5,4\n".encode())
    assert read_csv_features(path, 3, NAMES).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert read_csv_features(path, 3).tolist() == [[3, 2, 1], [6, 5, 4]]  # no names: by position


@pytest.mark.parametrize("text, message", [
    ("a,b,c\n1,2,3\n\n4,x,6\n", r"row 4, column 'b': 'x' is not a number"),  # blank line 3 still counted
    ("a,b,c\n1,2,3\n4,,6\n", r"row 3, column 'b': a missing value \(empty or NaN\)"),
    ("a,b,c\n1,2,nan\n", r"row 2, column 'c': a missing value \(empty or NaN\); every feature must be a finite"),
    ("a,b,c\n1,2,3\n1,-inf,3\n", r"row 3, column 'b': -inf \(infinite\)"),
    ("a,b,c\n1,2,3\n1,2\n", r"row 3, column 'c': a missing value"),  # a short row: its last cell is empty
    ("a,b,c\n1,2,3\n1,2,3,4\n", r"not a readable CSV file: .*Expected 3 fields in line 3, saw 4"),
    ("a,b\n1,2\n", r"has 2 columns but the model expects its 3 features .*missing column\(s\) \['c'\]"),
    ("a,b,c,label\n1,2,3,x\n", r"unexpected column\(s\) \['label'\]"),
    ("a,b,c\n", r"has a header but no data rows"),
    ("\n\n", r"is empty"),
])
def test_bad_csv_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(InvalidInputError, match=message):
        read_csv_features(write(tmp_path, text), 3, NAMES)


def test_csv_without_names_checks_the_count(tmp_path):
    with pytest.raises(InvalidInputError, match=r"in.csv has 4 columns, the model expects 3"):
        read_csv_features(write(tmp_path, "w,x,y,z\n1,2,3,4\n"), 3)


def test_missing_and_binary_csv_files(tmp_path):
    with pytest.raises(InvalidInputError, match="input file .*nope.csv does not exist"):
        read_csv_features(tmp_path / "nope.csv", 3)
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(InvalidInputError, match=r"bin.csv is not UTF-8 text \(byte 0xff at offset 0\).*encoding"):
        read_csv_features(path, 3)
