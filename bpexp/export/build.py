"""``export_run``: a run's model as a self-contained directory.

The directory is an MLflow pyfunc model (so ``mlflow models serve -m DIR`` and
``mlflow.pyfunc.load_model(DIR)`` work), whose ``artifacts/bpexp_model/`` is the
native model folder, plus a model card ``README.md`` and, on request, an ONNX
graph checked against onnxruntime.

Everything is built in a staging directory next to the target and moved into
place only when every step (ONNX check included) has passed, so a failed export
leaves no half-written model behind. An existing non-empty target is refused
unless ``force``; with ``force`` only the entries an export writes are replaced,
so unrelated files in that folder are never deleted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bpexp.export.errors import ExportError

#: Every top-level entry an export may create (replaced on --force, nothing else is touched).
EXPORT_ENTRIES = ("MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json",
                  "serving_input_example.json", "pyfunc_model.py", "code", "artifacts", "model.onnx", "README.md",
                  "registered_model_meta", "metadata")


@dataclass
class ExportResult:
    """What :func:`export_run` wrote.

    Attributes
    ----------
    path : Path
        The export directory (an MLflow model directory).
    run_id, run_name, experiment_id, experiment_name, tracking_uri : str
        The source run and its store.
    pyfunc_path : Path
        The MLflow pyfunc model: ``path`` itself.
    native_path : Path
        The native model folder (``model.json`` + ``weights.npz``).
    readme_path : Path
    onnx_path : Path or None
    onnx_check : OnnxCheck or None
        The onnxruntime comparison (``max_abs_diff``...).
    model_uri : str or None
        The run's logged pyfunc model in the store (``models:/m-...``), if it had one.
    registered_uri : str or None
        ``models:/NAME@alias`` when registered during the export.
    feature_names : list of str
    selection : str or None
        Why this run was picked (``--best``).
    warnings : list of str
    """

    path: Path
    run_id: str
    run_name: str | None
    experiment_id: str
    experiment_name: str
    tracking_uri: str
    feature_names: list[str]
    model_uri: str | None = None
    onnx_path: Path | None = None
    onnx_check: object | None = None
    onnx_opset: int | None = None
    registered_uri: str | None = None
    registered_version: str | None = None
    selection: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def pyfunc_path(self) -> Path:
        return self.path

    @property
    def native_path(self) -> Path:
        return self.path / "artifacts" / "bpexp_model"

    @property
    def readme_path(self) -> Path:
        return self.path / "README.md"

    def serve_command(self, port: int = 5001) -> str:
        """The command line that serves this export over HTTP, runnable as printed from any shell."""
        from bpexp.shell import serve_command

        return serve_command(str(Path(self.path).absolute()), port)


def check_target(out: Path, force: bool) -> None:
    """Refuse a target that is a file, or a non-empty folder without ``force``.

    Even with ``force``, a folder that is not an earlier export (no ``MLmodel``) but
    holds entries an export would replace (``README.md``, ``code/``...) is refused:
    ``--out . --force`` in a project must not delete the project's README.
    """
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file; give a directory for the export")
    if not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not force:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ExportError(
            f"--out {out} is not empty ({len(entries)} entries: {shown}); pass --force (force=True) to "
            f"replace an earlier export there"
        )
    clashes = [name for name in EXPORT_ENTRIES if name in entries]
    if clashes and "MLmodel" not in entries:
        raise ExportError(
            f"--out {out} is not an earlier export (it has no MLmodel) but holds {clashes}, which an export "
            f"would overwrite; refusing even with --force: choose a new or empty folder"
        )


def _place(staged: Path, out: Path) -> None:
    """Move the staged export into ``out``, replacing only the entries an export owns."""
    if not out.exists():
        os.replace(staged, out)
        return
    for name in EXPORT_ENTRIES:
        old = out / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    for entry in staged.iterdir():
        os.replace(entry, out / entry.name)


def export_run(run_id: str, out_dir, *, tracking_uri: str | None = None, onnx: bool = False, force: bool = False,
               register: str | None = None, alias: str = "champion", selection: str | None = None) -> ExportResult:
    """Export the model of run ``run_id`` to the directory ``out_dir``.

    Parameters
    ----------
    run_id : str
    out_dir : path
        Created if missing. A non-empty directory is refused unless ``force``.
    tracking_uri : str, optional
        Default: ``$MLFLOW_TRACKING_URI``, else the project's ``mlruns/`` store.
    onnx : bool
        Also write ``model.onnx``; the export fails unless onnxruntime reproduces
        the NumPy outputs on the input example (max abs difference ≤ 1e-5).
    force : bool
        Replace an earlier export in ``out_dir``.
    register : str, optional
        Also register the run's model under this name and point ``alias`` at the
        new version (see :func:`bpexp.export.register_model`).
    alias : str
    selection : str, optional
        Why this run was chosen, for the model card (``pick_best_run``'s reason).

    Returns
    -------
    ExportResult

    Raises
    ------
    RunNotFoundError, NoModelError, OnnxCheckError, ExportError
        With a message saying what is wrong; nothing is written then.
    ModelFormatError
        The run's stored model folder is damaged or tampered with.
    """
    from bpexp.export.card import model_card
    from bpexp.export.source import get_run, load_run_model
    from bpexp.tracking import connect, resolve_tracking_uri
    from bpexp.tracking.model import save_pyfunc_model

    out = Path(out_dir).expanduser().absolute()
    check_target(out, force)
    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    run = get_run(client, run_id, uri)
    rm = load_run_model(client, uri, run)
    result = ExportResult(out, run.info.run_id, run.info.run_name, run.info.experiment_id, rm.experiment_name, uri,
                          rm.feature_names, model_uri=rm.source_model_uri, selection=selection,
                          warnings=list(rm.warnings))
    if run.info.status != "FINISHED":
        result.warnings.append(f"the run's status is {run.info.status}, not FINISHED")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        staged = staging / "model"
        metadata = {"bpexp_run_id": result.run_id, "bpexp_experiment": result.experiment_name,
                    "bpexp_source_model_uri": rm.source_model_uri or ""}
        save_pyfunc_model(staged, rm.model, rm.example, metadata=metadata)
        if onnx:
            _write_onnx(staged, rm, result)
        if register:
            from bpexp.export.registry import register_model_version

            result.registered_uri, result.registered_version = register_model_version(
                client, uri, run, register, alias=alias, run_model=rm)
        (staged / "README.md").write_text(model_card(result, rm, params=dict(run.data.params),
                                                     metrics=dict(run.data.metrics)) + "\n")
        if out.exists():  # re-check: the folder may have been filled while we worked
            check_target(out, force)
        _place(staged, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if onnx:
        result.onnx_path = out / "model.onnx"
    return result


def _write_onnx(staged: Path, rm, result: ExportResult) -> None:
    from bpexp.export import onnx as onnx_export

    onnx = onnx_export.require_onnx()
    proto = onnx_export.to_onnx(rm.model, feature_names=rm.feature_names,
                                producer_note=f"bpexp run {result.run_id} ({result.experiment_name})")
    path = staged / "model.onnx"
    onnx.save(proto, str(path))
    # A table model is checked on its raw example rows (strings, None), a plain one on the feature matrix.
    example = rm.example if rm.model.encoder is not None else rm.example.to_numpy()
    result.onnx_check = onnx_export.check_onnx(path, rm.model, example, atol=onnx_export.ONNX_ATOL)
    result.onnx_opset = onnx_export.ONNX_OPSET
    result.onnx_path = path
