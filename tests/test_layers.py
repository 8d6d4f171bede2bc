"""Imports only point down: import-linter's layers contract (pyproject.toml) over the real package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e .[dev])")
def test_imports_only_point_down():
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "bpexp layers KEPT" in done.stdout


def test_the_contract_lists_every_layer_of_the_readme_table():
    import tomllib

    contract = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    layers = {name.strip() for layer in contract["layers"] for name in layer.replace("|", ":").split(":")}
    readme = (REPO / "README.md").read_text().split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    for package in ("nn", "train", "data", "metrics", "config", "tracking", "runner", "tuning", "export", "widgets",
                    "cli"):
        assert package in layers
        assert f"`bpexp/{package}" in readme
