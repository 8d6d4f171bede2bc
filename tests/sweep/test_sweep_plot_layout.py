"""The study plots are legible at the size they are logged: every label inside the canvas, short param
names, no legend with one entry per trial, parallel-coordinate labels that do not overlap."""

from __future__ import annotations

import warnings

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402

from bpexp.tuning.plot_layout import MAX_LEGEND_ENTRIES, outside_canvas, short_names, tidy_figure  # noqa: E402
from bpexp.tuning.report import PLOTS, _figure_of  # noqa: E402

N_TRIALS = 30


@pytest.fixture(scope="module")
def study():
    """A study shaped like bpexp's digits sweep: dotted names, a conditional depth, pruned trials."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial):
        lr = trial.suggest_float("optimizer.lr", 1e-4, 3e-2, log=True)
        trial.suggest_float("optimizer.weight_decay", 1e-6, 1e-2, log=True)
        for i in range(trial.suggest_int("n_layers", 1, 3)):
            trial.suggest_int(f"n_units_l{i}", 16, 256, log=True)
        trial.suggest_categorical("model.activation", ["relu", "tanh"])
        trial.suggest_categorical("training.batch_size", [16, 32, 64, 128])
        value = 0.0
        for epoch in range(1, 15):
            value = 1 - 1 / (epoch * lr * 100 + 1)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    s = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                            pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
    s.optimize(objective, n_trials=N_TRIALS)
    return s


def _draw(study, name):
    from optuna.visualization import matplotlib as ovm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _figure_of(getattr(ovm, PLOTS[name])(study))


def _overlaps(labels) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels if t.get_visible() and t.get_text()]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


@pytest.mark.parametrize("name", list(PLOTS))
def test_every_label_is_inside_the_canvas(study, name):
    params = sorted({k for t in study.trials for k in t.params})
    with matplotlib.rc_context():
        figure = _draw(study, name)
        try:
            if name in ("param_importances", "parallel_coordinate", "intermediate_values"):
                assert outside_canvas(figure), "Optuna's own layout clips labels: this test must see it"
            tidy_figure(figure, name, params)
            assert outside_canvas(figure) == []
            texts = {t.get_text() for t in figure.findobj(matplotlib.text.Text)}
            assert not texts & {"optimizer.lr", "optimizer.weight_decay", "training.batch_size"}
            for ax in figure.axes:
                legend = ax.get_legend()
                assert legend is None or len(legend.get_texts()) <= MAX_LEGEND_ENTRIES
            if name == "parallel_coordinate":
                assert _overlaps(figure.axes[0].get_xticklabels()) == []
            if name == "intermediate_values":
                assert f"({N_TRIALS} trials, one line each)" in figure.axes[0].get_title()
        finally:
            plt.close(figure)


def test_short_names_keep_ambiguous_ones_whole():
    assert short_names(["optimizer.lr", "model.hidden", "a.x", "b.x"]) == {
        "optimizer.lr": "lr", "model.hidden": "hidden", "a.x": "a.x", "b.x": "b.x"}
    assert short_names(["data.a_very_long_parameter_name_indeed"])["data.a_very_long_parameter_name_indeed"] \
        == "a_very_long_param…"


def test_widget_plots_are_tidied_too(study):
    from bpexp.widgets.trials import StudyController

    controller = StudyController(study, tracking_uri="sqlite:////nonexistent/never-opened.db")
    figure = controller.plot_figure("parallel coordinates")
    try:
        assert outside_canvas(figure) == []
    finally:
        plt.close(figure)
