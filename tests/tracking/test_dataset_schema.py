"""The schema recorded with a run's dataset input is MLflow's own, computed without a Python pass per value."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bpexp
from bpexp.tracking.model import INTEGER_HINT
from bpexp.tracking.run import SCHEMA_SAMPLE_ROWS, log_dataset_input, table_schema

PENGUINS = Path(__file__).resolve().parents[2] / "experiments" / "data" / "penguins.csv"


def _table(n: int, labels) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.standard_normal(n), "clean": rng.standard_normal(n),
                          "kind": rng.choice(["a", "b", None], n), "label": labels(rng, n)})
    frame.loc[n - 1, "x"] = np.nan  # a single gap, in a row no sample of every k-th row holds
    ds = bpexp.load_dataset(frame, target="label")
    return ds.X.assign(label=ds.y)


@pytest.mark.parametrize("labels", [lambda rng, n: rng.integers(0, 3, n),
                                    lambda rng, n: rng.choice(["Adelie", "Gentoo"], n),
                                    lambda rng, n: rng.standard_normal(n)], ids=["int", "str", "float"])
def test_the_schema_of_a_large_table_is_the_one_mlflow_infers_from_every_row(labels):
    from mlflow.types.utils import _infer_schema

    frame = _table(5 * SCHEMA_SAMPLE_ROWS + 7, labels)
    fast = table_schema(frame)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=INTEGER_HINT)
        full = _infer_schema(frame)
    assert fast is not None and fast.to_dict() == full.to_dict()
    assert {c.name: c.required for c in fast.inputs} == {"x": False, "clean": True, "kind": False, "label": True}


def test_small_tables_and_samples_with_an_empty_column_are_left_to_mlflow():
    assert table_schema(_table(SCHEMA_SAMPLE_ROWS, lambda rng, n: rng.integers(0, 3, n))) is None
    frame = _table(5 * SCHEMA_SAMPLE_ROWS, lambda rng, n: rng.integers(0, 3, n))
    frame["rare"] = pd.Categorical([None] * len(frame), categories=["r"])
    frame.loc[frame.index[1], "rare"] = "r"  # present, but not in the evenly spaced sample
    assert table_schema(frame) is None


def test_a_runs_dataset_input_carries_that_schema(tmp_path):
    from mlflow import MlflowClient

    raw = pd.concat([pd.read_csv(PENGUINS)] * 40, ignore_index=True)  # 13,760 rows: the sampled path
    ds = bpexp.load_dataset(raw, target="species")
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run_id = client.create_run(client.create_experiment("schema")).info.run_id
    log_dataset_input(client, run_id, ds)
    (recorded,) = client.get_run(run_id).inputs.dataset_inputs
    columns = {c["name"]: c for c in json.loads(recorded.dataset.schema)["mlflow_colspec"]}
    assert columns["island"]["type"] == "string" and columns["island"]["required"] is True
    assert columns["sex"]["type"] == "string" and columns["sex"]["required"] is False  # NA in the table
    assert columns["species"]["type"] == "string"
    assert json.loads(recorded.dataset.profile) == {"num_rows": 13_760, "num_elements": 13_760 * 8}
