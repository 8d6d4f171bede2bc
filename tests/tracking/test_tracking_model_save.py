"""Saving a pyfunc model: MLflow's self-check of bpexp's pinned requirements is skipped, nothing else."""

from __future__ import annotations

import numpy as np

import bpexp
from bpexp.tracking.model import input_example, requirements, save_pyfunc_model


def test_save_skips_only_the_self_check_and_puts_it_back(tmp_path, monkeypatch):
    from mlflow.utils import environment, requirements_utils

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)
    model = bpexp.MLP([4, 8, 3], seed=0)
    bpexp.fit(model, X, y, epochs=2)
    checked = []
    monkeypatch.setattr(environment, "warn_dependency_requirement_mismatches", lambda reqs: checked.append(reqs))
    original = environment.warn_dependency_requirement_mismatches

    path = save_pyfunc_model(tmp_path / "model", model, input_example(model, X, ["a", "b", "c", "d"]))

    assert checked == []  # not called during the save ...
    assert environment.warn_dependency_requirement_mismatches is original  # ... and put back afterwards
    pinned = (path / "requirements.txt").read_text().split()
    assert pinned == requirements()  # the versions installed here: the check could not have found a mismatch
    assert requirements_utils._check_requirement_satisfied(pinned[1]) is None  # numpy==<installed> holds


def test_a_table_with_integer_labels_saves_without_mlflows_integer_hint(tmp_path):
    """Found training a 10^6-row Parquet table labelled 0/1/2: MLflow's 'Hint: Inferred schema contains
    integer column(s)' warning was printed twice (trainer and helper) for the predicted labels."""
    import warnings

    import pandas as pd

    from bpexp.data.tabular import fit_encoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=80), "kind": rng.choice(["a", "b", None], 80)})
    y = rng.integers(0, 3, 80)
    encoder = fit_encoder(frame)
    model = bpexp.MLP([encoder.n_features_out, 8, 3], encoder=encoder, seed=0)
    bpexp.fit(model, frame, y, epochs=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = save_pyfunc_model(tmp_path / "model", model, input_example(model, frame, list(frame.columns)))
    assert not [w for w in caught if "Inferred schema contains integer" in str(w.message)]
    signature = (path / "MLmodel").read_text()
    assert '"type": "long"' in signature and '"name": "kind"' in signature  # labels out as long, columns named in
