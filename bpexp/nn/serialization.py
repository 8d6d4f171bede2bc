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
from bpexp.nn.tabular import TabularEncoder

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS_NPZ = "weights.npz"


def model_spec(model) -> dict:
    """The architecture part of ``model.json`` (enough to rebuild an untrained model).

    Raises
    ------
    InvalidInputError
        If the model uses an activation or head class that is not in bpexp's
        registries: it could not be rebuilt from the file.
    """
    from bpexp.nn.activations import ACTIVATIONS
    from bpexp.nn.heads import HEADS

    for a in model.activations:
        if ACTIVATIONS.get(a.name) is not type(a):
            raise InvalidInputError(f"custom activation {a!r} is not a registered bpexp activation; cannot save it")
    if HEADS.get((model.head.output, model.head.loss)) is not type(model.head):
        raise InvalidInputError(f"custom head {model.head!r} is not a registered bpexp head; cannot save it")
    return {
        "sizes": list(model.sizes),
        "activations": [a.name for a in model.activations],
        # Options such as leaky_relu's alpha or Huber's delta change the function the
        # model computes, so a reload without them would predict differently.
        "activation_options": [a.config() for a in model.activations],
        "task": model.task,
        "output": model.head.output,
        "loss": model.head.loss,
        "head_options": model.head.config(),
        "dropout": list(model.dropout),
        "dtype": model.dtype.name,
        "standardize": model.preprocessing is not None,
    }


def model_from_spec(spec: dict, encoder: TabularEncoder | None = None):
    """Build an untrained model from :func:`model_spec`'s dict (and the table encoder it was saved with)."""
    from bpexp.nn.activations import ACTIVATIONS
    from bpexp.nn.model import MLP

    names = spec["activations"]
    options = spec.get("activation_options") or [{}] * len(names)
    if not isinstance(names, list) or not isinstance(options, list) or len(options) != len(names):
        raise InvalidInputError(f"activations {names!r} and activation_options {options!r} do not match")
    activations = []
    for name, opts in zip(names, options):
        if name not in ACTIVATIONS:
            raise InvalidInputError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
        activations.append(ACTIVATIONS[name](**opts))
    model = MLP(
        spec["sizes"],
        activation=activations,
        task=spec["task"],
        output=spec["output"],
        loss=spec["loss"],
        dropout=spec["dropout"],
        standardize=spec["standardize"],
        encoder=encoder,
        dtype=spec["dtype"],
    )
    head_options = spec.get("head_options") or {}
    if head_options:
        model.head = type(model.head)(**head_options)
    return model


def save_model(model, path) -> Path:
    """Write ``model`` to the folder ``path`` (created if needed) and return it."""
    from bpexp._version import __version__

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
    if model.target_scaler is not None and model.target_scaler.fitted:
        arrays["target_mean"] = model.target_scaler.mean
        arrays["target_scale"] = model.target_scaler.scale
    (path / MODEL_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    np.savez(path / WEIGHTS_NPZ, **arrays)
    return path


def _preprocessing_meta(model):
    if model.encoder is not None:  # a table: what was learned is plain JSON, no arrays
        return {"kind": "table", "encoder": model.encoder.to_dict()}
    if model.preprocessing is None:
        return None
    targets = model.target_scaler is not None and model.target_scaler.fitted
    return {"kind": "standardize", "fitted": model.preprocessing.fitted, "targets_fitted": targets}


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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != "bpexp-mlp":
        raise ModelFormatError(f"{meta_path} is not a bpexp model description")
    prep = meta.get("preprocessing") or {}
    if not isinstance(prep, dict):
        raise ModelFormatError(f"{meta_path}: preprocessing must be an object, got {prep!r}")
    try:
        encoder = TabularEncoder.from_dict(prep.get("encoder")) if prep.get("kind") == "table" else None
        model = model_from_spec(meta, encoder)
    except (KeyError, TypeError, ValueError) as exc:  # InvalidInputError is a ValueError
        raise ModelFormatError(f"{meta_path} describes no valid model: {exc}") from None

    arrays = _read_npz(weights_path)
    expected = {f"W{i}": W.shape for i, (W, _) in enumerate(model.weights)}
    expected |= {f"b{i}": b.shape for i, (_, b) in enumerate(model.weights)}
    if prep.get("fitted"):
        expected["standardize_mean"] = expected["standardize_scale"] = (model.n_inputs,)
    if prep.get("targets_fitted"):
        if model.target_scaler is None:
            raise ModelFormatError(f"{meta_path}: target scaling is only valid for a regression model")
        expected["target_mean"] = expected["target_scale"] = (model.n_outputs,)
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
        if not (arrays["standardize_scale"] > 0).all():
            raise ModelFormatError(f"{weights_path}: standardize_scale must be positive")
        model.preprocessing = Standardizer(
            arrays["standardize_mean"].astype(model.dtype), arrays["standardize_scale"].astype(model.dtype)
        )
    if prep.get("targets_fitted"):
        if not (arrays["target_scale"] > 0).all():
            raise ModelFormatError(f"{weights_path}: target_scale must be positive")
        model.target_scaler = Standardizer(
            arrays["target_mean"].astype(model.dtype), arrays["target_scale"].astype(model.dtype)
        )
    if meta.get("classes") is not None:
        model.classes_ = _read_classes(meta, model, meta_path)
    return model


def _read_classes(meta: dict, model, meta_path: Path) -> np.ndarray:
    """The class labels, checked: plain numbers or strings, sorted, one per class the head predicts."""
    try:
        dtype = np.dtype(meta["classes_dtype"])
        if dtype.kind not in "biufU":  # never object (or void) arrays
            raise TypeError(f"classes_dtype {dtype.str!r} is not a number or string type")
        classes = np.array(meta["classes"], dtype=dtype)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{meta_path}: unreadable classes: {exc}") from None
    n_expected = 2 if model.task == "classification" and model.n_outputs == 1 else model.n_outputs
    if classes.ndim != 1 or classes.size != n_expected:
        raise ModelFormatError(
            f"{meta_path}: {classes.size} classes listed, but the model's head predicts {n_expected}"
        )
    # Labels are encoded by binary search, so they must be sorted and distinct.
    if classes.size > 1 and not (classes[1:] > classes[:-1]).all():
        raise ModelFormatError(f"{meta_path}: classes must be sorted and distinct, got {classes.tolist()}")
    return classes


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:  # object arrays refuse to load without pickle
        raise ModelFormatError(f"{path} holds data that would need unpickling; refused ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFormatError(f"{path} is not a readable weights file: {exc}") from None
