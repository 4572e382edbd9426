"""Twins run against their task's tests in the sandbox: a twin is kept when it fails them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faulttune.bugs.table import FAILING_STATUSES, rejected_row


@dataclass(frozen=True)
class Verdict:
    """``verified`` is "true" / "unknown" for a kept twin, ``None`` for a rejected one."""

    verified: str | None
    detail: str  # the sandbox detail of a kept twin, or the rejection reason
    reason: str = ""


def _verdict(result: Any, correct_result: Any) -> Verdict:
    if not correct_result.passed:
        return Verdict(None, f"{correct_result.status}: {correct_result.detail}",
                       "correct code fails its own tests")
    if result.status == "error" and result.detail.startswith("sandbox failure"):
        return Verdict(None, result.detail, "sandbox failure")
    if result.status in FAILING_STATUSES:
        return Verdict("true", f"{result.status}: {result.detail}")
    return Verdict(None, f"{result.status}: {result.detail}", "passes the tests")


def verify_twins(rows: Sequence[dict[str, Any]], tasks: dict[str, dict[str, Any]], *,
                 verify: bool = True, workers: int | None = None, limits: Any = None
                 ) -> list[Verdict]:
    """One verdict per row: its twin run against its task's tests, all in one sandbox batch.

    Each task's correct solution runs in the same batch, once.
    """
    tested = [verify and bool(tasks[r["task_id"]]["test"].strip()) for r in rows]
    if not any(tested):
        return [Verdict("unknown", "") for _ in rows]
    from faulttune.sandbox import run_many, task_job

    task_ids = list(dict.fromkeys(r["task_id"] for r, t in zip(rows, tested) if t))
    jobs = [task_job(tasks[t], tasks[t]["solution"]) for t in task_ids]
    jobs += [task_job(tasks[r["task_id"]], r["incorrect"]) for r, t in zip(rows, tested) if t]
    results = run_many(jobs, workers=workers, limits=limits, desc="verify twins")
    correct_results = dict(zip(task_ids, results[:len(task_ids)]))
    twin_results = iter(results[len(task_ids):])
    return [_verdict(next(twin_results), correct_results[r["task_id"]]) if t
            else Verdict("unknown", "") for r, t in zip(rows, tested)]


def apply_verdicts(rows: Sequence[dict[str, Any]], verdicts: Sequence[Verdict]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    kept, rejected = [], []
    for row, verdict in zip(rows, verdicts):
        if verdict.verified is None:
            rejected.append(rejected_row({**row, "detail": verdict.detail}, verdict.reason))
        else:
            kept.append({**row, "verified": verdict.verified, "detail": verdict.detail})
    return kept, rejected
