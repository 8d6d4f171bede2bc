"""Reading runs back: search, best-first sorting, the runs table shown by ``bpexp runs``."""

from __future__ import annotations

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
