"""The one registry of training methods, their training examples and mask kinds.

Each method is declared once (:mod:`faulttune.methods.builtin`, or a plugin:
:mod:`faulttune.methods.plugins`): its parameters (user names, defaults, one-line help and the JSON
schema of a value), the training examples it reads, how they group into units, whether it needs
a reference model, a head or other experiments' models first, the method it is compared against,
and its training behaviour. Everything else reads this table: the config schema's experiment
section (:func:`experiment_schema`), the experiment expansion and validation
(:mod:`faulttune.config`), the DAG's masks and model inputs, the masks stage, the trainer (a
:class:`~faulttune.methods.recipe.Recipe` resolved once when a run is set up), the report, the
benches and the tests.

The formulas, defaults and reconstruction choices are described in ``docs/methods.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faulttune.methods import builtin  # noqa: F401 - registers the built-in entries
from faulttune.methods.plugins import load_plugins
from faulttune.methods.registry import (
    BASELINE,
    EXAMPLES,
    MASK_KINDS,
    METHODS,
    PAIRS_SOURCES,
    REJECTED_RULES,
    TRAIN_OVERRIDES,
    Examples,
    MaskKind,
    Method,
    Param,
    RowKind,
    RowSpec,
    all_params,
    examples,
    get,
    mask_kind,
    pairs_source,
    pairs_sources,
    register,
    sources_made_by,
    trained_methods,
)

__all__ = [
    "BASELINE", "EXAMPLES", "MASK_KINDS", "METHODS", "PAIRS_SOURCES", "REJECTED_RULES",
    "TRAIN_OVERRIDES", "Examples", "MaskKind", "Method", "Param", "RowKind", "RowSpec",
    "all_params", "describe", "examples", "experiment_schema", "get", "load_plugins", "mask_kind",
    "methods_command", "pairs_source", "pairs_sources", "param_problems", "register",
    "sources_made_by", "trained_methods", "with_defaults",
]


def param_problems(method_name: str, params: Mapping[str, Any]) -> list[str]:
    """Every parameter the method does not take, lacks, or whose value its schema rejects."""
    import jsonschema

    method, out = get(method_name), []
    own = {p.name: p for p in method.params}
    for key, value in params.items():
        if key not in own:
            out.append(f"method {method.name!r} has no parameter {key!r} (it has {list(own)})")
            continue
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(own[key].schema).iter_errors(value))
        if error is not None:
            out.append(f"{method.name} parameter {key}: {error.message}")
    missing = [name for name in own if name not in params]
    if missing:
        out.append(f"method {method.name!r} is missing parameter(s) {missing} (with_defaults "
                   f"fills them)")
    return out


def experiment_schema() -> dict[str, Any]:
    """The JSON schema of one experiment: ``method`` from the registry, then every key some
    method takes (which keys each method takes is checked by :mod:`faulttune.config`)."""
    properties: dict[str, Any] = {
        "method": {"enum": list(METHODS), "description": "; ".join(
            f"{m.name}: {m.help}" for m in METHODS.values())},
    }
    properties.update({name: {**p.schema, "description": p.help}
                       for name, p in all_params().items()})
    return {"type": "object", "required": ["method"], "additionalProperties": False,
            "properties": properties}


def with_defaults(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment with its method's defaults filled in (train overrides stay unset)."""
    return {**get(experiment["method"]).defaults(), **experiment}


def methods_command(args: Any) -> int:
    print(describe())
    return 0


def describe() -> str:
    """Every method and parameter, then every mask kind, as ``faulttune methods`` prints them."""
    lines = []
    for m in METHODS.values():
        lines.append(f"{m.name}: {m.help}")
        lines += [f"    {p.name} = {p.default!r}: {p.help}" for p in m.params]
    lines += [f"every trained method also takes {p.name}: {p.help}" for p in (*TRAIN_OVERRIDES, BASELINE)]
    lines += ["mask kinds:"] + [f"    {k.name}: {k.help}" for k in MASK_KINDS.values()]
    return "\n".join(lines)
