"""RunBrowser driven like a user would: set widget values, click buttons, read what it shows."""

from __future__ import annotations

import pytest
from widget_stores import log_run, params

from bpexp.widgets import RunBrowser

PNG = b"\x89PNG"


@pytest.fixture
def browser(small_store):
    uri, ids = small_store
    return RunBrowser(experiment="digits", tracking_uri=uri), ids


def names(b):
    return [b.controller.label(i) for _, i in b.table.rows.options]


def test_one_table_lists_the_runs_best_first_and_highlighted(browser):
    b, ids = browser
    options = b.table.rows.options
    assert len(options) == 5 and options[0][1] == ids["wide"]
    assert options[0][0].startswith("★\u00a0wide")  # non-breaking spaces keep columns aligned in <option>
    assert "nth-child(1)" in b.table.header.value  # the best row's highlight rule
    assert "hidden" in b.table.header.value and "test_acc" in b.table.header.value
    assert "5 runs" in b.table.status.value and "best: <b>wide</b>" in b.table.status.value
    assert repr(b) == "RunBrowser(experiment='digits', runs=5)"
    # nothing selected: no curves, and deploy offers the best run
    assert b.curves.value == b"" and b.curves.layout.display == "none"
    assert b.deploy.run.value == ids["wide"] and "★ best" in b.deploy.run.label


def test_filter_by_text_and_param_value(browser):
    b, ids = browser
    b.table.search.value = "fas"
    assert [i for _, i in b.table.rows.options] == [ids["fast"]]
    assert "1 of 5 runs" in b.table.status.value
    b.table.search.value = ""
    b.table.param.value = "optimizer.lr"
    assert b.table.value.options == ("any value", "0.001", "0.003", "0.01", "1.0")
    b.table.value.value = "0.001"
    assert {i for _, i in b.table.rows.options} == {ids["base"], ids["wide"]}
    b.table.param.value = ""  # "filter by param…": no param filter
    assert len(b.table.rows.options) == 5 and b.table.value.disabled


def test_sort_by_any_column_and_direction(browser):
    b, ids = browser
    b.table.sort.value = "name"
    assert not b.table.order.value  # text columns start ascending
    assert names(b) == ["base", "broken", "fast", "running", "wide"]
    b.table.order.value = True
    assert names(b) == ["wide", "running", "fast", "broken", "base"]
    b.table.sort.value = "param:optimizer.lr"
    assert names(b)[-1] == "broken"  # lr 1.0 sorts after 0.01 as a number
    b.table.sort.value = "metric:test_accuracy"
    assert b.table.order.value  # metrics start best first
    assert "nth-child(1)" in b.table.header.value


def test_selecting_runs_overlays_curves_and_diffs_params(browser):
    b, ids = browser
    b.table.rows.value = (ids["base"], ids["wide"])
    assert b.selected == (ids["base"], ids["wide"])
    assert bytes(b.curves.value).startswith(PNG) and b.curves.layout.display is None
    assert "Params that differ (1)" in b.diff.value and "model.hidden" in b.diff.value
    assert "optimizer.lr" not in b.diff.value  # same lr for both
    assert "best val_accuracy" in b.diff.value
    # the deploy target follows the selection; the best selected run is preselected
    assert [i for _, i in b.deploy.run.options] == [ids["base"], ids["wide"]]
    assert b.deploy.run.value == ids["wide"]
    assert "2 selected" in b.table.status.value


def test_selection_survives_sorting_and_filtering(browser):
    b, ids = browser
    b.select(ids["base"], ids["fast"])
    b.table.sort.value = "name"
    assert set(b.selected) == {ids["base"], ids["fast"]}
    b.table.search.value = "fast"  # hides "base": it stays selected, it is only not shown
    assert b.table.rows.value == (ids["fast"],) and set(b.selected) == {ids["base"], ids["fast"]}
    assert "2 selected (1 hidden by the filter)" in b.table.status.value
    b.table.search.value = ""
    assert set(b.table.rows.value) == {ids["base"], ids["fast"]}
    assert "hidden by the filter" not in b.table.status.value


def test_messages_are_cleared_when_the_table_or_selection_changes(browser):
    b, ids = browser
    b.deploy.name.value = "bad name!"  # refused at once: a message without a slow registry call
    b.deploy.register_button.click()
    assert b.deploy.result.value and not b.deploy.outcome.ok
    b.table.search.value = "a"
    assert b.deploy.result.value == "" and b.deploy.outcome is None
    b.deploy.register_button.click()
    assert b.deploy.result.value
    b.select(ids["base"])
    assert b.deploy.result.value == ""


def test_header_and_rows_scroll_together(browser):
    b, _ = browser
    scroller = b.table.scroller
    assert scroller.children == (b.table.header, b.table.rows) and "bpexp-table-scroll" in scroller._dom_classes
    assert b.table.rows.layout.width == "max-content"  # the list never scrolls sideways on its own
    css = b.table.header.value
    assert ".bpexp-table-scroll { overflow-x: auto; overflow-y: hidden; }" in css
    assert "overflow: hidden" not in css  # the header is not clipped either


def test_refresh_button_pulls_new_runs(browser, client):
    b, ids = browser
    b.select(ids["base"])
    exp = client.get_experiment_by_name("digits").experiment_id
    new = log_run(client, exp, "newcomer", params(hidden="[256]"), best=0.99)
    b.table.refresh_button.click()
    assert len(b.table.rows.options) == 6 and b.table.rows.options[0][1] == new
    assert b.selected == (ids["base"],)
    assert "best: <b>newcomer</b>" in b.table.status.value


def test_study_browser_shows_trials(small_store):
    uri, ids = small_store
    b = RunBrowser(study="sweep-a", tracking_uri=uri)
    assert repr(b) == "RunBrowser(study='sweep-a', runs=3)"
    assert "trial" in b.table.header.value and b.controller.best_id == ids["trial2"]
    assert b.deploy.name.value == "sweep-a"


def test_deploy_errors_are_readable_messages_in_the_panel(browser):
    b, ids = browser
    b.deploy.name.value = "   "
    b.deploy.register_button.click()
    assert b.deploy.outcome.ok is False and "enter a model name" in b.deploy.result.value
    b.deploy.name.value = "digits"
    b.select(ids["base"])  # a fake run: no model was logged to it
    b.deploy.register_button.click()
    o = b.deploy.outcome
    assert o.ok is False and o.message.startswith("Register failed:")
    assert "Traceback" not in b.deploy.result.value and "✘" in b.deploy.result.value
    assert not b.deploy.register_button.disabled  # usable again after a failure


@pytest.mark.slow
def test_500_runs_are_one_fluid_widget(big_store_uri):
    import time

    t0 = time.perf_counter()
    b = RunBrowser(experiment="big", tracking_uri=big_store_uri)
    built = time.perf_counter() - t0
    assert len(b.table.rows.options) == 500  # one list widget, one option per run
    t0 = time.perf_counter()
    b.table.search.value = "run-4"
    b.table.sort.value = "param:optimizer.lr"
    b.table.param.value = "model.hidden"
    b.table.value.value = "[64]"
    b.select([i for _, i in b.table.rows.options][:3])
    per_action = (time.perf_counter() - t0) / 5
    assert len(b.selected) == 3 and bytes(b.curves.value).startswith(PNG)
    print(f"500 runs: RunBrowser built in {built:.2f} s, {per_action * 1000:.0f} ms per filter/sort/select")
    assert built < 20 and per_action < 5  # generous for a shared 2-core machine; typical 1.5 s and 0.1 s


def test_import_bpexp_stays_light():
    import subprocess
    import sys

    code = ("import sys, bpexp, bpexp.widgets; heavy = [m for m in ('ipywidgets', 'mlflow', 'optuna', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
