"""The model folder: model.json + weights.npz, identical predictions after reload, no pickle."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import bpexp
from bpexp.errors import InvalidInputError, ModelFormatError
from bpexp.nn.activations import LeakyReLU, Tanh
from bpexp.nn.heads import IdentityHuber


@pytest.fixture
def trained(tmp_path):
    """A standardized classifier with string classes, saved to a folder."""
    rng = np.random.default_rng(0)
    X = 50 + 10 * rng.normal(size=(60, 4))
    y = np.array(["cat", "dog", "emu"])[rng.integers(0, 3, 60)]
    model = bpexp.MLP([4, 8, 6, 3], activation=["relu", "tanh"], standardize=True, dropout=[0.1, 0.0], seed=0)
    bpexp.fit(model, X, y, optimizer="adam", lr=0.01, epochs=5, seed=0)
    path = tmp_path / "nested" / "model"
    model.save(path)
    return model, X, y, path


def test_round_trip_gives_identical_predictions(trained):
    model, X, y, path = trained
    loaded = bpexp.load_model(path)
    assert np.array_equal(loaded.params, model.params)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict(X).dtype.kind == "U" and loaded.classes_.tolist() == ["cat", "dog", "emu"]
    # standardization travelled with the model: it takes raw inputs
    assert np.array_equal(loaded.preprocessing.mean, model.preprocessing.mean)
    assert np.array_equal(loaded.preprocessing.scale, model.preprocessing.scale)
    assert loaded.dropout == [0.1, 0.0] and [a.name for a in loaded.activations] == ["relu", "tanh"]
    assert bpexp.evaluate(loaded, X, y) == bpexp.evaluate(model, X, y)
    assert repr(loaded) == repr(model)


def test_model_json_describes_the_model(trained):
    model, _, _, path = trained
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "weights.npz"]
    meta = json.loads((path / "model.json").read_text())
    assert meta["format"] == "bpexp-mlp" and meta["bpexp_version"] == bpexp.__version__
    assert meta["sizes"] == [4, 8, 6, 3] and meta["activations"] == ["relu", "tanh"]
    assert (meta["task"], meta["output"], meta["loss"]) == ("classification", "softmax", "cross_entropy")
    assert meta["classes"] == ["cat", "dog", "emu"] and meta["dtype"] == "float32"
    assert meta["preprocessing"] == {"kind": "standardize", "fitted": True, "targets_fitted": False}


def test_weights_npz_needs_no_pickle(trained):
    _, _, _, path = trained
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["W0", "W1", "W2", "b0", "b1", "b2", "standardize_mean", "standardize_scale"]
        assert all(npz[k].dtype == np.float32 for k in npz.files)
        assert npz["W0"].shape == (4, 8)


@pytest.mark.parametrize(
    ("kwargs", "y_kind"),
    [
        ({"sizes": [3, 5, 1]}, "binary"),
        ({"sizes": [3, 5, 4], "task": "multilabel"}, "multilabel"),
        ({"sizes": [3, 5, 2], "task": "regression", "dtype": "float64"}, "regression"),
        ({"sizes": [3, 5, 2], "task": "regression", "loss": "huber"}, "regression"),
        ({"sizes": [3, 3], "activation": []}, "ints"),
    ],
)
def test_round_trip_every_head(tmp_path, kwargs, y_kind):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    y = {"binary": np.array([False, True])[rng.integers(0, 2, 40)], "multilabel": rng.integers(0, 2, (40, 4)),
         "regression": rng.normal(size=(40, 2)), "ints": np.array([3, 7, 11])[rng.integers(0, 3, 40)]}[y_kind]
    model = bpexp.MLP(seed=0, **kwargs)
    bpexp.fit(model, X, y, epochs=2, seed=0)
    model.save(tmp_path / "m")
    loaded = bpexp.load_model(tmp_path / "m")
    assert loaded.dtype == model.dtype and loaded.head.name == model.head.name
    assert np.array_equal(loaded.predict(X), model.predict(X))
    if model.is_classifier:
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert loaded.classes_.dtype == model.classes_.dtype


def test_round_trip_keeps_activation_and_head_options(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 3))
    model = bpexp.MLP([3, 6, 1], activation=LeakyReLU(alpha=0.3), task="regression", loss="huber", seed=0)
    model.head = IdentityHuber(delta=0.25)
    bpexp.fit(model, X, rng.normal(size=30), epochs=2, seed=0)
    model.save(tmp_path / "m")
    loaded = bpexp.load_model(tmp_path / "m")
    assert loaded.activations[0].alpha == 0.3 and loaded.head.huber_delta == 0.25
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.loss(X, np.zeros(30)) == model.loss(X, np.zeros(30))


def test_a_custom_activation_cannot_be_saved(tmp_path):
    class Scaled(Tanh):
        pass

    model = bpexp.MLP([2, 3, 2], activation=Scaled(), seed=0)
    with pytest.raises(InvalidInputError, match="is not a registered bpexp activation; cannot save it"):
        model.save(tmp_path / "m")


def test_object_dtype_labels_round_trip(tmp_path):
    """Labels from a pandas column arrive as an object array; the saved model must still load without pickle."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 3))
    y = np.array(["lo", "mid", "hi"] * 10, dtype=object)
    model = bpexp.MLP([3, 4, 3], seed=0)
    bpexp.fit(model, X, y, epochs=2, seed=0)
    assert model.classes_.dtype.kind == "U"
    model.save(tmp_path / "m")
    loaded = bpexp.load_model(tmp_path / "m")
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert bpexp.evaluate(loaded, X, y) == bpexp.evaluate(model, X, y)


def test_untrained_model_round_trip(tmp_path):
    model = bpexp.MLP([3, 4, 2], standardize=True, seed=0)
    model.save(tmp_path / "m")
    loaded = bpexp.load_model(tmp_path / "m")
    assert loaded.classes_ is None and not loaded.preprocessing.fitted
    assert np.array_equal(loaded.params, model.params)


# ---------------------------------------------------------------------------- tampered folders
def _rewrite_npz(path, **changes):
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path / "weights.npz", **arrays)


def _rewrite_json(path, **changes):
    meta = json.loads((path / "model.json").read_text())
    meta.update(changes)
    (path / "model.json").write_text(json.dumps(meta))


def test_missing_files(trained, tmp_path):
    _, _, _, path = trained
    with pytest.raises(ModelFormatError, match="is not a model folder"):
        bpexp.load_model(tmp_path / "nowhere")
    (path / "weights.npz").unlink()
    with pytest.raises(ModelFormatError, match="has no weights.npz"):
        bpexp.load_model(path)
    (path / "model.json").unlink()
    with pytest.raises(ModelFormatError, match="has no model.json"):
        bpexp.load_model(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"W1": None}, "has no array 'W1'"),
        ({"b2": np.zeros(4, np.float32)}, r"b2 has shape \(4,\), expected \(3,\)"),
        ({"W0": np.zeros((8, 4), np.float32)}, r"W0 has shape \(8, 4\), expected \(4, 8\)"),
        ({"W0": np.zeros((4, 8), np.int64)}, "W0 has dtype int64, expected floats"),
        ({"b0": np.full(8, np.nan, np.float32)}, "b0 contains NaN or inf"),
        ({"standardize_mean": None}, "has no array 'standardize_mean'"),
        ({"standardize_scale": np.zeros(4, np.float32)}, "standardize_scale must be positive"),
        ({"W0": np.array(["a"] * 32).reshape(4, 8)}, "W0 has dtype <U1, expected floats"),
    ],
)
def test_tampered_weights(trained, changes, message):
    _, _, _, path = trained
    _rewrite_npz(path, **changes)
    with pytest.raises(ModelFormatError, match=message):
        bpexp.load_model(path)


class _WritesAFileWhenUnpickled:
    """Unpickling this calls open(marker, "w"): proof that something was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_object_arrays_are_refused_without_unpickling(trained, tmp_path):
    _, _, _, path = trained
    marker = tmp_path / "pwned"
    payload = np.empty((4, 8), dtype=object)
    payload[...] = _WritesAFileWhenUnpickled(marker)
    _rewrite_npz(path, W0=payload)  # np.savez pickles object arrays
    with pytest.raises(ModelFormatError, match="would need unpickling; refused"):
        bpexp.load_model(path)
    assert not marker.exists()


def test_a_pickle_posing_as_weights_is_refused(trained, tmp_path):
    _, _, _, path = trained
    marker = tmp_path / "pwned"
    (path / "weights.npz").write_bytes(pickle.dumps(_WritesAFileWhenUnpickled(marker)))
    with pytest.raises(ModelFormatError, match="weights.npz"):
        bpexp.load_model(path)
    assert not marker.exists()


def test_corrupt_weights_file(trained):
    _, _, _, path = trained
    data = (path / "weights.npz").read_bytes()
    (path / "weights.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="weights.npz"):
        bpexp.load_model(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "model.json is not valid JSON"),
        (b"\xff\xfe\x00garbage", "model.json is not valid JSON"),
        ("[1, 2, 3]", "is not a bpexp model description"),
        ('{"format": "keras"}', "is not a bpexp model description"),
        ('{"format": "bpexp-mlp"}', "describes no valid model"),
    ],
)
def test_corrupt_model_json(trained, content, message):
    _, _, _, path = trained
    if isinstance(content, bytes):
        (path / "model.json").write_bytes(content)
    else:
        (path / "model.json").write_text(content)
    with pytest.raises(ModelFormatError, match=message):
        bpexp.load_model(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"activations": ["relu", "swish"]}, "unknown activation 'swish'"),
        ({"sizes": [4, -8, 6, 3]}, "layer sizes must be positive"),
        ({"output": "softmax", "loss": "mse"}, "invalid output/loss pair"),
        ({"dtype": "float16"}, "unknown dtype 'float16'"),
        ({"activation_options": [{"alpha": 2}, {}]}, "describes no valid model"),
        ({"sizes": [4, 9, 6, 3]}, r"W0 has shape \(4, 8\), expected \(4, 9\)"),
        ({"classes_dtype": "|O"}, "unreadable classes"),
        ({"classes": ["cat", "dog"]}, "2 classes listed, but the model's head predicts 3"),
        ({"classes": ["dog", "cat", "emu"]}, "classes must be sorted and distinct"),
        ({"preprocessing": "standardize"}, "preprocessing must be an object"),
    ],
)
def test_inconsistent_model_json(trained, changes, message):
    _, _, _, path = trained
    _rewrite_json(path, **changes)
    with pytest.raises(ModelFormatError, match=message):
        bpexp.load_model(path)


def test_model_format_error_is_a_value_error(trained):
    _, _, _, path = trained
    (path / "model.json").write_text("{")
    with pytest.raises(ValueError):
        bpexp.load_model(path)


def test_regression_target_scaling_round_trips(tmp_path):
    """A standardizing regressor learns target mean/scale; predictions come back in the targets' units."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = 150 + 40 * X[:, 0] - 10 * X[:, 1]  # far from zero mean, far from unit scale
    model = bpexp.MLP([3, 8, 1], task="regression", standardize=True, seed=0)
    bpexp.fit(model, X, y, optimizer="adam", lr=0.01, epochs=60, seed=0)
    np.testing.assert_allclose(model.target_scaler.mean, [y.mean()], rtol=1e-5)
    np.testing.assert_allclose(model.target_scaler.scale, [y.std()], rtol=1e-5)
    assert bpexp.evaluate(model, X, y)["r2"] > 0.95  # metrics are in the targets' units
    model.save(tmp_path / "m")
    loaded = bpexp.load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert abs(float(np.mean(model.predict(X))) - y.mean()) < 5
