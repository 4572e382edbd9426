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
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from faulttune.sandbox import wire
from faulttune.sandbox.assertions import describe_call
from faulttune.sandbox.comparison import OutputCheck
from faulttune.sandbox.protocol import (
    Verdict,
    closed_verdict,
    failure_fields,
    failure_verdict,
    load_program,
    program_answer,
)
from faulttune.sandbox.results import SANDBOX_FAILURE, Limits, SandboxResult, clip
from faulttune.sandbox.runner import Closed, Overdue, Oversize, Session


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


WINDOW = 16  # inputs in flight at once: the program never waits for the scorer between them
SMALL_REQUEST = 1 << 15  # a larger input goes out alone (its sending time is then known)


@dataclass
class _InFlight:
    """An input whose request is out (or going out) and whose answer has not come yet."""

    index: int
    inp: Any
    expected: Any
    limit: float
    sent: float | None  # when the request was written whole; None while it is being written


class _StageRun:
    """One stage: load the program, then every input against the clock of the program's time.

    Inputs are pipelined: up to :data:`WINDOW` requests wait in the program's pipe, so it goes
    from one input to the next without a round trip to the scorer. Input i's time runs from the
    moment the program could start it (answer i-1 arrived and request i was written) to the
    arrival of answer i, as the scorer sees them.
    """

    def __init__(self, session: Session, job: DiffJob, stage: Stage):
        self.session, self.job, self.stage = session, job, stage
        self.spent = 0.0  # the program's time in this stage: loading and calls
        self.free_since = 0.0  # when the program answered its previous request
        self.atol = job.check.atol
        projection = job.check.projection
        self.extra = (projection,) if projection else ()

    def run(self, cases: Iterator[tuple[Any, Any]]) -> None:
        self._load()
        waiting: deque[_InFlight] = deque()
        upcoming = iter(enumerate(self.stage.time_limits))
        while True:
            self._top_up(waiting, upcoming, cases)
            if not waiting:
                return
            self._answer(waiting.popleft())

    def _load(self) -> None:
        stage, start = self.stage, time.monotonic()
        try:
            names = load_program(self.session, self.job.program, start + stage.budget_s,
                                 guard=True, swallow_io=True)
        except Overdue:
            raise Verdict("timeout", f"loading the program took longer than the {stage.name} "
                                     f"inputs' budget ({stage.budget_s:.1f} s)") from None
        except (Closed, Oversize):
            raise closed_verdict(self.session, "program", "before the tests finished") from None
        self.free_since = time.monotonic()
        self.spent += self.free_since - start
        if names.get(self.job.entry_point) != "callable":
            raise Verdict("error", f"the program defines no function `{self.job.entry_point}`")

    def _top_up(self, waiting: deque[_InFlight], upcoming: Iterator[tuple[int, float]],
                cases: Iterator[tuple[Any, Any]]) -> None:
        while len(waiting) < WINDOW and not self.session.sending("program"):
            step = next(upcoming, None)
            if step is None:
                return
            index, limit = step
            inp, expected = next(cases)
            request = self._request(inp, index)
            sent = self._post(request, inp, index)
            waiting.append(_InFlight(index, inp, expected, limit, sent))
            if len(request) > SMALL_REQUEST:
                return

    def _request(self, inp: Any, index: int) -> bytes:
        try:
            return wire.dumps((self.job.entry_point, list(inp), {}, *self.extra))
        except wire.Uncarriable as e:
            raise Verdict("error", f"{SANDBOX_FAILURE}{self._label(index)} holds {e.what}, which "
                                   "cannot cross the sandbox boundary") from None

    def _post(self, request: bytes, inp: Any, index: int) -> float | None:
        try:
            return time.monotonic() if self.session.post("program", b"C", request) else None
        except Closed:
            raise closed_verdict(self.session, "program",
                                 f"on {self._label(index)}: {self._call_text(inp)}") from None

    def _label(self, index: int) -> str:
        return f"{self.stage.name} input #{index}"

    def _answer(self, entry: _InFlight) -> None:
        stage, label = self.stage, self._label(entry.index)
        left = stage.budget_s - self.spent
        if left <= 0:
            raise Verdict("timeout", f"time budget of the {stage.name} inputs "
                                     f"({stage.budget_s:.1f} s) used up before {label}")
        limit = min(entry.limit, left)
        kind, body = self._exchange(entry, limit, label)
        if kind == b"R":
            self._compare(entry, body, label)
            return
        self._refuse(entry, kind, body, label)

    def _exchange(self, entry: _InFlight, limit: float, label: str) -> tuple[bytes, bytes]:
        """Wait for the answer to ``entry``: at most ``limit`` after the program could start it."""
        session = self.session
        try:
            if entry.sent is None:  # a large request: its time starts once it is all written
                session.flush("program", time.monotonic() + limit)
                entry.sent = session.drained_at("program")
            start = max(self.free_since, entry.sent)
            kind, body, arrived = session.receive_timed("program", start + limit)
        except Overdue:
            raise Verdict("timeout", f"{label} exceeded {limit:.2f} s: "
                                     f"{self._call_text(entry.inp)}") from None
        except Oversize:
            raise Verdict("fail", f"wrong output on {label}: {self._call_text(entry.inp)} "
                                  f"returned more than {self.job.limits.max_value_mb} MiB") from None
        except Closed:
            raise closed_verdict(session, "program",
                                 f"on {label}: {self._call_text(entry.inp)}") from None
        self.spent += min(arrived - start, limit)  # an answer the scorer saw late counts whole
        self.free_since = arrived
        return kind, body

    def _compare(self, entry: _InFlight, body: bytes, label: str) -> None:
        try:
            out = wire.loads(body)
        except wire.WireError as e:
            raise Verdict("fail", f"the answer on {label}: {self._call_text(entry.inp)} cannot "
                                  f"cross the sandbox boundary: {e}") from None
        agrees, self.atol = self.job.check.agrees(entry.inp, out, entry.expected, self.atol)
        if not agrees:
            raise Verdict("fail", f"wrong output on {label}: {self._call_text(entry.inp)} "
                                  f"returned {_safe_repr(out)}, expected "
                                  f"{_safe_repr(entry.expected)}")

    def _refuse(self, entry: _InFlight, kind: bytes, body: bytes, label: str) -> None:
        value = program_answer(body, f"the answer on {label}")
        call = self._call_text(entry.inp)
        if kind == b"U":
            raise Verdict("fail", f"wrong output on {label}: {call} returned {value}, which "
                                  "cannot cross the sandbox boundary (plain builtin values only)")
        if kind != b"E":
            raise Verdict("fail", f"the program's server answered {label} with a malformed frame")
        type_name, message, where, code = failure_fields(value)
        status, detail = failure_verdict(type_name, message, where, code, "before the tests finished")
        if type_name == "SystemExit":
            raise Verdict(status, detail)
        raise Verdict("error", f"{detail} on {label}: {call}")

    def _call_text(self, inp: Any) -> str:
        return describe_call(self.job.entry_point, list(inp), {})
