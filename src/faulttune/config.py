"""Load, validate and expand the workflow configuration.

Validation happens once, before any job runs (``workflow/rules/common.smk`` calls
:func:`validate_config`): the YAML itself (a key written twice is an error), every number finite,
the JSON schema (``config/schema.yaml`` with the experiment section generated from
:mod:`faulttune.methods`; unknown keys rejected), safe run and experiment names, the models, the
sweeps (each value checked against its parameter's schema, errors named ``sweeps.<exp>.<key>[i]``)
and the baselines. Every error names the key path and the bad value, e.g.
``config key train.lr: -1 is less than or equal to the minimum of 0 (value -1)``.

Experiments: the declared ones, the sweeps (one parameter at a time: ``sweeps: {fgit: {lambda:
[1.5, 3.0]}}`` adds ``fgit~lambda=1.5`` and ``fgit~lambda=3.0``) and the seed replicas (``seeds:
[0, 1, 2]`` trains every experiment once per seed: ``fgit`` with seed 0, ``fgit@seed=1``,
``fgit@seed=2``). Names are stable, so adding a value adds exactly its experiments.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faulttune import methods

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
SWEEP_SEPARATOR = "~"
SEED_SEPARATOR = "@seed="
# Run and declared experiment names: one path component that cannot climb out of results/.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_+=~-][A-Za-z0-9_.+=~-]*$")


class ConfigError(ValueError):
    """A configuration error; the message names the key path and the bad value."""


# ---------------------------------------------------------------------------------------------
# YAML


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with the same key twice (PyYAML keeps the last)."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ConfigError(
                f"{node.start_mark.name}: key {key!r} appears twice in one mapping (lines "
                f"{seen[key] + 1} and {key_node.start_mark.line + 1}); write it once")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file as a mapping; a duplicate key is an error naming both lines."""
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=_StrictLoader)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def load_config(path: str | Path) -> dict[str, Any]:
    return validate_config(read_yaml(path), source=str(path))


# ---------------------------------------------------------------------------------------------
# schema


def load_schema() -> dict[str, Any]:
    """``config/schema.yaml`` with the experiment definition generated from the method registry."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        schema = yaml.safe_load(f)
    schema["definitions"]["experiment"] = methods.experiment_schema()
    return schema


def _key_path(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def check_schema(config: Mapping[str, Any], source: str = "config",
                 schema: Mapping[str, Any] | None = None, prefix: Sequence[Any] = ()) -> None:
    """Raise ConfigError for the first schema violation, naming the key path and the value."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema or load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    error = errors[0]
    where = _key_path([*prefix, *error.absolute_path])
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise ConfigError(f"{source}: unknown key(s) {unknown} under {where}")
    raise ConfigError(f"{source}: config key {where}: {error.message} "
                      f"(value {json.dumps(error.instance, default=str)})")


def _numbers(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], float]]:
    if isinstance(value, float):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numbers(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, (*path, index))


def check_finite(config: Mapping[str, Any], source: str) -> None:
    """NaN and infinities pass JSON-schema bounds (every comparison with NaN is false)."""
    for path, number in _numbers(config):
        if not math.isfinite(number):
            raise ConfigError(f"{source}: config key {_key_path(path)}: {number} is not a finite number")


def _fill_defaults(values: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Schema defaults of every object section, recursively (experiments are filled from the
    registry instead)."""
    for key, spec in schema.get("properties", {}).items():
        if key not in values and "default" in spec:
            values[key] = copy.deepcopy(spec["default"])
        elif key not in values and any("default" in v for v in spec.get("properties", {}).values()):
            values[key] = {}
        if isinstance(values.get(key), dict) and spec.get("type") == "object":
            _fill_defaults(values[key], spec)


# ---------------------------------------------------------------------------------------------
# validation


def validate_config(config: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """Every check; returns a copy with the defaults filled in."""
    config = copy.deepcopy(dict(config))
    check_finite(config, source)
    schema = load_schema()
    check_schema(config, source, schema)
    _check_names(config, source)
    _fill_defaults(config, schema)
    config.setdefault("seeds", [config["seed"]])
    config["teacher"].setdefault("model", config["student"]["model"])
    _check_models(config, source)
    _check_experiments(config, source)
    _check_sweeps(config, source)
    _check_seeds(config, source)
    _check_bugs(config, source)
    expand_experiments(config, source)  # collisions and baselines
    return config


def _check_names(config: Mapping[str, Any], source: str) -> None:
    names = {"run": config["run"], **{f"experiments.{n}": n for n in config["experiments"]}}
    for where, name in names.items():
        if not isinstance(name, str) or not SAFE_NAME.match(name):
            raise ConfigError(
                f"{source}: config key {where}: {name!r} is not a safe name (letters, digits and "
                "_ . ~ = + -, not starting with a dot)")


def _check_models(config: Mapping[str, Any], source: str) -> None:
    from faulttune.models import check_model_name

    for key in ("student", "teacher"):
        if config[key].get("backend") == "openai":
            continue  # whatever name the endpoint serves (gpt-4o, a vLLM server's model)
        try:
            check_model_name(config[key]["model"])
        except ValueError as e:
            raise ConfigError(f"{source}: config key {key}.model: {e}") from None


def _check_experiments(config: Mapping[str, Any], source: str) -> None:
    """The schema admits every method's keys; each experiment may only set its own method's."""
    for name, values in config["experiments"].items():
        method = methods.get(values["method"])
        for key in values:
            if key != "method" and key not in method.accepted_keys():
                raise ConfigError(
                    f"{source}: config key experiments.{name}.{key}: method {method.name!r} does "
                    f"not use it (it takes {list(method.accepted_keys())})")


def _check_sweeps(config: Mapping[str, Any], source: str) -> None:
    for name, params in config.get("sweeps", {}).items():
        if name not in config["experiments"]:
            raise ConfigError(f"{source}: config key sweeps.{name}: no experiment named {name!r}")
        method = methods.get(config["experiments"][name]["method"])
        for key, values in params.items():
            if key not in method.accepted_keys() or key == methods.BASELINE.name:
                raise ConfigError(f"{source}: config key sweeps.{name}.{key}: method "
                                  f"{method.name!r} does not take {key!r} (it takes {list(method.accepted_keys())})")
            for index, value in enumerate(values):
                check_schema(value, source, method.param(key).schema, ("sweeps", name, key, index))


def _check_bugs(config: Mapping[str, Any], source: str) -> None:
    bugs = config["bugs"]
    if bugs["cct_per_family"] is not None and bugs["max_per_task"] != 1:
        raise ConfigError(f"{source}: config key bugs.cct_per_family: {bugs['cct_per_family']} "
                          f"needs bugs.max_per_task 1 (it is {bugs['max_per_task']})")


def _check_seeds(config: Mapping[str, Any], source: str) -> None:
    seeds = config["seeds"]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: config key seeds: {seeds} repeats a seed")


# ---------------------------------------------------------------------------------------------
# experiments


@dataclass(frozen=True)
class Experiment:
    """One trained (or base) model: the method, its parameters by their user names (defaults
    filled), the train overrides it sets, its training seed and what it is compared against."""

    name: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    baseline: str | None = None
    sweep_of: str | None = None
    swept: tuple[str, Any] | None = None
    replica_of: str | None = None

    @property
    def trained(self) -> bool:
        return methods.get(self.method).trained

    @property
    def family(self) -> str:
        """The experiment its seed replicas share (itself for seed 0)."""
        return self.replica_of or self.name

    def values(self) -> dict[str, Any]:
        """The experiment as a config mapping: method, parameters and overrides."""
        return {"method": self.method, **self.params, **self.overrides}


def format_value(value: Any) -> str:
    """Stable, readable text of a sweep value: 3.0 -> '3.0', 'line' -> 'line'."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def _declared(name: str, values: Mapping[str, Any], seed: int) -> Experiment:
    method = methods.get(values["method"])
    own = {k: v for k, v in values.items() if k not in ("method", "baseline")}
    overrides = {p.name: own[p.name] for p in methods.TRAIN_OVERRIDES if p.name in own}
    params = {**method.defaults(), **{k: v for k, v in own.items() if k not in overrides}}
    return Experiment(name, method.name, params, overrides, seed, values.get("baseline"))


def _swept(base: Experiment, key: str, value: Any) -> Experiment:
    name = f"{base.name}{SWEEP_SEPARATOR}{key}={format_value(value)}"
    params, overrides = base.params, base.overrides
    if key in params:
        params = {**params, key: value}
    else:
        overrides = {**overrides, key: value}
    return Experiment(name, base.method, params, overrides, base.seed, base.baseline,
                      sweep_of=base.name, swept=(key, value))


def _add(out: dict[str, Experiment], exp: Experiment, source: str, origin: str) -> None:
    if exp.name in out:
        raise ConfigError(f"{source}: config key {origin}: makes the experiment {exp.name!r}, "
                          "which already exists; rename one of them")
    out[exp.name] = exp


def expand_experiments(config: Mapping[str, Any], source: str = "config") -> dict[str, Experiment]:
    """Every experiment: declared, swept, then seed replicas of every trained one, with the
    baselines resolved (see :func:`resolve_baseline`)."""
    seeds = config.get("seeds") or [config.get("seed", 0)]
    declared: dict[str, Experiment] = {}
    for name, values in config["experiments"].items():
        _add(declared, _declared(name, values, seeds[0]), source, f"experiments.{name}")
    out = dict(declared)
    for name, params in config.get("sweeps", {}).items():
        for key, values in params.items():
            for value in values:
                base = declared[name]
                if base.params.get(key, base.overrides.get(key)) != value:
                    _add(out, _swept(base, key, value), source, f"sweeps.{name}.{key}")
    out = {n: _with_baseline(e, declared, source) for n, e in out.items()}
    for exp in list(out.values()):
        for seed in seeds[1:] if exp.trained else []:
            replica = _replica(exp, seed, out)
            _add(out, replica, source, "seeds")
    return out


def _replica(exp: Experiment, seed: int, experiments: Mapping[str, Experiment]) -> Experiment:
    baseline = exp.baseline
    if baseline is not None and experiments[baseline].trained:
        baseline = f"{baseline}{SEED_SEPARATOR}{seed}"
    return Experiment(f"{exp.name}{SEED_SEPARATOR}{seed}", exp.method, exp.params, exp.overrides,
                      seed, baseline, exp.sweep_of, exp.swept, replica_of=exp.name)


def resolve_baseline(exp: Experiment, declared: Mapping[str, Experiment], source: str) -> str | None:
    """The experiment ``exp`` is compared against: its ``baseline`` key, else the one declared
    experiment of its method's baseline method (None when there is none)."""
    explicit = exp.baseline
    where = f"experiments.{exp.sweep_of or exp.name}.baseline"
    if explicit is not None:
        if explicit not in declared or explicit == (exp.sweep_of or exp.name):
            raise ConfigError(f"{source}: config key {where}: {explicit!r} is not another declared "
                              f"experiment (declared: {sorted(declared)})")
        return explicit
    wanted = methods.get(exp.method).baseline
    candidates = [n for n, e in declared.items() if e.method == wanted]
    if len(candidates) > 1:
        raise ConfigError(f"{source}: config key {where}: several {wanted} experiments "
                          f"{candidates} could be the baseline of {exp.name!r}; name one")
    return candidates[0] if candidates else None


def _with_baseline(exp: Experiment, declared: Mapping[str, Experiment], source: str) -> Experiment:
    from dataclasses import replace

    return replace(exp, baseline=resolve_baseline(exp, declared, source))


def config_digest(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
