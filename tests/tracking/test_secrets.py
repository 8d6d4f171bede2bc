"""A password in a tracking URI is never written or printed.

A real ``mlflow server`` on 127.0.0.1 is reached as ``http://alice:s3cret@127.0.0.1:PORT``
(requests sends the user info as basic auth, which the server ignores). A train, a sweep and
an export run against it; then the server's database and artifacts, the Optuna journal, the
export folder and everything the commands printed are searched for the password.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bpexp.redaction import redact

BPEXP = str(Path(sys.executable).with_name("bpexp"))
PASSWORD = "s3cret"  # noqa: S105 - the secret the test hunts for

XOR = {"dataset": {"name": "xor", "n_samples": 200, "noise": 0.15}, "seed": 0,
       "model": {"hidden": [8], "activation": "tanh"}, "optimizer": {"name": "adam", "lr": 0.03},
       "training": {"epochs": 4, "batch_size": 32}, "tracking": {"experiment": "xor-secret"}}
SWEEP = {"base": "xor.yaml", "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}},
         "objective": {"metric": "val_accuracy"}, "sampler": {"name": "tpe", "seed": 0}, "pruner": "none",
         "study": {"name": "xor-secret-sweep", "experiment": "xor-secret-sweep", "n_trials": 2}}


@pytest.mark.parametrize("uri, shown", [
    ("http://alice:s3cret@127.0.0.1:5000", "http://alice:***@127.0.0.1:5000"),
    ("https://alice:s3cret@mlflow.example.com/", "https://alice:***@mlflow.example.com/"),
    ("postgresql://bob:p@ss@db-host:5432/optuna", "postgresql://bob:***@db-host:5432/optuna"),  # unencoded @
    ("postgresql+psycopg2://bob:p%40ss@db-host/optuna", "postgresql+psycopg2://bob:***@db-host/optuna"),
    ("postgresql://db-host/optuna?user=bob&password=hunter2", "postgresql://db-host/optuna?user=bob&password=***"),
    ("postgresql://postgres@127.0.0.1:5432/db", "postgresql://postgres@127.0.0.1:5432/db"),  # no password
    ("sqlite:////tmp/a@b/mlflow.db", "sqlite:////tmp/a@b/mlflow.db"),  # an @ in a path is no user info
    ("/home/me/mlruns/optuna-journal.log", "/home/me/mlruns/optuna-journal.log"),
])
def test_redact(uri, shown):
    assert redact(uri) == shown
    assert redact(f"cannot open {uri} (refused)") == f"cannot open {shown} (refused)"


def test_bpexp_errors_mask_passwords():
    from bpexp.errors import BpexpError

    assert str(BpexpError("no store at http://alice:s3cret@h:5000")) == "no store at http://alice:***@h:5000"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.pop("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", None)  # bpexp must silence MLflow's "View run at" itself
    env.update(MLFLOW_DISABLE_TELEMETRY="true")
    return subprocess.run([BPEXP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _files_with(root: Path, secret: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.mark.services
@pytest.mark.slow
def test_no_password_in_store_journal_export_or_output(mlflow_server_url_fresh, tmp_path, capfd):
    server_dir = tmp_path / "mlflow-server"  # the fixture's workdir: its database and artifacts
    uri = mlflow_server_url_fresh.replace("http://", f"http://alice:{PASSWORD}@")
    project = tmp_path / "proj"
    (project / "experiments").mkdir(parents=True)
    (project / "experiments" / "xor.yaml").write_text(yaml.safe_dump(XOR))
    (project / "experiments" / "xor-sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    journal = project / "journal.log"
    outputs = [
        _run(["train", "experiments/xor.yaml", "--tracking-uri", uri, "--no-progress"], project),
        _run(["sweep", "experiments/xor-sweep.yaml", "--tracking-uri", uri, "--storage", str(journal),
              "--no-progress"], project),
        _run(["export", "--best", "final_val_accuracy", "--study", "xor-secret-sweep", "--out", "exported",
              "--tracking-uri", uri], project),
        _run(["runs", "--experiment", "xor-secret", "--tracking-uri", uri], project),
        # an error message naming the store: the same user and password, a port nothing listens on
        _run(["runs", "--tracking-uri", f"http://alice:{PASSWORD}@127.0.0.1:9"], project),
    ]
    for done in outputs[:4]:
        assert done.returncode == 0, done.stderr
    assert outputs[4].returncode == 1 and "http://alice:***@127.0.0.1:9" in outputs[4].stderr
    assert "http://alice:***@127.0.0.1:" in outputs[0].stdout  # the "see it at" line, masked
    for done in outputs:
        assert PASSWORD not in done.stdout + done.stderr, done.args

    card = (project / "exported" / "README.md").read_text()
    assert f"`{redact(uri)}`" in card
    # a run that ends with an error naming the URI (its bpexp.error tag and note)
    from bpexp.tracking import connect
    from bpexp.tracking.run import TrackedRun
    from bpexp.tracking.writer import open_sink

    client = connect(uri)
    exp = client.get_experiment_by_name("xor-secret")
    tracked = TrackedRun(client, uri, exp.experiment_id, open_sink(uri, helper=False), run_name="failing")
    tracked.end("FAILED", error=f"could not write metrics to {uri}: boom")
    tags = client.get_run(tracked.run_id).data.tags
    assert PASSWORD not in "".join(capfd.readouterr())  # MLflow's own "View run at" line stays silent
    assert tags["bpexp.error"] == f"could not write metrics to {redact(uri)}: boom"

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="xor-secret-sweep", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert study.user_attrs["mlflow_tracking_uri"] == redact(uri)
    secret = PASSWORD.encode()
    assert _files_with(server_dir, secret) == []  # database (+ WAL) and every artifact
    assert _files_with(project, secret) == []  # journal, export folder, anything else written
