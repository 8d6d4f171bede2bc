"""Model folders that lie: each tampered export is refused by ``bpexp.load_model`` *and* by
``mlflow.pyfunc.load_model`` (the path ``mlflow models serve`` takes), with a message saying what
is wrong, and before anything large is allocated.
"""

from __future__ import annotations

import json
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

import bpexp
from bpexp.errors import ModelFormatError


def _native(path: Path) -> Path:
    return path / "artifacts" / "bpexp_model"


def _refused_both_ways(export: Path, message: str) -> None:
    import mlflow

    with pytest.raises(ModelFormatError, match=message):
        bpexp.load_model(export)
    with pytest.raises(ModelFormatError, match=message):
        mlflow.pyfunc.load_model(str(export))


def _other_model(tmp_path: Path, like: Path) -> Path:
    """A different model of the very same architecture, saved to its own folder."""
    original = bpexp.load_model(like)
    other = bpexp.MLP(list(original.sizes), activation=original.activations[0].name, standardize=True, seed=123)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, original.n_inputs))
    bpexp.fit(other, X, rng.choice(original.classes_, 30), epochs=1)
    other.save(tmp_path / "other")
    return tmp_path / "other"


def test_weights_swapped_for_another_same_shape_model(export_copy, tmp_path):
    other = _other_model(tmp_path, export_copy)
    shutil.copy(other / "weights.npz", _native(export_copy) / "weights.npz")
    _refused_both_ways(export_copy, r"weights.npz is not the weights file saved with model.json \(SHA-256")


def test_symlinked_model_folder_is_refused(export_copy, tmp_path):
    other = _other_model(tmp_path, export_copy)
    shutil.rmtree(_native(export_copy))
    _native(export_copy).symlink_to(other, target_is_directory=True)
    _refused_both_ways(export_copy, "outside the model directory")


def test_symlinked_weights_file_is_refused(export_copy, tmp_path):
    other = _other_model(tmp_path, export_copy)
    (_native(export_copy) / "weights.npz").unlink()
    (_native(export_copy) / "weights.npz").symlink_to(other / "weights.npz")
    _refused_both_ways(export_copy, "is a link to a file outside the model folder")


@pytest.mark.parametrize("path_of", [lambda other: str(other), lambda other: "../../other"])
def test_absolute_or_parent_artifact_path_in_mlmodel_is_refused(export_copy, tmp_path, path_of):
    other = tmp_path / "other"
    shutil.copytree(_native(export_copy), other)
    mlmodel = export_copy / "MLmodel"
    meta = yaml.safe_load(mlmodel.read_text())
    meta["flavors"]["python_function"]["artifacts"]["bpexp_model"]["path"] = path_of(other)
    mlmodel.write_text(yaml.safe_dump(meta))
    _refused_both_ways(export_copy, "outside the model directory")


def test_inflated_sizes_are_refused_before_any_allocation(export_copy):
    meta_path = _native(export_copy) / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["sizes"] = [meta["sizes"][0], 100_000_000, meta["sizes"][-1]]  # 800M parameters claimed
    meta_path.write_text(json.dumps(meta))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match=r"W0 has shape \(4, \d+\), expected \(4, 100000000\)"):
            bpexp.load_model(export_copy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # the 3.2 GB the sizes claim were never allocated
    meta["sizes"] = [4, 10**6, 10**6, 3]
    meta_path.write_text(json.dumps(meta))
    _refused_both_ways(export_copy, r"declares [\d,]+ parameters, more than bpexp loads")


def test_extra_and_inflating_npz_members_are_refused(export_copy):
    weights = _native(export_copy) / "weights.npz"
    with np.load(weights) as npz:
        arrays = {k: npz[k] for k in npz.files}
    with zipfile.ZipFile(weights, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("padding.npy", b"\0" * (64 * 2**20))  # 64 MB that compress to ~64 KB
    _refused_both_ways(export_copy, r"holds arrays the model does not have: \['padding'\]")
    with zipfile.ZipFile(weights, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            with zf.open(f"{key}.npy", "w") as fh:
                np.lib.format.write_array(fh, arr)
                if key == "W0":
                    fh.write(b"\0" * (32 * 2**20))  # trailing bytes beyond what the header declares
    _refused_both_ways(export_copy, r"W0 is \d+ bytes unpacked, more than its shape \(4, \d+\) needs")


def test_deeply_nested_model_json_is_refused(export_copy):
    (_native(export_copy) / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    _refused_both_ways(export_copy, "JSON nested too deeply")
