"""Picking the best run by a metric: among an experiment's finished runs or a study's complete trials.

Sweep trials are child runs tagged ``bpexp.study`` (the study name),
``bpexp.trial_number`` and ``bpexp.trial_state`` (COMPLETE, PRUNED or FAIL). A
pruned trial stopped early and its metrics describe a half-trained model, so
only COMPLETE trials are candidates, and sweep parent runs (which hold no model)
never are.
"""

from __future__ import annotations

import math

from bpexp.errors import InvalidInputError
from bpexp.export.errors import RunNotFoundError
from bpexp.tracking.tags import ROLE_TAG, STUDY_TAG, TRIAL_NUMBER_TAG, TRIAL_STATE_TAG

PARENT_TAG = "mlflow.parentRunId"


def _quote(value: str) -> str:
    """A string literal for an MLflow search filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def metric_direction(metric: str, direction: str | None = None) -> tuple[bool, str]:
    """``(higher_is_better, explanation)`` for ``metric``; ``direction`` ("max"/"min") overrides."""
    from bpexp.metrics import HIGHER_IS_BETTER
    from bpexp.tracking.queries import higher_is_better

    if direction is not None:
        if direction not in ("max", "min"):
            raise InvalidInputError(f"direction must be 'max' or 'min', got {direction!r}")
        return direction == "max", f"{'higher' if direction == 'max' else 'lower'} is better, as asked"
    known = any(metric == n or metric.endswith("_" + n) for n in HIGHER_IS_BETTER)
    higher = higher_is_better(metric)
    word = "higher" if higher else "lower"
    if known:
        return higher, f"{word} is better for {metric}"
    return higher, f"{word} is better (assumed: {metric!r} is not a metric bpexp knows; pass a direction to change)"


def _candidates(client, experiment: str | None, study: str | None):
    """``(runs, scope description, notes about what was left out)``."""
    from bpexp.tracking.queries import experiment_ids

    ids = experiment_ids(client, [experiment] if experiment else None)
    where = f"experiment {experiment!r}" if experiment else "all experiments"
    if not ids:
        raise RunNotFoundError(f"the tracking store has no experiments ({where})")
    if study:
        runs = _search(client, ids, f"tags.`{STUDY_TAG}` = {_quote(study)}")
        trials = [r for r in runs if TRIAL_STATE_TAG in r.data.tags or TRIAL_NUMBER_TAG in r.data.tags]
        if not trials:
            known = sorted({r.data.tags[STUDY_TAG] for r in _search(client, ids, f"tags.`{STUDY_TAG}` != ''")})
            raise RunNotFoundError(
                f"study {study!r} has no trial runs in {where} (studies found: {known or 'none'}); "
                f"run  bpexp sweep ... --study-name {study}  first"
            )
        states: dict[str, int] = {}
        for r in trials:
            state = r.data.tags.get(TRIAL_STATE_TAG, "RUNNING")
            states[state] = states.get(state, 0) + 1
        complete = [r for r in trials if r.data.tags.get(TRIAL_STATE_TAG) == "COMPLETE"]
        if not complete:
            raise RunNotFoundError(
                f"study {study!r} has {len(trials)} trial run(s) but no COMPLETE trial "
                f"({', '.join(f'{n} {s}' for s, n in sorted(states.items()))}); nothing to pick from"
            )
        others = {s: n for s, n in states.items() if s != "COMPLETE"}
        notes = [f"{n} {s.lower()} trial(s) ignored" for s, n in sorted(others.items())]
        return complete, f"COMPLETE trials of study {study!r}", notes
    runs = _search(client, ids, "attributes.status = 'FINISHED'")
    if not runs:
        raise RunNotFoundError(f"no finished runs in {where}")
    parents = {r.data.tags[PARENT_TAG] for r in runs if PARENT_TAG in r.data.tags}
    kept = [r for r in runs if r.info.run_id not in parents and r.data.tags.get(ROLE_TAG) != "sweep"
            and r.data.tags.get(TRIAL_STATE_TAG, "COMPLETE") == "COMPLETE"]
    notes = []
    if len(kept) < len(runs):
        notes.append(f"{len(runs) - len(kept)} sweep parent or pruned/failed trial run(s) ignored")
    return kept, f"finished runs in {where}", notes


def _search(client, ids, filter_string):
    return client.search_runs(ids, filter_string=filter_string, max_results=50000,
                              order_by=["attributes.start_time DESC"])


def _age_key(run):
    """Oldest first: trial number for sweep trials, else start time."""
    number = run.data.tags.get(TRIAL_NUMBER_TAG)
    return (0, int(number), 0) if number is not None and number.isdigit() else (1, 0, run.info.start_time or 0)


def pick_best(runs, metric: str, higher: bool):
    """The best run of ``runs`` by ``metric`` (finite values only): ``(run, n_with_metric, n_tied)``.

    Ties go to the earliest run (the lowest trial number in a study), as Optuna's
    ``best_trial`` does, so ``bpexp export --best`` and the sweep summary agree.
    """
    have = sorted((r for r in runs if metric in r.data.metrics and math.isfinite(r.data.metrics[metric])),
                  key=_age_key)
    if not have:
        return None, 0, 0
    pick = (max if higher else min)(have, key=lambda r: r.data.metrics[metric])  # first of equals: the earliest
    tied = sum(r.data.metrics[metric] == pick.data.metrics[metric] for r in have)
    return pick, len(have), tied


def _refuse_several_experiments(client, runs, metric: str) -> None:
    """Ranking runs of different experiments (a digits model against an xor one) is never what was meant."""
    counts: dict[str, int] = {}
    for r in runs:
        if metric in r.data.metrics and math.isfinite(r.data.metrics[metric]):
            counts[r.info.experiment_id] = counts.get(r.info.experiment_id, 0) + 1
    if len(counts) < 2:
        return
    names = {e.experiment_id: e.name for e in client.search_experiments()}
    listed = ", ".join(f"{names.get(i, i)!r} ({n} run{'s' if n != 1 else ''})"
                       for i, n in sorted(counts.items(), key=lambda kv: names.get(kv[0], kv[0])))
    raise InvalidInputError(
        f"runs with {metric} are in {len(counts)} experiments: {listed}; say which with --experiment NAME "
        f"(or --study NAME for a sweep)"
    )


def pick_best_run(metric: str, *, experiment: str | None = None, study: str | None = None,
                  tracking_uri: str | None = None, direction: str | None = None):
    """The best run by ``metric``, and a sentence saying which and why.

    Parameters
    ----------
    metric : str
        A metric the runs logged, e.g. ``test_accuracy``, ``final_val_f1``, ``test_mae``.
    experiment : str, optional
        Only this experiment's runs. Without it (and without ``study``), the runs
        having ``metric`` must all belong to one experiment.
    study : str, optional
        Only the COMPLETE trials of this sweep study (tag ``bpexp.study``).
    tracking_uri : str, optional
        Default: ``$MLFLOW_TRACKING_URI``, else the project's ``mlruns/`` store.
    direction : {"max", "min"}, optional
        Overrides the metric's known direction (accuracy, f1, r2: higher is
        better; loss, mse, mae, log_loss: lower).

    Returns
    -------
    (mlflow.entities.Run, str)

    Raises
    ------
    RunNotFoundError
        No candidates, or none has the metric (the message lists the metrics they have).
    InvalidInputError
        Unknown experiment name or direction; no experiment or study given while
        runs of several experiments have the metric (the message lists them).
    """
    from bpexp.tracking import connect, resolve_tracking_uri

    metric = (metric or "").strip()
    if not metric:
        raise InvalidInputError("which metric? e.g. --best test_accuracy")
    higher, why = metric_direction(metric, direction)
    client = connect(resolve_tracking_uri(tracking_uri))
    runs, scope, notes = _candidates(client, experiment, study)
    if not experiment and not study:
        _refuse_several_experiments(client, runs, metric)
    best, n_have, n_tied = pick_best(runs, metric, higher)
    if best is None:
        known = sorted({k for r in runs for k in r.data.metrics if not k.startswith(("grad_", "weight_"))})
        raise RunNotFoundError(
            f"none of the {len(runs)} {scope} has the metric {metric!r}; metrics they have: {known}"
        )
    if n_have < len(runs):
        notes.append(f"{len(runs) - n_have} without {metric} skipped")
    if n_tied > 1:
        notes.append(f"{n_tied} tie at that value; the earliest wins")
    name = f" ({best.info.run_name})" if best.info.run_name else ""
    trial = best.data.tags.get(TRIAL_NUMBER_TAG)
    trial_text = f", trial {trial}" if study and trial is not None else ""
    value = best.data.metrics[metric]
    reason = (f"picked run {best.info.run_id}{name}{trial_text}: {metric} = {value:.6g}, the "
              f"{'highest' if higher else 'lowest'} ({why}) among {n_have} {scope}")
    if notes:
        reason += f" ({'; '.join(notes)})"
    return best, reason
