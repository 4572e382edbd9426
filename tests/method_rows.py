"""Hand-built masks rows for every trained method of the registry (tests of the trainer).

The rows follow each method's examples as the registry declares them (faulttune.methods): one row
per RowSpec of each examples kind, marked the way its mask kinds mark (every response token, the
differing middle, or a changed-line segment), so a method added to the registry is tested
without a list written here. Prompt ids, a response ending with the end-of-turn token (2) and a
trailing newline token (198); chosen and rejected responses differ in 3 tokens.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from faulttune import methods
from faulttune.mask_table import write_masks
from faulttune.methods.kinds import BUGFIX, EVERY_TASK, SOLUTION
from faulttune.methods.registry import Examples
from faulttune.models import TINY_RANDOM

EOS, NEWLINE = 2, 198
# the values a hand-built segment takes on its 3 differing tokens, by mask kind; a kind not named
# here marks every response token
SEGMENT = {"hybrid": [1, 2, 1], "middles": [1, 1, 1]}
FULL = ("response", "first_diff")


def trained() -> list[str]:
    return list(methods.trained_methods())


def one_per_training(**flags: bool) -> list[str]:
    """The first trained method of each training behaviour (its recipe) whose entry has the given
    flags (``reference=True``, ``head=True``): a test too costly to run for every method still
    covers each loss the registry holds, and a method added with a new recipe."""
    out: dict[object, str] = {}
    for name in trained():
        entry = methods.get(name)
        if all(getattr(entry, flag) == value for flag, value in flags.items()):
            out.setdefault(entry.training, name)
    return list(out.values())


def defaults(method: str, **params: Any) -> dict[str, Any]:
    return {**methods.get(method).defaults(), **params}


def required_models(method: str, model: str = TINY_RANDOM, **params: Any) -> dict[str, str]:
    """The models a method requires first, by role: all ``model`` (tests need no trained ones)."""
    requires = methods.get(method).requires
    return {role: model for role in requires(defaults(method, **params))} if requires else {}


def _sequence(prompt: list[int], response: list[int]) -> tuple[list[int], int, int]:
    ids = prompt + response + [EOS, NEWLINE]
    return ids, len(prompt), len(prompt) + len(response) + 1  # ids, start, end (eos included)


def _span(n: int, lo: int, hi: int, values: list[int] | None = None) -> list[int]:
    values = values or [1] * (hi - lo)
    return [values[i - lo] if lo <= i < hi else 0 for i in range(n)]


def _marks(kind: str, n: int, start: int, end: int, cut: int) -> list[int]:
    if kind in FULL:
        return _span(n, start, end)
    return _span(n, start + cut, start + cut + 3, SEGMENT.get(kind, [1, 1, 1]))


def rows_of(examples: Examples, count: int, seed: int = 0) -> list[dict]:
    """``count`` records' rows of ``examples``; every third record of an every-task kind is a
    plain row (no rejected side, all-zero chosen mask)."""
    rng = random.Random(seed)
    rows = []
    for k in range(count):
        prompt = [1] + [rng.randrange(3, 2000) for _ in range(rng.randrange(8, 14))]
        good = [rng.randrange(3, 2000) for _ in range(rng.randrange(10, 18))]
        cut = rng.randrange(2, len(good) - 4)
        bad = good[:cut] + [rng.randrange(3, 2000) for _ in range(3)] + good[cut + 3:]
        c_ids, c_start, c_end = _sequence(prompt, good)
        r_ids, r_start, r_end = _sequence(prompt, bad)
        seq_ids, seq_start, seq_end = _sequence(prompt + bad[:5], good)
        base = {"id": f"p{k}", "task_id": f"t{k}", "rejected_ids": None, "rejected_start": None,
                "rejected_mask": None, "first_diff": None}
        for spec in examples.rows:
            if spec.build == SOLUTION:
                ids, start, end = (c_ids, c_start, c_end) if spec.side == "correct" else (r_ids, r_start, r_end)
                rows.append({**base, "kind": spec.kind, "chosen_ids": ids, "chosen_start": start,
                             "chosen_mask": _span(len(ids), start, end)})
            elif spec.build == BUGFIX:
                rows.append({**base, "kind": spec.kind, "chosen_ids": seq_ids, "chosen_start": seq_start,
                             "chosen_mask": _span(len(seq_ids), seq_start, seq_end)})
            elif examples.reads == EVERY_TASK and k % 3 == 2:  # a task without a usable pair
                rows.append({**base, "id": f"t{k}", "kind": spec.kind, "chosen_ids": c_ids,
                             "chosen_start": c_start, "chosen_mask": [0] * len(c_ids)})
            else:
                first = methods.mask_kind(spec.chosen_mask).first_diff
                rows.append({**base, "kind": spec.kind, "chosen_ids": c_ids, "chosen_start": c_start,
                             "chosen_mask": _marks(spec.chosen_mask, len(c_ids), c_start, c_end, cut),
                             "rejected_ids": r_ids, "rejected_start": r_start,
                             "rejected_mask": _marks(spec.rejected_mask, len(r_ids), r_start, r_end, cut),
                             "first_diff": c_start + cut if first else None})
    return rows


def write_examples(folder: Path, method: str, count: int = 8, **params: Any) -> list[str]:
    """The masks files of ``method`` (its examples at ``params``, defaults filled) in ``folder``."""
    paths = []
    for examples in methods.get(method).examples_of(defaults(method, **params)):
        path = folder / f"{examples.name}.parquet"
        write_masks(rows_of(examples, count, seed=len(paths)), path, TINY_RANDOM, examples.name)
        paths.append(str(path))
    return paths
