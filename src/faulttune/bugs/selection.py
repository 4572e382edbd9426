"""FGit's teacher pairs (docs/methods.md §2.1): each task's most similar teacher variant that
passes the checks and fails the tests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from faulttune.bugs import ast_key, compile_error
from faulttune.bugs.similarity import make_scorer
from faulttune.bugs.table import index_tasks, pair_row, rejected_row
from faulttune.bugs.verify import Verdict, verify_twins
from faulttune.generate.extract import defines
from faulttune.generate.extract import python_block as extract_code_block
from faulttune.io import DataError


def screen_candidate(code: str | None, task: dict[str, Any], max_length_ratio: float = 2.0
                     ) -> str | None:
    """The rejection reason of an extracted teacher variant, or ``None`` if it may be a twin.

    "too long": more than ``max_length_ratio`` times the correct code's characters plus 100
    (slack for one-line solutions).
    """
    correct = task["solution"]
    if code is None:
        return "no code block"
    if code.strip() == correct.strip():
        return "identical to the correct code"
    if compile_error(code) is not None:
        return "does not compile"
    if ast_key(code) == ast_key(correct):
        return "same AST as the correct code"
    if task["entry_point"] and not defines(code, task["entry_point"]):
        return "does not define the entry point"
    if len(code) > max_length_ratio * len(correct) + 100:
        return "too long"
    return None


def _screen_candidates(candidate_rows: Sequence[dict[str, Any]], index: dict[str, dict[str, Any]],
                       max_length_ratio: float
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    survivors, rejected = [], []
    for i, cand in enumerate(candidate_rows):
        task = index.get(cand.get("task_id"))
        if task is None or not isinstance(cand.get("raw"), str):
            raise DataError(f"teacher candidates row {i}: unknown task_id "
                            f"{cand.get('task_id')!r} or no 'raw' text")
        code = extract_code_block(cand["raw"])
        row = pair_row("teacher", task, cand["id"], code or "", "teacher")
        reason = screen_candidate(code, task, max_length_ratio)
        if reason:
            rejected.append(rejected_row(row, reason, cand["raw"]))
        else:
            survivors.append({**row, "raw": cand["raw"]})
    return survivors, rejected


def _pick_per_task(rows: Sequence[dict[str, Any]], verdicts: Sequence[Verdict]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The most similar failing (or unverifiable) variant of each task; the others rejected."""
    by_task: dict[str, list[tuple[dict[str, Any], Verdict]]] = defaultdict(list)
    for row, verdict in zip(rows, verdicts):
        by_task[row["task_id"]].append((row, verdict))
    pairs, rejected = [], []
    for group in by_task.values():
        ok = [(r, v) for r, v in group if v.verified is not None]
        best = max(ok, key=lambda rv: rv[0]["similarity"], default=(None, None))[0]
        for row, verdict in group:
            raw = row.pop("raw")
            if verdict.verified is None:
                rejected.append(rejected_row({**row, "detail": verdict.detail}, verdict.reason, raw))
            elif row is best:
                pairs.append({**row, "verified": verdict.verified, "detail": verdict.detail})
            else:
                rejected.append(rejected_row({**row, "verified": verdict.verified,
                                         "detail": verdict.detail},
                                        "less similar than the selected variant", raw))
    return pairs, rejected


def select_pairs(candidate_rows: Sequence[dict[str, Any]], tasks: Sequence[dict[str, Any]],
                 similarity: str = "levenshtein", verify: bool = True,
                 workers: int | None = None, *, max_length_ratio: float = 2.0,
                 scorer: Any = None, limits: Any = None
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One teacher pair per task: the most similar variant that passes the checks and fails the
    tests (any that passes the checks where the task has no tests), as in FGit §2.1.

    ``scorer`` overrides the similarity function (tests inject a tiny UniXcoder); ``limits``
    (a :class:`faulttune.sandbox.Limits`) applies to every builder's sandbox runs.
    """
    index = index_tasks(tasks)
    survivors, rejected = _screen_candidates(candidate_rows, index, max_length_ratio)
    score = scorer or make_scorer(similarity)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in survivors:
        by_task[row["task_id"]].append(row)
    for task_id, group in by_task.items():
        values = score(index[task_id]["solution"], [r["incorrect"] for r in group])
        for row, value in zip(group, values):
            row["similarity"] = float(value)
    verdicts = verify_twins(survivors, index, verify=verify, workers=workers, limits=limits)
    pairs, dropped = _pick_per_task(survivors, verdicts)
    return pairs, rejected + dropped
