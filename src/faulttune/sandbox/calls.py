"""Calling a program's functions from outside its jail and keeping the answers.

The program loads in its server (:mod:`.server`) as for a verdict, then answers the calls one by
one; the answers come back as plain values (:mod:`.wire`). Nothing here judges them: the caller
(execution traces for masks, :mod:`faulttune.tracing`) reads them as data. The whole run has
``Limits.timeout_s``; a program that overruns it, exits or answers with a malformed frame ends
the run, and the answers it gave so far are kept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faulttune.sandbox import wire
from faulttune.sandbox.protocol import Verdict, closed_verdict, load_program, program_answer
from faulttune.sandbox.results import SANDBOX_FAILURE, Limits, clip
from faulttune.sandbox.runner import Closed, Overdue, Oversize, Session

# answer frame -> what the call did: returned a value, raised (type, message, where, exit code),
# returned a value that cannot cross the boundary (what it was)
ANSWERS = {b"R": "returned", b"E": "raised", b"U": "uncarriable"}


@dataclass(frozen=True)
class Calls:
    """The answers to the calls that were made, in order, as ``(what, value)`` (:data:`ANSWERS`),
    and how the run ended: ``status`` "ok", or "timeout" / "error" / "fail" with a ``detail``."""

    status: str
    detail: str = ""
    answers: list[tuple[str, Any]] = field(default_factory=list)


def call_program(program: str, calls: Sequence[tuple[str, Sequence[Any]]], limits: Limits,
                 *, guard: bool = True) -> Calls:
    """Load ``program`` in a jail and call ``name(*args)`` for each of ``calls`` in order."""
    answers: list[tuple[str, Any]] = []
    deadline = time.monotonic() + limits.timeout_s
    try:
        with Session(limits) as session:
            session.start("program", "server")
            try:
                load_program(session, program, deadline, guard=guard, swallow_io=True)
                for name, args in calls:
                    try:
                        request = wire.dumps((name, list(args), {}))
                    except wire.Uncarriable as e:
                        return Calls("error", f"a call's arguments hold {e.what}", answers)
                    session.send("program", b"C", request, deadline)
                    kind, body = session.receive("program", deadline)
                    if kind not in ANSWERS:
                        return Calls("fail", "the program's server answered with a malformed frame",
                                     answers)
                    answers.append((ANSWERS[kind], program_answer(body, "an answer")))
            except Verdict as v:
                return Calls(v.status, v.detail, answers)
            except Overdue:
                return Calls("timeout", f"the calls took longer than {limits.timeout_s:.1f} s",
                             answers)
            except (Closed, Oversize):
                v = closed_verdict(session, "program", "before the calls ended")
                return Calls(v.status, v.detail, answers)
    except OSError as e:
        return Calls("error", clip(f"{SANDBOX_FAILURE}{type(e).__name__}: {e}"), answers)
    return Calls("ok", "", answers)
