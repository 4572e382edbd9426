"""Load, validate and expand the workflow configuration.

Validation happens before any job runs: the JSON schema (``config/schema.yaml``, unknown keys
rejected) and then the checks a schema cannot express (a parameter that the method does not use, an
unknown model, a sweep of an experiment that does not exist). Every error names the key path and the
bad value, e.g. ``config key train.lr: -1 is less than or equal to the minimum of 0``.

Sweeps expand one parameter at a time: ``sweeps: {fgit: {lambda: [1.5, 3.0]}}`` adds the
experiments ``fgit~lambda=1.5`` and ``fgit~lambda=3.0`` (the base experiment ``fgit`` with that one
value changed). A value equal to the base experiment's own adds nothing. Names are stable, so adding
a value to a list adds exactly one experiment and reruns only its jobs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"

# Which experiment keys each method reads (besides method, bugs, lr, epochs, max_steps, seed).
METHOD_PARAMS: dict[str, set[str]] = {
    "base": set(),
    "sft": set(),
    "cct": {"alpha", "beta"},
    "fgit": {"lambda", "granularity", "weighting", "fixed_weight"},
    "dpo": {"beta"},
    "rpo": {"beta", "alpha"},
    "target_dpo": {"beta", "rejected"},
    "target_rpo": {"beta", "alpha", "rejected"},
    "focused_dpo": {"beta", "focus_weight"},
}
COMMON_PARAMS = {"method", "bugs", "lr", "epochs", "max_steps", "seed"}
# The papers' defaults (METHODS.md); an experiment's own keys override them.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "sft": {},
    "cct": {"alpha": 2.0, "beta": 0.5, "bugs": "cct"},
    "fgit": {"lambda": 2.0, "granularity": "hybrid", "weighting": "dynamic", "fixed_weight": 2.0,
             "bugs": "teacher"},
    "dpo": {"beta": 0.1, "bugs": "codeflow"},
    "rpo": {"beta": 0.1, "alpha": 1.0, "bugs": "codeflow"},
    "target_dpo": {"beta": 0.1, "rejected": "random", "bugs": "codeflow"},
    "target_rpo": {"beta": 0.1, "alpha": 1.0, "rejected": "random", "bugs": "codeflow"},
    "focused_dpo": {"beta": 0.1, "focus_weight": 2.0, "bugs": "codeflow"},
}
SWEEP_SEPARATOR = "~"


class ConfigError(ValueError):
    """A configuration error; the message names the key path and the bad value."""


def load_config(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    return validate_config(config, source=str(path))


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _key_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def check_schema(config: Mapping[str, Any], source: str = "config") -> None:
    """Raise ConfigError for the first schema violation, naming the key path and the value."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = errors[0]
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = _key_path(error.absolute_path)
        raise ConfigError(f"{source}: unknown key(s) {unknown} under {where}")
    raise ConfigError(
        f"{source}: config key {_key_path(error.absolute_path)}: {error.message} "
        f"(value {json.dumps(error.instance, default=str)})"
    )


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Schema + semantic checks; returns the config with defaults filled in (a copy)."""
    check_schema(config, source)
    config = _with_defaults(copy.deepcopy(config))
    _check_models(config, source)
    for name, exp in config["experiments"].items():
        _check_experiment(name, exp, source)
    _check_sweeps(config, source)
    return config


def _with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    schema = load_schema()["properties"]
    config.setdefault("seed", 0)
    for section in ("generation", "bugs", "codeflow", "train", "teacher", "sensitivity"):
        values = config.setdefault(section, {})
        for key, spec in schema[section]["properties"].items():
            if "default" in spec:
                values.setdefault(key, spec["default"])
    config["teacher"].setdefault("model", config["student"]["model"])
    config["student"].setdefault("precision", "auto")
    config["data"].setdefault("optional_benchmarks", [])
    config["data"].setdefault("decontaminate", False)
    config["data"].setdefault("bigcodebench", {})
    config["data"]["bigcodebench"].setdefault("source", None)
    config["data"]["bigcodebench"].setdefault("scorer", "official")
    config.setdefault("sweeps", {})
    return config


def _check_models(config: dict[str, Any], source: str) -> None:
    from faulttune.models import check_model_name

    for key in ("student", "teacher"):
        try:
            check_model_name(config[key]["model"])
        except ValueError as e:
            raise ConfigError(f"{source}: config key {key}.model: {e}") from None


def _check_experiment(name: str, exp: Mapping[str, Any], source: str) -> None:
    allowed = METHOD_PARAMS[exp["method"]] | COMMON_PARAMS
    for key in exp:
        if key not in allowed:
            raise ConfigError(
                f"{source}: config key experiments.{name}.{key}: method {exp['method']!r} "
                f"does not use it (it takes {sorted(allowed - {'method'})})"
            )


def _check_sweeps(config: dict[str, Any], source: str) -> None:
    for name, params in config["sweeps"].items():
        if name not in config["experiments"]:
            raise ConfigError(f"{source}: config key sweeps.{name}: no experiment named {name!r}")
        for key, values in params.items():
            for value in values:
                trial = {**config["experiments"][name], key: value}
                _check_experiment(name, trial, source)
                check_schema({**config, "experiments": {name: trial}, "sweeps": {}}, source)


def format_value(value: Any) -> str:
    """Stable, readable text of a sweep value: 3.0 -> '3.0', 'line' -> 'line'."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def expand_experiments(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """All experiments (declared + swept), each with its method's defaults filled in."""
    out: dict[str, dict[str, Any]] = {}
    for name, exp in config["experiments"].items():
        out[name] = {**METHOD_DEFAULTS.get(exp["method"], {}), **exp}
    for name, params in config.get("sweeps", {}).items():
        base = out[name]
        for key, values in params.items():
            for value in values:
                if base.get(key) == value:
                    continue
                out[f"{name}{SWEEP_SEPARATOR}{key}={format_value(value)}"] = {**base, key: value}
    return out


def config_digest(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
