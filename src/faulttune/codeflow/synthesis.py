"""Tasks with tests from instructions (IterPref, docs/methods.md §3.1 step 1).

For every instruction of a source (Evol-Instruct in config/paper.yaml) the teacher writes a
commented solution module and ONE unittest file that imports it, in the paper's format
(:mod:`.testfiles`). Generated code is hostile: both files only ever run in the sandbox.

A task is dropped, with its reason, when the answer has no test file (or no solution, or several),
a file does not parse, the test file does not import the solution module or defines no test, a
file needs a package the sandbox does not provide, or the test file does not run in the sandbox
against the solution, or needs more than plain values across the sandbox boundary (the solution
runs in its own jail and the tests call its functions by proxy: a class's instances never cross,
so no fix could pass). A solution that fails its own tests, or hangs, is kept: it is CodeFlow's
iteration 0 (``codeflow.start: solution``), and a task whose final version never passes ends as
CodeFlow's "never passed" row. Each kept task records its solution's verdict and the tests' line
coverage of the solution (coverage.py, in the jail: a measurement, not a verdict).

Instructions are asked :data:`CHUNK` at a time, greedily; every finished chunk's rows are appended
to ``state`` (JSONL), so a resumed run asks the teacher only for the chunks it had not finished.
A task depends only on its instruction, so a shard of the table (:mod:`faulttune.shards`) gets the
rows a whole run gets for it.

Task rows (the training-table columns ``task_id, source, instruction, solution, test,
entry_point``, so CodeFlow reads them as any task table, plus): ``test`` the judge's test code
(:func:`.testfiles.judge_tests`), ``entry_point`` "" (the tests name the functions), ``module``,
``test_file`` (the teacher's file as written), ``packages`` (JSON list), ``solution_status`` and
``solution_detail`` (the teacher's solution against its tests), ``coverage`` (covered share of the
solution's statements, null when not measured), ``statements``, ``covered``, ``coverage_detail``
("" or why coverage is missing), ``raw`` (the teacher's whole answer).
Rejected rows: ``task_id, source, instruction, reason, raw``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from faulttune import sandbox
from faulttune.codeflow.testfiles import (
    TEST_FILE_BROKEN,
    TaskFiles,
    coverage_program,
    judge_tests,
    read_answer,
    read_coverage,
    static_problem,
)
from faulttune.generate.base import Backend, GenerationParams
from faulttune.generate.prompts import synthesis_messages
from faulttune.io import DataError, append_jsonl, read_appended_jsonl

log = logging.getLogger(__name__)

CHUNK = 64
COVERAGE_TIMEOUT_S = 30.0  # coverage's tracer slows the tests down
TASK_SCHEMA = pa.schema(
    [(c, pa.string()) for c in ("task_id", "source", "instruction", "solution", "test",
                                "entry_point", "module", "test_file", "packages",
                                "solution_status", "solution_detail")]
    + [("coverage", pa.float64()), ("statements", pa.int64()), ("covered", pa.int64()),
       ("coverage_detail", pa.string()), ("raw", pa.string())])
REJECTED_SCHEMA = pa.schema([(c, pa.string()) for c in
                             ("task_id", "source", "instruction", "reason", "raw")])


def synthesize_tasks(
    rows: Sequence[Mapping[str, Any]], backend: Backend, *, max_new_tokens: int, seed: int = 0,
    limits: sandbox.Limits | None = None, workers: int | None = None,
    state: str | Path | None = None, should_stop: Callable[[], bool] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """``(tasks, rejected)`` for instruction rows ``task_id, instruction`` (+ ``source``), in
    their order (schemas in the module docstring)."""
    for i, row in enumerate(rows):
        for key in ("task_id", "instruction"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataError(f"synthesis instructions row {i}: missing or empty '{key}'")
    limits = limits or sandbox.Limits()
    done = _finished_chunks(state)
    tasks: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    n_chunks = -(-len(rows) // CHUNK)
    log.info("synthesis: %d instructions in %d chunks, %d already done", len(rows), n_chunks,
             len(done))
    for index in range(n_chunks):
        chunk = rows[index * CHUNK : (index + 1) * CHUNK]
        if index not in done:
            done[index] = _synthesize_chunk(chunk, backend, max_new_tokens, seed, limits,
                                            workers)
            if state is not None:
                _append_chunk(state, done[index], index)
        tasks += [r for kind, r in done[index] if kind == "task"]
        rejected += [r for kind, r in done[index] if kind == "rejected"]
        if should_stop is not None and should_stop() and index + 1 < n_chunks:
            from faulttune.resume import Preempted

            raise Preempted(f"synthesis stopped on request after {index + 1} of {n_chunks} chunks")
    return tasks, rejected


def _synthesize_chunk(
    chunk: Sequence[Mapping[str, Any]], backend: Backend, max_new_tokens: int, seed: int,
    limits: sandbox.Limits, workers: int | None,
) -> list[tuple[str, dict[str, Any]]]:  # fmt: skip
    params = GenerationParams(max_new_tokens=max_new_tokens, seed=seed, prefill="", stop=())
    answers = backend.chat([synthesis_messages(r["instruction"]) for r in chunk], params)
    if len(answers) != len(chunk):
        raise RuntimeError(f"backend returned {len(answers)} answers for {len(chunk)} prompts")
    files = [read_answer(a[0]) for a in answers]
    problems = [f.problem or static_problem(f, limits.packages) for f in files]
    runnable = [i for i, p in enumerate(problems) if p is None]
    verdicts = dict(zip(runnable, sandbox.run_many(
        [sandbox.TestJob(files[i].solution, judge_tests(files[i].test, files[i].module))
         for i in runnable], limits=limits, workers=workers, desc="synthesis tests")))
    for i in runnable:
        problems[i] = _runtime_problem(verdicts[i])
    # a solution that timed out would only time out again under the tracer
    measured = [i for i in runnable if problems[i] is None and verdicts[i].status != "timeout"]
    coverage_limits = sandbox.Limits(
        timeout_s=max(limits.timeout_s, COVERAGE_TIMEOUT_S), memory_mb=limits.memory_mb,
        packages=(*limits.packages, "coverage"))
    coverage = dict(zip(measured, sandbox.run_many(
        [sandbox.TestJob(coverage_program(files[i])) for i in measured], limits=coverage_limits,
        workers=workers, desc="synthesis coverage")))
    out: list[tuple[str, dict[str, Any]]] = []
    for i, row in enumerate(chunk):
        base = {"task_id": row["task_id"], "source": row.get("source") or "",
                "instruction": row["instruction"]}
        if problems[i] is not None:
            out.append(("rejected", {**base, "reason": problems[i], "raw": answers[i][0]}))
        else:
            out.append(("task", _task_row(base, files[i], verdicts[i], coverage.get(i),
                                          answers[i][0])))
    return out


def _runtime_problem(result: sandbox.SandboxResult) -> str | None:
    """Why the test file cannot judge this task in the sandbox (None: it can)."""
    if TEST_FILE_BROKEN in result.detail:
        return result.detail.split(" (at <tests> line")[0].removeprefix("RuntimeError: ")
    if ("cannot cross the sandbox boundary" in result.detail
            or "a value the program defines" in result.detail):
        # objects (a class's instances, a numpy array) never cross: no fix can pass these tests
        return f"the tests need more than plain values across the sandbox: {result.detail}"
    if result.detail.startswith(sandbox.SANDBOX_FAILURE):
        return result.detail
    return None


def _task_row(base: dict[str, Any], files: TaskFiles, verdict: sandbox.SandboxResult,
              coverage: sandbox.SandboxResult | None, raw: str) -> dict[str, Any]:
    report = read_coverage(coverage.stderr_tail) or {} if coverage else {}
    statements, missing = report.get("statements"), report.get("missing")
    measured = isinstance(statements, int) and isinstance(missing, int) and statements > 0
    if measured:
        detail = ""
    elif coverage is None:
        detail = "not measured: the solution timed out against its tests"
    elif coverage.status != "pass":
        detail = f"{coverage.status}: {coverage.detail}"
    else:
        detail = str(report.get("error") or "no coverage report")
    return {**base, "solution": files.solution, "test": judge_tests(files.test, files.module),
            "entry_point": "", "module": files.module, "test_file": files.test,
            "packages": json.dumps(list(files.packages)), "solution_status": verdict.status,
            "solution_detail": verdict.detail,
            "coverage": (statements - missing) / statements if measured else None,
            "statements": statements if measured else None,
            "covered": statements - missing if measured else None,
            "coverage_detail": detail, "raw": raw}


def _append_chunk(state: str | Path, rows: list[tuple[str, dict[str, Any]]], index: int) -> None:
    """A chunk's rows as one line: a kill leaves at most a torn last line, dropped on resume."""
    append_jsonl({"chunk": index, "rows": [[kind, row] for kind, row in rows]}, state)


def _finished_chunks(state: str | Path | None) -> dict[int, list[tuple[str, dict[str, Any]]]]:
    """chunk -> its rows, for every chunk in ``state``."""
    if state is None:
        return {}
    return {entry["chunk"]: [(kind, row) for kind, row in entry["rows"]]
            for _, entry in read_appended_jsonl(state)}
