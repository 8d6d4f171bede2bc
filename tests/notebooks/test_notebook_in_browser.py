"""03-compare-and-deploy.ipynb in a real browser (Debian's headless chromium): in Voilà and in JupyterLab.

Voilà executes the whole notebook in a fresh kernel on page load; in JupyterLab the test
opens the notebook and picks Run > Run All Cells, as a new user would. The notebook runs a
small sweep first, as the store is empty. Then the test uses the RunBrowser as a person would: the runs table has rows,
selecting two runs redraws the curves and the side-by-side params, and the Register button
registers the chosen run, which the test then reads back from the MLflow registry.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import re

import pytest
import services
from notebook_project import make_project

NOTEBOOK = "03-compare-and-deploy.ipynb"
MODEL = "digits-mlp"  # the name the notebook registers


@pytest.mark.services
@pytest.mark.slow
def test_runs_table_curves_and_register_in_chromium(tmp_path, monkeypatch, mlflow_template_db, serve_notebook,
                                                    chromium_browser, test_artifacts_dir):
    project = make_project(tmp_path / "project")
    store = tmp_path / "store"
    uri = services.copy_mlflow_db(store / "mlflow.db", template=mlflow_template_db,
                                  default_artifact_location=(store / "artifacts" / "0").as_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # Voilà's kernel inherits the environment
    url = serve_notebook(project / "notebooks" / NOTEBOOK)

    context = chromium_browser.new_context(viewport={"width": 1280, "height": 1800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        page.goto(url, timeout=240_000)  # Voilà answers once the notebook has run
        page.get_by_text("done", exact=True).wait_for(timeout=240_000)
        _compare_and_register(page, uri)
        page.screenshot(path=str(test_artifacts_dir / "voila-03-compare-and-deploy.png"), full_page=True)
        page.locator(".bpexp-run-browser").screenshot(path=str(test_artifacts_dir / "runbrowser.png"))
    finally:
        context.close()


@pytest.mark.services
@pytest.mark.slow
def test_the_same_in_jupyterlab(tmp_path, monkeypatch, mlflow_template_db, chromium_browser, test_artifacts_dir):
    """JupyterLab as a new user meets it: open the notebook, Run All Cells, use the widgets."""
    project = make_project(tmp_path / "project")
    store = tmp_path / "store"
    uri = services.copy_mlflow_db(store / "mlflow.db", template=mlflow_template_db,
                                  default_artifact_location=(store / "artifacts" / "0").as_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the kernel inherits the environment
    with contextlib.ExitStack() as stack:
        try:
            base = stack.enter_context(services.jupyterlab_server(project / "notebooks", tmp_path / "jupyterlab"))
        except services.ServiceUnavailable as exc:
            services.skip_or_fail(str(exc))
        context = chromium_browser.new_context(viewport={"width": 1280, "height": 1800})
        stack.callback(context.close)
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.goto(f"{base}lab/tree/{NOTEBOOK}", timeout=120_000)
        try:
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)  # the kernel is up
            page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook has focus: its commands apply
            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator(".lm-Menu-item:not(.lm-mod-disabled)", has_text="Run All Cells").first.click()
            # "attached": JupyterLab skips rendering cells far off-screen, so the last output is never "visible"
            page.locator(".jp-OutputArea-output", has_text=re.compile(r"^\s*done\s*$")).wait_for(
                state="attached", timeout=240_000)
            _compare_and_register(page, uri)
        except Exception:
            page.screenshot(path=str(test_artifacts_dir / "jupyterlab-failure.png"), full_page=True)
            raise
        page.screenshot(path=str(test_artifacts_dir / "jupyterlab-03-compare-and-deploy.png"), full_page=True)


def _compare_and_register(page, uri: str) -> None:
    """Use the RunBrowser of the executed notebook as a person would; check the registry afterwards."""
    from mlflow import MlflowClient

    runs = page.locator(".bpexp-run-browser select[multiple]")
    runs.locator("option").first.wait_for()  # the widget views are rendered
    options = runs.locator("option")
    assert options.count() >= 6  # the notebook's sweep: one row per trial
    assert options.first.inner_text().startswith("★")  # best first, marked
    assert "run" in page.locator(".bpexp-run-browser pre.bpexp-table-header").inner_text()

    curves = page.locator(".bpexp-run-browser img").first
    before = curves.get_attribute("src")
    runs.select_option(index=[0, 1])
    diff_runs = page.locator(".bpexp-param-diff th")
    page.wait_for_function("() => document.querySelectorAll('.bpexp-param-diff th').length === 3")
    assert diff_runs.count() == 3  # a blank corner + the two selected runs
    page.wait_for_function(
        "([el, old]) => el.getAttribute('src') !== old && el.naturalWidth > 100",
        arg=[curves.element_handle(), before])
    assert "2 selected" in page.locator(".bpexp-run-browser").inner_text()

    client = MlflowClient(uri)
    registered = client.get_model_version_by_alias(MODEL, "champion")  # by the notebook's own cell
    chosen = page.locator(".bpexp-deploy select").first.evaluate("s => s.options[s.selectedIndex].text")
    page.get_by_role("button", name="Register").click()
    page.locator(".bpexp-deploy-result", has_text="Registered").wait_for(timeout=60_000)
    assert f"models:/{MODEL}@champion" in page.locator(".bpexp-deploy").inner_text()
    assert "serve models:/" in page.locator(".bpexp-deploy").inner_text()  # the printed `bpexp serve` command

    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert int(champion.version) == int(registered.version) + 1
    assert f"({champion.run_id[:8]})" in chosen  # the run picked in the deploy panel
