"""``bpexp.load_model``: plain folders with NumPy only, exports, URIs; damaged models fail clearly, unpickled never."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bpexp
from bpexp.errors import ModelFormatError


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), np.array(["no", "yes"])[(rng.random(60) > 0.5).astype(int)]
    model = bpexp.MLP([3, 4, 1], standardize=True, seed=0)
    bpexp.fit(model, X, y, epochs=2, seed=0)
    path = tmp_path_factory.mktemp("folder") / "m"
    model.save(path)
    return path


def _modules_after(code: str) -> set[str]:
    """Top-level modules imported by a fresh interpreter running ``code``."""
    report = "import sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    script = textwrap.dedent(code) + "\n" + report
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_bpexp_and_export_stay_light():
    loaded = _modules_after("import bpexp, bpexp.export")
    assert not loaded & {"mlflow", "onnx", "onnxruntime", "pandas", "optuna", "ipywidgets"}


def test_plain_folder_loads_without_mlflow(folder, iris_export):
    loaded = _modules_after(f"""
        import bpexp
        m = bpexp.load_model({str(folder)!r})
        assert type(m) is bpexp.MLP, type(m)
        e = bpexp.load_model({str(iris_export.path)!r})  # an export: read through MLmodel, still no MLflow
        n = bpexp.load_model({str(iris_export.native_path)!r})
        assert (e.weights[0][0] == n.weights[0][0]).all()
    """)
    assert "mlflow" not in loaded and "onnx" not in loaded


def test_every_source_gives_the_same_mlp(folder, iris_export, store):
    from bpexp.export import load_with_features

    a = bpexp.load_model(folder)
    assert a.classes_.tolist() == ["no", "yes"]
    model, names = load_with_features(iris_export.path)
    assert type(model) is bpexp.MLP and names == iris_export.feature_names
    by_uri = bpexp.load_model(store.iris.model_uri, tracking_uri=store.uri)  # models:/m-...
    assert np.array_equal(by_uri.params, model.params)
    assert bpexp.load_model(iris_export.path.as_uri()).classes_.tolist() == model.classes_.tolist()


def test_folder_only_run_loads_by_runs_uri(store):
    trial = store.trials[0]
    model = bpexp.load_model(f"runs:/{trial.run_id}/bpexp_model", tracking_uri=store.uri)
    assert np.array_equal(model.params, trial.model.params)


# ------------------------------------------------------------------------------ damaged models
def _weights(path: Path) -> Path:
    return path / "artifacts" / "bpexp_model" / "weights.npz"


def test_missing_weights(export_copy):
    _weights(export_copy).unlink()
    with pytest.raises(ModelFormatError, match=r"model folder .*bpexp_model has no weights.npz"):
        bpexp.load_model(export_copy)


def test_tampered_weights_file(export_copy):
    _weights(export_copy).write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ModelFormatError, match="is not a readable weights file"):
        bpexp.load_model(export_copy)


def test_wrong_shapes(export_copy):
    path = _weights(export_copy)
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["W0"] = arrays["W0"][:, :-1]
    np.savez(path, **arrays)
    with pytest.raises(ModelFormatError, match=r"W0 has shape \(4, \d+\), expected \(4, \d+\)"):
        bpexp.load_model(export_copy)


class Marker:
    """Unpickling this would create a file: the test checks nothing was unpickled."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_object_array_is_refused_and_never_unpickled(export_copy, tmp_path):
    path = _weights(export_copy)
    with np.load(path) as npz:
        arrays = dict(npz)
    marker = tmp_path / "unpickled"
    arrays["W0"] = np.array([Marker(marker)], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(ModelFormatError, match="would need unpickling; refused"):
        bpexp.load_model(export_copy)
    import mlflow

    with pytest.raises(ModelFormatError, match="would need unpickling; refused"):
        mlflow.pyfunc.load_model(str(export_copy))  # the pyfunc wrapper uses the same loader
    assert not marker.exists()


def test_mlmodel_pointing_outside_the_directory(export_copy):
    mlmodel = export_copy / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("path: artifacts/bpexp_model", "path: ../../etc"))
    with pytest.raises(ModelFormatError, match="points outside the model directory"):
        bpexp.load_model(export_copy)


def test_mlflow_model_that_is_not_bpexp(export_copy):
    mlmodel = export_copy / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("bpexp_model:", "other_model:", 1))
    with pytest.raises(ModelFormatError, match="is an MLflow model but not a bpexp one"):
        bpexp.load_model(export_copy)


def test_not_a_model_at_all(tmp_path):
    with pytest.raises(ModelFormatError, match=r"is not a model folder \(no such directory; expected a model "
                                               r"folder, an exported model directory, or a models:/ or runs:/ URI"):
        bpexp.load_model(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError, match=r"model folder .*empty has no model.json"):
        bpexp.load_model(tmp_path / "empty")


def test_unknown_registered_model(store):
    with pytest.raises(ModelFormatError, match=r"cannot load models:/no-such-model@champion from the tracking store"):
        bpexp.load_model("models:/no-such-model@champion", tracking_uri=store.uri)
