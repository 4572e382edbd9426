"""CCT's rule-injected bugs (docs/methods.md §1.1): exactly one edit per twin, seeded; the edits
each family makes are :mod:`faulttune.bugs.cct_edits`'s. A candidate edit is used only if the
twin compiles and its AST differs from the original.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Sequence

from faulttune.bugs import ast_key, compile_error
from faulttune.bugs.cct_edits import (
    Edit,
    function_missing_edits,
    operator_misuse_edits,
    variable_misuse_edits,
)

# ---------------------------------------------------------------------------------------------
# public entry points

_GENERATORS = {
    "variable_misuse": variable_misuse_edits,
    "operator_misuse": operator_misuse_edits,
    "function_missing": function_missing_edits,
}
FAMILIES = tuple(_GENERATORS)


def candidate_edits(source: str, family: str, start: int = 0) -> list[Edit]:
    """Every single-edit candidate of ``family`` in ``source`` (source order, deterministic)
    whose edited span starts at or after character ``start`` (the code the model writes:
    :func:`faulttune.bugs.completion_start`; the text before it stays byte-identical).

    Raises ``ValueError`` for an unknown family or a source that does not parse.
    """
    if family not in _GENERATORS:
        raise ValueError(f"unknown CCT family {family!r}; choose one of {', '.join(FAMILIES)}")
    tree = ast.parse(source)
    return [edit for edit in _GENERATORS[family](source, tree) if edit.start >= start]


def is_valid_twin(original: str, twin: str) -> bool:
    """The twin compiles and its AST (docstrings ignored) differs from the original's."""
    return compile_error(twin) is None and ast_key(twin) != ast_key(original)


def inject(source: str, family: str, rng: random.Random, k: int = 1, start: int = 0
           ) -> list[tuple[Edit, str]]:
    """Up to ``k`` distinct twins of ``source``, one edit each at or after ``start``, drawn in
    ``rng`` order.

    Returns ``(edit, twin_source)`` pairs; twins with the same AST are counted once.
    """
    candidates = candidate_edits(source, family, start)
    rng.shuffle(candidates)
    chosen: list[tuple[Edit, str]] = []
    seen: set[str | None] = set()
    for edit in candidates:
        twin = edit.apply(source)
        key = ast_key(twin)
        if key in seen or not is_valid_twin(source, twin):
            continue
        seen.add(key)
        chosen.append((edit, twin))
        if len(chosen) == k:
            break
    return chosen


def twins(source: str, seed: int | str, per_family: int,
          families: Sequence[str] = FAMILIES, start: int = 0) -> list[tuple[Edit, str]]:
    """``per_family`` twins per family, seeded by ``seed`` (pass e.g. ``f"{seed}:{task_id}"``),
    each edit at or after character ``start``."""
    out = []
    for family in families:
        out += family_twins(source, seed, family, per_family, start)
    return out


def family_twins(source: str, seed: int | str, family: str, k: int, start: int = 0
                 ) -> list[tuple[Edit, str]]:
    """Up to ``k`` twins of one family; the same draw as :func:`twins` makes for that family."""
    return inject(source, family, random.Random(f"{seed}:{family}"), k, start)


def family_order(seed: int | str, families: Sequence[str] = FAMILIES) -> list[str]:
    """The families in a seeded order: its first is the family drawn uniformly for a snippet
    (docs/methods.md §1.1, one bug per sample); the others stand in, in turn, when it yields no twin."""
    order = list(families)
    random.Random(f"{seed}:family-order").shuffle(order)
    return order
