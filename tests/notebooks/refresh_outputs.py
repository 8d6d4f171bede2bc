"""Re-execute the notebooks and store the outputs nbval compares.

    .venv/bin/python tests/notebooks/refresh_outputs.py [NOTEBOOK.ipynb ...]

Run it after editing a notebook (or when a checked output legitimately changes), review the
diff, commit. The notebooks run in order in a temp copy of the project against a temp MLflow
store, like the tests; the repository's store is not touched.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from notebook_project import NOTEBOOK_DIR, NOTEBOOKS, make_project, strip


def main(names: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="bpexp-notebooks-") as tmp:
        project = make_project(Path(tmp) / "project")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'store' / 'mlflow.db'}"
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        for name in NOTEBOOKS:
            path = project / "notebooks" / name
            nb = nbformat.read(path, as_version=4)
            t0 = time.perf_counter()
            NotebookClient(nb, timeout=300, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            print(f"{name}: executed in {time.perf_counter() - t0:.1f} s")
            if not names or name in names:
                nbformat.write(strip(nb), NOTEBOOK_DIR / name)
                print(f"  wrote {NOTEBOOK_DIR / name}")


if __name__ == "__main__":
    main(sys.argv[1:])
