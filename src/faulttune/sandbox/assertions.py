"""Assert-style tests (HumanEval's ``check``, MBPP asserts, HumanEvalFix, the training tasks'
tests that bug verification and CodeFlow use), judged where the program cannot reach.

Two jails per program: the program's server, and the judge (``judge.py``) that runs the tests with
the task's own helpers and a proxy for each of the program's functions. The scorer relays every
call from the judge to the program and every answer back, and keeps the time: the whole run has
``Limits.timeout_s``; a program that does not answer in time is killed, however it tries to stop
its clock. The verdict is the judge's, or the scorer's when the program dies, hangs or answers with
something that cannot cross.

Proxies carry plain values only (``wire``): a test that passes a function, a class instance or any
other object to the program gets an ``error`` that says so; a test that checks how the program
mutated an argument sees the judge's unchanged copy.
"""

from __future__ import annotations

import ast
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faulttune.sandbox import jail, wire
from faulttune.sandbox.protocol import Verdict, await_start, closed_verdict, load_program
from faulttune.sandbox.results import SANDBOX_FAILURE, Limits, SandboxResult, clip
from faulttune.sandbox.runner import Closed, Overdue, Oversize, Session

log = logging.getLogger("faulttune.sandbox")


@dataclass(frozen=True)
class TestJob:
    """One program and the tests that judge it.

    ``helpers``: the task's own code that the tests may call (a HumanEval prompt's ``poly`` or
    ``encode_cyclic``; :func:`prompt_helpers` extracts it), run in the judge: the program's
    redefinitions never reach the tests. ``entry_point``: the function under test, when known.
    """

    __test__ = False  # not a pytest test class, despite its name

    program: str
    tests: str = ""
    helpers: str = ""
    entry_point: str = ""


def _is_stub(node: ast.stmt) -> bool:
    """A function whose body is only a docstring / ``pass`` / ``...``: the part to be written."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    return all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(
        s.value, ast.Constant)) for s in node.body)


def prompt_helpers(prompt: str) -> str:
    """The helper code of a task prompt: its imports, constants, classes and complete functions.

    Stubs (the entry point's signature and docstring) and bare expressions are dropped; a prompt
    that is not Python (MBPP's text) has no helpers.
    """
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError):
        return ""
    lines = prompt.splitlines()
    kept = []
    for node in tree.body:
        if _is_stub(node) or isinstance(node, ast.Expr):
            continue
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        kept.append("\n".join(lines[first - 1: node.end_lineno]))
    return "\n\n".join(kept) + ("\n" if kept else "")


def task_job(task: Mapping[str, Any], program: str) -> TestJob:
    """``program`` judged by a training/benchmark task row's ``test``, with the helpers of its
    ``instruction`` (when that is code) and its ``entry_point``."""
    return TestJob(program, task.get("test") or "", prompt_helpers(task.get("instruction") or ""),
                   task.get("entry_point") or "")


def run_program(program: str, tests: str = "", *, helpers: str = "", entry_point: str = "",
                limits: Limits | None = None) -> SandboxResult:
    """Judge ``program`` by ``tests``; with no tests, pass if its top level runs to the end."""
    return run_test_job(TestJob(program, tests, helpers, entry_point), limits or Limits())


def run_test_job(job: TestJob, limits: Limits) -> SandboxResult:
    started = time.perf_counter()
    stderr = ""
    try:
        with Session(limits) as session:
            status, detail = _judge(session, job, time.monotonic() + limits.timeout_s)
            stderr = session.stderr_tail("program")
    except Exception as e:  # one run's broken sandbox must not end the others
        log.warning("sandbox failure", exc_info=True)
        status, detail = "error", f"{SANDBOX_FAILURE}{type(e).__name__}: {e}"
    return SandboxResult(status, clip(detail), stderr, time.perf_counter() - started)


class _Progress:
    """Where the run is, for the detail of a timeout or a crash."""

    def __init__(self) -> None:
        self.calls = 0
        self.current = "while loading the program"

    def call(self, name: str, args: list[object], kwargs: dict[str, object]) -> None:
        self.calls += 1
        self.current = f"in call #{self.calls}: {describe_call(name, args, kwargs)}"


def describe_call(name: str, args: list[object], kwargs: dict[str, object]) -> str:
    parts = [_short_repr(a) for a in args] + [f"{k}={_short_repr(v)}" for k, v in kwargs.items()]
    return clip(f"{name}({', '.join(parts)})", 300)


def _short_repr(value: object, limit: int = 120) -> str:
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 12
    return clip(short.repr(value), limit)


def _judge(session: Session, job: TestJob, deadline: float) -> tuple[str, str]:
    progress = _Progress()
    try:
        session.start("program", "server")
        if job.tests:
            session.start("judge", "judge")
        names = load_program(session, job.program, deadline, guard=False, swallow_io=False)
        if not job.tests:
            return "pass", ""
        progress.current = "in the tests"
        await_start(session, "judge", deadline)
        spec = {"tests": job.tests, "helpers": job.helpers, "entry_point": job.entry_point,
                "names": sorted(names.items()), "rlimits": session.limits.rlimits(False),
                "path": jail.import_path(session.limits.packages)}
        session.send("judge", b"T", wire.dumps_trusted(spec), deadline)
        return _relay(session, deadline, progress)
    except Verdict as v:
        return v.status, v.detail
    except Overdue:
        return "timeout", (f"wall-clock limit of {session.limits.timeout_s:g} s exceeded "
                           f"{progress.current}")
    except Closed as e:
        verdict = closed_verdict(session, str(e), progress.current.replace(
            "while loading the program", "before the tests finished"))
        return verdict.status, verdict.detail
    except wire.WireError as e:
        return "error", f"{SANDBOX_FAILURE}the judge sent a malformed frame ({e})"
    except Oversize as e:
        if e.name != "program":
            return "error", f"{SANDBOX_FAILURE}the judge sent a frame of {e.size} bytes"
        return "fail", (f"answer too large: the program answered {progress.current} with more "
                        f"than {session.limits.max_answer_kb // 1024} MiB")


def _relay(session: Session, deadline: float, progress: _Progress) -> tuple[str, str]:
    """Pass the judge's calls to the program and the answers back, until the judge's verdict."""
    while True:
        kind, body = session.receive("judge", deadline)
        request = wire.loads_trusted(body)  # the judge runs only our code and the task's
        if kind == b"V":
            return str(request[0]), str(request[1])
        if kind != b"C":
            raise wire.WireError(f"unexpected frame {kind!r}")
        progress.call(*request)
        session.send("program", b"C", body, deadline)
        answer_kind, answer = session.receive("program", deadline)  # decoded by the judge
        if answer_kind not in (b"R", b"E", b"U"):
            raise Verdict("fail", f"the program's server answered {progress.current} "
                                  f"with an unknown frame {answer_kind!r}")
        session.send("judge", answer_kind, answer, deadline)
        progress.current = "in the tests"
