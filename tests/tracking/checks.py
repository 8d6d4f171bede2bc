"""Assertions shared by the sqlite-store and tracking-server tests: read a run back and check it all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

import bpexp

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EPOCH_METRICS_CLASSIFICATION = ("train_loss", "val_loss", "val_accuracy", "val_f1", "lr", "epoch_seconds")
EPOCH_METRICS_REGRESSION = ("train_loss", "val_loss", "val_r2", "val_mae", "val_mse", "lr", "epoch_seconds")


def check_params(client, result) -> None:
    run = client.get_run(result.run_id)
    flat = result.config.flat()
    assert set(run.data.params) == set(flat)
    for key, value in flat.items():
        assert run.data.params[key] == ("None" if value is None else str(value)), key


def check_epoch_metrics(client, result, keys) -> None:
    """Every epoch of every per-epoch metric is in the store, in order, equal to the History."""
    n = len(result.history)
    layers = len(result.model.weights)
    all_keys = [*keys, *(f"grad_norm/layer{i}" for i in range(1, layers + 1)),
                *(f"weight_norm/layer{i}" for i in range(1, layers + 1))]
    for key in all_keys:
        points = client.get_metric_history(result.run_id, key)
        steps = [p.step for p in sorted(points, key=lambda p: (p.step, p.timestamp))]
        assert steps == list(range(1, n + 1)), key
        stored = [p.value for p in sorted(points, key=lambda p: p.step)]
        np.testing.assert_allclose(stored, result.history[key], rtol=1e-6, err_msg=key)


def check_tags_and_input(client, result, dataset: str) -> dict:
    run = client.get_run(result.run_id)
    tags = run.data.tags
    assert tags["bpexp.version"] == bpexp.__version__
    assert tags["bpexp.dataset"] == dataset
    assert tags["bpexp.dataset_digest"] == result.dataset.digest()
    assert tags["bpexp.seed"] == str(result.config.seed)
    assert tags["bpexp.status"] in ("completed", "stopped")
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.name == dataset
    assert inputs[0].dataset.digest == result.dataset.digest()[:16]
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
    assert run.info.status == "FINISHED"
    return tags


def artifact_files(client, run_id: str, path: str = "") -> set[str]:
    out = set()
    for info in client.list_artifacts(run_id, path or None):
        if info.is_dir:
            out |= artifact_files(client, run_id, info.path)
        else:
            out.add(info.path)
    return out


def check_artifacts(client, result, tmp_path, plots: tuple[str, ...]) -> None:
    files = artifact_files(client, result.run_id)
    assert "config.yaml" in files
    for plot in plots:
        assert f"plots/{plot}.png" in files, files
    local = Path(client.download_artifacts(result.run_id, "", str(tmp_path)))
    assert yaml.safe_load((local / "config.yaml").read_text()) == result.config.model_dump(mode="json")
    for plot in plots:
        assert (local / "plots" / f"{plot}.png").read_bytes()[:8] == PNG_MAGIC


def check_pyfunc_model(result, X) -> None:
    """The logged pyfunc model predicts exactly what the trained model predicts; no pickle inside."""
    import mlflow
    import pandas as pd

    from bpexp.tracking.model import using_store

    assert result.model_uri and result.model_uri.startswith("models:/")
    with using_store(result.tracking_uri):  # models:/ URIs resolve against the global store
        loaded = mlflow.pyfunc.load_model(result.model_uri)
        local = mlflow.artifacts.download_artifacts(result.model_uri)
    frame = pd.DataFrame(np.asarray(X, dtype=np.float64), columns=result.dataset.feature_names)
    got = loaded.predict(frame)["prediction"].to_numpy()
    np.testing.assert_array_equal(got, result.model.predict(X))
    meta = loaded.metadata
    assert meta.signature is not None
    assert "python_function" in meta.flavors
    assert meta.flavors["python_function"].get("model_code_path")  # models from code
    names = [p.name for p in Path(local).rglob("*")]
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".cloudpickle"))], names
    assert "serving_input_example.json" in names and "weights.npz" in names and "model.json" in names
