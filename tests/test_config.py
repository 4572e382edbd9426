"""Config validation and sweep expansion: errors name the key path and the bad value."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from faulttune.config import ConfigError, expand_experiments, load_config, validate_config

BASE = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())


def with_change(**changes):
    config = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return config


def test_shipped_config_is_valid():
    config = load_config(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    assert config["train"]["warmup_ratio"] == 0.03  # default filled in from the schema
    assert "base" in expand_experiments(config)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"experiments": {"x": {"method": "magic"}}}, "experiments.x.method: 'magic' is not one of"),
        ({"train": {"lr": -1.0}}, "config key train.lr"),
        ({"student": {"model": "no-such-model"}}, "config key student.model: unknown model 'no-such-model'"),
        ({"bogus": 1}, "unknown key(s) ['bogus']"),
        ({"train": {"lr": 1e-5, "lrr": 1}}, "unknown key(s) ['lrr'] under train"),
        ({"experiments": {"c": {"method": "cct", "lambda": 2.0}}}, "experiments.c.lambda: method 'cct' does not use it"),
        ({"sweeps": {"nope": {"lambda": [2.0]}}}, "sweeps.nope: no experiment named 'nope'"),
    ],
)
def test_bad_config_names_the_key(change, expected):
    config = copy.deepcopy(BASE)
    config.update(change)
    with pytest.raises(ConfigError) as err:
        validate_config(config, "config.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("config.yaml")


def test_bad_sweep_value_is_rejected():
    config = copy.deepcopy(BASE)
    config["experiments"]["fgit"] = {"method": "fgit"}
    config["sweeps"] = {"fgit": {"lambda": [2.5, 0.5]}}  # the second value is out of range
    with pytest.raises(ConfigError, match="lambda"):
        validate_config(config)


def test_sweeps_expand_one_parameter_at_a_time_with_stable_names():
    config = copy.deepcopy(BASE)
    config["experiments"] = {"base": {"method": "base"}, "fgit": {"method": "fgit"}, "cct": {"method": "cct"}}
    config["sweeps"] = {"fgit": {"lambda": [1.5, 2.0, 3.0], "granularity": ["line"]},
                        "cct": {"alpha": [1.0], "beta": [0.0, 1.0]}}
    names = expand_experiments(validate_config(config))
    assert sorted(names) == sorted([
        "base", "fgit", "cct", "fgit~lambda=1.5", "fgit~lambda=3.0", "fgit~granularity=line",
        "cct~alpha=1.0", "cct~beta=0.0", "cct~beta=1.0",
    ])  # lambda=2.0 is fgit's own default: no duplicate experiment
    assert names["fgit~lambda=3.0"]["lambda"] == 3.0
    assert names["fgit~granularity=line"]["lambda"] == 2.0  # other keys keep the base values
    assert names["cct~beta=0.0"] == {"method": "cct", "alpha": 2.0, "beta": 0.0, "bugs": "cct"}


def test_train_config_maps_the_workflow_keys():
    from faulttune.config import expand_experiments
    from faulttune.stages import train_config

    config = copy.deepcopy(BASE)
    config["train"] = {"lr": 1e-5, "batch_size": 8, "grad_accum": 4, "num_processes": 2}
    config["experiments"] = {"fgit": {"method": "fgit", "granularity": "line", "lambda": 3.0,
                                      "bugs": "mutation", "max_steps": 5}}
    config = validate_config(config)
    cfg = train_config(config, expand_experiments(config)["fgit"])
    assert (cfg.method, cfg.lam, cfg.lr, cfg.max_steps) == ("fgit", 3.0, 1e-5, 5)
    assert (cfg.batch_size, cfg.micro_batch_size) == (8, 2)  # grad_accum 4
