"""Differential testing (HumanEval+, MBPP, MBPP+): the program answers, the scorer compares.

The program's server gets one input at a time and answers with a plain value; the scorer compares
it with the expected output (``comparison``), which never enters the jail: a small answer (up to
64 KiB) here, a larger one in the run's checker process (``checker``), which the scorer times
and kills like a jail, so a large answer never holds up this process. Each call has its own
time limit, measured by the scorer from the moment the input is written to the moment the answer
has arrived, less the time the program waited for a CPU that other processes held
(:mod:`.contention`); a program that overruns it is killed. Each stage (base inputs, then plus inputs)
loads the program again, as EvalPlus runs each stage in a fresh process, and has a budget: the sum
of the time its calls and its loading took (the scorer's own decoding and comparing is not
counted) may not exceed it.
"""

from __future__ import annotations

import logging
import pickle
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from faulttune.sandbox import wire
from faulttune.sandbox.assertions import describe_call
from faulttune.sandbox.comparison import OutputCheck, is_floats, safe_repr
from faulttune.sandbox.contention import Contention
from faulttune.sandbox.protocol import (
    Verdict,
    await_start,
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


class Pickled(bytes):
    """An expected output kept pickled (trusted: the scorer's own cache) until it is needed, with
    what the cache knows of the value: whether it holds a NaN, whether it is floats (EvalPlus's
    ``is_floats``); None where not known."""

    holds_nan: bool | None = None
    floats: bool | None = None

    @classmethod
    def known(cls, data: bytes, holds_nan: bool | None, floats: bool | None) -> Pickled:
        pickled = cls(data)
        pickled.holds_nan, pickled.floats = holds_nan, floats
        return pickled


def expected_value(expected: Any) -> Any:
    return pickle.loads(expected) if type(expected) is Pickled else expected


def expected_bytes(expected: Any) -> bytes:
    return expected if type(expected) is Pickled else pickle.dumps(expected, protocol=5)


@dataclass(frozen=True)
class DiffJob:
    """A program, its entry point and the stages of inputs it must answer.

    ``cases()`` opens the ``(input arguments, expected output)`` pairs of every stage, in order
    (read lazily: a task's expected outputs can be larger than memory should hold at once); an
    expected output may come :class:`Pickled`.
    """

    program: str
    entry_point: str
    stages: tuple[Stage, ...]
    check: OutputCheck
    cases: Callable[[], Iterator[tuple[Any, Any]]]
    limits: Limits


def _size(expected: Any) -> int:
    return len(expected) if type(expected) is Pickled else 0


def run_differential(job: DiffJob) -> SandboxResult:
    """The verdict on ``job.program``; the details follow EvalPlus's outcome names."""
    started = time.perf_counter()
    stderr = ""
    try:
        with Session(job.limits) as session:
            status, detail = _run(session, job)
            stderr = session.stderr_tail("program")
    except Exception as e:  # one run's broken sandbox must not end the others
        log.warning("sandbox failure", exc_info=True)
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


INLINE_ANSWER = 1 << 16  # bytes: a larger answer is decoded and compared by the checker
# The checker's time for one answer (and its expected output): decoding is linear, so this is only
# a backstop against the unforeseen, generous enough for a loaded machine (1 MB/s, where an idle
# one decodes 30 to 250 MB/s)
CHECK_S, CHECK_BYTES_PER_S = 20.0, 1e6
log = logging.getLogger("faulttune.sandbox")
WINDOW = 128  # inputs in flight at once: the program never waits for the scorer between them
WINDOW_BYTES = 64 << 20  # ... unless their expected outputs are larger than this
REQUEST_BYTES = 1 << 19  # ... or their requests (the inputs, kept decoded here for the details)
SMALL_REQUEST = 1 << 15  # a larger input goes out alone (its sending time is then known)
# A program that waited for a CPU other processes held gets that time back (``contention``), up to
# this many times its limit: on a machine where it gets less than a tenth of a CPU, it times out.
STRETCH = 10
# the server's run-queue wait is read (a system call) again only this long after the last reading
WAIT_REFRESH_S = 0.5e-3  # so an input's forgiven wait may hold this much of the inputs' before it
# a pickled float (BINFLOAT) that may be NaN or infinite: every exponent bit set
_MAYBE_NAN = re.compile(rb"G[\x7f\xff][\xf0-\xff]")


@dataclass
class _InFlight:
    """An input whose request is out (or going out) and whose answer has not come yet."""

    index: int
    inp: Any
    expected: Any
    limit: float
    sent: float | None  # when the request was written whole; None while it is being written
    size: int  # of the request


class _StageRun:
    """One stage: load the program, then every input against the clock of the program's time.

    Inputs are pipelined: up to :data:`WINDOW` requests wait in the program's pipe, so it goes
    from one input to the next without a round trip to the scorer. Input i's time runs from the
    moment the program could start it (answer i-1 arrived and request i was written) to the
    arrival of answer i, as the scorer sees them.
    """

    def __init__(self, session: Session, job: DiffJob, stage: Stage):
        self.session, self.job, self.stage = session, job, stage
        self.spent = 0.0  # the program's time in this stage by the wall clock: loading and calls
        self.contention: Contention | None = None  # how long it waited for a CPU
        # its wait at load, at an answer, and when that was read (see WAIT_REFRESH_S)
        self.waited_at_load = self.waited_since = self.waited_read_at = 0.0
        self.expected_in_flight = 0  # bytes of the pickled expected outputs of ``waiting``
        self.requests_in_flight = 0  # bytes of the requests of ``waiting``
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
            entry = waiting.popleft()
            self.expected_in_flight -= _size(entry.expected)
            self.requests_in_flight -= entry.size
            self._answer(entry)

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
        self.contention = self.session.contention("program")
        self.waited_at_load = self.waited_since = self._waited()
        self.waited_read_at = self.free_since
        if names.get(self.job.entry_point) != "callable":
            raise Verdict("error", f"the program defines no function `{self.job.entry_point}`")

    def _top_up(self, waiting: deque[_InFlight], upcoming: Iterator[tuple[int, float]],
                cases: Iterator[tuple[Any, Any]]) -> None:
        while len(waiting) < WINDOW and not self.session.sending("program") and (
                not waiting or (self.expected_in_flight < WINDOW_BYTES
                                and self.requests_in_flight < REQUEST_BYTES)):
            step = next(upcoming, None)
            if step is None:
                return
            index, limit = step
            inp, expected = next(cases)
            request = self._request(inp, index)
            sent = self._post(request, inp, index)
            waiting.append(_InFlight(index, inp, expected, limit, sent, len(request)))
            self.expected_in_flight += _size(expected)
            self.requests_in_flight += len(request)
            if len(request) > SMALL_REQUEST:
                return

    def _request(self, inp: Any, index: int) -> bytes:
        try:
            return wire.dumps_trusted((self.job.entry_point, list(inp), {}, *self.extra))
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
        if left < entry.limit:  # near the budget: the machine's load is forgiven here too
            left += min(self._forgiven(self.waited_at_load), (STRETCH - 1) * stage.budget_s)
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
            # (after a pause in reading its answers, the program's time starts again then)
            start = max(self.free_since, entry.sent, session.resumed_at("program"))
            kind, body, arrived, forgiven = self._receive(start, limit, label, entry)
        except Oversize:
            raise self._oversize(entry, label) from None
        except Closed:
            raise closed_verdict(session, "program",
                                 f"on {label}: {self._call_text(entry.inp)}") from None
        # an answer the scorer saw late counts whole
        self.spent += min(arrived - start, limit + forgiven)
        self.free_since = arrived
        if arrived - self.waited_read_at >= WAIT_REFRESH_S:
            self.waited_since, self.waited_read_at = self._waited(), arrived
        return kind, body

    def _receive(self, start: float, limit: float, label: str,
                 entry: _InFlight) -> tuple[bytes, bytes, float, float]:
        """The answer, when it arrived, and how much later than ``start + limit`` it was allowed
        to: the time the program waited for a CPU others held (at most STRETCH - 1 limits)."""
        forgiven = 0.0
        while True:
            try:
                return (*self.session.receive_timed("program", start + limit + forgiven), forgiven)
            except Overdue:
                more = min(self._forgiven(self.waited_since), (STRETCH - 1) * limit)
                if more <= forgiven:
                    raise Verdict("timeout", f"{label} exceeded {limit:.2f} s: "
                                             f"{self._call_text(entry.inp)}") from None
                forgiven = more

    def _waited(self) -> float:
        return self.contention.waited() if self.contention is not None else 0.0

    def _forgiven(self, waited_before: float) -> float:
        return self.contention.forgiven(waited_before) if self.contention is not None else 0.0

    def _compare(self, entry: _InFlight, body: bytes, label: str) -> None:
        """Decode and compare the answer here when it is small, else in the checker."""
        if self._is_the_expected_encoding(entry, body):
            return
        if len(body) > INLINE_ANSWER:
            self._check_outside(entry, body, label)
            return
        try:
            out = wire.loads(body)
        except wire.WireError as e:
            raise Verdict("fail", f"the answer on {label}: {self._call_text(entry.inp)} cannot "
                                  f"cross the sandbox boundary: {e}") from None
        agrees, self.atol = self.job.check.agrees(entry.inp, out, expected_value(entry.expected),
                                                  self.atol)
        if not agrees:
            self._wrong(entry, label, safe_repr(out))

    def _is_the_expected_encoding(self, entry: _InFlight, body: bytes) -> bool:
        """Whether the answer is, byte for byte, the expected output's own pickle, which then
        agrees without being decoded (most answers of a correct program: ``wire`` encodes plain
        values as pickle does, and equal bytes decode to equal values). Not where the value holds
        a NaN (NaN != NaN; where the cache does not say, where its bytes may hold one), nor
        under a special oracle (its rule is not equality); a float output raises ``atol`` for the
        rest of the stage as :func:`comparison.agrees` does."""
        expected = entry.expected
        if type(expected) is not Pickled or body != expected:
            return False
        if expected.holds_nan or (expected.holds_nan is None and _MAYBE_NAN.search(body)):
            return False
        if self.job.check.rule(entry.inp).mode != "exact":
            return False
        if self.atol == 0 and b"G" in body and (
                expected.floats if expected.floats is not None else
                is_floats(pickle.loads(expected))):
            self.atol = 1e-6
        return True

    def _wrong(self, entry: _InFlight, label: str, answer: str) -> None:
        raise Verdict("fail", f"wrong output on {label}: {self._call_text(entry.inp)} returned "
                              f"{answer}, expected {safe_repr(expected_value(entry.expected))}")

    def _check_outside(self, entry: _InFlight, body: bytes, label: str) -> None:
        """The checker's verdict on a large answer, under a clock kept here (the program's later
        answers go on arriving, and are timed, meanwhile)."""
        session, call = self.session, self._call_text(entry.inp)
        if "checker" not in session.jails:
            session.start("checker", "checker")
            await_start(session, "checker", time.monotonic() + CHECK_S + 10.0)
            setup = {"path": sys.path, "rlimits": {"RLIMIT_AS": self.job.limits.memory_mb << 20}}
            session.post("checker", b"S", wire.dumps_trusted(setup))
        rule = self.job.check.rule(entry.inp)
        expected = expected_bytes(entry.expected)
        limit = CHECK_S + (len(body) + len(expected)) / CHECK_BYTES_PER_S
        try:
            session.post("checker", b"K", wire.dumps_trusted(
                ((rule.dataset, rule.mode, rule.reference), self.atol)))
            session.post("checker", b"X", expected)
            session.post("checker", b"A", body)
            _, reply = session.receive("checker", time.monotonic() + limit)
        except Overdue:
            session.discard("checker")
            raise Verdict("fail", f"the answer on {label}: {call} took longer than {limit:.1f} s "
                                  "to decode and compare (built to be slow to check?)") from None
        except Closed:
            code = session.returncode("checker")
            raise Verdict("fail", f"the answer on {label}: {call} ended the process that checks "
                                  f"it (exit code {code})") from None
        except Oversize as e:
            raise self._oversize(entry, label) if e.name == "program" else Verdict(
                "error", f"{SANDBOX_FAILURE}the checker sent a frame of {e.size} bytes") from None
        verdict = wire.loads(reply)
        if verdict[0] == "refused":
            raise Verdict("fail", f"the answer on {label}: {call} {verdict[1]}")
        self.atol = verdict[1]
        if verdict[0] == "disagree":
            self._wrong(entry, label, verdict[2])

    def _oversize(self, entry: _InFlight, label: str) -> Verdict:
        return Verdict("fail", f"answer too large: on {label}: {self._call_text(entry.inp)} the "
                               f"program answered more than {self.job.limits.max_answer_kb} KiB "
                               "(the task's answer limit)")

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
