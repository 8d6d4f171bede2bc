"""The notebooks run top to bottom and pass nbval, against a temporary store.

One ``pytest --nbval`` subprocess runs the three notebooks in order (03 reuses the study
02 made) in a temp copy of the project, with ``MLFLOW_TRACKING_URI`` set to a fresh store
and the notebooks' sanitize file; its JUnit report gives one result per notebook here.
Why a subprocess: nbval collects ``.ipynb`` files only with ``--nbval``, and the
notebooks must neither run in the repository (they write the Optuna journal and exports
into the project) nor share this process's MLflow state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import nbformat
import pytest
import services
from notebook_project import DROPPED_MIME, NOTEBOOK_DIR, NOTEBOOKS, ignored, make_project

#: The issue's budget per notebook on 2 cores (typical: 10-25 s plus kernel start).
NOTEBOOK_BUDGET_SECONDS = 120


@pytest.fixture(scope="module")
def nbval_report(tmp_path_factory, mlflow_template_db):
    root = tmp_path_factory.mktemp("nbval")
    project = make_project(root / "project")
    store = root / "store"
    uri = services.copy_mlflow_db(store / "mlflow.db", template=mlflow_template_db,
                                  default_artifact_location=(store / "artifacts" / "0").as_uri())
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
    junit = root / "nbval.xml"
    cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
           "--nbval-sanitize-with", "notebooks/sanitize.cfg", "--nbval-cell-timeout=300",
           "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *[f"notebooks/{n}" for n in NOTEBOOKS]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    log = root / "nbval.log"
    log.write_text(f"$ {' '.join(cmd)}\n(exit {proc.returncode}, {wall:.1f} s)\n{proc.stdout}\n{proc.stderr}")
    if not junit.exists():
        pytest.fail(f"nbval did not run (exit {proc.returncode}); log {log}:\n"
                    f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    cases = ET.parse(junit).getroot().iter("testcase")
    return list(cases), proc, log


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_passes_nbval(nbval_report, name):
    cases, proc, log = nbval_report
    mine = [c for c in cases if name in c.get("classname", "") + c.get("file", "") + c.get("name", "")]
    assert mine, f"no nbval cells of {name} in the report; log {log}:\n{proc.stdout[-3000:]}"
    problems = [(c.get("name"), p.get("message", ""), (p.text or "")[-1500:]) for c in mine
                for p in [*c.findall("failure"), *c.findall("error")]]
    assert not problems, "\n\n".join(f"{cell}: {message}\n{text}" for cell, message, text in problems)
    seconds = sum(float(c.get("time", 0)) for c in mine)
    assert seconds < NOTEBOOK_BUDGET_SECONDS, f"{name} took {seconds:.0f} s (budget {NOTEBOOK_BUDGET_SECONDS} s)"


def test_committed_notebooks_keep_only_what_nbval_compares():
    """Widget state, images and the outputs of nbval-ignore-output cells stay out of git."""
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        assert "widgets" not in nb.metadata, name
        checked = [c for c in nb.cells if c.cell_type == "code" and not ignored(c)]
        assert any(c.outputs for c in checked), f"{name}: no checked outputs at all"
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if ignored(cell):
                assert not cell.outputs and cell.execution_count is None, (name, cell.source[:60])
            else:
                assert cell.execution_count is not None, (name, cell.source[:60])  # else nbval skips it
                assert not any(set(o.get("data", {})) & set(DROPPED_MIME) for o in cell.outputs), name
                assert "Traceback" not in json.dumps(cell.outputs), name
