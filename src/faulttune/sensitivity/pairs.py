"""The probe's pairs: HumanEvalFix's, twins from a pairs file, and the seeded sample of held-out
twins that every experiment is probed on.

A pair is ``{task_id, pair_id, instruction, correct, incorrect, family, bug_type}`` (all strings).
Probe pairs are chosen by NO model (:func:`sample_probe_pairs`): a seeded draw spread over as many
tasks as possible, so no experiment (the untouched student included) is favoured or disfavoured
by the choice, and every experiment is probed on the same file.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faulttune.io import DataError, read_parquet

HUMANEVALFIX_FAMILY = "humanevalfix"
PAIR_FIELDS = ("task_id", "instruction", "correct", "incorrect", "family")
PROBE_PAIR_COLUMNS = ("id", "task_id", "instruction", "correct", "incorrect", "family", "bug_type")


def humanevalfix_pairs(data_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The 164 HumanEvalPack-Python tasks as probe pairs.

    instruction = the HumanEval prompt (signature + docstring), correct = ``declaration + canonical
    body``, incorrect = ``declaration + buggy body``: both use the docstring-free ``declaration``
    so that they differ only by the bug (the canonical ``BenchmarkTask.canonical_solution`` carries
    the docstring, the buggy program does not).
    """
    from faulttune.data.benchmarks import load_benchmark

    pairs = []
    for task in load_benchmark("humanevalfix", data_dir):
        if not task.canonical_solution.startswith(task.prompt):
            raise DataError(f"humanevalfix {task.task_id}: canonical_solution does not start "
                            "with the prompt; cannot recover the canonical body")
        body = task.canonical_solution[len(task.prompt):]
        declaration = task.extra["declaration"]
        pairs.append({
            "task_id": task.task_id, "pair_id": task.task_id, "instruction": task.prompt,
            "correct": declaration + body, "incorrect": declaration + task.extra["buggy_solution"],
            "family": HUMANEVALFIX_FAMILY, "bug_type": task.extra["bug_type"],
        })
    return pairs


def twin_pairs(path: str | os.PathLike[str], task_ids: Sequence[str] | None = None
               ) -> list[dict[str, Any]]:
    """Probe pairs from a pairs parquet (``bugs/pairs_{source}.parquet``, ``bugs/probe_pairs``).

    Keeps the rows whose ``task_id`` is in ``task_ids`` (None: all rows). ``pair_id`` is the row's
    ``id`` (or ``task_id#row`` when the file has none); ``bug_type`` is the row's ``bug_type``
    when the file has one, else "".
    """
    rows = read_parquet(path, required=PAIR_FIELDS)
    keep = None if task_ids is None else set(task_ids)
    pairs = []
    for i, row in enumerate(rows):
        if keep is not None and row["task_id"] not in keep:
            continue
        for field in PAIR_FIELDS:
            if not isinstance(row[field], str):
                raise DataError(f"{path} row {i}: '{field}' must be a string, got {row[field]!r}")
        pairs.append({**{f: row[f] for f in PAIR_FIELDS},
                      "pair_id": row.get("id") or f"{row['task_id']}#{i}",
                      "bug_type": row.get("bug_type") or ""})
    return pairs


def sample_probe_pairs(candidates: Sequence[dict[str, Any]], limit: int, seed: int
                       ) -> list[dict[str, Any]]:
    """A seeded random sample of ``limit`` candidate pairs, spread over as many tasks as possible.

    The tasks are shuffled; each round takes one not yet drawn pair (at random) of every task that
    has one left, in that order, until ``limit`` pairs are drawn: with more tasks than ``limit``
    every task gives at most one pair; otherwise every task gives one and some a second (the
    probe's intervals resample tasks, so a task's pairs count as one cluster). Fewer candidates
    than ``limit``: all of them. The result is sorted by task and pair id (the draw does not depend
    on the candidates' order). Rows: :data:`PROBE_PAIR_COLUMNS`.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for i, pair in enumerate(candidates):
        if pair["pair_id"] in seen:
            raise DataError(f"candidate {i}: pair_id {pair['pair_id']!r} appears twice")
        seen.add(pair["pair_id"])
        by_task[pair["task_id"]].append(pair)
    rng = random.Random(seed)
    tasks = sorted(by_task)
    rng.shuffle(tasks)
    pools = {t: sorted(by_task[t], key=lambda p: p["pair_id"]) for t in tasks}
    for pool in pools.values():
        rng.shuffle(pool)
    drawn: list[dict[str, Any]] = []
    while len(drawn) < limit and any(pools.values()):
        for task in tasks:
            if pools[task] and len(drawn) < limit:
                drawn.append(pools[task].pop())
    drawn.sort(key=lambda p: (p["task_id"], p["pair_id"]))
    return [{"id": p["pair_id"], **{f: p[f] for f in PAIR_FIELDS},
             "bug_type": p.get("bug_type", "")} for p in drawn]


def write_probe_pairs(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str]) -> Path:
    """Write probe pairs (:data:`PROBE_PAIR_COLUMNS`); :func:`twin_pairs` reads them."""
    import pyarrow as pa

    from faulttune.io import write_parquet

    write_parquet(rows, out, pa.schema([(c, pa.string()) for c in PROBE_PAIR_COLUMNS]))
    return Path(out)


def check_pairs(pairs: Sequence[dict[str, Any]]) -> None:
    for i, pair in enumerate(pairs):
        for field in PAIR_FIELDS:
            if not isinstance(pair.get(field), str):
                raise DataError(f"pair {i} ({pair.get('task_id')!r}): '{field}' must be a string")
