"""Experiment configs: every shipped file validates; bad keys, types and ranges name file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bpexp.config import ConfigError, ExperimentConfig, load_experiment, parse_overrides

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (REPO / "experiments").glob("*.yaml") if not p.stem.endswith("-sweep"))


def test_the_required_configs_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {"xor", "moons", "digits", "breast_cancer", "iris-csv", "diabetes"} <= names
    csv_config = yaml.safe_load((REPO / "experiments" / "iris-csv.yaml").read_text())
    assert (REPO / "experiments" / csv_config["dataset"]["name"]).is_file()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_validates(path):
    config, base = load_experiment(path)
    assert isinstance(config, ExperimentConfig)
    assert config.tracking.experiment  # named in the file or after it
    assert base == path.parent


def _write(tmp_path, data) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("patch", "key_path", "expected"),
    [
        ({"model": {"hiden": [8]}}, "model.hiden", "did you mean 'hidden'"),
        ({"optimzer": {"lr": 0.1}}, "optimzer", "did you mean 'optimizer'"),
        ({"model": {"hidden": "wide"}}, "model.hidden", "valid list"),
        ({"model": {"activation": "rleu"}}, "model.activation", "'relu'"),
        ({"optimizer": {"lr": -0.1}}, "optimizer.lr", "greater than 0"),
        ({"training": {"epochs": 0}}, "training.epochs", "greater than or equal to 1"),
        ({"model": {"dropout": 1.5}}, "model.dropout", "less than 1"),
        ({"optimizer": {"schedule": {"name": "cosine", "warmup": 3}}}, "optimizer.schedule.warmup",
         "did you mean 'warmup_epochs'"),
        ({"optimizer": {"schedule": "sawtooth"}}, "optimizer.schedule", "'constant'"),
        ({"optimizer": {"name": "adam", "momentum": 0.9}}, "optimizer", "sgd optimizer only"),
        ({"dataset": {"name": "data.csv"}}, "dataset", "target"),
        ({"dataset": {"name": "moons", "val_size": 0.6, "test_size": 0.5}}, "dataset", "must be < 1"),
    ],
)
def test_bad_config_names_file_key_and_expectation(tmp_path, patch, key_path, expected):
    data = {"dataset": {"name": "moons"}}
    for section, value in patch.items():
        data[section] = {**data.get(section, {}), **value} if isinstance(value, dict) else value
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{key_path}" in message
    assert expected in message


def test_missing_dataset_section_is_reported(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset: required key is missing"):
        load_experiment(_write(tmp_path, {"model": {"hidden": [4]}}))


def test_all_errors_are_listed_at_once(tmp_path):
    path = _write(tmp_path, {"dataset": {"name": "moons"}, "model": {"hiden": [4], "activation": "x"}})
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert "model.hiden" in str(info.value) and "model.activation" in str(info.value)


def test_not_yaml_and_not_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_experiment(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_experiment(tmp_path / "missing.yaml")


def test_set_overrides_use_the_contract_key_paths():
    overrides = parse_overrides(["model.hidden=[128,64]", "optimizer.lr=0.01", "training.epochs=200"])
    assert overrides == {"model.hidden": [128, 64], "optimizer.lr": 0.01, "training.epochs": 200}
    config, _ = load_experiment(REPO / "experiments" / "digits.yaml", overrides)
    assert config.model.hidden == [128, 64]
    assert config.optimizer.lr == 0.01
    assert config.training.epochs == 200
    flat = config.flat()
    assert flat["model.hidden"] == [128, 64] and flat["training.epochs"] == 200


def test_set_can_create_sections_and_pick_schedules():
    config, _ = load_experiment(
        REPO / "experiments" / "digits.yaml",
        parse_overrides(["optimizer.schedule=cosine", "optimizer.schedule.warmup_epochs=3",
                         "training.early_stopping.patience=4"]),
    )
    assert config.optimizer.schedule.name == "cosine" and config.optimizer.schedule.warmup_epochs == 3
    assert config.training.early_stopping.patience == 4


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("model.hiden=[4]", "model.hiden (from --set): unknown key (did you mean 'hidden'?)"),
        ("optimizer.lr=fast", "optimizer.lr (from --set)"),
        ("training.epochs=-3", "training.epochs (from --set)"),
    ],
)
def test_bad_set_override_is_named(item, expected):
    with pytest.raises(ConfigError) as info:
        load_experiment(REPO / "experiments" / "digits.yaml", parse_overrides([item]))
    assert expected in str(info.value)


@pytest.mark.parametrize("item", ["no-equals-sign", "=3", "model.hidden=[1,"])
def test_malformed_set_is_an_error(item):
    with pytest.raises(ConfigError, match="--set"):
        parse_overrides([item])


def test_set_through_a_value_is_an_error():
    with pytest.raises(ConfigError, match="seed is a value"):
        load_experiment(REPO / "experiments" / "digits.yaml", {"seed.deeper": 1})


def test_flat_params_include_defaults():
    config, _ = load_experiment({"dataset": {"name": "moons"}})
    flat = config.flat()
    for key in ("dataset.val_size", "model.activation", "optimizer.name", "optimizer.schedule.name",
                "training.batch_size", "training.early_stopping", "seed"):
        assert key in flat
