"""Fixtures for tracked-run tests: a project folder with a store, and configs written into it."""

from __future__ import annotations

from pathlib import Path

import pytest
import services
import yaml


@pytest.fixture
def project(tmp_path: Path, mlflow_template_db: Path) -> Path:
    """A project folder with ``experiments/`` and an already-migrated default store ``mlruns/mlflow.db``."""
    (tmp_path / "experiments").mkdir()
    services.copy_mlflow_db(tmp_path / "mlruns" / "mlflow.db", template=mlflow_template_db,
                            default_artifact_location=(tmp_path / "mlruns" / "artifacts" / "0").as_uri())
    return tmp_path


@pytest.fixture
def write_config(project: Path):
    """``write_config(name, config_dict) -> path`` under the project's ``experiments/``."""
    def write(name: str, config: dict) -> Path:
        path = project / "experiments" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write
