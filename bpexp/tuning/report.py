"""The end of a sweep: make MLflow agree with Optuna, summarize on the parent run, log plots and the best model.

Agreements (see also :mod:`bpexp.tuning.objective`):

- the parent run carries ``bpexp.study``, the metric ``best_value`` (and
  ``best_trial_number``, trial counts, ``total_epochs``), tags ``best.<param>``
  and ``bpexp.best_run_id``, and the study plots as PNGs under ``plots/``;
- the best COMPLETE trial's run gets an MLflow pyfunc model (artifact ``model``)
  and the tag ``bpexp.model_uri``.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from bpexp.tracking.tags import (
    BEST_RUN_ID_TAG,
    BEST_TRIAL_TAG,
    ERROR_TAG,
    MODEL_URI_TAG,
    SKIPPED_PLOTS_TAG,
    TRIAL_NUMBER_TAG,
    TRIAL_STATE_TAG,
)
from bpexp.tuning.objective import RUN_ID_ATTR, study_filter

PLOTS = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "intermediate_values": "plot_intermediate_values",
    "parallel_coordinate": "plot_parallel_coordinate",
}


def study_runs(client, setup) -> dict[int, list]:
    """Trial number -> the MLflow runs of that trial (there should be exactly one each)."""
    by_number: dict[int, list] = {}
    token = None
    while True:
        page = client.search_runs([setup.experiment_id], filter_string=study_filter(setup.study_name,
                                                                                    setup.parent_run_id),
                                  max_results=1000, page_token=token)
        for run in page:
            number = run.data.tags.get(TRIAL_NUMBER_TAG)
            if number is not None:
                by_number.setdefault(int(number), []).append(run)
        token = page.token
        if not token:
            return by_number


def reconcile(study: optuna.Study, client, setup) -> list[str]:
    """End runs whose trial is over but whose run is not, and align ``bpexp.trial_state`` tags.

    A trial whose worker was killed (SIGKILL, a lost machine) is failed by the
    heartbeat in Optuna, but its MLflow run would stay RUNNING forever: this
    ends it FAILED. Returns what it changed, one line each.
    """
    from mlflow.entities import RunTag

    notes = []
    runs = study_runs(client, setup)
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.RUNNING, TrialState.WAITING):
            continue
        for run in runs.get(trial.number, []):
            state = trial.state.name
            tags = {}
            if run.data.tags.get(TRIAL_STATE_TAG) != state:
                tags[TRIAL_STATE_TAG] = state
            if run.info.status == "RUNNING":
                tags[ERROR_TAG] = f"the trial ended {state} while its run was still open (worker stopped or killed)"
            if tags:
                client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, status="FAILED" if state == "FAIL" else "FINISHED")
                notes.append(f"trial {trial.number}: its run {run.info.run_id} was still RUNNING; ended it")
    return notes


def epochs_trained(trials) -> int:
    """Epochs trained by the given trials (their last reported step)."""
    return sum(max(t.intermediate_values) for t in trials if t.intermediate_values)


def best_complete_trial(study: optuna.Study):
    """The best COMPLETE trial, or None (pruned trials' values are intermediate: never picked)."""
    try:
        return study.best_trial
    except ValueError:
        return None


def summarize_parent(study: optuna.Study, client, parent_run_id: str) -> None:
    """Best value, params and counts on the parent run (tags for params: they change as the study grows)."""
    from mlflow.entities import Metric, RunTag

    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    now = int(time.time() * 1000)
    step = len(trials)
    metrics = {"n_trials": len(trials), "n_complete": counts[TrialState.COMPLETE],
               "n_pruned": counts[TrialState.PRUNED], "n_failed": counts[TrialState.FAIL],
               "total_epochs": epochs_trained(trials)}
    tags = {}
    best = best_complete_trial(study)
    if best is not None:
        metrics.update(best_value=best.value, best_trial_number=best.number)
        tags.update({f"best.{k}": str(v) for k, v in best.params.items()})
        tags[BEST_TRIAL_TAG] = str(best.number)
        if best.user_attrs.get(RUN_ID_ATTR):
            tags[BEST_RUN_ID_TAG] = best.user_attrs[RUN_ID_ATTR]
    client.log_batch(parent_run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])


def log_best_model(study: optuna.Study, client, setup) -> str | None:
    """Log the best complete trial's model as an MLflow pyfunc model on its own run; return the model URI.

    Trials log only the cheap native model folder (``bpexp_model``); the pyfunc
    model (signature, input example, code) is built once, for the winner.
    """
    import mlflow

    from bpexp.nn.serialization import load_model_folder
    from bpexp.runner import load_data
    from bpexp.tracking.model import input_example, log_pyfunc_model

    best = best_complete_trial(study)
    run_id = best.user_attrs.get(RUN_ID_ATTR) if best is not None else None
    if run_id is None:
        return None
    run = client.get_run(run_id)
    if run.data.tags.get(MODEL_URI_TAG):
        return run.data.tags[MODEL_URI_TAG]
    with tempfile.TemporaryDirectory() as tmp:
        folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="bpexp_model", dst_path=tmp,
                                                     tracking_uri=setup.tracking_uri)
        model = load_model_folder(folder)
    dataset, parts = load_data(setup.sweep.base, Path.cwd())
    X = parts.X_test if len(parts.y_test) else parts.X_val
    uri = log_pyfunc_model(setup.tracking_uri, run_id, model, input_example(model, X, dataset.feature_names))
    client.set_tag(run_id, MODEL_URI_TAG, uri)
    return uri


def prepare_plots() -> None:
    """Import what :func:`log_study_plots` needs most: Optuna's fANOVA importances, which load
    scikit-learn's forests and SciPy (~2.5 s, measured; nothing else in a sweep imports
    scikit-learn). A coordinator does this while its last workers finish their trials, when its
    core would otherwise wait."""
    import optuna.importance  # noqa: F401


def log_study_plots(study: optuna.Study, client, parent_run_id: str) -> tuple[list[str], dict[str, str]]:
    """Log the four study plots as PNGs on the parent run; return (logged files, {plot: why skipped})."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")  # no display needed; never open windows from a CLI
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    from bpexp.tuning.plot_layout import tidy_figure

    logged, skipped = [], {}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    params = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
    for name, func in PLOTS.items():
        if name == "param_importances" and len(complete) < 2:
            skipped[name] = f"needs at least 2 complete trials, the study has {len(complete)}"
            continue
        if name == "intermediate_values" and not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            skipped[name] = "no trial reported intermediate values"
            continue
        try:
            # rc_context: Optuna switches matplotlib's global style (ggplot) when it plots; keep
            # that from greying every later figure of the process (a notebook's, say).
            with warnings.catch_warnings(), matplotlib.rc_context():
                # Optuna warns ExperimentalWarning on every matplotlib plot, matplotlib that a
                # long parallel-coordinates legend does not fit a tight layout: neither helps anyone.
                warnings.simplefilter("ignore")
                figure = _figure_of(getattr(ovm, func)(study))
                if not any(ax.has_data() for ax in figure.axes):
                    skipped[name] = "nothing to draw yet"
                    plt.close(figure)
                    continue
                tidy_figure(figure, name, params)  # short names, no 80-entry legend, labels inside the canvas
                artifact = f"plots/{name}.png"
                try:
                    client.log_figure(parent_run_id, figure, artifact)
                finally:
                    plt.close(figure)
            logged.append(artifact)
        except Exception as exc:  # noqa: BLE001 - a plot Optuna cannot draw is reported, not fatal
            skipped[name] = f"{type(exc).__name__}: {exc}"
            plt.close("all")
    if skipped:
        client.set_tag(parent_run_id, SKIPPED_PLOTS_TAG, json.dumps(skipped)[:5000])
    return logged, skipped


def _figure_of(axes):
    if hasattr(axes, "figure"):
        return axes.figure
    return axes.flat[0].figure  # an array of Axes (e.g. several importance panels)


# ------------------------------------------------------------------------------ the terminal summary
def _fmt_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def _fmt_params(params: dict) -> str:
    short = {k.split(".")[-1]: v for k, v in params.items()}
    return " ".join(f"{k}={_fmt_value(v)}" for k, v in short.items())


def top_trials_table(study: optuna.Study, top: int = 10) -> str:
    """The best COMPLETE trials, best first: number, state, value, params, run id."""
    from bpexp.tracking.queries import RunsTable

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete.sort(key=lambda t: t.value, reverse=reverse)
    rows = [[str(t.number), t.state.name, _fmt_value(t.value), _fmt_params(t.params), t.user_attrs.get(RUN_ID_ATTR, "")]
            for t in complete[:top]]
    return RunsTable(["trial", "state", "value", "params", "run id"], rows, None).render()
