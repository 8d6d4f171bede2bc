"""scikit-learn's built-in datasets are read from bpexp's disk cache after their first load (bpexp.data.cache)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import sklearn.datasets

import bpexp
from bpexp.data.cache import CACHE_ENV

LOAD = ("import sys, bpexp; ds = bpexp.load_dataset(sys.argv[1]); parts = bpexp.split(ds, seed=0); "
        "print(ds.digest(), sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn') == [])")


def _load_in_fresh_process(name: str, cache) -> tuple[str, bool]:
    env = {**os.environ, CACHE_ENV: str(cache)}
    done = subprocess.run([sys.executable, "-c", LOAD, name], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    digest, no_sklearn = done.stdout.split()
    return digest, no_sklearn == "True"


@pytest.mark.parametrize("name", ["digits", "diabetes", "moons"])
def test_the_second_load_reads_the_cache_without_scikit_learn_and_gives_the_same_data(tmp_path, name):
    first, first_without = _load_in_fresh_process(name, tmp_path)
    second, second_without = _load_in_fresh_process(name, tmp_path)
    assert not first_without and second_without  # the first one imported scikit-learn; the second did not
    assert first == second


@pytest.mark.parametrize("name, loader", [("iris", "load_iris"), ("breast_cancer", "load_breast_cancer")])
def test_cached_arrays_are_scikit_learns(tmp_path, monkeypatch, name, loader):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    bunch = getattr(sklearn.datasets, loader)()
    for _ in range(2):  # written, then read back
        ds = bpexp.load_dataset(name)
        assert ds.X.dtype == np.float64 and np.array_equal(ds.X, bunch.data)
        assert ds.y.dtype == bunch.target.dtype and np.array_equal(ds.y, bunch.target)
        assert ds.feature_names == [str(f) for f in bunch.feature_names]
    assert len(list((tmp_path / "datasets").glob(f"{name}-*.npz"))) == 1


def test_generated_sets_are_cached_per_argument(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    a = bpexp.load_dataset("moons", seed=1, noise=0.3)
    b = bpexp.load_dataset("moons", seed=2, noise=0.3)
    X, y = sklearn.datasets.make_moons(n_samples=500, noise=0.3, random_state=2)
    assert np.array_equal(b.X, X) and np.array_equal(b.y, y) and not np.array_equal(a.X, b.X)
    assert len(list((tmp_path / "datasets").glob("moons-*.npz"))) == 2


def test_a_torn_cache_file_is_ignored_and_written_again(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    expected = bpexp.load_dataset("wine")
    (entry,) = (tmp_path / "datasets").glob("wine-*.npz")
    entry.write_bytes(entry.read_bytes()[:1000])  # cut mid-write (a full disk)
    again = bpexp.load_dataset("wine")
    assert np.array_equal(again.X, expected.X) and np.array_equal(again.y, expected.y)
    with np.load(entry, allow_pickle=False) as stored:  # repaired: whole again
        assert np.array_equal(stored["X"], expected.X)
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_an_unwritable_cache_still_loads(tmp_path, monkeypatch):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocked))  # mkdir under a file fails, as a read-only home does
    ds = bpexp.load_dataset("iris")
    assert ds.X.shape == (150, 4)
