"""The arrays of scikit-learn's built-in datasets, kept on disk after their first load.

Importing ``sklearn.datasets`` takes ~2-3 s (it pulls in SciPy), every time: more than
loading digits and training on it. Its loaders return the same arrays for the same
arguments and scikit-learn version, so the first load stores them as an ``.npz`` file
(no pickle) under :func:`cache_dir`, keyed by both, and later loads read that in
milliseconds. The file is written to a temporary name and renamed, so two processes
loading at once, or one killed mid-write, never leave a torn file; a file that does not
load (a full disk, an edit) is ignored and written again. Where nothing can be written
(a read-only home), every load simply goes to scikit-learn, as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: Set to a folder to keep the cache there (default: ``$XDG_CACHE_HOME/bpexp`` or ``~/.cache/bpexp``).
CACHE_ENV = "BPEXP_CACHE_DIR"


def cache_dir() -> Path:
    """Where built-in datasets are kept (see :data:`CACHE_ENV`)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bpexp"


def cached_arrays(name: str, arguments: dict, load: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays ``load()`` returns for ``name`` and ``arguments``, from the cache when it has them.

    ``load`` must return plain (non-object) arrays; their values are what every later call returns.
    """
    path = _entry(name, arguments)
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {k: stored[k] for k in stored.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):  # torn (a full disk), edited: reload
            pass
    arrays = load()
    if path is not None:
        _store(path, arrays)
    return arrays


def _entry(name: str, arguments: dict) -> Path | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        sklearn_version = version("scikit-learn")
    except PackageNotFoundError:  # pragma: no cover - bpexp requires it
        return None
    key = json.dumps({"name": name, "arguments": arguments, "sklearn": sklearn_version}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "datasets" / f"{name}-{digest}.npz"


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz", dir=path.parent)
    except OSError:  # read-only or full: no cache, same data
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
