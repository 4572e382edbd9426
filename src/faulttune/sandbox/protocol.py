"""The scorer's half of the program server's protocol (see ``server.py``), shared by both kinds
of tests: waiting for the jail to start, loading the program, reading its answers, and turning
what went wrong into a verdict."""

from __future__ import annotations

from typing import Any

from faulttune.sandbox import jail, wire
from faulttune.sandbox.results import SANDBOX_FAILURE, clip, explain_exit
from faulttune.sandbox.runner import Closed, Session


class Verdict(Exception):
    """Ends a run with ``(status, detail)``."""

    def __init__(self, status: str, detail: str):
        super().__init__(status, detail)
        self.status, self.detail = status, detail


# The scorer decodes only small frames of the program itself (its names, a failure report, a
# small answer; decoding is linear, so they take at most milliseconds); large answers are
# relayed to the judge or checked by the checker, in processes of their own.
SMALL_FRAME = 1 << 20


def program_answer(body: bytes, what: str) -> Any:
    """Decode a small frame body from the program's server; a malformed or larger one is the
    program's fault."""
    if len(body) > SMALL_FRAME:
        raise Verdict("fail", f"{what} is larger than {SMALL_FRAME >> 20} MiB (answer too large)")
    try:
        return wire.loads(body)
    except wire.WireError as e:
        raise Verdict("fail", f"{what} cannot cross the sandbox boundary: {e}") from None


def failure_verdict(type_name: str, message: str, where: list[str], exit_code: Any,
                    when: str) -> tuple[str, str]:
    """Status and detail for an exception the program raised (see server.describe_failure)."""
    if type_name == "SystemExit":
        return "fail", f"program called exit({exit_code!r}) {when}"
    head = f"{type_name}: {message}" if message else type_name
    if type_name == "SyntaxError":
        return "error", f"{head} ({'; '.join(where)})"
    status = "fail" if type_name == "AssertionError" else "error"
    return status, head + (f" (at {'; '.join(where)})" if where else "")


def failure_fields(value: Any) -> tuple[str, str, list[str], Any]:
    if not (isinstance(value, tuple) and len(value) == 4 and isinstance(value[0], str)
            and isinstance(value[1], str) and isinstance(value[2], list)):
        raise Verdict("fail", "the program's server sent a malformed exception report")
    return value[0], value[1], [str(w) for w in value[2]], value[3]


def await_start(session: Session, name: str, deadline: float) -> None:
    """Wait for the jail's hello (sent before any untrusted code runs); a jail that ends
    before it never started, which is the sandbox's failure, not the program's."""
    if session.jails[name].started:
        return
    try:
        kind, _ = session.receive(name, deadline)
    except Closed:
        session.returncode(name)
        last = (session.stderr_tail(name).strip().splitlines() or ["no message"])[-1]
        raise Verdict("error", f"{SANDBOX_FAILURE}the jail did not start: {clip(last, 300)}"
                      ) from None
    if kind != b"H":
        raise Verdict("error", f"{SANDBOX_FAILURE}the jail's first frame was {kind!r}")
    session.jails[name].started = True


def load_program(session: Session, program: str, deadline: float, *, guard: bool,
                 swallow_io: bool) -> dict[str, str]:
    """Run the program's top level in its server; its names ``{name: kind}`` or a Verdict."""
    await_start(session, "program", deadline)
    limits = session.limits
    request = {"program": program, "guard": guard, "swallow_io": swallow_io,
               "rlimits": limits.rlimits(jail.counts_processes()),
               "path": jail.import_path(limits.packages)}
    session.send("program", b"L", wire.dumps_trusted(request), deadline)
    kind, body = session.receive("program", deadline)
    value = program_answer(body, "the program's answer to loading it")
    if kind == b"X":
        raise Verdict(*failure_verdict(*failure_fields(value), "before the tests finished"))
    if kind != b"O" or not isinstance(value, list) or not all(
            isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, str) for x in v)
            for v in value):
        raise Verdict("fail", "the program's server sent a malformed list of names")
    return dict(value)


def closed_verdict(session: Session, name: str, when: str) -> Verdict:
    """Why a jail's channel closed: the program's exit (its fault), or a broken judge."""
    returncode = session.returncode(name)
    stderr = session.stderr_tail(name)
    if name != "program":
        last = (stderr.strip().splitlines() or ["no message"])[-1]
        return Verdict("error", f"{SANDBOX_FAILURE}the judge ended without a verdict "
                                f"(exit code {returncode}): {clip(last, 300)}")
    if returncode is None:
        return Verdict("fail", f"the program closed its call channel {when}")
    return Verdict(*explain_exit(returncode, stderr, when, session.out_of_memory(name)))
