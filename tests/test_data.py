"""Datasets by name, CSV and NPZ files, seeded stratified splits."""

from __future__ import annotations

import numpy as np
import pytest

import bpexp
from bpexp.data import BUILTIN_DATASETS, Split
from bpexp.errors import InvalidInputError

EXPECTED = {
    # name: (task, n_features, n_classes or None)
    "xor": ("classification", 2, 2),
    "moons": ("classification", 2, 2),
    "circles": ("classification", 2, 2),
    "spirals": ("classification", 2, 2),
    "digits": ("classification", 64, 10),
    "iris": ("classification", 4, 3),
    "wine": ("classification", 13, 3),
    "breast_cancer": ("classification", 30, 2),
    "diabetes": ("regression", 10, None),
}


def test_builtin_list():
    assert sorted(EXPECTED) == BUILTIN_DATASETS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_dataset_loads_with_its_task(name):
    task, n_features, n_classes = EXPECTED[name]
    ds = bpexp.load_dataset(name)
    assert ds.name == name and ds.task == task and ds.source == "builtin"
    assert ds.X.ndim == 2 and ds.X.shape == (ds.n_samples, n_features) and ds.y.shape == (ds.n_samples,)
    assert ds.X.dtype == np.float64 and np.isfinite(ds.X).all()
    assert len(ds.feature_names) == n_features
    if n_classes is None:
        assert ds.classes is None and ds.n_outputs == 1 and np.issubdtype(ds.y.dtype, np.floating)
    else:
        assert ds.classes.size == n_classes
        assert ds.n_outputs == (1 if n_classes == 2 else n_classes)
        counts = np.bincount(np.searchsorted(ds.classes, ds.y))
        assert counts.min() > 0.05 * ds.n_samples  # no empty or tiny class
    assert name in repr(ds)


@pytest.mark.parametrize("name", ["xor", "moons", "circles", "spirals"])
def test_synthetic_datasets_are_seeded(name):
    a, b = bpexp.load_dataset(name, seed=3), bpexp.load_dataset(name, seed=3)
    c = bpexp.load_dataset(name, seed=4)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y) and a.digest() == b.digest()
    assert not np.array_equal(a.X, c.X) and a.digest() != c.digest()
    small = bpexp.load_dataset(name, n_samples=100, noise=0.0, seed=0)
    assert small.n_samples == 100


def test_synthetic_generation_leaves_the_global_rng_alone():
    state = np.random.get_state()  # noqa: NPY002
    bpexp.load_dataset("xor", seed=1)
    bpexp.load_dataset("spirals", seed=1)
    assert np.array_equal(state[1], np.random.get_state()[1])  # noqa: NPY002


def test_xor_labels_follow_the_quadrants():
    ds = bpexp.load_dataset("xor", noise=0.0)
    assert np.array_equal(ds.y, ((ds.X[:, 0] > 0) != (ds.X[:, 1] > 0)).astype(int))


def test_unknown_dataset_name():
    with pytest.raises(InvalidInputError, match=r"unknown dataset 'mnist'; expected one of \['breast_cancer'"):
        bpexp.load_dataset("mnist")


# ---------------------------------------------------------------------------- CSV
def _write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_string_labels_and_target_by_name(tmp_path):
    path = _write(tmp_path, "sepal,species,petal\n1.0,setosa,2.5\n2,virginica, 3\n\n3.5,setosa,-1e-3\n")
    ds = bpexp.load_dataset(str(path), target="species")
    assert ds.task == "classification" and ds.target_name == "species" and ds.source == str(path)
    assert ds.feature_names == ["sepal", "petal"]
    np.testing.assert_array_equal(ds.X, [[1.0, 2.5], [2.0, 3.0], [3.5, -1e-3]])
    assert ds.y.tolist() == ["setosa", "virginica", "setosa"]
    assert ds.classes.tolist() == ["setosa", "virginica"]


def test_csv_numeric_targets_guess_the_task(tmp_path):
    cls = bpexp.load_dataset(str(_write(tmp_path, "a,y\n1,0\n2,1\n3,2\n", "c.csv")), target="y")
    assert cls.task == "classification" and cls.y.dtype == np.int64
    reg = bpexp.load_dataset(str(_write(tmp_path, "a,y\n1,0.5\n2,1.25\n3,2\n", "r.csv")), target="y")
    assert reg.task == "regression" and reg.y.dtype == np.float64
    forced = bpexp.load_dataset(str(tmp_path / "c.csv"), target="y", task="regression")
    assert forced.task == "regression"


def test_csv_non_numeric_value_in_a_numeric_column_names_column_and_row(tmp_path):
    path = _write(tmp_path, "a,b,label\n1,2,x\n3,4,y\n5,oops,x\n")
    with pytest.raises(InvalidInputError, match=r"row 4, column 'b': 'oops' is not a number"):
        bpexp.load_dataset(str(path), target="label", numeric=["b"])
    # Undeclared, a column of strings is a categorical column, not an error.
    assert bpexp.load_dataset(str(path), target="label").roles.categorical == ["b"]


def test_csv_row_numbers_count_blank_lines(tmp_path):
    path = _write(tmp_path, "a,label\n1,x\n\n2,y\n\nbad,x\n")
    with pytest.raises(InvalidInputError, match=r"row 6, column 'a': 'bad' is not a number"):
        bpexp.load_dataset(str(path), target="label", numeric=["a"])


def test_csv_missing_target_column_lists_the_columns(tmp_path):
    path = _write(tmp_path, "a,b,label\n1,2,x\n")
    with pytest.raises(InvalidInputError, match=r"has no column 'target'; its columns are \['a', 'b', 'label'\]"):
        bpexp.load_dataset(str(path), target="target")


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("a,label\n1,x\n2,y,3\n", "label", "not a readable CSV file: .*Expected 2 fields in line 3, saw 3"),
        ("a,label\n1,x\n2,\n3,y\n", "label", r"the target 'label' is missing in 1 row\(s\), first rows \[3\]"),
        ("a,label\n", "label", "has a header but no data rows"),
        ("", "label", "is empty"),
        ("a,label\n1,x\n", None, "name the target column"),
    ],
)
def test_csv_errors(tmp_path, text, target, message):
    path = _write(tmp_path, text)
    with pytest.raises(InvalidInputError, match=message):
        bpexp.load_dataset(str(path), target=target)


def test_missing_files(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        bpexp.load_dataset(str(tmp_path / "nope.csv"), target="y")
    with pytest.raises(InvalidInputError, match="does not exist"):
        bpexp.load_dataset(str(tmp_path / "nope.npz"))


# ---------------------------------------------------------------------------- NPZ
def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)).astype(np.float32), np.array(["a", "b"] * 10)
    np.savez(tmp_path / "set.npz", X=X, y=y)
    ds = bpexp.load_dataset(str(tmp_path / "set.npz"))
    assert ds.name == "set" and ds.task == "classification" and ds.X.dtype == np.float64
    np.testing.assert_array_equal(ds.X, X)
    assert ds.y.tolist() == y.tolist()
    np.savez(tmp_path / "reg.npz", X=X, y=rng.normal(size=20))
    assert bpexp.load_dataset(str(tmp_path / "reg.npz")).task == "regression"


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "nox.npz", features=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(InvalidInputError, match=r"lacks arrays \['X'\]"):
        bpexp.load_dataset(str(tmp_path / "nox.npz"))
    np.savez(tmp_path / "obj.npz", X=np.zeros((2, 2)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(InvalidInputError, match="not readable without pickle"):
        bpexp.load_dataset(str(tmp_path / "obj.npz"))


# ---------------------------------------------------------------------------- splits
def test_stratified_split_proportions():
    ds = bpexp.load_dataset("digits")
    parts = bpexp.split(ds, val_size=0.2, test_size=0.1, seed=0)
    assert isinstance(parts, Split)
    n_train, n_val, n_test = parts.sizes()
    assert n_train + n_val + n_test == ds.n_samples
    assert n_test == pytest.approx(0.1 * ds.n_samples, abs=1)
    assert n_val == pytest.approx(0.2 * ds.n_samples, abs=2)
    full = np.bincount(ds.y) / ds.n_samples
    for y in (parts.y_train, parts.y_val, parts.y_test):
        assert np.abs(np.bincount(y, minlength=10) / y.size - full).max() < 0.02  # class proportions kept
    # The parts are a partition of the rows.
    rows = np.concatenate([parts.X_train, parts.X_val, parts.X_test])
    assert np.array_equal(np.unique(rows, axis=0), np.unique(ds.X, axis=0))


def test_split_is_seeded():
    ds = bpexp.load_dataset("iris")
    a, b, c = bpexp.split(ds, seed=1), bpexp.split(ds, seed=1), bpexp.split(ds, seed=2)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)


def test_split_regression_and_zero_sized_parts():
    ds = bpexp.load_dataset("diabetes")
    parts = bpexp.split(ds, val_size=0.0, test_size=0.25, seed=0)
    assert parts.sizes()[1] == 0 and parts.X_val.shape == (0, 10)
    assert parts.sizes()[2] == pytest.approx(0.25 * ds.n_samples, abs=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_size": 1.0}, r"val_size must be in \[0, 1\), got 1.0"),
        ({"test_size": -0.1}, r"test_size must be in \[0, 1\), got -0.1"),
        ({"val_size": 0.6, "test_size": 0.5}, "val_size \\+ test_size must be < 1, got 1.1"),
    ],
)
def test_split_fraction_errors(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        bpexp.split(bpexp.load_dataset("iris"), **kwargs)


def test_split_of_a_class_with_one_sample_names_the_dataset():
    ds = bpexp.Dataset("tiny", np.arange(20.0).reshape(10, 2), np.array([0] * 9 + [1]), "classification")
    with pytest.raises(InvalidInputError, match="cannot split dataset 'tiny'"):
        bpexp.split(ds, seed=0)


def test_digest_tells_datasets_apart():
    ds = bpexp.load_dataset("iris")
    same = bpexp.Dataset("other", ds.X.copy(), ds.y.copy(), "classification")
    changed = bpexp.Dataset("iris", ds.X.copy(), ds.y.copy(), "classification")
    changed.X[0, 0] += 1e-9
    assert ds.digest() == same.digest() and ds.digest() != changed.digest()
    assert len(ds.digest()) == 64


def test_the_digest_is_remembered_only_while_the_data_are_the_same_objects():
    ds = bpexp.load_dataset("iris")
    first = ds.digest()
    assert ds.digest() == first and ds._digest[2] == first  # remembered
    ds.y = ds.y[::-1].copy()  # new labels: a new digest
    assert ds.digest() != first
    ds.y = ds.y[::-1].copy()  # equal values again, in another array: the same digest, computed anew
    assert ds.digest() == first
