"""Reading runs back: search, best-first sorting, the runs table shown by ``bpexp runs``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bpexp.errors import InvalidInputError
from bpexp.metrics import HIGHER_IS_BETTER

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


def sort_runs(runs, metric: str | None):
    """Runs that have ``metric`` best first, then the runs that lack it."""
    if metric is None:
        return list(runs)
    have = [r for r in runs if metric in r.data.metrics]
    lack = [r for r in runs if metric not in r.data.metrics]
    have.sort(key=lambda r: r.data.metrics[metric], reverse=higher_is_better(metric))
    return have + lack


def default_sort_metric(runs) -> str | None:
    present = {k for r in runs for k in r.data.metrics}
    return next((m for m in DEFAULT_SORT if m in present), None)


@dataclass
class RunsTable:
    columns: list[str]
    rows: list[list[str]]
    sort_metric: str | None

    def render(self) -> str:
        """Plain-text table with aligned columns."""
        cells = [self.columns, *self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def runs_table(runs, sort: str | None = None, limit: int | None = None) -> RunsTable:
    """Run name, status, key params and final metrics, best first by ``sort``."""
    sort = sort or default_sort_metric(runs)
    runs = sort_runs(runs, sort)[:limit]
    params = [p for p in KEY_PARAMS if any(p in r.data.params for r in runs)]
    metrics = [m for m in dict.fromkeys([*([sort] if sort else []), *KEY_METRICS]) if any(m in r.data.metrics
                                                                                         for r in runs)]
    columns = ["run", "name", "status", *[KEY_PARAMS[p] for p in params], *metrics]
    rows = []
    for r in runs:
        row = [r.info.run_id[:8], r.info.run_name or "", r.info.status.lower()]
        row += [r.data.params.get(p, "") for p in params]
        row += [_fmt(r.data.metrics.get(m)) for m in metrics]
        rows.append(row)
    return RunsTable(columns, rows, sort)


def _fmt(value) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4f}"


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
