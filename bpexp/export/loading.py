"""Loading a model from wherever it lives: a model folder, an exported/MLflow model directory, a URI.

* A plain model folder (``model.json`` + ``weights.npz``) is read with NumPy only:
  MLflow is not imported.
* An MLflow model directory (an export made by ``bpexp export``, or a downloaded
  pyfunc model) is read through its ``MLmodel`` file, which names the folder
  holding the native model; that needs PyYAML, not MLflow.
* A URI (``models:/NAME@alias``, ``models:/NAME/3``, ``models:/m-...``,
  ``runs:/RUN_ID/model``, ``runs:/RUN_ID/bpexp_model``, ...) is downloaded with
  MLflow (imported then) to a temporary directory and read as above.

In every case the result is the same :class:`~bpexp.nn.model.MLP` that training
produced, read without unpickling anything.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from bpexp.errors import ModelFormatError
from bpexp.nn.serialization import MODEL_JSON, load_model_folder

MLMODEL = "MLmodel"
ARTIFACT_KEY = "bpexp_model"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")  # models:/..., runs:/..., s3://..., file:///...


def is_uri(source) -> bool:
    """Whether ``source`` is a URI rather than a local path (``C:\\`` paths are not URIs)."""
    text = str(source)
    return bool(_URI.match(text)) and not re.match(r"^[A-Za-z]:[\\/]", text)


def read_mlmodel(model_dir: Path) -> dict:
    """The parsed ``MLmodel`` file of an MLflow model directory."""
    import yaml

    path = Path(model_dir) / MLMODEL
    try:
        meta = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelFormatError(f"{path} is not a readable MLmodel file: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{path} is not an MLmodel description")
    return meta


def bpexp_artifact_dir(model_dir: Path, meta: dict | None = None) -> Path:
    """The native model folder inside an MLflow model directory made by bpexp.

    Raises
    ------
    ModelFormatError
        The directory is not a bpexp pyfunc model, or its ``MLmodel`` points outside it.
    """
    model_dir = Path(model_dir)
    meta = meta if meta is not None else read_mlmodel(model_dir)
    flavor = (meta.get("flavors") or {}).get("python_function") or {}
    artifact = (flavor.get("artifacts") or {}).get(ARTIFACT_KEY) if isinstance(flavor, dict) else None
    rel = artifact.get("path") if isinstance(artifact, dict) else None
    if not isinstance(rel, str):
        raise ModelFormatError(
            f"{model_dir} is an MLflow model but not a bpexp one: its python_function flavor has no "
            f"{ARTIFACT_KEY!r} artifact"
        )
    folder = (model_dir / rel).resolve()
    # A tampered MLmodel must not make us read files outside the model directory.
    if not folder.is_relative_to(model_dir.resolve()):
        raise ModelFormatError(f"{model_dir / MLMODEL}: artifact path {rel!r} points outside the model directory")
    return folder


def signature_feature_names(meta: dict) -> list[str] | None:
    """Input column names from an ``MLmodel``'s signature, if it has named columns."""
    try:
        inputs = json.loads((meta.get("signature") or {}).get("inputs") or "null")
    except (TypeError, ValueError):
        return None
    if not isinstance(inputs, list) or not inputs:
        return None
    names = [spec.get("name") for spec in inputs if isinstance(spec, dict)]
    if len(names) != len(inputs) or not all(isinstance(n, str) for n in names):
        return None
    return names


def load_local(path) -> tuple[object, list[str] | None]:
    """Load a local model folder or MLflow model directory: ``(model, feature_names or None)``."""
    path = Path(path)
    if not path.exists():
        raise ModelFormatError(
            f"{path} is not a model folder (no such directory; expected a model folder, an exported model "
            f"directory, or a models:/ or runs:/ URI)"
        )
    if (path / MLMODEL).exists() and not (path / MODEL_JSON).exists():
        meta = read_mlmodel(path)
        return load_model_folder(bpexp_artifact_dir(path, meta)), signature_feature_names(meta)
    # Anything else is taken for a model folder: its loader says which file is missing or damaged.
    return load_model_folder(path), None


def download(uri: str, dst: str, tracking_uri: str | None = None) -> Path:
    """Download the model or folder at ``uri`` into ``dst`` with MLflow."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from bpexp.tracking.store import TrackingUnavailableError, connect, resolve_tracking_uri

    store = resolve_tracking_uri(tracking_uri)
    from bpexp.tracking.model import using_store

    try:
        client = connect(store)
        uri = _full_run_id(client, uri)
        with using_store(store):  # models:/ URIs are resolved against the global URIs, whatever is passed
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=dst, tracking_uri=store,
                                                            registry_uri=store))
    except TrackingUnavailableError:
        raise
    except (MlflowException, OSError) as exc:
        message = getattr(exc, "message", str(exc))
        raise ModelFormatError(f"cannot load {uri} from the tracking store {store}: {message}") from None


def _full_run_id(client, uri: str) -> str:
    """``runs:/PREFIX/path`` with the run id prefix (as ``bpexp runs`` shows it) made a full id."""
    from bpexp.tracking.queries import resolve_run_id

    match = re.match(r"^runs:/([^/]+)(/.*)?$", uri)
    if not match:
        return uri
    full = resolve_run_id(client, match.group(1))
    if full is None:
        raise ModelFormatError(f"cannot load {uri}: no run with id {match.group(1)!r} (or starting with it)")
    return f"runs:/{full}{match.group(2) or ''}"


def load_with_features(source, *, tracking_uri: str | None = None) -> tuple[object, list[str] | None]:
    """Load ``source`` (path or URI); return ``(model, feature_names or None)``."""
    if not is_uri(source):
        return load_local(source)
    if str(source).startswith("file:"):
        from urllib.parse import unquote, urlparse

        return load_local(unquote(urlparse(str(source)).path))
    with tempfile.TemporaryDirectory(prefix="bpexp-load-") as tmp:
        return load_local(download(str(source), tmp, tracking_uri))


def load_model(source, *, tracking_uri: str | None = None):
    """Load a model from a folder, an exported directory or a ``models:/`` / ``runs:/`` URI.

    See :func:`bpexp.load_model`.
    """
    return load_with_features(source, tracking_uri=tracking_uri)[0]
