"""Deploy actions on one run: register it in the model registry, export it to a folder.

:class:`DeployController` calls :mod:`bpexp.export` and turns every outcome, failures
included, into a :class:`DeployOutcome` with a readable message, so a widget shows what
went wrong instead of losing a traceback in a log. :class:`DeployPanel` is its view.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as W

log = logging.getLogger(__name__)

SERVE_PORT = 5001


@dataclass
class DeployOutcome:
    """What a deploy action did.

    Attributes
    ----------
    ok : bool
    message : str
        One readable sentence: what was done, or what went wrong.
    model_uri : str or None
        ``models:/NAME@alias`` after registering, the folder after exporting.
    serve_command : str or None
        The ``bpexp serve`` command line that serves the model.
    """

    ok: bool
    message: str
    model_uri: str | None = None
    serve_command: str | None = None


def serve_command(model_uri: str, tracking_uri: str | None = None, port: int = SERVE_PORT) -> str:
    """The shell command serving ``model_uri`` on 127.0.0.1 with the current environment (``bpexp serve``).

    A ``models:/`` URI is resolved through the registry, so the command names the store.
    """
    from bpexp.shell import serve_command as command

    return command(model_uri, port, tracking_uri)


def _failure(action: str, exc: Exception) -> DeployOutcome:
    """A readable message for ``exc``; bpexp errors already explain themselves."""
    from bpexp.errors import BpexpError

    log.debug("%s failed", action, exc_info=exc)
    if isinstance(exc, BpexpError):
        return DeployOutcome(False, f"{action} failed: {exc}")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return DeployOutcome(False, f"{action} failed: {type(exc).__name__}: {text}")


class DeployController:
    """Register or export runs of one MLflow store.

    Parameters
    ----------
    tracking_uri : str
        The store holding the runs (and the registry).
    """

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri

    def register(self, run_id: str | None, name: str, alias: str = "champion") -> DeployOutcome:
        """Register the run's model as a new version of ``name`` and point ``alias`` at it."""
        name, alias = (name or "").strip(), (alias or "").strip()
        if not run_id:
            return DeployOutcome(False, "Register: select a run first.")
        if not name:
            return DeployOutcome(False, "Register: enter a model name.")
        if not alias:
            return DeployOutcome(False, "Register: enter an alias (e.g. champion).")
        try:
            from bpexp.export import register_model

            uri = register_model(run_id, name, alias=alias, tracking_uri=self.tracking_uri)
        except Exception as exc:  # noqa: BLE001 - shown to the user, whatever it is
            return _failure("Register", exc)
        return DeployOutcome(True, f"Registered run {run_id[:8]} as {uri}.", uri,
                             serve_command(uri, self.tracking_uri))

    def export(self, run_id: str | None, folder: str | Path, *, onnx: bool = False,
               force: bool = False) -> DeployOutcome:
        """Export the run's model to ``folder`` (MLflow model, native folder, model card)."""
        if not run_id:
            return DeployOutcome(False, "Export: select a run first.")
        if not str(folder).strip():
            return DeployOutcome(False, "Export: enter a folder.")
        try:
            from bpexp.export import export_run

            result = export_run(run_id, Path(folder).expanduser(), tracking_uri=self.tracking_uri, onnx=onnx,
                                force=force)
        except Exception as exc:  # noqa: BLE001 - shown to the user, whatever it is
            return _failure("Export", exc)
        path = str(Path(result.path).resolve())
        return DeployOutcome(True, f"Exported run {run_id[:8]} to {path}.", path, serve_command(path))


class DeployPanel(W.VBox):
    """Pick a run, then Register (name + alias) or Export (folder); shows the URI and serve command.

    Parameters
    ----------
    controller : DeployController
    name : str
        Default registered model name.
    folder : str
        Default export folder.

    Attributes
    ----------
    outcome : DeployOutcome or None
        The last action's outcome (what the panel shows).
    """

    def __init__(self, controller: DeployController, name: str = "bpexp-model", folder: str = "outputs/model"):
        self.controller = controller
        self.outcome: DeployOutcome | None = None
        self.run = W.Dropdown(description="run", options=[], layout=W.Layout(width="420px"),
                              style={"description_width": "48px"})
        self.name = W.Text(value=name, description="model", style={"description_width": "48px"},
                           layout=W.Layout(width="260px"))
        self.alias = W.Text(value="champion", description="alias", style={"description_width": "48px"},
                            layout=W.Layout(width="180px"))
        self.register_button = W.Button(description="Register", icon="tag", button_style="success",
                                        tooltip="register the run's model and point the alias at it")
        self.folder = W.Text(value=folder, description="folder", style={"description_width": "48px"},
                             layout=W.Layout(width="340px"))
        self.force = W.Checkbox(value=False, description="overwrite", indent=False, layout=W.Layout(width="95px"))
        self.onnx = W.Checkbox(value=False, description="ONNX too", indent=False, layout=W.Layout(width="95px"))
        self.export_button = W.Button(description="Export", icon="download", button_style="info",
                                      tooltip="write the model folder (MLflow model, native folder, model card)")
        self.result = W.HTML()
        self.register_button.on_click(lambda _: self.do_register())
        self.export_button.on_click(lambda _: self.do_export())
        super().__init__([
            W.HTML("<b>Deploy</b>"),
            self.run,
            W.HBox([self.name, self.alias, self.register_button]),
            W.HBox([self.folder, self.force, self.onnx, self.export_button]),
            self.result,
        ])
        self.add_class("bpexp-deploy")

    def set_runs(self, runs: list[tuple[str, str]], default: str | None = None) -> None:
        """Offer ``[(label, run_id), ...]``, selecting ``default`` (else the first)."""
        ids = [i for _, i in runs]
        current = self.run.value
        self.run.options = runs
        self.run.value = current if current in ids else (default if default in ids else (ids[0] if ids else None))

    def clear_result(self) -> None:
        """Forget the last action's message (the table or the selection changed since)."""
        self.outcome = None
        self.result.value = ""

    def do_register(self) -> DeployOutcome:
        """Register the chosen run (the Register button)."""
        return self._run(lambda: self.controller.register(self.run.value, self.name.value, self.alias.value),
                         self.register_button, "registering…")

    def do_export(self) -> DeployOutcome:
        """Export the chosen run (the Export button)."""
        return self._run(lambda: self.controller.export(self.run.value, self.folder.value, onnx=self.onnx.value,
                                                        force=self.force.value),
                         self.export_button, "exporting…")

    def _run(self, action, button, busy: str) -> DeployOutcome:
        button.disabled = True
        self.result.value = f"<i>{busy}</i>"
        try:
            outcome = action()
        except Exception as exc:  # noqa: BLE001 - never leave the panel saying "busy"
            outcome = _failure("Deploy", exc)
        finally:
            button.disabled = False
        self.outcome = outcome
        self.result.value = _outcome_html(outcome)
        return outcome


def _outcome_html(o: DeployOutcome) -> str:
    colour = "#1b5e20" if o.ok else "#b71c1c"
    parts = [f'<div class="bpexp-deploy-result" style="color:{colour}">{"✔" if o.ok else "✘"} '
             f"{html.escape(o.message)}</div>"]
    if o.model_uri:
        parts.append(f"<div>model URI: <code class='bpexp-model-uri'>{html.escape(o.model_uri)}</code></div>")
    if o.serve_command:
        parts.append(f"<div>serve it:</div><pre style='margin:2px 0'>{html.escape(o.serve_command)}</pre>")
    return "".join(parts)
