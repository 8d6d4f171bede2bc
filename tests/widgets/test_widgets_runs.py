"""RunsController against real sqlite stores: table data, best run, curves, param diff, scale."""

from __future__ import annotations

import time

import pytest
from widget_stores import log_run, params

from bpexp.errors import InvalidInputError
from bpexp.tracking.store import project_dir
from bpexp.widgets.runs import RunsController, resolve_uri


def test_experiment_table_columns_and_best_first(small_store):
    uri, ids = small_store
    c = RunsController(experiment="digits", tracking_uri=uri)
    assert len(c.runs) == 5
    t = c.table()
    titles = [col.title for col in t.columns]
    assert titles[:2] == ["run", "state"]
    assert {"hidden", "lr", "test_acc", "val_acc", "best_epoch", "epochs"} <= set(titles)
    assert t.sort_key == "metric:test_accuracy" and t.descending
    # the running run has no final metrics: it sorts after the finished ones, and is not "best"
    assert [c.label(i) for i in t.ids[:3]] == ["wide", "fast", "base"]
    assert c.best_id == ids["wide"] and c.best_run().info.run_name == "wide"
    states = {r.values["name"]: r.values["state"] for r in t.records}
    assert states["broken"] == "failed" and states["running"] == "running"


def test_params_that_vary_come_first_and_filter_by_value(small_store):
    uri, ids = small_store
    c = RunsController(experiment="digits", tracking_uri=uri)
    param_columns = [col.key for col in c.columns if col.key.startswith("param:")]
    assert param_columns[:2] == ["param:model.hidden", "param:optimizer.lr"]
    assert ("optimizer.lr", "optimizer.lr") in c.filter_params()
    assert ("model.activation", "model.activation") not in c.filter_params()  # the same for all runs
    assert c.param_values("optimizer.lr") == ["0.001", "0.003", "0.01", "1.0"]
    assert set(c.table(param="optimizer.lr", value="0.001").ids) == {ids["base"], ids["wide"]}


def test_study_lists_its_trials_only_and_best_is_a_complete_trial(small_store):
    uri, ids = small_store
    c = RunsController(study="sweep-a", tracking_uri=uri)
    assert {r.info.run_id for r in c.runs} == {ids["trial0"], ids["trial1"], ids["trial2"]}  # no parent, no sweep-b
    assert c.best_id == ids["trial2"]  # the pruned trial scored higher but did not finish
    assert c.sort_metric == "final_val_accuracy"  # the sweep's objective, from its parent run
    t = c.table(sort="trial")
    assert [r.values["trial"] for r in t.records] == [0, 1, 2]
    assert [r.values["state"] for r in t.records] == ["complete", "pruned", "complete"]


def test_explicit_metric_decides_best_and_sort(small_store):
    uri, ids = small_store
    c = RunsController(experiment="digits", tracking_uri=uri, metric="val_loss")
    assert c.table().sort_key == "metric:val_loss" and not c.table().descending
    assert c.best_id == ids["wide"]  # lowest final val_loss among finished runs (12 epochs)


def test_curves_follow_epochs_and_are_cached_for_finished_runs(small_store):
    uri, ids = small_store
    c = RunsController(experiment="digits", tracking_uri=uri)
    curves = c.curves([ids["base"], ids["wide"]])
    assert set(curves) == {"base", "wide"}
    assert curves["wide"]["val_loss__steps"] == list(range(1, 13))
    assert len(curves["base"]["train_loss"]) == 10 and curves["base"]["val_accuracy"][-1] > 0.5
    assert c.curve_panels([ids["base"]]) == [("train_loss", "val_loss"), ("val_accuracy",)]
    calls = []
    original = c.client.get_metric_history
    c.client.get_metric_history = lambda *a: calls.append(a) or original(*a)
    c.curves([ids["base"]])
    assert calls == []  # cached
    c.curves([ids["running"]])
    c.curves([ids["running"]])
    assert len(calls) == 6  # a running run's history is fetched again
    fig = c.curve_figure([ids["base"], ids["wide"]])
    assert [ax.get_title() for ax in fig.axes] == ["train_loss (solid), val_loss (dashed)", "val_accuracy"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["base", "wide"]
    colours = {line.get_color() for line in fig.axes[1].lines}
    assert len(colours) == 2  # one colour per run


def test_unknown_run_ids_are_named(small_store):
    uri, _ = small_store
    c = RunsController(experiment="digits", tracking_uri=uri)
    with pytest.raises(InvalidInputError, match="unknown run ids: \\['nope'\\]"):
        c.curves(["nope"])


def test_param_diff_shows_only_params_that_differ(small_store):
    uri, ids = small_store
    c = RunsController(experiment="digits", tracking_uri=uri)
    diff = c.param_diff([ids["base"], ids["wide"], ids["fast"]])
    assert diff.runs == ["base", "wide", "fast"]
    assert diff.rows == [("model.hidden", ["[64]", "[128, 64]", "[64]"]), ("optimizer.lr", ["0.001", "0.001", "0.01"])]
    assert c.param_diff([ids["base"]]).rows == []
    best = dict(c.best_values([ids["base"], ids["wide"]]))
    assert best["epoch of best val_loss"] == ["10", "12"]
    assert best["best val_accuracy"][1] == "0.9264"  # 0.95 * (1 - exp(-3) / 2)


def test_refresh_pulls_new_runs(small_store, client):
    uri, ids = small_store
    c = RunsController(experiment="digits", tracking_uri=uri)
    exp = client.get_experiment_by_name("digits").experiment_id
    new = log_run(client, exp, "newcomer", params(hidden="[256]"), best=0.99)
    assert new not in c.by_id
    c.refresh()
    assert c.best_id == new and c.table().ids[0] == new


def test_duplicate_run_names_get_a_short_id(small_store, client):
    uri, ids = small_store
    exp = client.get_experiment_by_name("digits").experiment_id
    twin = log_run(client, exp, "base", params(), best=0.5)
    c = RunsController(experiment="digits", tracking_uri=uri)
    assert c.label(twin) == f"base ({twin[:6]})" and c.label(ids["base"]) == f"base ({ids['base'][:6]})"


def test_bad_arguments_are_clear_errors(small_store):
    uri, _ = small_store
    with pytest.raises(InvalidInputError, match="either experiment=... or study=..."):
        RunsController(experiment="digits", study="sweep-a", tracking_uri=uri)
    with pytest.raises(InvalidInputError, match="no experiment named 'nope'.*digits"):
        RunsController(experiment="nope", tracking_uri=uri)
    c = RunsController(study="no-such-study", tracking_uri=uri)
    assert c.runs == [] and c.best_id is None and c.table().records == []


def test_unreachable_store_names_the_uri():
    from bpexp.tracking import TrackingUnavailableError

    with pytest.raises(TrackingUnavailableError, match="127.0.0.1:9"):
        RunsController(tracking_uri="http://127.0.0.1:9")


def test_default_store_is_the_project_one(tmp_path, monkeypatch):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert project_dir() == tmp_path
    assert resolve_uri() == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    assert resolve_uri() == "sqlite:////elsewhere/mlflow.db"
    assert resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.mark.slow
def test_500_runs_stay_fluid(big_store_uri):
    """Loading 500 runs is the store's cost; building, sorting and filtering the table is ours."""
    t0 = time.perf_counter()
    c = RunsController(experiment="big", tracking_uri=big_store_uri)
    loaded = time.perf_counter() - t0
    assert len(c.runs) == 500
    t0 = time.perf_counter()
    for sort in ("metric:test_accuracy", "name", "param:optimizer.lr"):
        c.table(sort=sort)
    c.table(text="run-4")
    c.table(param="model.hidden", value="[64]")
    c.refresh()
    per_op = (time.perf_counter() - t0) / 6
    header, rows = c.table().lines()
    assert len(rows) == 500 and rows[0].startswith("★")
    print(f"500 runs: load {loaded:.2f} s, table ops {per_op * 1000:.0f} ms each (refresh included)")
    assert loaded < 15 and per_op < 5  # generous: a shared 2-core machine; typical 1-2 s and 0.3 s
