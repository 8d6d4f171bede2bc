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

FORMAT_VERSION = 2  # 2: model.json records the SHA-256 of weights.npz
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
    np.savez(path / WEIGHTS_NPZ, **arrays)
    meta["weights_sha256"] = file_sha256(path / WEIGHTS_NPZ)
    (path / MODEL_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def _preprocessing_meta(model):
    targets = model.target_scaler is not None and model.target_scaler.fitted
    if model.encoder is not None:  # a table: what the encoder learned is plain JSON, no arrays
        return {"kind": "table", "encoder": model.encoder.to_dict(), "targets_fitted": targets}
    if model.preprocessing is None:
        return None
    return {"kind": "standardize", "fitted": model.preprocessing.fitted, "targets_fitted": targets}


def load_model_folder(path):
    """Load a model folder written by :func:`save_model`.

    Everything is checked before it is used, and nothing is allocated for what the
    files merely claim: the architecture in ``model.json`` must match the array
    headers inside ``weights.npz`` (read without loading the arrays), no member
    beyond the expected ones may be present, and the file must have the SHA-256
    that ``model.json`` records.

    Raises
    ------
    ModelFormatError
        Missing files, files that are symlinks out of the folder, malformed or
        too deeply nested JSON, arrays missing, unexpected, of the wrong shape, of a
        non-float dtype (object arrays included) or non-finite, or a weights file
        that is not the one saved with ``model.json``.
    """
    path = Path(path)
    meta_path, weights_path = path / MODEL_JSON, path / WEIGHTS_NPZ
    if not path.is_dir():
        raise ModelFormatError(f"{path} is not a model folder (no such directory)")
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise ModelFormatError(f"model folder {path} has no {p.name}")
        if not p.resolve().is_relative_to(path.resolve()):
            raise ModelFormatError(f"{p} is a link to a file outside the model folder; refused")
    meta = _read_meta(meta_path)
    prep = meta.get("preprocessing") or {}
    if not isinstance(prep, dict):
        raise ModelFormatError(f"{meta_path}: preprocessing must be an object, got {prep!r}"[:300])
    expected = _expected_arrays(meta, prep, meta_path)
    check_npz_members(weights_path, expected)
    try:
        encoder = TabularEncoder.from_dict(prep.get("encoder")) if prep.get("kind") == "table" else None
        model = model_from_spec(meta, encoder)
    except (KeyError, TypeError, ValueError) as exc:  # InvalidInputError is a ValueError
        raise ModelFormatError(f"{meta_path} describes no valid model: {exc}") from None
    if prep.get("targets_fitted") and model.target_scaler is None:
        raise ModelFormatError(f"{meta_path}: target scaling is only valid for a regression model")
    arrays = _read_npz(weights_path)
    for key in expected:
        arr = arrays[key]
        if not np.isfinite(arr).all():
            raise ModelFormatError(f"{weights_path}: {key} contains NaN or inf")
    model.weights = [(arrays[f"W{i}"], arrays[f"b{i}"]) for i in range(len(model.weights))]
    _restore_scalers(model, prep, arrays, weights_path)
    if meta.get("classes") is not None:
        model.classes_ = _read_classes(meta, model, meta_path)
    _check_digest(meta, weights_path)  # last: every specific problem above has its own message
    return model


#: model.json is a few KB (a table's categories included); anything far larger is not ours.
MAX_META_BYTES = 32 * 2**20
#: The largest model a folder may declare (1e9 parameters, 4 GB of float32): beyond it, refuse before reading.
MAX_PARAMS = 10**9


def _read_meta(meta_path: Path) -> dict:
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise ModelFormatError(f"{meta_path} is {meta_path.stat().st_size} bytes; a model description is far smaller")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{meta_path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ModelFormatError(f"{meta_path} is not a bpexp model description (JSON nested too deeply)") from None
    if not isinstance(meta, dict) or meta.get("format") != "bpexp-mlp":
        raise ModelFormatError(f"{meta_path} is not a bpexp model description")
    return meta


def _expected_arrays(meta: dict, prep: dict, meta_path: Path) -> dict[str, tuple[int, ...]]:
    """Array name -> shape that the declared architecture needs (computed, not allocated)."""
    sizes = meta.get("sizes")
    if not isinstance(sizes, list) or len(sizes) < 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 < n < 2**31 for n in sizes):
        raise ModelFormatError(f"{meta_path} describes no valid model: layer sizes must be positive integers "
                               f"(at least two), got {str(sizes)[:200]}")
    n_params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    if n_params > MAX_PARAMS:
        raise ModelFormatError(f"{meta_path} declares {n_params:,} parameters, more than bpexp loads "
                               f"({MAX_PARAMS:,}); refused before reading the weights")
    expected = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        expected[f"W{i}"], expected[f"b{i}"] = (fan_in, fan_out), (fan_out,)
    if prep.get("fitted"):
        expected["standardize_mean"] = expected["standardize_scale"] = (sizes[0],)
    if prep.get("targets_fitted"):
        expected["target_mean"] = expected["target_scale"] = (sizes[-1],)
    return expected


def check_npz_members(weights_path: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Compare the ``.npy`` headers inside the zip with ``expected`` before any array is loaded.

    Refuses unknown or missing members, shapes and dtypes that differ, and members whose
    (uncompressed) size is larger than their header says: a small file that would inflate.
    """
    try:
        with zipfile.ZipFile(weights_path) as zf:
            members = {info.filename: info for info in zf.infolist()}
            names = {n[:-4] if n.endswith(".npy") else n for n in members}
            unknown, missing = sorted(names - set(expected)), sorted(set(expected) - names)
            if unknown:
                raise ModelFormatError(f"{weights_path} holds arrays the model does not have: {unknown[:10]}")
            if missing:
                raise ModelFormatError(f"{weights_path} has no array {missing[0]!r}")
            for key, shape in expected.items():
                _check_member(zf, members[f"{key}.npy"], key, shape, weights_path)
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFormatError(f"{weights_path} is not a readable weights file: {exc}") from None


def _check_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, shape, weights_path: Path) -> None:
    with zf.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            got_shape, _, dtype = read(fh)
        except ValueError as exc:
            raise ModelFormatError(f"{weights_path}: {key} is not a NumPy array ({exc})") from None
    if dtype.hasobject:
        raise ModelFormatError(f"{weights_path}: {key} holds objects that would need unpickling; refused")
    if tuple(got_shape) != tuple(shape):
        raise ModelFormatError(f"{weights_path}: {key} has shape {tuple(got_shape)}, expected {tuple(shape)}")
    if dtype.kind != "f":
        raise ModelFormatError(f"{weights_path}: {key} has dtype {dtype}, expected floats")
    if info.file_size > int(np.prod(shape, dtype=np.int64)) * dtype.itemsize + 4096:
        raise ModelFormatError(f"{weights_path}: {key} is {info.file_size} bytes unpacked, more than its "
                               f"shape {tuple(shape)} needs; refused")


def _check_digest(meta: dict, weights_path: Path) -> None:
    """``weights.npz`` must be the file ``model.json`` was saved with (older folders carry no digest)."""
    recorded = meta.get("weights_sha256")
    if recorded is None and meta.get("format_version", 1) < 2:
        return
    actual = file_sha256(weights_path)
    if recorded != actual:
        raise ModelFormatError(f"{weights_path} is not the weights file saved with {MODEL_JSON} "
                               f"(SHA-256 {actual[:16]}..., recorded {str(recorded)[:16]}...); refused")


def file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _restore_scalers(model, prep: dict, arrays: dict, weights_path: Path) -> None:
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
