"""Config validation and expansion: every error names the key path and the bad value, and no
config can make a job write outside results/<run>/ or silently drop a value."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from faulttune import methods
from faulttune.config import (
    ConfigError,
    expand_experiments,
    load_config,
    read_yaml,
    validate_config,
)

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def config_with(**sections):
    config = copy.deepcopy(BASE)
    config.update(sections)
    return config


def rejected(config, source="config.yaml") -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(config, source)
    assert str(err.value).startswith(source)
    return str(err.value)


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml", "config/newer.yaml",
                                  ".test/config.yaml"])
def test_shipped_configs_are_valid(path):
    config = load_config(REPO / path)
    assert config["train"]["warmup_ratio"] == 0.03  # default filled in from the schema
    assert config["data"]["decontaminate"] is True  # on unless a config turns it off
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
        ({"experiments": {"s": {"method": "sft", "bugs": "mutation"}}}, "experiments.s.bugs: method 'sft' does not use it"),
        ({"sweeps": {"nope": {"lambda": [2.0]}}}, "sweeps.nope: no experiment named 'nope'"),
        ({"sweeps": {"cct": {"lambda": [2.0]}}}, "sweeps.cct.lambda: method 'cct' does not take 'lambda'"),
        ({"seeds": [0, 1, 0]}, "config key seeds: [0, 1, 0] repeats a seed"),
    ],
)
def test_bad_config_names_the_key(change, expected):
    assert expected in rejected(config_with(**change))


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "../x", "", "fgit@seed=1", "a b"])
def test_unsafe_experiment_and_run_names_are_refused(name):
    message = rejected(config_with(experiments={**BASE["experiments"], name: {"method": "sft"}}))
    assert f"experiments.{name}: {name!r} is not a safe name" in message
    assert f"run: {name!r} is not a safe name" in rejected(config_with(run=name))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused(value):
    assert "config key train.lr" in rejected(config_with(train={**BASE["train"], "lr": value}))
    sweep = config_with(sweeps={"fgit": {"lambda": [2.5, value]}})
    assert "config key sweeps.fgit.lambda[1]" in rejected(sweep)


def test_a_key_written_twice_is_refused(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("run: demo\ntrain: {lr: 1.0e-5}\nseed: 0\ntrain: {lr: 2.0e-5}\n")
    with pytest.raises(ConfigError, match=r"key 'train' appears twice in one mapping \(lines 2 and 4\)"):
        read_yaml(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  lr: 1.0e-5\n  lr: 2.0e-5\n")
    with pytest.raises(ConfigError, match="key 'lr' appears twice"):
        read_yaml(nested)


def test_an_experiment_named_like_a_sweep_value_is_refused():
    config = config_with(experiments={**BASE["experiments"], "fgit~lambda=3.0": {"method": "sft"}})
    assert "sweeps.fgit.lambda: makes the experiment 'fgit~lambda=3.0', which already exists" in rejected(config)


@pytest.mark.parametrize(
    ("lora", "expected"),
    [
        ({"r": 8, "rank": 4}, "unknown key(s) ['rank'] under train.lora"),
        ({"r": "eight"}, "config key train.lora.r: 'eight' is not of type 'integer'"),
        ({"r": 8, "lora_dropout": 2.0}, "config key train.lora.lora_dropout"),
        ({"lora_alpha": 16}, "config key train.lora: 'r' is a required property"),
    ],
)
def test_lora_settings_are_checked(lora, expected):
    assert expected in rejected(config_with(train={**BASE["train"], "lora": lora}))


def test_sweep_errors_name_the_sweep_key_and_index():
    config = config_with(sweeps={"fgit": {"lambda": [2.5, 0.5]}})  # the second value is < 1
    message = rejected(config)
    assert "config key sweeps.fgit.lambda[1]: 0.5 is less than the minimum of 1" in message


def test_sweeps_expand_one_parameter_at_a_time_with_stable_names():
    config = config_with(
        experiments={"base": {"method": "base"}, "sft": {"method": "sft"}, "fgit": {"method": "fgit"},
                     "cct": {"method": "cct"}},
        sweeps={"fgit": {"lambda": [1.5, 2.0, 3.0], "granularity": ["line"]},
                "cct": {"alpha": [1.0], "beta": [0.0, 1.0], "lr": [1.0e-4]}})
    experiments = expand_experiments(validate_config(config))
    assert sorted(experiments) == sorted([
        "base", "sft", "fgit", "cct", "fgit~lambda=1.5", "fgit~lambda=3.0", "fgit~granularity=line",
        "cct~alpha=1.0", "cct~beta=0.0", "cct~beta=1.0", "cct~lr=0.0001",
    ])  # lambda=2.0 is fgit's own default: no duplicate experiment
    assert experiments["fgit~lambda=3.0"].params["lambda"] == 3.0
    assert experiments["fgit~granularity=line"].params["lambda"] == 2.0  # the rest kept
    assert experiments["cct~beta=0.0"].values() == {
        "method": "cct", "alpha": 2.0, "beta": 0.0, "margin": 1.0, "bugs": "cct"}
    assert experiments["cct~lr=0.0001"].overrides == {"lr": 1.0e-4}
    assert experiments["cct~beta=0.0"].sweep_of == "cct"


def test_seeds_replicate_every_trained_experiment_with_paired_baselines():
    config = validate_config(config_with(seeds=[0, 7]))
    experiments = expand_experiments(config)
    declared = [n for n, e in experiments.items()
                if e.trained and e.replica_of is None and e.required_by is None]
    # a replica's contrastive models (TIS-DPO's) are its own: named after the replica
    contrastive = {f"{n}@seed=7.{role}" for n in declared for role in experiments[n].requires}
    assert contrastive == {"tis@seed=7.positive", "tis@seed=7.negative"}
    assert {f"{n}@seed=7" for n in declared} | contrastive == {n for n in experiments if "@seed=" in n}
    assert "base@seed=7" not in experiments
    replica = experiments["fgit@seed=7"]
    assert (replica.seed, replica.family, replica.baseline) == (7, "fgit", "sft@seed=7")
    assert experiments["sft@seed=7"].baseline == "base"  # an untrained baseline is shared
    assert experiments["fgit"].seed == 0


def test_baselines_come_from_the_registry_or_the_config():
    experiments = expand_experiments(validate_config(BASE))
    for name, exp in experiments.items():
        wanted = methods.get(exp.method).baseline
        assert exp.baseline is None or experiments[exp.baseline].method == wanted, name
    two_sfts = {**BASE["experiments"], "sft-long": {"method": "sft", "lr": 1.0e-5}}
    assert "several sft experiments ['sft', 'sft-long'] could be the baseline" in rejected(
        config_with(experiments=two_sfts))
    two_sfts["cct"] = {**two_sfts["cct"], "baseline": "sft-long"}
    two_sfts["fgit"] = {**two_sfts["fgit"], "baseline": "sft"}
    two_sfts["fgit-mut"] = {**two_sfts["fgit-mut"], "baseline": "sft"}
    experiments = expand_experiments(validate_config(config_with(experiments=two_sfts)))
    assert experiments["cct"].baseline == "sft-long"
    assert experiments["fgit~lambda=3.0"].baseline == "sft"  # a sweep keeps its base's
    assert "'nope' is not another declared experiment" in rejected(config_with(
        experiments={**BASE["experiments"], "cct": {"method": "cct", "baseline": "nope"}}))


def test_every_method_key_has_one_default_and_a_help_in_the_registry():
    schema = methods.experiment_schema()
    assert schema["properties"]["method"]["enum"] == list(methods.METHODS)
    for method in methods.METHODS.values():
        for param in method.params:
            assert param.help and param.name in schema["properties"], (method.name, param.name)
    fgit = methods.get("fgit").defaults()
    assert fgit == {"lambda": 2.0, "granularity": "hybrid", "weighting": "dynamic",
                    "fixed_weight": 2.0, "bugs": "teacher"}


def test_a_method_that_requires_models_adds_their_experiments():
    config = validate_config(config_with(
        seeds=[0, 1], sweeps={},
        experiments={"dpo": {"method": "dpo", "bugs": "mutation"},
                     "tis": {"method": "tis_dpo", "bugs": "mutation", "max_steps": 5}}))
    experiments = expand_experiments(config)
    aux = {n: e for n, e in experiments.items() if not e.evaluated}
    assert sorted(aux) == ["tis.negative", "tis.positive", "tis@seed=1.negative", "tis@seed=1.positive"]
    assert experiments["tis"].requires == {"negative": "tis.negative", "positive": "tis.positive"}
    assert experiments["tis@seed=1"].requires["positive"] == "tis@seed=1.positive"
    positive = experiments["tis@seed=1.positive"]
    assert (positive.method, positive.params, positive.seed) == (
        "pair_sft", {"side": "correct", "bugs": "mutation"}, 1)
    assert positive.overrides == {"max_steps": 5} and positive.required_by == "tis@seed=1"
    assert experiments["tis.negative"].params["side"] == "incorrect"


PLUGIN = '''
from faulttune.methods import Method, Param

def register_entries(register):
    register(Method("plugged", "a method from a plugin", params=(Param("w", 1.0, "a weight",
                    {"type": "number"}),), examples=lambda p: ("sft",), baseline="sft",
                    training="faulttune.methods.sft:SFT"))
'''


@pytest.fixture
def registry_snapshot():
    """Put the registry back as it was (a plugin registers into the process's tables)."""
    from faulttune.methods import plugins

    tables = (methods.METHODS, methods.EXAMPLES, methods.MASK_KINDS, plugins._LOADED)
    saved = [dict(t) for t in tables]
    yield
    for table, before in zip(tables, saved):
        table.clear()
        table.update(before)


def test_plugins_add_methods_to_the_schema_once(tmp_path, registry_snapshot):
    plugin = tmp_path / "my_method.py"
    plugin.write_text(PLUGIN)
    experiments = {"sft": {"method": "sft"}, "mine": {"method": "plugged", "w": 2.0}}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['w'\] under experiments.mine"):
        validate_config(config_with(experiments=experiments, sweeps={}))
    config = validate_config(config_with(experiments=experiments, sweeps={}, plugins=[str(plugin)]))
    validate_config(config)  # loading the plugin again registers nothing twice
    mine = expand_experiments(config)["mine"]
    assert (mine.params, mine.baseline) == ({"w": 2.0}, "sft")
    bad = tmp_path / "no_hook.py"
    bad.write_text("X = 1\n")
    assert "defines no function register_entries(register)" in rejected(
        config_with(plugins=[str(bad)]))
    assert "plugin 'missing.py': no such file" in rejected(config_with(plugins=["missing.py"]))
