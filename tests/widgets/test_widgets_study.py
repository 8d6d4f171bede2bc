"""StudyView / StudyController over a real Optuna study whose trials link to real MLflow runs."""

from __future__ import annotations

import pytest
from widget_stores import log_run, params

from bpexp.errors import InvalidInputError
from bpexp.widgets import StudyController, StudyView
from bpexp.widgets.trials import PLOTS


@pytest.fixture
def study(mlflow_sqlite_uri, client):
    """A 6-trial study (one pruned, one failed) in memory; each trial's run is in the MLflow store."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = client.create_experiment("toy-sweep")
    s = optuna.create_study(study_name="toy", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        lr = trial.suggest_float("optimizer.lr", 1e-4, 1e-1, log=True)
        hidden = trial.suggest_categorical("model.hidden", ["[32]", "[64, 32]"])
        state = {3: "PRUNED", 4: "FAIL"}.get(trial.number, "COMPLETE")
        best = 0.8 + lr
        run_id = log_run(client, exp, f"trial-{trial.number}", params(hidden=hidden, lr=lr), best=best,
                         tags={"bpexp.study": "toy", "bpexp.trial_number": str(trial.number),
                               "bpexp.trial_state": state})
        trial.set_user_attr("mlflow_run_id", run_id)
        for epoch in range(1, 6):
            trial.report(best * epoch / 5, epoch)
        if state == "PRUNED":
            raise optuna.TrialPruned()
        if state == "FAIL":
            raise RuntimeError("diverged")
        return best

    s.optimize(objective, n_trials=6, catch=(RuntimeError,))
    return s, mlflow_sqlite_uri


def test_trials_table_links_runs(study):
    s, uri = study
    c = StudyController(s, tracking_uri=uri)
    t = c.table()
    assert t.sort_key == "value" and t.descending and t.total == 6
    best = s.best_trial
    assert c.best_id == str(best.number) and t.ids[0] == str(best.number)
    titles = [col.title for col in t.columns]
    assert titles[:3] == ["trial", "state", "value"] and {"optimizer.lr", "model.hidden", "run id"} <= set(titles)
    states = {r.id: r.values["state"] for r in t.records}
    assert states["3"] == "pruned" and states["4"] == "fail"
    assert c.run_id(best.number) == best.user_attrs["mlflow_run_id"]
    assert t.records[0].values["run"] == best.user_attrs["mlflow_run_id"][:8]
    assert c.table(param="model.hidden", value="[32]").total == 6
    with pytest.raises(InvalidInputError, match="study 'toy' has no trial 99"):
        c.run_id(99)


def test_accepts_a_sweep_result_with_its_tracking_uri(study):
    s, uri = study

    class SweepResult:  # the shape of bpexp.sweep()'s result that the view relies on
        study, tracking_uri = s, uri

    c = StudyController(SweepResult())
    assert c.name == "toy" and c.tracking_uri == uri
    with pytest.raises(InvalidInputError, match="expected an optuna Study or a sweep result, got int"):
        StudyController(3)


@pytest.mark.slow
def test_view_draws_each_plot_when_its_tab_opens(study):
    s, uri = study
    v = StudyView(s, tracking_uri=uri)
    assert repr(v) == "StudyView(study='toy', trials=6)"
    assert "6 trials (4 complete, 1 fail, 1 pruned)" in v.summary.value
    names = list(PLOTS)
    assert bytes(v.images[names[0]].value).startswith(b"\x89PNG")
    assert all(v.images[n].value == b"" for n in names[1:])  # drawn lazily
    for i, name in enumerate(names):
        v.tabs.selected_index = i
        assert bytes(v.images[name].value).startswith(b"\x89PNG"), (name, v.notes[name].value)
    assert v.tabs.titles[-1] == "trials"


def test_selecting_trials_draws_their_runs_curves(study):
    s, uri = study
    v = StudyView(s, tracking_uri=uri)
    v.tabs.selected_index = len(PLOTS)
    v.trials.rows.value = ("0", "3")
    assert bytes(v.curves.value).startswith(b"\x89PNG") and v.curves.layout.display is None
    fig = v.controller.curve_figure(["0", "3"])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["trial-0", "trial-3"]
    v.trials.rows.value = ()
    assert v.curves.layout.display == "none"


def test_trials_without_runs_in_the_store_are_named(study, tmp_path, mlflow_template_db):
    import services

    s, _ = study
    empty = services.copy_mlflow_db(tmp_path / "empty.db", template=mlflow_template_db)
    v = StudyView(s, tracking_uri=empty)
    v.trials.rows.value = ("1",)
    assert "no MLflow run found" in v.curves_note.value and v.curves.layout.display == "none"


def test_a_study_without_finished_trials_explains_its_plots(mlflow_sqlite_uri):
    import optuna

    v = StudyView(optuna.create_study(study_name="empty"), tracking_uri=mlflow_sqlite_uri)
    name = list(PLOTS)[0]
    assert v.images[name].layout.display == "none"
    assert "optimization history" in v.notes[name].value and "empty" in v.notes[name].value
    assert v.controller.table().records == [] and "0 trials" in v.summary.value
    with pytest.raises(InvalidInputError, match="unknown plot 'nope'"):
        v.controller.plot_png("nope")
