"""Fault localisation by execution trace: which lines of a (correct, wrong) pair to mark, from
their line traces on an input where their outputs differ (docs/methods.md §7). The idea of
grounding credit at the first execution divergence comes from online RL work; here it marks
offline training examples (the registry's ``trace`` mask kind).

:mod:`.divergence` is the pure part (alignment, first divergence, the marked lines and the
fallbacks); :mod:`.run` runs the twins in the sandbox. The traces table
(``results/{run}/traces/{source}.parquet``, one row per pair):

    id, task_id        str            the pair and its task
    status             str            divergence.STATUSES
    input              str or null    repr of the arguments the twins were traced on
    inputs_run         int32          test inputs both twins ran before one differed (or all)
    divergence         int32 or null  index of the first disagreeing trace event
    correct_lines      list<int32>    1-based lines to mark on the correct twin
    incorrect_lines    list<int32>    ... on the wrong twin
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from faulttune.io import DataError, read_parquet, write_parquet
from faulttune.tracing.divergence import STATUSES, Trace, TracedLines, traced_lines

TRACES_SCHEMA = pa.schema([
    ("id", pa.string()), ("task_id", pa.string()), ("status", pa.string()),
    ("input", pa.string()), ("inputs_run", pa.int32()), ("divergence", pa.int32()),
    ("correct_lines", pa.list_(pa.int32())), ("incorrect_lines", pa.list_(pa.int32())),
])

__all__ = ["STATUSES", "TRACES_SCHEMA", "Trace", "TracedLines", "read_traced_lines",
           "trace_pairs", "traced_lines", "write_traces"]


def trace_pairs(pairs: Sequence[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]], *,
                max_inputs: int = 16, timeout_s: float = 10.0, workers: int | None = None,
                source: str = "pairs") -> list[dict[str, Any]]:
    """One traces-table row per pair, in order; a pair of an unknown task is an error."""
    from faulttune.sandbox import Limits, run_in_pool
    from faulttune.tracing.run import trace_pair

    by_id = {str(t["task_id"]): t for t in tasks}
    for index, pair in enumerate(pairs):
        if str(pair.get("task_id")) not in by_id:
            raise DataError(f"{source} row {index}: field task_id {pair.get('task_id')!r} is "
                            f"not a task of the tasks table")
    limits = Limits(timeout_s=timeout_s)
    return run_in_pool(lambda p: trace_pair(p, by_id[str(p["task_id"])], limits, max_inputs),
                       list(pairs), workers=workers, desc="traces")


def write_traces(rows: Sequence[Mapping[str, Any]], path: str) -> Counter[str]:
    write_parquet([dict(r) for r in rows], path, TRACES_SCHEMA)
    return Counter(r["status"] for r in rows)


def read_traced_lines(path: str) -> dict[str, tuple[list[int], list[int]]]:
    """pair id -> (correct lines, incorrect lines) of a traces table."""
    return {str(r["id"]): (list(r["correct_lines"]), list(r["incorrect_lines"]))
            for r in read_parquet(path, required=TRACES_SCHEMA.names)}
