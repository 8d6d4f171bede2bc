"""``bpexp runs`` on a real sweep: sorted by the sweep's objective, trial and state columns, swept params only."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sweep_helpers import open_study, write_yaml

import bpexp
from bpexp.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory, mlflow_template_db):
    import services

    root = tmp_path_factory.mktemp("runs-table")
    uri = services.copy_mlflow_db(root / "mlflow.db", template=mlflow_template_db,
                                  default_artifact_location=(root / "artifacts").as_uri())
    sweep = write_yaml(root / "diabetes-sweep.yaml", {
        "base": {"dataset": {"name": "diabetes"}, "model": {"hidden": [8]},
                 "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9}, "training": {"epochs": 6}},
        "space": {"optimizer.lr": {"type": "float", "low": 1e-7, "high": 10.0, "log": True}},
        "objective": {"metric": "val_loss"},
        "pruner": {"name": "median", "n_startup_trials": 1},
        "study": {"name": "tabled", "experiment": "tabled"},
    })
    storage = str(root / "journal.log")
    # trial 0 completes, 1 diverges (FAIL), 2 is pruned at epoch 1; lr 0.0123456789 has many digits
    result = bpexp.sweep(sweep, n_trials=3, storage=storage, tracking_uri=uri, progress=False, plots=False,
                         enqueue=[{"optimizer.lr": 0.0123456789}, {"optimizer.lr": 10.0}, {"optimizer.lr": 1e-7}])
    return uri, open_study(storage, "tabled"), result


def _runs(uri, *args):
    result = CliRunner().invoke(main, ["runs", "--experiment", "tabled", "--tracking-uri", uri, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_runs_table_of_a_sweep(sweep_store):
    uri, study, _ = sweep_store
    lines = _runs(uri).splitlines()
    header = lines[0].split()
    assert header[:4] == ["run", "name", "trial", "state"]
    assert header[4] == "lr"  # the swept param; constant ones (hidden, optimizer, batch) are hidden
    assert "hidden" not in header and "optimizer" not in header and "batch" not in header
    assert header[5] == "final_val_loss"  # the sweep's objective leads, not test_accuracy/test_r2
    starts = [m.start() for m in re.finditer(r"-+", lines[1])]  # aligned columns: cut where the dashes start
    rows = [dict(zip(header, (line[a:b].strip() for a, b in zip(starts, [*starts[1:], None]))))
            for line in lines[2:] if line.strip() and not line.startswith("4 of")]
    assert [r["trial"] for r in rows] == ["0", "2", "1", ""]  # lowest val_loss first (minimize); parent last
    assert [r["state"] for r in rows] == ["complete", "pruned", "fail", "sweep"]
    assert rows[1]["name"] == "tabled-trial-2 (pruned at epoch 1)"
    assert rows[0]["lr"] == "0.01235"  # rounded in the table
    assert len(rows[0]["final_val_loss"]) <= 6
    assert "best final_val_loss first" in lines[-1]


def test_runs_json_and_csv_have_full_values(sweep_store):
    uri, study, _ = sweep_store
    records = json.loads(_runs(uri, "--format", "json"))
    trial0 = next(r for r in records if r.get("trial") == 0)
    assert len(trial0["run_id"]) == 32 and trial0["state"] == "complete"
    assert trial0["optimizer.lr"] == "0.0123456789"
    assert trial0["final_val_loss"] == pytest.approx(study.trials[0].value, rel=1e-12)
    assert {r["state"] for r in records} == {"complete", "fail", "pruned", "sweep"}
    csv_text = _runs(uri, "--format", "csv")
    header, *body = csv_text.splitlines()
    assert header.split(",")[:5] == ["run_id", "name", "experiment_id", "trial", "state"]
    assert trial0["run_id"] in csv_text and "0.0123456789" in csv_text and len(body) == len(records)


def test_printed_commands_of_the_sweep_run_as_printed(sweep_store, tmp_path):
    """The summary's "export the best:" and "see it:" lines, run in a shell without the venv on PATH."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    uri, _, result = sweep_store
    lines = result.summary().splitlines()
    export = next(line for line in lines if line.startswith("export the best: ")).removeprefix("export the best: ")
    see = next(line for line in lines if line.startswith("see it: ")).removeprefix("see it: ").split("   (")[0]
    bpexp_path = str(Path(sys.executable).with_name("bpexp"))
    assert export.startswith(bpexp_path) and f"--tracking-uri {uri}" in export
    assert see == f"{bpexp_path} ui --tracking-uri {uri}"
    env = {**os.environ, "PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(["sh", "-c", export], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "best-model" / "MLmodel").is_file() and "trial 0" in done.stdout


def test_a_pruned_trial_shows_its_pruned_epoch_in_runs_and_the_widget(sweep_store):
    """Read back from the store: ``bpexp runs --format json`` and RunsController both give epoch 1 for trial 2."""
    from bpexp.widgets.runs import RunsController

    uri, study, _ = sweep_store
    assert study.trials[2].state.name == "PRUNED" and max(study.trials[2].intermediate_values) == 1
    records = {r.get("trial"): r for r in json.loads(_runs(uri, "--format", "json"))}
    assert records[2]["state"] == "pruned" and records[2]["pruned_at_epoch"] == 1
    assert records[0]["pruned_at_epoch"] is None and records[1]["pruned_at_epoch"] is None
    table = RunsController(study="tabled", tracking_uri=uri).table()
    widget_rows = {r.values["trial"]: r.values for r in table.records}
    assert widget_rows[2]["state"] == "pruned" and widget_rows[2]["epochs"] == 1
    assert widget_rows[0]["epochs"] == 6  # a complete trial: every epoch
