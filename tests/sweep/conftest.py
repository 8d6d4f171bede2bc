"""Fixtures of the sweep tests (helpers live in sweep_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throw-away project: ``experiments/xor.yaml`` and ``experiments/xor-sweep.yaml``."""
    return make_project(tmp_path)
