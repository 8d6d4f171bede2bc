"""The names of the MLflow tags bpexp writes and reads: the only place a ``"bpexp.<name>"`` literal lives.

A tag name spelled in two modules drifts (a reader once looked for
``bpexp.pruned_epoch``, which nothing wrote); ``tests/tracking/test_tags.py``
fails if such a literal appears anywhere else in the package. Each constant
says who writes it and who reads it. bpexp logs no ``bpexp.*`` params: params
are the config's own keys (``optimizer.lr``, ``objective.metric``...).

Standard library only: every layer from ``tracking`` up imports it.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------- every run bpexp creates
#: bpexp's version. Written by runner, sklearn.tracking, tuning.coordinator (parent run); read by export.card.
VERSION_TAG = "bpexp.version"
#: The dataset's name. Written by runner; read by export.card.
DATASET_TAG = "bpexp.dataset"
#: A digest of the dataset's values. Written by runner; read by export.card.
DATASET_DIGEST_TAG = "bpexp.dataset_digest"
#: The experiment's seed. Written by runner.
SEED_TAG = "bpexp.seed"
#: classification, regression or multilabel. Written by runner and sklearn.tracking; read by export.card.
TASK_TAG = "bpexp.task"
#: "true" when the git work tree had changes (next to mlflow.source.git.commit). Written by runner.
GIT_DIRTY_TAG = "bpexp.git_dirty"
#: The scikit-learn estimator's class name. Written by sklearn.tracking.
ESTIMATOR_TAG = "bpexp.estimator"

# ---------------------------------------------------------------------------- how a run ended
#: The History's status (completed, stopped, diverged...). Written by runner at a run's end.
STATUS_TAG = "bpexp.status"
#: Epochs trained. Written by runner, sklearn.tracking; read by export.card, widgets.runs.
EPOCHS_RUN_TAG = "bpexp.epochs_run"
#: Why training stopped early (early stopping, pruning). Written by runner; read by export.card.
STOP_REASON_TAG = "bpexp.stop_reason"
#: A short (bounded) reason a run ended FAILED or KILLED. Written by tracking.run, tracking.liveness,
#: tuning (objective, coordinator, report); read by tuning.result (the sweep's one-line failure), people.
ERROR_TAG = "bpexp.error"

# ---------------------------------------------------------------------------- liveness (tracking.liveness)
#: The host of the process running the run. Written and read by tracking.liveness.
HOST_TAG = "bpexp.host"
#: Its pid. Written and read by tracking.liveness.
PID_TAG = "bpexp.pid"
#: Seconds since the epoch of the last beat. Written by tracking.liveness (runner, coordinator); read by it.
HEARTBEAT_TAG = "bpexp.heartbeat"

# ---------------------------------------------------------------------------- sweeps
#: The Optuna study name, on the parent run and every trial run. Written by tuning (coordinator,
#: objective); read by tuning, export.selection, export.card, widgets.runs.
STUDY_TAG = "bpexp.study"
#: "sweep" on a study's parent run. Written by tuning.coordinator; read by tracking.queries, export.selection.
ROLE_TAG = "bpexp.role"
#: The value of :data:`ROLE_TAG` on a parent run.
SWEEP_ROLE = "sweep"
#: Where the study is stored (password masked). Written by tuning.coordinator.
STORAGE_TAG = "bpexp.storage"
#: The trial's number. Written by tuning.objective; read by tuning, tracking.queries, export, widgets.runs.
TRIAL_NUMBER_TAG = "bpexp.trial_number"
#: RUNNING, COMPLETE, PRUNED or FAIL. Written by tuning (objective, coordinator, report); read by
#: tracking.queries, export.selection, widgets.runs.
TRIAL_STATE_TAG = "bpexp.trial_state"
#: The trial's params as JSON (bounded). Written by tuning.objective.
TRIAL_PARAMS_TAG = "bpexp.trial_params"
#: The epoch a pruned trial stopped at. Written by tuning.objective; read by tracking.queries, widgets.runs.
PRUNED_AT_EPOCH_TAG = "bpexp.pruned_at_epoch"
#: The best trial's number, on the parent run. Written by tuning.report.
BEST_TRIAL_TAG = "bpexp.best_trial"
#: The best trial's run id, on the parent run. Written by tuning.report.
BEST_RUN_ID_TAG = "bpexp.best_run_id"
#: Study plots that could not be drawn, as JSON (bounded). Written by tuning.report.
SKIPPED_PLOTS_TAG = "bpexp.skipped_plots"

# ---------------------------------------------------------------------------- models
#: The run's logged pyfunc model URI. Written by tracking.run, tuning.report; read by tuning.report, export.
MODEL_URI_TAG = "bpexp.model_uri"
#: On a registered model version: the run it came from. Written by export.registry.
SOURCE_RUN_TAG = "bpexp.source_run"
#: On a logged model: "<experiment>-<run name>", what the model is (its name must stay "model": MLflow 3
#: resolves runs:/<run_id>/model by it). Written by tracking.model.
MODEL_LABEL_TAG = "bpexp.name"
#: On a logged model: its run's experiment name. Written by tracking.model.
MODEL_EXPERIMENT_TAG = "bpexp.experiment"
#: On a logged model: its run's name. Written by tracking.model.
MODEL_RUN_NAME_TAG = "bpexp.run_name"
