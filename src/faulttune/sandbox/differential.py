"""Differential testing (HumanEval+, MBPP, MBPP+): the program answers, the scorer compares.

The program's server gets one input at a time and answers with a plain value; the scorer compares
it with the expected output (``comparison``), which never enters the jail. Each call has its own
time limit, measured by the scorer from the moment the input is written to the moment the answer
has arrived; a program that overruns it is killed. Each stage (base inputs, then plus inputs)
loads the program again, as EvalPlus runs each stage in a fresh process, and has a budget: the sum
of the time its calls and its loading took (the scorer's own decoding and comparing is not
counted) may not exceed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from faulttune.sandbox import wire
from faulttune.sandbox.assertions import describe_call
from faulttune.sandbox.comparison import OutputCheck
from faulttune.sandbox.results import SANDBOX_FAILURE, Limits, SandboxResult, clip
from faulttune.sandbox.runner import (
    Closed,
    Overdue,
    Oversize,
    Session,
    Verdict,
    closed_verdict,
    failure_fields,
    failure_verdict,
    load_program,
    program_answer,
)


@dataclass(frozen=True)
class Stage:
    """One group of inputs (EvalPlus's base or plus), with a time limit per input and a budget."""

    name: str
    time_limits: tuple[float, ...]
    budget_s: float


@dataclass(frozen=True)
class DiffJob:
    """A program, its entry point and the stages of inputs it must answer.

    ``cases()`` opens the ``(input arguments, expected output)`` pairs of every stage, in order
    (read lazily: a task's expected outputs can be larger than memory should hold at once).
    """

    program: str
    entry_point: str
    stages: tuple[Stage, ...]
    check: OutputCheck
    cases: Callable[[], Iterator[tuple[Any, Any]]]
    limits: Limits


def _safe_repr(value: Any, limit: int = 160) -> str:
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 24
    short.maxlevel = 4
    try:
        return clip(short.repr(value), limit)
    except Exception as e:  # noqa: BLE001 - a huge int, say
        return f"<unrepresentable {type(e).__name__}>"


def run_differential(job: DiffJob) -> SandboxResult:
    """The verdict on ``job.program``; the details follow EvalPlus's outcome names."""
    started = time.perf_counter()
    stderr = ""
    try:
        with Session(job.limits) as session:
            status, detail = _run(session, job)
            stderr = session.stderr_tail("program")
    except OSError as e:
        status, detail = "error", f"{SANDBOX_FAILURE}{type(e).__name__}: {e}"
    return SandboxResult(status, clip(detail), stderr, time.perf_counter() - started)


def _run(session: Session, job: DiffJob) -> tuple[str, str]:
    session.start("program", "server")
    cases = job.cases()
    try:
        for stage in job.stages:
            _StageRun(session, job, stage).run(cases)
    except Verdict as v:
        return v.status, v.detail
    finally:
        close = getattr(cases, "close", None)
        if close is not None:
            close()
    return "pass", ""


class _StageRun:
    """One stage: load the program, then every input against the clock of the program's time."""

    def __init__(self, session: Session, job: DiffJob, stage: Stage):
        self.session, self.job, self.stage = session, job, stage
        self.spent = 0.0  # the program's time in this stage: loading and calls

    def _timed(self, limit: float, action: Callable[[float], Any]) -> Any:
        start = time.monotonic()
        try:
            return action(start + limit)
        finally:
            self.spent += time.monotonic() - start

    def run(self, cases: Iterator[tuple[Any, Any]]) -> None:
        stage = self.stage
        try:
            names = self._timed(stage.budget_s, lambda deadline: load_program(
                self.session, self.job.program, deadline, guard=True, swallow_io=True))
        except Overdue:
            raise Verdict("timeout", f"loading the program took longer than the {stage.name} "
                                     f"inputs' budget ({stage.budget_s:.1f} s)") from None
        except (Closed, Oversize):
            raise closed_verdict(self.session, "program", "before the tests finished") from None
        if names.get(self.job.entry_point) != "callable":
            raise Verdict("error", f"the program defines no function `{self.job.entry_point}`")
        atol = self.job.check.atol
        for index, limit in enumerate(stage.time_limits):
            inp, expected = next(cases)
            atol = self._one(index, limit, inp, expected, atol)

    def _one(self, index: int, limit: float, inp: Any, expected: Any, atol: float) -> float:
        stage, label = self.stage, f"{self.stage.name} input #{index}"
        left = stage.budget_s - self.spent
        if left <= 0:
            raise Verdict("timeout", f"time budget of the {stage.name} inputs "
                                     f"({stage.budget_s:.1f} s) used up before {label}")
        limit = min(limit, left)
        kind, body = self._call(inp, limit, label)
        if kind == b"R":
            out = program_answer(body, f"the answer on {label}: {self._call_text(inp)}")
            agrees, atol = self.job.check.agrees(inp, out, expected, atol)
            if agrees:
                return atol
            raise Verdict("fail", f"wrong output on {label}: {self._call_text(inp)} returned "
                                  f"{_safe_repr(out)}, expected {_safe_repr(expected)}")
        value = program_answer(body, f"the answer on {label}")
        if kind == b"U":
            raise Verdict("fail", f"wrong output on {label}: {self._call_text(inp)} returned "
                                  f"{value}, which cannot cross the sandbox boundary "
                                  "(plain builtin values only)")
        if kind != b"E":
            raise Verdict("fail", f"the program's server answered {label} with a malformed frame")
        type_name, message, where, code = failure_fields(value)
        status, detail = failure_verdict(type_name, message, where, code, "before the tests finished")
        if type_name == "SystemExit":
            raise Verdict(status, detail)
        raise Verdict("error", f"{detail} on {label}: {self._call_text(inp)}")

    def _call(self, inp: Any, limit: float, label: str) -> tuple[bytes, bytes]:
        try:
            projection = self.job.check.projection
            request = wire.dumps((self.job.entry_point, list(inp), {},
                                  *([projection] if projection else [])))
        except wire.Uncarriable as e:
            raise Verdict("error", f"{SANDBOX_FAILURE}{label} holds {e.what}, which cannot "
                                   "cross the sandbox boundary") from None

        def exchange(deadline: float) -> tuple[bytes, bytes]:
            self.session.send("program", b"C", request, deadline)
            return self.session.receive("program", deadline)

        try:
            return self._timed(limit, exchange)
        except Overdue:
            raise Verdict("timeout", f"{label} exceeded {limit:.2f} s: "
                                     f"{self._call_text(inp)}") from None
        except Oversize:
            raise Verdict("fail", f"wrong output on {label}: {self._call_text(inp)} returned "
                                  f"more than {self.job.limits.max_value_mb} MiB") from None
        except Closed:
            raise closed_verdict(self.session, "program",
                                 f"on {label}: {self._call_text(inp)}") from None

    def _call_text(self, inp: Any) -> str:
        return describe_call(self.job.entry_point, list(inp), {})
