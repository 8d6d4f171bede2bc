"""The notebooks as the tests run them: a throwaway copy of the project, and what is kept in git.

The notebooks write to the project (the Optuna journal under ``mlruns/``, exports under
``outputs/``), so tests and :mod:`refresh_outputs` run them in a copy of ``experiments/`` and
``notebooks/`` in a temp dir, with ``MLFLOW_TRACKING_URI`` pointing at a temp store: the
developer's own store and journal are never touched.

What git keeps of a notebook's outputs (see :func:`strip`): only what nbval compares. Cells
whose output varies (training progress, widgets, timings) carry the ``nbval-ignore-output``
tag and are stored unexecuted and empty; the other cells keep their text outputs, without
images (nbval does not compare them, and they bloat diffs) or widget views (meaningless
without the kernel).
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
#: In execution order: 03 reuses the study 02 created when both run against one store.
NOTEBOOKS = ("01-train-and-track.ipynb", "02-sweep.ipynb", "03-compare-and-deploy.ipynb")
SANITIZE = NOTEBOOK_DIR / "sanitize.cfg"
IGNORE_TAG = "nbval-ignore-output"
DROPPED_MIME = ("image/png", "image/jpeg", "application/vnd.jupyter.widget-view+json")


def make_project(dest: Path) -> Path:
    """Copy ``experiments/`` and ``notebooks/`` (notebooks and sanitize file) to ``dest``; return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "experiments", dest / "experiments")
    (dest / "notebooks").mkdir()
    for name in (*NOTEBOOKS, SANITIZE.name):
        shutil.copy2(NOTEBOOK_DIR / name, dest / "notebooks" / name)
    return dest


def ignored(cell) -> bool:
    return IGNORE_TAG in cell.get("metadata", {}).get("tags", [])


def strip(nb):
    """Keep only the outputs nbval compares (in place; returns ``nb``)."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if ignored(cell):
            cell.outputs, cell.execution_count = [], None
            continue
        count += 1
        cell.execution_count = count
        kept = []
        for out in cell.outputs:
            if "data" in out:
                out["data"] = {k: v for k, v in out["data"].items() if k not in DROPPED_MIME}
                if not out["data"]:
                    continue
            if "execution_count" in out:
                out["execution_count"] = count
            out.get("metadata", {}).clear()
            kept.append(out)
        cell.outputs = kept
    nb.metadata.pop("widgets", None)
    return nb
