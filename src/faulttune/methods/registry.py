"""The registry's tables and their entries: methods, the training examples they read, the mask kinds
those examples are marked with.

* A :class:`MaskKind` marks the tokens of a (correct, incorrect) pair inside its training sequences
  (a pure function of :mod:`faulttune.masks`).
* An :class:`Examples` entry is one kind of masks file (``masks/{name}_{source}.parquet``): what
  each record of its input (the training table, a pairs table, or both) becomes, as
  :class:`RowSpec` s. The masks stage builds it, the trainer reads its rows.
* A :class:`Method` names its parameters, the examples it reads (a function of its parameters),
  how its rows group into units, whether it needs a reference model or other experiments' models
  first, its baseline, and its training behaviour (a :class:`faulttune.methods.recipe.Recipe`,
  named ``"module:Class"`` and imported when a run is set up).

Everything else reads these tables; nothing outside this package and a method's loss module names
a method, an examples kind or a mask kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from faulttune.methods.kinds import EVERY_TASK, PAIR, PAIRS, TASKS

JsonSchema = Mapping[str, Any]
Params = Mapping[str, Any]


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
class MaskKind:
    """How the tokens of a pair are marked: ``marks(masks.Twins) -> masks.Marks`` (both sides).
    ``traced``: it needs the pair's execution traces (the ``traces`` stage) first;
    ``first_diff``: its marks carry the first differing token position."""

    name: str
    help: str
    marks: Callable[[Any], Any]
    traced: bool = False
    first_diff: bool = False


@dataclass(frozen=True)
class RowSpec:
    """One row each input record becomes. ``solution``: prompt = the task, response = the
    ``side`` code (``correct`` or ``incorrect``), every response token marked; ``pair``: chosen =
    the correct code, rejected = the incorrect one, marked by the mask kinds ``chosen_mask`` and
    ``rejected_mask`` (a first-difference kind also fills ``first_diff``); ``bugfix``: prompt =
    the incorrect code to fix (a seeded template), response = the correct code."""

    kind: str
    build: str
    chosen_mask: str | None = None
    rejected_mask: str | None = None
    side: str = "correct"

    def masks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for m in (self.chosen_mask, self.rejected_mask) if m))


@dataclass(frozen=True)
class RowKind:
    """What the trainer checks of a row kind: ``paired`` True (a rejected side), False (none) or
    None (optional: a plain row has none and an all-zero chosen mask); ``first_diff``: the row
    carries the first differing position."""

    name: str
    paired: bool | None
    first_diff: bool = False


@dataclass(frozen=True)
class Examples:
    """A masks-file kind: the rows each record of its input becomes (see :data:`TASKS`)."""

    name: str
    help: str
    reads: str
    rows: tuple[RowSpec, ...]

    def mask_kinds(self) -> list[MaskKind]:
        return [mask_kind(m) for spec in self.rows for m in spec.masks()]

    @property
    def traced(self) -> bool:
        return any(kind.traced for kind in self.mask_kinds())

    def row_kinds(self) -> dict[str, RowKind]:
        out = {}
        for spec in self.rows:
            paired = None if self.reads == EVERY_TASK else spec.build == PAIR
            first_diff = any(mask_kind(m).first_diff for m in spec.masks())
            out[spec.kind] = RowKind(spec.kind, paired, first_diff)
        return out


ExampleNames = Callable[[Params], tuple[str, ...]]
Requires = Callable[[Params], dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Method:
    """A training method (or ``base``: the untouched student).

    ``examples(params)``: the examples kinds it trains on; ``units``: what the batch size counts,
    ``"row"`` (one row) or ``"task"`` (every row of one source task); ``reference``: it needs a
    reference model (a DPO-family loss on chosen and rejected); ``head``: it trains a head beside
    the model; ``requires(params)``: the experiments whose models it needs first, by role (each a
    config experiment mapping; the DAG trains them); ``baseline``: the method it is compared
    against at equal data and budget; ``training``: its :class:`~faulttune.methods.recipe.Recipe`
    (``"module:Class"`` or the class); ``row_weights``: row kind -> the parameter that weighs its
    loss term (a run whose weight is 0 does not train those rows: they would add nothing to the
    loss, only compute and budget)."""

    name: str
    help: str
    params: tuple[Param, ...] = ()
    examples: ExampleNames | None = None
    units: str = "row"
    reference: bool = False
    head: bool = False
    requires: Requires | None = None
    baseline: str | None = None
    training: str | type | None = None
    row_weights: tuple[tuple[str, str], ...] = ()

    @property
    def trained(self) -> bool:
        return self.training is not None

    def defaults(self) -> dict[str, Any]:
        """The method's own parameters with their defaults (no train overrides)."""
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        for p in (*self.params, *TRAIN_OVERRIDES, BASELINE):
            if p.name == name:
                return p
        raise KeyError(f"method {self.name!r} has no parameter {name!r}")

    def accepted_keys(self) -> tuple[str, ...]:
        """Every key an experiment of this method may set (besides ``method``)."""
        if not self.trained:
            return ()
        return tuple(p.name for p in (*self.params, *TRAIN_OVERRIDES, BASELINE))

    def examples_of(self, params: Params) -> list[Examples]:
        """The examples kinds an experiment with ``params`` (defaults filled) trains on."""
        if self.examples is None:
            return []
        return [examples(name) for name in self.examples(params)]

    def mask_inputs(self, params: Params) -> list[tuple[str, str]]:
        """The ``(examples kind, source)`` masks files an experiment trains on: ``source`` is
        ``train`` (the training table) or its pairs source (:func:`pairs_source`)."""
        return [(e.name, "train" if e.reads == TASKS else pairs_source(params))
                for e in self.examples_of(params)]

    def row_kinds(self, params: Params) -> dict[str, RowKind]:
        out: dict[str, RowKind] = {}
        for e in self.examples_of(params):
            out.update(e.row_kinds())
        return out

    def untrained_row_kinds(self, params: Params) -> tuple[str, ...]:
        """The row kinds its examples hold that a run with ``params`` does not train: those whose
        weight (``row_weights``) is 0, e.g. CCT's bug-fix samples at ``beta: 0``."""
        return tuple(kind for kind, param in self.row_weights
                     if params.get(param, self.param(param).default) == 0)

    def unit_source(self, params: Params) -> str | None:
        """What one unit of its batch is drawn from: ``train`` (a task of the training table)
        or its pairs (``bugs``; IterPref's rejected rule keeps the tasks and count of its CodeFlow
        pairs). Two runs whose units come from the same source and share their batch settings
        take the same number of steps per epoch."""
        if not self.trained:
            return None
        first = self.examples_of(params)[0]
        return "train" if self.units == "task" or first.reads != PAIRS else params["bugs"]

    def recipe_class(self) -> type:
        """The class of its training behaviour, imported now (a run is being set up)."""
        if self.training is None:
            raise ValueError(f"method {self.name!r} is not trained")
        if not isinstance(self.training, str):
            return self.training
        module, _, name = self.training.partition(":")
        return getattr(importlib.import_module(module), name)

    def recipe(self, params: Params) -> Any:
        """Its training behaviour with ``params`` bound: resolved once when a run is set up."""
        return self.recipe_class()(self, params)


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

METHODS: dict[str, Method] = {}
EXAMPLES: dict[str, Examples] = {}
MASK_KINDS: dict[str, MaskKind] = {}
# Pairs sources: name -> the rule that makes them (bugs.smk, codeflow.smk).
PAIRS_SOURCES: dict[str, str] = {}
# IterPref's rules for the rejected version of a CodeFlow trajectory; the first is the default.
REJECTED_RULES: tuple[str, ...] = ("random", "first", "last")
CODEFLOW = "codeflow"


def register(*entries: Method | Examples | MaskKind) -> None:
    """Add entries to their tables (mask kinds and examples before the methods that use them);
    a name already taken is an error."""
    for entry in entries:
        table: dict[str, Any] = (METHODS if isinstance(entry, Method) else EXAMPLES
                                 if isinstance(entry, Examples) else MASK_KINDS)
        if entry.name in table:
            raise ValueError(f"{type(entry).__name__} {entry.name!r} is already registered")
        if isinstance(entry, Examples):
            entry.mask_kinds()  # every mask kind it names exists
        table[entry.name] = entry


def register_pairs_source(name: str, rule: str) -> None:
    PAIRS_SOURCES[name] = rule


def _lookup(table: Mapping[str, Any], what: str, name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(table)}") from None


def get(name: str) -> Method:
    return _lookup(METHODS, "method", name)


def examples(name: str) -> Examples:
    return _lookup(EXAMPLES, "examples kind", name)


def mask_kind(name: str) -> MaskKind:
    return _lookup(MASK_KINDS, "mask kind", name)


def trained_methods() -> tuple[str, ...]:
    return tuple(name for name, m in METHODS.items() if m.trained)


def pairs_source(params: Params) -> str:
    """The pairs source of an experiment; IterPref's non-default rejected rule picks its own
    CodeFlow pair set (``codeflow-first`` / ``codeflow-last``)."""
    source = params["bugs"]
    rule = params.get("rejected", REJECTED_RULES[0])
    return f"{CODEFLOW}-{rule}" if source == CODEFLOW and rule != REJECTED_RULES[0] else source


def pairs_sources() -> list[str]:
    """Every source a masks file can read: the training table and every pairs source."""
    return ["train", *PAIRS_SOURCES, *(f"{CODEFLOW}-{r}" for r in REJECTED_RULES)]


def sources_made_by(rule: str) -> list[str]:
    return [name for name, made_by in PAIRS_SOURCES.items() if made_by == rule]


def all_params(methods: Iterable[Method] | None = None) -> dict[str, Param]:
    """Every experiment key by name (the methods' own, the train overrides, the baseline)."""
    chosen = METHODS.values() if methods is None else methods
    return {p.name: p for m in chosen for p in (*m.params, *TRAIN_OVERRIDES, BASELINE)}
