"""Contamination check: training rows / generated pairs against benchmark prompts and solutions.

Normalisation (:func:`comparable_tokens`): the text is split with Python's ``tokenize``; comments,
newlines, indentation and the encoding/end markers are dropped (so whitespace and layout never
matter), names, numbers and operators are kept verbatim, and every string literal (docstrings
included) is split into word and punctuation tokens without its prefix and quotes (``\\w+`` / single non-space characters), so
prose inside docstrings is compared word by word. Text that ``tokenize`` rejects (natural-language
instructions, broken code) falls back to that word/punctuation split of the whole text.
Identifiers are NOT anonymised: a renamed function still shares every n-gram of its body that
does not mention the name, and anonymising would make common loops (``for i in range(len(x))``)
match everywhere.

Two kinds of overlap between a row field and a benchmark item (a task's ``prompt`` or
``solution``, or the solution's ``code`` without docstrings; thresholds in :class:`CheckParams`, calibrated on HumanEval there):

* ``ngram``: the row contains at least ``min_containment`` (default half) of the item's
  ``n``-grams (13-grams of tokens). Any shared 13-gram is reported but is not a flag by itself:
  HumanEval's own sibling tasks share up to 30 % of their 13-grams (signatures, docstring
  phrasing, the same loops written by the same authors).
* ``near_duplicate``: token-level normalised Levenshtein similarity
  ``1 - distance / max(len)`` >= ``near_threshold`` (rapidfuzz, on the token lists). Only pairs
  sharing at least ``prefilter_min_shared`` shingles (5-grams) and with compatible lengths are
  compared, so the cost is the shingle lookups plus a few edit distances, not N x M of them.

Report per benchmark (:func:`contamination_report`)::

    {"params": {...},
     "benchmarks": {name: {"n_tasks": int, "n_rows_checked": int, "n_rows_flagged": int,
                           "by_kind": {"ngram": int, "near_duplicate": int},   # flagged rows
                           "overlapping_task_ids": [str, ...],                 # flagged only
                           "n_rows_any_shared_ngram": int,                     # informational
                           "top_matches": [MATCH, ...]}}}   # flagged first, then near misses

    MATCH = {"row": int, "row_id": str, "field": str, "benchmark": str, "task_id": str,
             "part": "prompt" | "instruct_prompt" | "solution" | "code", "kinds": [str],
             "flagged": bool, "shared_ngrams": int, "containment": float, "similarity": float}

:func:`decontaminate` keeps the rows without a match and rejects the others with a ``reason``
naming the benchmark, the task, the part, the field and the kind of overlap (for
``io.write_rejected``). It also rejects a row that IS a benchmark task by its id, whatever its
text (:func:`task_key`: ``mbpp/601`` of MBPP's train split is MBPP+'s ``Mbpp/601``,
HumanEvalPack's ``Python/3`` is ``HumanEval/3``).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
from rapidfuzz.distance import Levenshtein

from faulttune.contamination.matching import (
    DEFAULT_FIELDS,
    BenchmarkIndex,
    CheckParams,
    Item,
    Match,
    benchmark_items,
    build_index,
    find_matches,
)
from faulttune.contamination.tasks import load_benchmarks, same_task_ids, task_key
from faulttune.contamination.tokens import SHINGLE, comparable_tokens, ngrams

DEFAULT_CHECK = CheckParams()
__all__ = [
    "DEFAULT_CHECK", "DEFAULT_FIELDS", "SHINGLE", "BenchmarkIndex", "CheckParams", "Item", "Levenshtein", "Match",
    "benchmark_items", "build_index", "comparable_tokens", "contamination_report", "decontaminate",
    "decontaminate_table", "find_matches", "load_benchmarks", "ngrams", "same_task_ids",
    "self_overlaps", "task_key", "write_report",
]


def _benchmark_summary(matches: Sequence[Match], n_rows: int, n_tasks: int, top: int
                       ) -> dict[str, Any]:
    flagged = [m for m in matches if m.flagged]
    by_kind = {kind: len({m.row for m in flagged if kind in m.kinds})
               for kind in ("ngram", "near_duplicate")}
    best = sorted(matches, key=lambda m: (not m.flagged, -max(m.similarity, m.containment), m.row))
    return {"n_tasks": n_tasks, "n_rows_checked": n_rows,
            "n_rows_flagged": len({m.row for m in flagged}), "by_kind": by_kind,
            "overlapping_task_ids": sorted({m.task_id for m in flagged}, key=_task_order),
            "n_rows_any_shared_ngram": len({m.row for m in matches if m.shared_ngrams}),
            "top_matches": [{**asdict(m), "kinds": list(m.kinds), "flagged": m.flagged}
                            for m in best[:top]]}


def _task_order(task_id: str) -> tuple[str, int]:
    head, _, tail = task_id.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (task_id, -1)


def contamination_report(rows: Sequence[Mapping[str, Any]], benchmarks: Mapping[str, Sequence[Any]],
                         params: CheckParams = DEFAULT_CHECK, top: int = 10) -> dict[str, Any]:
    """The per-benchmark report of the module docstring."""
    index = build_index(benchmarks, params.n)
    matches = find_matches(rows, index, params)
    per = {name: _benchmark_summary([m for m in matches if m.benchmark == name], len(rows),
                                    index.tasks_per_benchmark[name], top)
           for name in benchmarks}
    return {"params": {**asdict(params), "fields": list(params.fields), "shingle": SHINGLE},
            "benchmarks": per}


def decontaminate(rows: Sequence[Mapping[str, Any]], benchmarks: Mapping[str, Sequence[Any]],
                  params: CheckParams = DEFAULT_CHECK
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept rows, rejected rows with ``reason``): a row that is a benchmark task by its id
    (:func:`same_task_ids`), else one whose text overlaps one; the reason names the strongest
    flagged match (most similar, then most contained) and how many other benchmark tasks
    matched."""
    index = build_index(benchmarks, params.n)
    per_row: dict[int, list[Match]] = defaultdict(list)
    for m in find_matches(rows, index, params):
        if m.flagged:
            per_row[m.row].append(m)
    by_id = same_task_ids(rows, benchmarks)
    kept, rejected = [], []
    for r, row in enumerate(rows):
        if r in by_id:
            rejected.append({**row, "reason": by_id[r]})
            continue
        found = per_row.get(r)
        if not found:
            kept.append(dict(row))
            continue
        best = max(found, key=lambda m: (m.similarity, m.containment))
        others = len({(m.benchmark, m.task_id) for m in found}) - 1
        extra = f" (+{others} more benchmark task(s))" if others else ""
        rejected.append({**row, "reason": best.reason(params.n) + extra})
    return kept, rejected


def self_overlaps(name: str, tasks: Sequence[Any], params: CheckParams = DEFAULT_CHECK
                  ) -> list[tuple[str, str]]:
    """Sorted (task, other task) pairs of one benchmark that the check flags against each other.

    HumanEval at the defaults: [("HumanEval/108", "HumanEval/145"), ("HumanEval/145",
    "HumanEval/108")]: both solutions define the same ``digits_sum`` helper. A split that puts
    such siblings on different sides leaks one into the other; keep them on one side.
    """
    rows = [{"id": t.task_id, "prompt": t.prompt, "solution": t.canonical_solution} for t in tasks]
    index = build_index({name: list(tasks)}, params.n)
    found = {(m.row_id, m.task_id) for m in find_matches(rows, index, params)
             if m.flagged and m.row_id != m.task_id}
    return sorted(found, key=lambda pair: (_task_order(pair[0]), _task_order(pair[1])))


def decontaminate_table(in_parquet: str | os.PathLike[str], out_parquet: str | os.PathLike[str],
                        benchmarks: Mapping[str, Sequence[Any]],
                        params: CheckParams = DEFAULT_CHECK) -> tuple[int, int]:
    """Read a training / pairs parquet, write the kept rows to ``out_parquet`` (same schema) and
    the flagged ones beside it (``io.write_rejected``, stage "decontaminate"); (kept, rejected)."""
    import pyarrow.parquet as pq

    from faulttune.io import write_rejected

    table = pq.read_table(in_parquet)
    kept, rejected = decontaminate(table.to_pylist(), benchmarks, params)
    Path(out_parquet).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(kept, schema=table.schema), out_parquet)
    write_rejected(rejected, out_parquet, stage="decontaminate")
    return len(kept), len(rejected)


def write_report(report: Mapping[str, Any], out_json: str | os.PathLike[str]) -> Path:
    """Write a :func:`contamination_report` as indented JSON."""
    path = Path(out_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    return path
