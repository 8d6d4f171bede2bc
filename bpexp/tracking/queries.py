"""Reading runs back: search, best-first sorting, the runs table shown by ``bpexp runs``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bpexp.errors import InvalidInputError
from bpexp.metrics import HIGHER_IS_BETTER
from bpexp.tracking.tags import PRUNED_AT_EPOCH_TAG, ROLE_TAG, TRIAL_NUMBER_TAG, TRIAL_STATE_TAG

#: Params shown in run tables (column title per param), in this order, when the runs have them.
KEY_PARAMS = {"model.hidden": "hidden", "model.activation": "activation", "model.dropout": "dropout",
              "optimizer.name": "optimizer", "optimizer.lr": "lr", "training.batch_size": "batch"}
#: Metrics a run table tries to show, in this order.
KEY_METRICS = ("test_accuracy", "test_f1", "test_r2", "test_mae", "final_val_accuracy", "final_val_r2", "best_epoch")
#: Default sort metrics, first one the runs have wins.
DEFAULT_SORT = ("test_accuracy", "test_r2", "final_val_accuracy", "final_val_r2", "val_accuracy", "val_r2")


def higher_is_better(metric: str) -> bool:
    """Direction of a metric from its base name (``test_accuracy`` -> accuracy -> True)."""
    for name, higher in HIGHER_IS_BETTER.items():
        if metric == name or metric.endswith("_" + name):
            return higher
    return False


def experiment_ids(client, names: list[str] | None) -> list[str]:
    """Ids of the named experiments (all active ones when ``names`` is empty)."""
    if not names:
        return [e.experiment_id for e in client.search_experiments()]
    ids = []
    for name in names:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            known = sorted(e.name for e in client.search_experiments())
            raise InvalidInputError(f"no experiment named {name!r}; known experiments: {known}")
        ids.append(exp.experiment_id)
    return ids


def search_runs(client, names: list[str] | None = None, filter_string: str = "", max_results: int = 5000):
    """All runs of the experiments, newest first."""
    return client.search_runs(experiment_ids(client, names), filter_string=filter_string,
                              max_results=max_results, order_by=["attributes.start_time DESC"])


def sort_runs(runs, metric: str | None, higher: bool | None = None):
    """Runs that have ``metric`` best first, then the runs that lack it.

    ``higher`` overrides the direction read from the metric's name (a sweep's
    objective direction).
    """
    if metric is None:
        return list(runs)
    higher = higher_is_better(metric) if higher is None else higher
    have = [r for r in runs if metric in r.data.metrics]
    lack = [r for r in runs if metric not in r.data.metrics]
    have.sort(key=lambda r: r.data.metrics[metric], reverse=higher)
    return have + lack


def default_sort_metric(runs) -> str | None:
    present = {k for r in runs for k in r.data.metrics}
    return next((m for m in DEFAULT_SORT if m in present), None)


def sweep_objective(runs) -> tuple[str, bool] | None:
    """``(metric, higher_is_better)`` of the sweep the listed runs belong to, if they are one sweep's.

    The sweep's parent run (tag ``bpexp.role=sweep``) records ``objective.metric``
    and ``objective.direction``; its trials log the objective as ``final_<metric>``.
    Runs of several sweeps with different objectives give None.
    """
    objectives = {(r.data.params.get("objective.metric"), r.data.params.get("objective.direction"))
                  for r in runs if r.data.tags.get(ROLE_TAG) == "sweep"}
    if len(objectives) != 1:
        return None
    metric, direction = objectives.pop()
    if not metric:
        return None
    names = {k for r in runs for k in r.data.metrics}
    found = next((m for m in (f"final_{metric}", metric) if m in names), None)
    if found is None:
        return None
    return found, (direction == "maximize") if direction in ("maximize", "minimize") else higher_is_better(found)


@dataclass
class RunsTable:
    """A run table: ``rows`` of display strings, ``records`` of full values (for CSV/JSON)."""

    columns: list[str]
    rows: list[list[str]]
    sort_metric: str | None
    records: list[dict] | None = None

    def render(self) -> str:
        """Plain-text table with aligned columns."""
        cells = [self.columns, *self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_json(self) -> str:
        """The records as a JSON list: full run ids, parameter strings as logged, metrics unrounded."""
        import json

        return json.dumps(self.records or [], indent=2)

    def to_csv(self) -> str:
        """The records as CSV with a header row (full values)."""
        import csv
        import io

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.record_fields(), lineterminator="\n")
        writer.writeheader()
        for rec in self.records or []:
            writer.writerow({k: "" if v is None else v for k, v in rec.items()})
        return out.getvalue()

    def record_fields(self) -> list[str]:
        return list(self.records[0]) if self.records else ["run_id"]


#: Params that are bookkeeping, not training settings (never a column).
_NOT_SHOWN = ("objective.", "sampler", "pruner", "max_epochs", "space.", "fixed.", "tracking.")
MAX_PARAM_COLUMNS = 8


def shown_params(runs) -> list[str]:
    """The params whose value differs between ``runs`` (the swept ones), key params first.

    Constant params say nothing about why one run beats another and are hidden;
    when nothing varies (a single run), the key params are shown instead.
    """
    runs = [r for r in runs if r.data.tags.get(ROLE_TAG) != "sweep"]
    names = sorted({k for r in runs for k in r.data.params if not k.startswith(_NOT_SHOWN)})
    varying = [n for n in names if len({r.data.params.get(n) for r in runs}) > 1]
    if not varying:
        return [p for p in KEY_PARAMS if any(p in r.data.params for r in runs)]
    ordered = [p for p in KEY_PARAMS if p in varying] + [p for p in varying if p not in KEY_PARAMS]
    return ordered[:MAX_PARAM_COLUMNS]


def run_state(run) -> str:
    """A trial's state (complete, pruned, fail, running) or the run's status (finished, failed...)."""
    if run.data.tags.get(ROLE_TAG) == "sweep":
        return "sweep"
    return run.data.tags.get(TRIAL_STATE_TAG, run.info.status).lower()


def runs_table(runs, sort: str | None = None, limit: int | None = None) -> RunsTable:
    """Run, name, trial and state, the swept params and final metrics, best first.

    The default order is a sweep's own objective (and direction) when the runs
    are one sweep's, else ``test_accuracy``/``test_r2``...; ``sort`` overrides it.
    """
    higher = None
    if sort is None:
        objective = sweep_objective(runs)
        sort, higher = objective if objective else (default_sort_metric(runs), None)
    runs = sort_runs(runs, sort, higher)[:limit]
    params = shown_params(runs)
    metrics = [m for m in dict.fromkeys([*([sort] if sort else []), *KEY_METRICS])
               if any(m in r.data.metrics for r in runs)]
    with_trials = any(TRIAL_NUMBER_TAG in r.data.tags for r in runs)
    columns = ["run", "name", *(["trial"] if with_trials else []), "state",
               *[KEY_PARAMS.get(p, p) for p in params], *metrics]
    rows, records = [], []
    for r in runs:
        trial = r.data.tags.get(TRIAL_NUMBER_TAG, "")
        row = [r.info.run_id[:8], r.info.run_name or "", *([trial] if with_trials else []), run_state(r)]
        row += [_fmt_param(r.data.params.get(p, "")) for p in params]
        row += [_fmt(r.data.metrics.get(m)) for m in metrics]
        rows.append(row)
        record = {"run_id": r.info.run_id, "name": r.info.run_name or "", "experiment_id": r.info.experiment_id}
        if with_trials:
            record["trial"] = int(trial) if trial.isdigit() else None
        record["state"] = run_state(r)
        if with_trials:
            pruned_at = r.data.tags.get(PRUNED_AT_EPOCH_TAG, "")
            record["pruned_at_epoch"] = int(pruned_at) if pruned_at.isdigit() else None
        record.update({p: r.data.params.get(p) for p in params})
        record.update({m: r.data.metrics.get(m) for m in metrics})
        records.append(record)
    return RunsTable(columns, rows, sort, records)


def _fmt(value) -> str:
    """A metric for the table: 4 significant digits (full values are in --format json/csv)."""
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def _fmt_param(text: str) -> str:
    """A logged param for the table: long floats (a sampled learning rate) to 4 significant digits."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    if value.is_integer() or len(text) <= 7:
        return text
    return f"{value:.4g}"


#: Shortest run id prefix accepted (``bpexp runs`` shows 8 characters).
MIN_RUN_ID_PREFIX = 6
_FULL_RUN_ID = re.compile(r"[0-9a-f]{32}")


def resolve_run_id(client, run_id: str) -> str | None:
    """The full id of the run whose id is, or starts with, ``run_id``; None when no run matches.

    Full 32-character ids are returned as given (the caller's ``get_run`` says if it
    does not exist). A prefix must have at least :data:`MIN_RUN_ID_PREFIX` characters
    and match exactly one run of the store's active experiments.

    Raises
    ------
    InvalidInputError
        The prefix is too short, not hexadecimal, or matches several runs (the message
        lists them).
    """
    text = str(run_id or "").strip().lower()
    if _FULL_RUN_ID.fullmatch(text):
        return text
    if not re.fullmatch(r"[0-9a-f]+", text):
        raise InvalidInputError(f"{run_id!r} is not a run id (run ids are 32 hexadecimal characters; a unique "
                                f"prefix of {MIN_RUN_ID_PREFIX} or more, as bpexp runs shows, works too)")
    if len(text) < MIN_RUN_ID_PREFIX:
        raise InvalidInputError(f"run id prefix {run_id!r} is too short: give at least {MIN_RUN_ID_PREFIX} "
                                f"characters (bpexp runs shows 8)")
    ids = experiment_ids(client, None)
    if not ids:
        return None
    matches = client.search_runs(ids, filter_string=f"attributes.run_id LIKE '{text}%'", max_results=20)
    if not matches:
        return None
    if len(matches) > 1:
        shown = "; ".join(f"{r.info.run_id} ({r.info.run_name or 'unnamed'})" for r in matches[:10])
        raise InvalidInputError(f"run id prefix {run_id!r} matches {len(matches)} runs: {shown}; "
                                f"give more characters")
    return matches[0].info.run_id
