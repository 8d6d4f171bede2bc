"""The model folder: ``model.json`` + ``weights.npz``, readable without pickle.

``weights.npz`` is always opened with ``allow_pickle=False`` and every array is
checked against the architecture in ``model.json`` before it is used, so a
model folder from someone else cannot run code and a tampered one fails with a
clear :class:`~bpexp.errors.ModelFormatError`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from bpexp.errors import InvalidInputError, ModelFormatError
from bpexp.nn.preprocessing import Standardizer

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS_NPZ = "weights.npz"


def model_spec(model) -> dict:
    """The architecture part of ``model.json`` (enough to rebuild an untrained model)."""
    return {
        "sizes": list(model.sizes),
        "activations": [a.name for a in model.activations],
        "task": model.task,
        "output": model.head.output,
        "loss": model.head.loss,
        "dropout": list(model.dropout),
        "dtype": model.dtype.name,
        "standardize": model.preprocessing is not None,
    }


def model_from_spec(spec: dict):
    from bpexp.nn.model import MLP

    return MLP(
        spec["sizes"],
        activation=spec["activations"],
        task=spec["task"],
        output=spec["output"],
        loss=spec["loss"],
        dropout=spec["dropout"],
        standardize=spec["standardize"],
        dtype=spec["dtype"],
    )


def save_model(model, path) -> Path:
    """Write ``model`` to the folder ``path`` (created if needed) and return it."""
    from bpexp import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "bpexp-mlp",
        "format_version": FORMAT_VERSION,
        "bpexp_version": __version__,
        **model_spec(model),
        "classes": None if model.classes_ is None else model.classes_.tolist(),
        "classes_dtype": None if model.classes_ is None else model.classes_.dtype.str,
        "preprocessing": _preprocessing_meta(model),
    }
    arrays = {}
    for i, (W, b) in enumerate(model.weights):
        arrays[f"W{i}"] = W
        arrays[f"b{i}"] = b
    if model.preprocessing is not None and model.preprocessing.fitted:
        arrays["standardize_mean"] = model.preprocessing.mean
        arrays["standardize_scale"] = model.preprocessing.scale
    (path / MODEL_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    np.savez(path / WEIGHTS_NPZ, **arrays)
    return path


def _preprocessing_meta(model):
    if model.preprocessing is None:
        return None
    return {"kind": "standardize", "fitted": model.preprocessing.fitted}


def load_model_folder(path):
    """Load a model folder written by :func:`save_model`.

    Raises
    ------
    ModelFormatError
        Missing files, malformed JSON, arrays missing, of the wrong shape, of a
        non-float dtype (object arrays included) or non-finite.
    """
    path = Path(path)
    meta_path, weights_path = path / MODEL_JSON, path / WEIGHTS_NPZ
    if not path.is_dir():
        raise ModelFormatError(f"{path} is not a model folder (no such directory)")
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise ModelFormatError(f"model folder {path} has no {p.name}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != "bpexp-mlp":
        raise ModelFormatError(f"{meta_path} is not a bpexp model description")
    try:
        model = model_from_spec(meta)
    except (KeyError, TypeError, InvalidInputError) as exc:
        raise ModelFormatError(f"{meta_path} describes no valid model: {exc}") from None

    arrays = _read_npz(weights_path)
    expected = {f"W{i}": W.shape for i, (W, _) in enumerate(model.weights)}
    expected |= {f"b{i}": b.shape for i, (_, b) in enumerate(model.weights)}
    prep = meta.get("preprocessing") or {}
    if prep.get("fitted"):
        expected["standardize_mean"] = expected["standardize_scale"] = (model.n_inputs,)
    for key, shape in expected.items():
        if key not in arrays:
            raise ModelFormatError(f"{weights_path} has no array {key!r}")
        arr = arrays[key]
        if arr.shape != shape:
            raise ModelFormatError(f"{weights_path}: {key} has shape {arr.shape}, expected {shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ModelFormatError(f"{weights_path}: {key} has dtype {arr.dtype}, expected floats")
        if not np.isfinite(arr).all():
            raise ModelFormatError(f"{weights_path}: {key} contains NaN or inf")
    model.weights = [(arrays[f"W{i}"], arrays[f"b{i}"]) for i in range(len(model.weights))]
    if prep.get("fitted"):
        model.preprocessing = Standardizer(
            arrays["standardize_mean"].astype(model.dtype), arrays["standardize_scale"].astype(model.dtype)
        )
    if meta.get("classes") is not None:
        try:
            model.classes_ = np.array(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(f"{meta_path}: unreadable classes: {exc}") from None
    return model


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:  # object arrays refuse to load without pickle
        raise ModelFormatError(f"{path} holds data that would need unpickling; refused ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFormatError(f"{path} is not a readable weights file: {exc}") from None
