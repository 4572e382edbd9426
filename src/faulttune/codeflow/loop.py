"""The debugging loop: every task is tested, and a failing version goes back to the debugger with
its execution output until the tests pass or ``max_iters`` fixes are spent (docs/methods.md §3.1
step 3). Each round sends every task that needs the debugger in one ``backend.chat`` call (one
batch for a vLLM engine) and tests every new version in one sandbox batch.

A task's versions depend only on the task (its prompts hold only its own last version; the
sandbox judges each program alone), so a shard of the task table (:mod:`faulttune.shards`) gets
the versions a run over the whole table gets for those tasks, given a backend that answers each
prompt as it would alone (greedy decoding on an OpenAI-compatible endpoint or the hf backend).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from faulttune import sandbox
from faulttune.codeflow.checkpoint import load_checkpoint
from faulttune.codeflow.columns import (
    FEEDBACK_CHARS,
    MAX_CHANGED_LINES,
    STARTS,
    RejectedRule,
    Row,
    Start,
)
from faulttune.codeflow.pairs import build_pairs, rejected_row
from faulttune.generate.base import Backend, Conversation, GenerationParams
from faulttune.generate.extract import solution_program
from faulttune.generate.prompts import fix_messages, solve_messages
from faulttune.io import DataError, append_jsonl

log = logging.getLogger(__name__)

_NO_START = {"mutant": "no mutant for this task", "solution": "no solution for this task"}


def format_feedback(status: str, detail: str, stderr_tail: str, limit: int = FEEDBACK_CHARS) -> str:
    """The execution output a fix prompt shows: status and detail, then the end of stderr.

    The traceback is cut from the front (its last lines name the failing check); the whole text is
    at most ``limit`` characters. A pass has no feedback ("").
    """
    if status == "pass":
        return ""
    head = f"{status}: {detail}".strip()[: limit // 2]
    room = limit - len(head) - 1
    tail = stderr_tail.strip()
    if not tail or room <= 0 or tail in head:
        return head
    if len(tail) > room:
        tail = "..." + tail[-(room - 3) :]
    return f"{head}\n{tail}"


def conversation_for(instruction: str, last_version: Row | None) -> Conversation:
    """Iteration 0 asks for a solution; every later round asks to fix the last failing version."""
    if last_version is None:
        return solve_messages(instruction)
    return fix_messages(instruction, last_version["code"], last_version["feedback"])


def run_codeflow(
    tasks: Sequence[Mapping[str, Any]],
    backend: Backend,
    *,
    max_iters: int = 5,
    start: Start = "model",
    mutants: Sequence[Mapping[str, Any]] | None = None,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    rejected: RejectedRule = "random",
    max_length: int = 2048,
    count_tokens: Callable[[str], int],
    workers: int | None = None,
    params: GenerationParams | None = None,
    limits: sandbox.Limits | None = None,
    max_changed_lines: int = MAX_CHANGED_LINES,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[Row], list[Row], list[Row]]:
    """Debug every task until its tests pass or ``max_iters`` fixes are spent; build the pairs.
    When ``should_stop()`` turns true (SIGTERM at a time limit), the loop raises
    ``resume.Preempted`` after the round's versions are in the checkpoint.

    ``backend`` is the debugger (the student or the teacher). Returns ``(trajectories, pairs,
    rejected_pairs)`` with the schemas of the package docstring, each in the order of ``tasks``.
    ``count_tokens`` measures a program for the ``max_length`` filter: pass the student
    tokenizer's count (e.g. ``lambda s: len(tok(s).input_ids)``). ``params`` default to greedy;
    ``limits`` are the sandbox limits of every test run (``None``: the sandbox defaults).
    """
    _check_options(max_iters, start, rejected, params)
    by_id = index_tasks(tasks)
    starts = _starts(start, by_id, mutants)
    histories = load_checkpoint(checkpoint, by_id, start) if checkpoint else {}
    order = list(by_id)
    for tid in order:
        if start == "model" or tid in starts:
            histories.setdefault(tid, [])
    _debug(order, histories, by_id, starts, backend, params or GenerationParams(), workers,
           limits, max_iters, checkpoint, should_stop)
    trajectories = [row for tid in order for row in histories.get(tid, [])]
    instructions = {tid: task["instruction"] for tid, task in by_id.items()}
    pairs, dropped = build_pairs(
        trajectories, instructions, rejected=rejected, seed=seed, max_length=max_length,
        count_tokens=count_tokens, max_changed_lines=max_changed_lines,
    )  # fmt: skip
    dropped += [rejected_row(tid, instructions[tid], _NO_START[start])
                for tid in order if tid not in histories]
    position = {tid: i for i, tid in enumerate(order)}
    return trajectories, pairs, sorted(dropped, key=lambda row: position[row["task_id"]])


def _debug(
    order: list[str], histories: dict[str, list[Row]], by_id: Mapping[str, Mapping[str, Any]],
    starts: Mapping[str, tuple[str, str]], backend: Backend, params: GenerationParams,
    workers: int | None, limits: sandbox.Limits | None, max_iters: int,
    checkpoint: str | Path | None, should_stop: Callable[[], bool] | None,
) -> None:  # fmt: skip
    """Rounds until every task with a history passed or spent its budget; each round's versions
    go to the checkpoint before a stop request ends the loop."""
    round_no = 0
    while active := [tid for tid in order if tid in histories
                     and _needs_version(histories[tid], max_iters)]:
        new = _run_round(active, histories, by_id, starts, backend, params, workers, limits)
        for row in new:
            histories[row["task_id"]].append(row)
            if checkpoint:
                append_jsonl(row, checkpoint)
        log.info("codeflow round %d: %d tasks, %d passed", round_no, len(new),
                 sum(r["passed"] for r in new))
        round_no += 1
        if should_stop is not None and should_stop():
            from faulttune.resume import Preempted

            raise Preempted(f"codeflow stopped on request after round {round_no}")


def _check_options(
    max_iters: int, start: str, rejected: str, params: GenerationParams | None
) -> None:
    if max_iters < 0:
        raise ValueError(f"max_iters must be >= 0, got {max_iters}")
    if start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    if rejected not in ("random", "first", "last"):
        raise ValueError(f"rejected must be 'random', 'first' or 'last', got {rejected!r}")
    if params is not None and params.n != 1:
        raise ValueError(
            f"codeflow follows one trajectory per task: params.n must be 1, got {params.n}"
        )


def _needs_version(history: list[Row], max_iters: int) -> bool:
    """A task gets another version while it has not passed and iteration ``len`` is in budget."""
    return not (history and history[-1]["passed"]) and len(history) <= max_iters


def _run_round(
    active: list[str],
    histories: dict[str, list[Row]],
    by_id: Mapping[str, Mapping[str, Any]],
    starts: Mapping[str, tuple[str, str]],
    backend: Backend,
    params: GenerationParams,
    workers: int | None,
    limits: sandbox.Limits | None,
) -> list[Row]:
    """One round: one ``backend.chat`` call for every task that needs the debugger, one
    ``run_many`` for every version to test."""
    programs: dict[str, tuple[str, str]] = {}
    asking = [tid for tid in active if histories[tid] or tid not in starts]
    for tid in active:
        if tid not in asking:
            programs[tid] = starts[tid]
    if asking:
        conversations = [
            conversation_for(
                by_id[tid]["instruction"], histories[tid][-1] if histories[tid] else None
            )
            for tid in asking
        ]
        completions = backend.chat(conversations, params)
        if len(completions) != len(asking):
            raise RuntimeError(
                f"backend returned {len(completions)} answers for {len(asking)} prompts"
            )
        for tid, answers in zip(asking, completions):
            programs[tid] = (answers[0], "model")
    tested = {tid: _program(by_id[tid], *programs[tid]) for tid in active}
    jobs = [sandbox.task_job(by_id[tid], tested[tid]) for tid in active]
    results = sandbox.run_many(jobs, limits=limits, workers=workers, desc="codeflow tests")
    return [
        _version_row(tid, len(histories[tid]), tested[tid], *programs[tid], result)
        for tid, result in zip(active, results)
    ]


def _program(task: Mapping[str, Any], text: str, origin: str) -> str:
    """What runs: a start (mutant, solution) as it is, or the debugger's answer made a program
    as for benchmarks."""
    if origin != "model":
        return text
    return solution_program(task["instruction"], task.get("entry_point") or "", text)


def _version_row(
    task_id: str, iteration: int, code: str, raw: str, origin: str, result: Any
) -> Row:
    return {
        "task_id": task_id,
        "iteration": iteration,
        "code": code,
        "status": result.status,
        "detail": result.detail,
        "feedback": format_feedback(result.status, result.detail, result.stderr_tail),
        "passed": bool(result.passed),
        "origin": origin,
        "raw": raw,
    }


def index_tasks(tasks: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """task_id -> task, in table order; a row without task_id, instruction or test raises."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for i, task in enumerate(tasks):
        for key in ("task_id", "instruction", "test"):
            if not isinstance(task.get(key), str) or not task[key]:
                raise DataError(f"codeflow tasks row {i}: missing or empty '{key}'")
        if task["task_id"] in by_id:
            raise DataError(f"codeflow tasks row {i}: duplicate task_id {task['task_id']!r}")
        by_id[task["task_id"]] = task
    return by_id


def _starts(
    start: str, by_id: Mapping[str, Mapping[str, Any]],
    mutants: Sequence[Mapping[str, Any]] | None,
) -> dict[str, tuple[str, str]]:  # fmt: skip
    """task_id -> (iteration 0's program, its origin) for a start that is not the debugger's."""
    if start == "mutant":
        return {tid: (code, "mutant") for tid, code in _mutant_starts(mutants, by_id).items()}
    if start == "solution":
        found = {tid: (t["solution"], "solution") for tid, t in by_id.items()
                 if isinstance(t.get("solution"), str) and t["solution"].strip()}
        log.info("codeflow: %d of %d tasks have a solution to start from", len(found), len(by_id))
        return found
    return {}


def _mutant_starts(
    mutants: Sequence[Mapping[str, Any]] | None, by_id: Mapping[str, Any]
) -> dict[str, str]:
    """The first failing twin of each task (rows ``task_id, incorrect``)."""
    if mutants is None:
        raise ValueError("start='mutant' needs the mutants (rows with task_id, incorrect)")
    starts: dict[str, str] = {}
    for i, row in enumerate(mutants):
        for key in ("task_id", "incorrect"):
            if not isinstance(row.get(key), str):
                raise DataError(f"codeflow mutants row {i}: missing '{key}'")
        if row["task_id"] in by_id:
            starts.setdefault(row["task_id"], row["incorrect"])
    log.info("codeflow: %d of %d tasks have a mutant start", len(starts), len(by_id))
    return starts
