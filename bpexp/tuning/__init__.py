"""Optuna sweeps whose trials are tracked MLflow runs: the only part of bpexp that imports Optuna.

``bpexp.sweep("experiments/digits-sweep.yaml", n_trials=20, workers=2)`` and
``bpexp sweep`` come here. Modules:

- :mod:`~bpexp.tuning.coordinator`: :func:`sweep` (study and parent run created once, workers, the end);
- :mod:`~bpexp.tuning.worker`: worker processes sharing one trial budget, Ctrl-C policy;
- :mod:`~bpexp.tuning.objective`: a trial = a runner call with a pruning callback, and its MLflow tags;
- :mod:`~bpexp.tuning.space`: search space -> suggestions, samplers, pruners;
- :mod:`~bpexp.tuning.storage`: journal file / database storages with heartbeats;
- :mod:`~bpexp.tuning.report`: MLflow reconciliation, parent-run summary, plots, best model, summary table.
"""

from bpexp.tuning.coordinator import PARENT_ATTR, sweep
from bpexp.tuning.objective import RUN_ID_ATTR, PruningCallback
from bpexp.tuning.result import SweepInterrupted, SweepResult
from bpexp.tuning.storage import StorageUnavailableError, open_storage

__all__ = ["PARENT_ATTR", "RUN_ID_ATTR", "PruningCallback", "StorageUnavailableError", "SweepInterrupted",
           "SweepResult", "open_storage", "sweep"]
