"""bpexp's splits draw exactly the rows scikit-learn's ``train_test_split`` draws (bpexp.data.splitting)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

import bpexp
from bpexp.data.splitting import take_rows, train_test_positions

LAYOUTS = {
    "balanced": lambda rng, n: rng.integers(0, 3, n),
    "imbalanced": lambda rng, n: np.where(rng.random(n) < 0.05, 1, 0),
    "ten_classes_ties": lambda rng, n: np.arange(n) % 10,  # equal counts: the tie-breaks draw at random
    "strings": lambda rng, n: np.array(["Adelie", "Gentoo", "Chinstrap"], dtype=object)[rng.integers(0, 3, n)],
    "multilabel": lambda rng, n: rng.integers(0, 2, (n, 2)),
    "sparse_integers": lambda rng, n: np.array([3, 7, 1000], dtype=np.int32)[rng.integers(0, 3, n)],  # counted
    "negative_integers": lambda rng, n: rng.integers(-2, 2, n),  # sorted by np.unique
}


def _sklearn(positions, frac, seed, labels):
    return train_test_split(positions, test_size=frac, random_state=seed, stratify=labels)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("n", [20, 37, 150, 1797, 10_001])
def test_stratified_partitions_are_scikit_learns(layout, n):
    rng = np.random.default_rng(n)
    labels = LAYOUTS[layout](rng, n)
    positions = np.arange(n) * 3 + 5  # not 0..n-1: positions are values, returned as drawn
    for frac in (0.15, 0.3, 0.5, 0.15 / 0.85, 0.9):
        for seed in (0, 1, 7, 123):
            try:
                expected = _sklearn(positions, frac, seed, labels)
            except ValueError:  # too few rows of a class for this fraction: bpexp refuses it too
                with pytest.raises(ValueError):
                    train_test_positions(positions, frac, seed, labels)
                continue
            got = train_test_positions(positions, frac, seed, labels)
            for a, b in zip(got, expected):
                assert a.dtype == b.dtype and np.array_equal(a, b), (layout, n, frac, seed)


@pytest.mark.parametrize("n", [2, 10, 333, 100_000])
def test_shuffled_partitions_are_scikit_learns(n):
    positions = np.arange(n)
    for frac in (0.15, 0.5, 0.01):
        for seed in (0, 3):
            got = train_test_positions(positions, frac, seed)
            expected = _sklearn(positions, frac, seed, None)
            assert all(np.array_equal(a, b) for a, b in zip(got, expected)), (n, frac, seed)


def test_impossible_splits_are_refused_like_scikit_learn():
    with pytest.raises(ValueError, match="only 1 member"):
        train_test_positions(np.arange(10), 0.3, 0, np.array([0] * 9 + [1]))
    with pytest.raises(ValueError, match="fewer than the 3 classes"):
        train_test_positions(np.arange(9), 0.2, 0, np.arange(9) % 3)
    with pytest.raises(ValueError, match="train part would be empty"):
        train_test_positions(np.arange(1), 0.5, 0)


def test_a_real_tables_split_is_unchanged():
    # The three-way split bpexp.split has always made, row for row, on a table it did not make.
    ds = bpexp.load_dataset("breast_cancer")
    parts = bpexp.split(ds, val_size=0.15, test_size=0.15, seed=4)
    rest, test = _sklearn(np.arange(ds.n_samples), 0.15, 4, ds.y)
    train, val = _sklearn(rest, 0.15 / 0.85, 5, ds.y[rest])
    assert np.array_equal(parts.X_train, ds.X[train]) and np.array_equal(parts.y_val, ds.y[val])
    assert np.array_equal(parts.X_test, ds.X[test])


def test_splitting_a_table_does_not_import_scikit_learn(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{'xyz'[i % 3]},{i % 2}\n" for i in range(60)))
    code = ("import sys, bpexp; ds = bpexp.load_dataset(sys.argv[1], target='y'); bpexp.split(ds, seed=0); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    done = subprocess.run([sys.executable, "-c", code, str(table)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_take_rows_is_iloc_for_every_column_type_on_threads():
    import pandas as pd

    n = 100_000  # above the size from which columns are gathered on threads
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "x": rng.standard_normal(n), "i": rng.integers(0, 9, n), "flag": rng.random(n) < 0.5,
        "cat": pd.Categorical(rng.choice(["a", "b", None], n)), "text": rng.choice(["u", "v", None], n),
        "nullable": pd.array(rng.integers(0, 3, n), dtype="Int64"), "obj": pd.Series([{"k": 1}] * n, dtype=object),
    }, index=pd.RangeIndex(2, n + 2))
    frame.loc[5, "nullable"] = pd.NA
    frame.columns = ["x", "i", "flag", "cat", "text", "nullable", "x"]  # a repeated name is kept, in place
    positions = rng.permutation(n)[:70_000]
    taken = take_rows(frame, positions)
    pd.testing.assert_frame_equal(taken, frame.iloc[positions], check_index_type=True, check_column_type=True)
    assert taken.index[0] == positions[0] + 2
