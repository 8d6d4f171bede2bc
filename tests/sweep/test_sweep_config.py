"""Sweep configs are validated before anything starts; each bad input gets a message naming its key."""

from __future__ import annotations

import pytest
from sweep_helpers import XOR, run_cli, write_yaml, xor_sweep

from bpexp.config import ConfigError, load_sweep
from bpexp.config.sweep import ArchitectureParam, CategoricalParam, FloatParam


def _sweep(space=None, **changes) -> dict:
    data = xor_sweep(**{"base": XOR, **changes})
    if space is not None:
        data["space"] = space
    return data


def test_shipped_sweep_configs_load():
    for name in ("digits-sweep", "breast_cancer-sweep"):
        sweep = load_sweep(f"experiments/{name}.yaml")
        assert sweep.study_name == name
        assert isinstance(sweep.space["model.hidden"], ArchitectureParam)
        assert sweep.max_epochs == sweep.base.training.epochs


def test_loads_typed_space_base_and_defaults():
    sweep = load_sweep(_sweep())
    assert isinstance(sweep.space["optimizer.lr"], FloatParam) and sweep.space["optimizer.lr"].log
    assert isinstance(sweep.space["training.batch_size"], CategoricalParam)
    assert sweep.base.dataset.name == "xor" and sweep.experiment == "xor-sweep"
    assert sweep.config.sampler.name == "tpe" and sweep.config.pruner.name == "median"


def test_shorthands_and_defaults():
    data = _sweep(sampler="random", pruner="none")
    data.pop("study")
    sweep = load_sweep(data)
    assert sweep.config.sampler.name == "random" and sweep.config.pruner.name == "none"
    assert sweep.study_name == "sweep" and sweep.experiment == "xor"  # the base's experiment


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"optimizer.lr": {"type": "float", "low": 0.1, "high": 0.01}},
         r"space\.optimizer\.lr: low \(0\.1\) must be <= high"),
        ({"optimizer.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}},
         r"space\.optimizer\.lr: a log range needs bounds > 0"),
        ({"training.epochs": {"type": "int", "low": -1, "high": 5, "log": True}},
         r"space\.training\.epochs: a log range needs bounds > 0"),
        ({"training.batch_size": {"type": "categorical", "choices": []}},
         r"space\.training\.batch_size\.choices: List should have at least 1 item"),
        ({"optimizer.lr": {"type": "float", "low": 0.1, "high": 0.2, "lg": True}},
         r"space\.optimizer\.lr\.lg: unknown key \(did you mean 'log'\?\)"),
        ({"optimizer.lr": {"type": "flot", "low": 0.1, "high": 0.2}}, r"space\.optimizer\.lr\.type: expected one of"),
        ({"optimizer.lrr": {"type": "float", "low": 0.1, "high": 0.2}},
         r"space\.optimizer\.lrr: not a setting of the base experiment \(did you mean 'optimizer\.lr'\?\)"),
        ({"model.dropout": {"type": "float", "low": 0.1, "high": 1.5}},
         r"space\.model\.dropout: high=1\.5 is not a valid model\.dropout: Input should be less than 1"),
        ({"model.activation": {"type": "categorical", "choices": ["relu", "swish"]}},
         r"space\.model\.activation: choice='swish' is not a valid model\.activation"),
        ({"model.hidden": {"type": "architecture", "n_layers": {"low": 3, "high": 1}, "units": {"low": 4, "high": 8}}},
         r"space\.model\.hidden\.n_layers: low \(3\) must be <= high \(1\)"),
        ({"model.hidden": {"type": "categorical", "choices": [8, 16]}},
         r"space\.model\.hidden: search the hidden layers with type: architecture"),
        ({}, r"space: Dictionary should have at least 1 item"),
    ],
)
def test_bad_space_entries_are_named(space, expected):
    with pytest.raises(ConfigError, match=expected):
        load_sweep(_sweep(space))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"studdy": {}}, r"studdy: unknown key \(did you mean 'study'\?\)"),
        ({"objective": {"metric": "val_acc"}}, r"objective\.metric: .*did you mean 'val_accuracy'"),
        ({"pruner": {"name": "median", "min_resource": 2}}, r"pruner: .*min_resource applies to the hyperband"),
        ({"pruner": "hyperbend"}, r"pruner\.name: Input should be 'hyperband'"),
        ({"sampler": {"name": "tpe", "seed": -1}}, r"sampler\.seed: Input should be greater than or equal to 0"),
        ({"study": {"workers": 0}}, r"study\.workers: Input should be greater than 0"),
        ({"study": {"heartbeat_interval": 5, "grace_period": 5}}, r"grace_period \(5\) must be longer"),
        ({"base": {"dataset": {"name": "xor"}, "model": {"hiden": [3]}}},
         r"sweep config \(base\): invalid config\n  - model\.hiden: unknown key \(did you mean 'hidden'\?\)"),
        ({"fixed": {"training.epochs": 0}}, r"training\.epochs: Input should be greater than or equal to 1"),
        ({"fixed": {"optimizer.lr": 0.1}}, r"space\.optimizer\.lr: also set in fixed"),
    ],
)
def test_bad_settings_are_named(changes, expected):
    with pytest.raises(ConfigError, match=expected):
        load_sweep(_sweep(**changes))


def test_base_file_is_resolved_next_to_the_sweep_file(project):
    sweep = load_sweep(project / "experiments" / "xor-sweep.yaml")
    assert sweep.base.dataset.name == "xor"
    missing = write_yaml(project / "experiments" / "bad-sweep.yaml", xor_sweep(base="nope.yaml"))
    with pytest.raises(ConfigError, match=r"bad-sweep\.yaml: base: no such experiment file .*nope\.yaml"):
        load_sweep(missing)


def test_objective_metric_must_fit_the_task():
    from bpexp.config.sweep import check_objective_metric

    sweep = load_sweep(_sweep(objective={"metric": "val_r2"}))
    with pytest.raises(ConfigError, match=r"objective\.metric: 'val_r2' is not logged for the classification"):
        check_objective_metric(sweep, "classification", "xor")
    assert check_objective_metric(load_sweep(_sweep(objective={})), "regression", "diabetes") == "val_r2"


def test_cli_rejects_a_bad_config_before_creating_anything(project):
    bad = write_yaml(project / "experiments" / "bad-sweep.yaml",
                     xor_sweep(space={"optimizer.lr": {"type": "float", "low": 1.0, "high": 0.1}}))
    result = run_cli(["sweep", str(bad), "--n-trials", "1"], cwd=project)
    assert result.returncode == 2, result.stderr
    assert "space.optimizer.lr: low (1.0) must be <= high (0.1)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "mlruns").exists()  # no store, no journal, no run
