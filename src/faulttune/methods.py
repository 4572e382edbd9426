"""The one registry of training methods.

Each method is declared once, here: its parameters (user names, defaults, one-line help and the
JSON schema of a value), the training examples it reads (mask kind and pairs source), whether it is
a preference method, the method it is compared against, and its training objective. Everything
else reads this table: the config schema's experiment section (:func:`experiment_schema`), the
experiment expansion and validation (:mod:`faulttune.config`), the DAG's mask inputs
(:func:`Method.mask_inputs`), the trainer's dispatch (:func:`Method.load_objective`), the report
and the tests. Adding a method is one entry below plus its loss and objective functions.

The formulas, defaults and reconstruction choices are described in ``docs/methods.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

JsonSchema = Mapping[str, Any]

_NONNEG = {"type": "number", "minimum": 0}
_PAIRS_SOURCES = ("teacher", "mutation", "cct", "codeflow")


@dataclass(frozen=True)
class Param:
    """One experiment key: its user name, default, help and the JSON schema of a value.
    ``data``: the key chooses the training examples (a masks input), not a loss term."""

    name: str
    default: Any
    help: str
    schema: JsonSchema
    data: bool = False


@dataclass(frozen=True)
class Method:
    """A training method (or ``base``: the untouched student).

    ``row_kinds``: the masks-file row kinds it trains on; ``mask_kind``: the masks stage kind that
    makes its pairs rows (None: it reads the training table only); ``preference``: a DPO-family
    loss on (chosen, rejected), whose units are pairs (the others' units are the tasks of the
    training table); ``baseline``: the method it is compared against at equal data and budget;
    ``objective``: ``"module:function"`` of its objective in :mod:`faulttune.training`;
    ``row_weights``: row kind -> the parameter that weighs its loss term (a run whose weight is 0
    does not train those rows: they add nothing to the loss, only compute and budget)."""

    name: str
    help: str
    params: tuple[Param, ...] = ()
    row_kinds: tuple[str, ...] = ()
    mask_kind: str | None = None
    preference: bool = False
    baseline: str | None = None
    objective: str | None = None
    row_weights: tuple[tuple[str, str], ...] = ()

    @property
    def trained(self) -> bool:
        return self.objective is not None

    def defaults(self) -> dict[str, Any]:
        """The method's own parameters with their defaults (no train overrides)."""
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        for p in (*self.params, *TRAIN_OVERRIDES, BASELINE):
            if p.name == name:
                return p
        raise KeyError(f"method {self.name!r} has no parameter {name!r}")

    def trained_row_kinds(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The row kinds a run with these parameters trains on: ``row_kinds`` without those whose
        weight (``row_weights``) is 0, e.g. CCT's bug-fix samples at ``beta: 0``."""
        zero = {kind for kind, param in self.row_weights
                if params.get(param, self.param(param).default) == 0}
        return tuple(k for k in self.row_kinds if k not in zero)

    def accepted_keys(self) -> tuple[str, ...]:
        """Every key an experiment of this method may set (besides ``method``)."""
        if not self.trained:
            return ()
        return tuple(p.name for p in (*self.params, *TRAIN_OVERRIDES, BASELINE))

    def mask_inputs(self, experiment: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The ``(kind, source)`` masks files an experiment trains on: ``source`` is ``train``
        (the training table), a pairs source (``bugs``) or ``codeflow-<rule>`` (IterPref's
        rejected-version ablation)."""
        if not self.trained:
            return []
        files = [("sft", "train")] if "sft" in self.row_kinds else []
        if self.mask_kind is None:
            return files
        kind = self.mask_kind
        if kind == "fgit":
            kind = f"fgit-{experiment.get('granularity', 'hybrid')}"
        return [*files, (kind, pairs_source(experiment))]

    def unit_source(self, experiment: Mapping[str, Any]) -> str | None:
        """What one unit of its batch is drawn from: ``train`` (a task of the training table:
        SFT, CCT, FGit) or its pairs source (the DPO family; IterPref's rejected rule keeps the
        tasks and count of its CodeFlow pairs). Two runs whose units come from the same source
        and share their batch settings take the same number of steps per epoch."""
        if not self.trained:
            return None
        return experiment["bugs"] if self.preference else "train"

    def load_objective(self) -> Callable[..., Any]:
        if self.objective is None:
            raise ValueError(f"method {self.name!r} is not trained")
        module, _, function = self.objective.partition(":")
        return getattr(importlib.import_module(module), function)


def pairs_source(experiment: Mapping[str, Any]) -> str:
    """The pairs source of an experiment; IterPref's non-default rejected rule picks its own
    CodeFlow pair set (``codeflow-first`` / ``codeflow-last``)."""
    source = experiment["bugs"]
    rule = experiment.get("rejected", "random")
    return f"codeflow-{rule}" if source == "codeflow" and rule != "random" else source


def _bugs(default: str) -> Param:
    return Param("bugs", default, "which pairs train it: teacher, mutation, cct, codeflow",
                 {"enum": list(_PAIRS_SOURCES)}, data=True)


_BETA_DPO = Param("beta", 0.1, "the DPO temperature beta", _NONNEG)
_ALPHA_NLL = Param("alpha", 1.0, "weight of the NLL term on the chosen response", _NONNEG)
_REJECTED = Param("rejected", "random",
                  "IterPref: which earlier failing version of a CodeFlow trajectory is rejected",
                  {"enum": ["random", "first", "last"]}, data=True)
_OBJ = "faulttune.training.objectives"

# Per-experiment overrides of the `train:` section, accepted by every trained method.
TRAIN_OVERRIDES: tuple[Param, ...] = (
    Param("lr", None, "overrides train.lr", {"type": "number", "exclusiveMinimum": 0}),
    Param("epochs", None, "overrides train.epochs", {"type": "number", "exclusiveMinimum": 0}),
    Param("max_steps", None, "overrides train.max_steps", {"type": ["integer", "null"], "minimum": 1}),
    Param("max_length", None, "overrides train.max_length (longer examples are left out and counted)",
          {"type": "integer", "minimum": 16}),
    Param("warmup_ratio", None, "overrides train.warmup_ratio",
          {"type": "number", "minimum": 0, "maximum": 1}),
)
# Which experiment this one is compared against (at equal data and budget) in the report.
BASELINE = Param("baseline", None, "the experiment this one is compared against (default: the one "
                 "declared experiment of the method's baseline method)", {"type": "string"})

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("base", "the untouched student (no training)"),
    Method("sft", "supervised fine-tuning on the correct solutions (token-mean NLL)",
           row_kinds=("sft",), baseline="base", objective=f"{_OBJ}:sft_objective"),
    Method("cct", "Code Comparison Tuning: L_lm + alpha*L_token (hinge from the first differing "
           "token) + beta*L_seq (buggy -> fixed samples)",
           params=(Param("alpha", 2.0, "weight of the token-level hinge L_token", _NONNEG),
                   Param("beta", 0.5, "weight of the bug-fix sequence loss L_seq", _NONNEG),
                   Param("margin", 1.0, "hinge margin of L_token", _NONNEG),
                   _bugs("cct")),
           row_kinds=("sft", "cct", "cct_seq"), mask_kind="cct", baseline="sft",
           objective=f"{_OBJ}:cct_objective", row_weights=(("cct", "alpha"), ("cct_seq", "beta"))),
    Method("fgit", "Fault-Guided fine-tuning: SFT whose error-sensitive tokens get a dynamic "
           "weight in (1, lambda]",
           params=(Param("lambda", 2.0, "upper end of the dynamic weight range (1, lambda]",
                         {"type": "number", "minimum": 1}),
                   Param("granularity", "hybrid", "which diff marks the segment: line, token, hybrid",
                         {"enum": ["line", "token", "hybrid"]}, data=True),
                   Param("weighting", "dynamic", "dynamic (symmetric Bradley-Terry), one_sided "
                         "(never rewards raising p_i) or fixed",
                         {"enum": ["dynamic", "one_sided", "fixed"]}),
                   Param("fixed_weight", 2.0, "weighting fixed: the constant on every segment token "
                         "(1 == SFT)", _NONNEG),
                   _bugs("teacher")),
           row_kinds=("fgit",), mask_kind="fgit", baseline="sft",
           objective=f"{_OBJ}:fgit_objective"),
    Method("dpo", "DPO on summed response log-probs",
           params=(_BETA_DPO, _bugs("codeflow")), row_kinds=("dpo",), mask_kind="dpo",
           preference=True, baseline="base", objective=f"{_OBJ}:dpo_objective"),
    Method("rpo", "DPO + alpha * NLL of the chosen response",
           params=(_BETA_DPO, _ALPHA_NLL, _bugs("codeflow")), row_kinds=("dpo",), mask_kind="dpo",
           preference=True, baseline="base", objective=f"{_OBJ}:rpo_objective"),
    Method("target_dpo", "IterPref's Target-DPO: the rejected log-ratio counts only the error "
           "lines D-", params=(_BETA_DPO, _REJECTED, _bugs("codeflow")),
           row_kinds=("target_dpo",), mask_kind="target_dpo", preference=True, baseline="dpo",
           objective=f"{_OBJ}:target_dpo_objective"),
    Method("target_rpo", "IterPref's Target-RPO: Target-DPO + alpha * NLL of the chosen response",
           params=(_BETA_DPO, _ALPHA_NLL, _REJECTED, _bugs("codeflow")),
           row_kinds=("target_dpo",), mask_kind="target_dpo", preference=True, baseline="rpo",
           objective=f"{_OBJ}:target_rpo_objective"),
    Method("focused_dpo", "Focused-DPO: the chosen middle segment up-weighted, the rejected suffix "
           "dropped",
           params=(_BETA_DPO, Param("focus_weight", 2.0, "weight of the chosen middle segment",
                                    _NONNEG), _bugs("codeflow")),
           row_kinds=("focused_dpo",), mask_kind="focused_dpo", preference=True, baseline="dpo",
           objective=f"{_OBJ}:focused_dpo_objective"),
)}
TRAINED_METHODS = tuple(name for name, m in METHODS.items() if m.trained)
PREFERENCE_METHODS = tuple(name for name, m in METHODS.items() if m.preference)
# Every masks kind some method trains on (FGit's per granularity).
MASK_KINDS = ("sft", "cct", "dpo", "target_dpo", "focused_dpo", "fgit-line", "fgit-token",
              "fgit-hybrid")


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def param_problems(method_name: str, params: Mapping[str, Any]) -> list[str]:
    """Every parameter the method does not take or whose value its schema rejects."""
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
    return out


def experiment_schema() -> dict[str, Any]:
    """The JSON schema of one experiment: ``method`` from the registry, then per method exactly
    the keys it takes (``if method == m then only m's keys``)."""
    keys = {p.name: p for m in METHODS.values() for p in (*m.params, *TRAIN_OVERRIDES, BASELINE)}
    properties: dict[str, Any] = {
        "method": {"enum": list(METHODS), "description": "; ".join(
            f"{m.name}: {m.help}" for m in METHODS.values())},
    }
    properties.update({name: {**p.schema, "description": p.help} for name, p in keys.items()})
    return {"type": "object", "required": ["method"], "additionalProperties": False,
            "properties": properties}


def with_defaults(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment with its method's defaults filled in (train overrides stay unset)."""
    return {**get(experiment["method"]).defaults(), **experiment}


def methods_command(args: Any) -> int:
    print(describe())
    return 0


def describe() -> str:
    """Every method and parameter, as ``faulttune methods`` prints them."""
    lines = []
    for m in METHODS.values():
        lines.append(f"{m.name}: {m.help}")
        lines += [f"    {p.name} = {p.default!r}: {p.help}" for p in m.params]
    lines += [f"every trained method also takes {p.name}: {p.help}" for p in (*TRAIN_OVERRIDES, BASELINE)]
    return "\n".join(lines)
