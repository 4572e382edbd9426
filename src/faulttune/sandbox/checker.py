"""The checker: one process, started by a run that gets a large answer, that decodes and compares
the program's large answers, so that the scorer itself never does.

Decoding is linear (``wire``) but a large answer still takes time and several times its size in
memory; here that time is kept by the scorer as it keeps the program's (a checker that does not
answer in time is killed), the memory is this process's own (its address space is limited), and
the scorer's other runs never wait for it. The checker runs no code of the program: only the
restricted decoder and the comparison (``comparison.agrees``).

Frames (the scorer's are trusted, ``wire.loads_trusted``): ``S`` setup ``{"path", "rlimits"}``;
``K`` ``(rule fields, atol)``, followed by ``X`` (the expected output, pickled by the scorer's
cache) and ``A`` (the answer's bytes as the program sent them) -> ``V`` ``("agree", atol)`` |
``("disagree", atol, the answer's repr)`` | ``("refused", why)`` (the answer cannot cross, or is
too large to check here).
"""

from __future__ import annotations

import pickle
import resource
import sys

from faulttune.sandbox import wire
from faulttune.sandbox.comparison import Rule, agrees, safe_repr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def check(request: tuple[Any, ...], expected: bytes, answer: bytes) -> tuple[Any, ...]:
    """The verdict on one answer (see the module docstring)."""
    rule_fields, atol = request
    try:
        out = wire.loads(answer)
        agreed, atol = agrees(Rule(*rule_fields), out, pickle.loads(expected), atol)
        return ("agree", atol) if agreed else ("disagree", atol, safe_repr(out))
    except wire.WireError as e:
        return ("refused", f"cannot cross the sandbox boundary: {e}")
    except MemoryError:
        limit = resource.getrlimit(resource.RLIMIT_AS)[0] >> 20
        return ("refused", f"is too large to check within {limit} MiB")


def setup(request: dict[str, Any]) -> None:
    sys.path.extend(p for p in request["path"] if p not in sys.path)
    for name, value in request["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))


def main(argv: list[str]) -> None:
    """``argv``: in fd, out fd (as for the jails' roles)."""
    in_fd, out_fd = int(argv[0]), int(argv[1])
    wire.write_frame(out_fd, b"H")
    frames = wire.FrameReader(in_fd)
    while True:
        try:
            kind, body = frames.next()
            if kind == b"S":
                setup(wire.loads_trusted(body))
                continue
            _, expected = frames.next()
            _, answer = frames.next()
        except EOFError:
            return
        verdict = check(wire.loads_trusted(body), expected, answer)
        del expected, answer
        wire.write_frame(out_fd, b"V", wire.dumps(verdict))
