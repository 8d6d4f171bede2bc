"""Notebook widgets: compare runs, inspect sweeps, deploy a model, watch training live.

- :class:`RunBrowser` — the runs of an experiment or a sweep: table, curves, differences, deploy.
- :class:`StudyView` — an Optuna study's plots and its trials linked to their runs.
- :class:`LiveCurves` — a training callback drawing live learning curves (``bpexp.run(..., live=True)``).
- :class:`DeployPanel` — register or export one run.

The views are thin ipywidgets layouts over plain controllers (:class:`RunsController`,
:class:`StudyController`, :class:`DeployController`) that tests drive directly. Names are
imported on first use, so ``import bpexp.widgets`` imports neither ipywidgets nor MLflow.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "RunBrowser": "bpexp.widgets.browser",
    "StudyView": "bpexp.widgets.study",
    "StudyController": "bpexp.widgets.trials",
    "LiveCurves": "bpexp.widgets.live",
    "DeployPanel": "bpexp.widgets.deploy",
    "DeployController": "bpexp.widgets.deploy",
    "DeployOutcome": "bpexp.widgets.deploy",
    "RunsController": "bpexp.widgets.runs",
    "TableView": "bpexp.widgets.table",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'bpexp.widgets' has no attribute {name!r}")


def __dir__():
    return __all__
