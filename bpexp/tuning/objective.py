"""One trial: suggested overrides -> a tracked child run (:func:`bpexp.runner.run`) -> objective value.

Agreements other parts of bpexp rely on (export, widgets):

- every trial's MLflow run is a child of the study's parent run and carries the
  tags ``bpexp.study`` (study name), ``bpexp.trial_number`` and
  ``bpexp.trial_state`` (``RUNNING`` while it trains, then ``COMPLETE``,
  ``PRUNED`` or ``FAIL``); pruned runs also ``pruned=true`` and
  ``bpexp.pruned_at_epoch``, and their run name ends ``(pruned at epoch N)``; the run logs its native model folder under
  ``bpexp_model`` and the metric ``final_<objective metric>``;
- the trial stores the run id as user attribute ``mlflow_run_id``.

A pruned trial's run ends FINISHED (the model it trained is real, just
stopped early) with the ``pruned`` tag; Optuna records it PRUNED. A trial that
diverges or raises ends FAILED in both (the error on the run's ``bpexp.error``
tag), and the sweep goes on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import optuna

from bpexp.config.sweep import Sweep
from bpexp.errors import InvalidInputError, TrainingDivergedError
from bpexp.tracking.tags import (
    ERROR_TAG,
    PRUNED_AT_EPOCH_TAG,
    STUDY_TAG,
    TRIAL_NUMBER_TAG,
    TRIAL_PARAMS_TAG,
    TRIAL_STATE_TAG,
)
from bpexp.train import Callback

RUN_ID_ATTR = "mlflow_run_id"
WORKER_ATTR = "bpexp_worker"


@dataclass
class TrialSetup:
    """What every worker needs to run trials (picklable: it travels to spawned processes)."""

    sweep: Sweep
    metric: str
    direction: str  # "maximize" or "minimize"
    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    storage: str
    study_name: str


class PruningCallback(Callback):
    """Report ``metric`` to Optuna after every epoch (``step=epoch``) and stop training when told to prune."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None
        self.last_value: float | None = None

    def on_epoch_end(self, epoch, logs):
        if self.metric not in logs:
            raise InvalidInputError(f"the objective metric {self.metric!r} is not in the epoch logs {sorted(logs)}")
        value = float(logs[self.metric])
        self.last_value = value
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            self.trainer.stop(f"pruned by Optuna at epoch {epoch} ({self.metric}={value:.4g})")


def trial_tags(study_name: str, number: int, state: str) -> dict[str, str]:
    return {STUDY_TAG: study_name, TRIAL_NUMBER_TAG: str(number), TRIAL_STATE_TAG: state}


def study_filter(study_name: str, parent_run_id: str) -> str:
    """MLflow filter for a study's trial runs (the parent run id tells apart same-named studies)."""
    name = study_name.replace("'", "\\'")
    return f"tags.`{STUDY_TAG}` = '{name}' AND tags.`mlflow.parentRunId` = '{parent_run_id}'"


class Objective:
    """The function Optuna calls with each trial (one per worker process).

    Parameters
    ----------
    setup : TrialSetup
    sink : MetricWriter or InlineWriter
        The worker's metric sink, shared by its trials' runs; the worker closes it.
    worker : str
        ``host:pid`` of the worker, stored on the trial.

    A Ctrl-C while a trial trains ends it after the current epoch (see
    :mod:`bpexp.signals`); between trials the worker's loop stops instead.
    """

    def __init__(self, setup: TrialSetup, sink, worker: str = ""):
        from bpexp.tracking import connect

        self.setup, self.sink, self.worker = setup, sink, worker
        self.client = connect(setup.tracking_uri)

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, self.worker)
        return self._run(trial)

    def _run(self, trial: optuna.Trial) -> float:
        from bpexp.runner import ChildRun, run
        from bpexp.tuning.space import suggest

        s = self.setup
        overrides = {**suggest(trial, s.sweep.space), "tracking.run_name": f"{s.study_name}-trial-{trial.number}"}
        pruning = PruningCallback(trial, s.metric)
        tags = trial_tags(s.study_name, trial.number, "RUNNING")
        if s.sweep.source is not None:
            tags["mlflow.source.name"] = str(s.sweep.source)
        params_tag = {TRIAL_PARAMS_TAG: json.dumps(trial.params)[:5000]}

        def final_tags(history) -> dict[str, str]:
            # Written with the run's final metrics, in one call: COMPLETE is corrected below in
            # the rare case the objective turns out non-finite.
            if pruning.pruned_at is not None:
                # The run ends FINISHED (its model is real, only stopped early); the name tells it
                # apart in the MLflow UI's runs table, where the status icon cannot.
                return {**params_tag, TRIAL_STATE_TAG: "PRUNED", "pruned": "true",
                        PRUNED_AT_EPOCH_TAG: str(pruning.pruned_at),
                        "mlflow.runName": f"{overrides['tracking.run_name']} (pruned at epoch {pruning.pruned_at})"}
            return {**params_tag, TRIAL_STATE_TAG: "COMPLETE"}

        try:
            child = ChildRun(s.parent_run_id, sink=self.sink, final_tags=final_tags,
                             on_run_created=lambda run_id: trial.set_user_attr(RUN_ID_ATTR, run_id))
            result = run(s.sweep.base_data, tracking_uri=s.tracking_uri, experiment=s.experiment, callbacks=[pruning],
                         progress=False, tags=tags, log_model="folder", log_plots=False, overrides=overrides,
                         child=child)
        except BaseException as exc:
            self._mark_failed_run(trial, exc)
            raise
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at epoch {pruning.pruned_at} ({s.metric}={pruning.last_value:.4g})")
        value = self._objective_value(result)
        if not math.isfinite(value):
            failed = {**params_tag, TRIAL_STATE_TAG: "FAIL", ERROR_TAG: f"objective {s.metric} is {value}"}
            self._update_run(result.run_id, failed, status="FAILED")
            raise TrainingDivergedError(f"trial {trial.number}: the objective {s.metric} is {value}")
        return value

    def _objective_value(self, result) -> float:
        """The trained model's value of the objective on the validation split (``final_val_*``)."""
        return float(result.val_metrics[f"final_{self.setup.metric}"])

    def _update_run(self, run_id: str, tags: dict[str, str], status: str | None = None) -> None:
        from mlflow.entities import RunTag

        self.sink.flush()  # the run's queued records (its FINISHED end among them) first, so this one stays
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        if status:
            self.client.set_terminated(run_id, status=status)

    def _mark_failed_run(self, trial: optuna.Trial, exc: BaseException) -> None:
        """The runner ended the run FAILED (or KILLED on Ctrl-C): tag it (the trial holds its id)."""
        try:
            run_id = trial.user_attrs.get(RUN_ID_ATTR)  # recorded when the run was created
            if run_id is None:
                return  # failed before a run existed (nothing to mark in MLflow)
            tags: dict[str, Any] = {TRIAL_STATE_TAG: "FAIL", TRIAL_PARAMS_TAG: json.dumps(trial.params)[:5000]}
            interrupted = isinstance(exc, KeyboardInterrupt)
            if interrupted:
                tags[ERROR_TAG] = "interrupted: the sweep was stopped while this trial trained"
            self._update_run(run_id, tags, status="FAILED" if interrupted else None)
        except Exception as err:  # noqa: BLE001 - the trial's own error matters more; the coordinator reconciles
            import sys

            print(f"bpexp: could not tag the failed run of trial {trial.number}: {err}", file=sys.stderr)
