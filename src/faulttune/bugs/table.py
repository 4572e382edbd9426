"""The pairs table's schema and rows (the columns: :mod:`faulttune.bugs.pairs`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from faulttune.bugs.similarity import levenshtein_similarity
from faulttune.io import DataError

TASK_FIELDS = ("task_id", "instruction", "solution", "test", "entry_point")
PAIRS_SCHEMA = pa.schema([
    ("id", pa.string()), ("task_id", pa.string()), ("source", pa.string()),
    ("instruction", pa.string()), ("correct", pa.string()), ("incorrect", pa.string()),
    ("family", pa.string()), ("similarity", pa.float64()), ("verified", pa.string()),
    ("edit_line", pa.int64()), ("edit_col", pa.int64()), ("edit", pa.string()),
    ("detail", pa.string()),
])
REJECTED_SCHEMA = PAIRS_SCHEMA.append(pa.field("reason", pa.string())).append(
    pa.field("raw", pa.string()))
REASONS = (
    "correct code does not compile", "no applicable edit", "no code block",
    "identical to the correct code", "does not compile", "same AST as the correct code",
    "same AST as another mutant", "does not define the entry point", "too long",
    "passes the tests", "correct code fails its own tests", "sandbox failure",
    "less similar than the selected variant",
)
FAILING_STATUSES = ("fail", "timeout", "error")


def index_tasks(tasks: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tasks by id; a missing or non-string field or a repeated task_id raises ``DataError``."""
    index: dict[str, dict[str, Any]] = {}
    for i, task in enumerate(tasks):
        for field in TASK_FIELDS:
            if not isinstance(task.get(field), str):
                raise DataError(f"tasks row {i} ({task.get('task_id', '?')}): field '{field}' "
                                f"missing or not a string")
        if task["task_id"] in index:
            raise DataError(f"tasks row {i}: task_id {task['task_id']!r} appears twice")
        index[task["task_id"]] = task
    return index


def task_rows(benchmark_tasks: Sequence[Any]) -> list[dict[str, Any]]:
    """Task rows (see the module doc) from :class:`faulttune.data.benchmarks.BenchmarkTask` rows:
    the prompt is the instruction and the canonical solution (a full program) the correct code."""
    return [{"task_id": t.task_id, "instruction": t.prompt, "solution": t.canonical_solution,
             "test": t.test, "entry_point": t.entry_point} for t in benchmark_tasks]


def pair_row(source: str, task: dict[str, Any], pair_id: str, incorrect: str, family: str,
          **extra: Any) -> dict[str, Any]:
    row = {"id": pair_id, "task_id": task["task_id"], "source": source,
           "instruction": task["instruction"], "correct": task["solution"],
           "incorrect": incorrect, "family": family,
           "similarity": levenshtein_similarity(task["solution"], incorrect),
           "verified": "unknown", "edit_line": None, "edit_col": None, "edit": "", "detail": ""}
    row.update(extra)
    return row


def rejected_row(row: dict[str, Any], reason: str, raw: str = "") -> dict[str, Any]:
    return {**row, "reason": reason, "raw": raw}


def counts(pairs: Sequence[dict[str, Any]], rejected: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per source: pairs, pairs by ``verified``, tasks with a pair, rejected rows by reason."""
    report: dict[str, Any] = {}
    for source in sorted({r["source"] for r in [*pairs, *rejected]}):
        mine = [p for p in pairs if p["source"] == source]
        report[source] = {
            "pairs": len(mine),
            "verified": dict(Counter(p["verified"] for p in mine)),
            "tasks_with_pairs": len({p["task_id"] for p in mine}),
            "rejected": dict(Counter(r["reason"] for r in rejected if r["source"] == source)),
        }
    return report
