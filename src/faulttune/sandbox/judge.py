"""The judge: a task's assert-style tests, run in their own jail, calling the program by proxy.

The scorer sends one ``T`` frame: ``{"tests", "helpers", "entry_point", "names", "rlimits"}``.
The judge builds the tests' namespace from code it trusts (its own builtins and standard library,
the task's own helper functions from the dataset) plus one :class:`Proxy` per function the program
defines, runs the tests, and answers ``V`` ``(status, detail)``. A proxy call is a ``C`` frame
``(name, args, kwargs)``; the scorer relays it to the program's server and relays the answer back
(``R`` a plain value, ``E`` an exception, ``U`` a value that cannot cross).

The program never shares this process: it can change what its functions return, never how they are
compared, which helpers the tests use, or what the verdict says. Standard library only.
"""

from __future__ import annotations

import builtins
import importlib
import os

from faulttune.sandbox import wire

TYPE_CHECKING = False  # typing costs the jail's start-up more than all the rest
if TYPE_CHECKING:
    from typing import Any

TESTS, HELPERS = "<tests>", "<helpers>"
_PROGRAM_EXCEPTION = "_faulttune_program_exception"


class ProgramExited(BaseException):
    """The program called ``exit`` during a call (tests cannot catch it)."""


class Unreturnable(BaseException):
    """The program returned a value that cannot cross the boundary (tests cannot catch it)."""


class ProxyLimit(BaseException):
    """The tests pass something to the program that cannot cross the boundary."""


class ProgramError(Exception):
    """An exception of the program whose type the judge does not have (its own class)."""


class Proxy:
    """Stands for one of the program's functions in the tests' namespace."""

    def __init__(self, name: str, in_fd: int, out_fd: int):
        self.__name__ = self.__qualname__ = name
        self._fds = (in_fd, out_fd)

    def __repr__(self) -> str:
        return f"<function {self.__name__} (the program's, by proxy)>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            request = wire.dumps((self.__name__, list(args), kwargs))
        except wire.Uncarriable as e:
            raise ProxyLimit(f"the tests pass {e.what} to `{self.__name__}`, which cannot cross "
                             "the sandbox boundary (plain builtin values only)") from None
        in_fd, out_fd = self._fds
        wire.write_frame(out_fd, b"C", request)
        kind, body = wire.read_frame(in_fd)
        if kind == b"R":
            return wire.loads(body)
        if kind == b"U":
            raise Unreturnable(f"`{self.__name__}` returned {wire.loads(body)}, which cannot "
                               "cross the sandbox boundary (plain builtin values only)")
        raise rebuilt_exception(*wire.loads(body))


def rebuilt_exception(type_name: str, message: str, where: list[str],
                      exit_code: Any) -> BaseException:
    """The judge's own exception for one the program raised (a builtin type where one exists)."""
    if type_name == "SystemExit":
        return ProgramExited(exit_code)
    cls = getattr(builtins, type_name, None)
    exc: BaseException
    try:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError
        exc = cls(message) if message else cls()
    except Exception:  # noqa: BLE001 - a builtin type whose constructor needs more arguments
        exc = ProgramError(f"{type_name}: {message}" if message else type_name)
    setattr(exc, _PROGRAM_EXCEPTION, (type_name, message, where))
    return exc


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def test_frames(exc: BaseException, sources: dict[str, list[str]]) -> list[str]:
    """'<tests> line 3: `src`' for the deepest frame of each trusted source, deepest first."""
    found: dict[str, str] = {}
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in sources:
            lineno, lines = tb.tb_lineno, sources[name]
            src = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
            found[name] = f"{name} line {lineno}: `{_clip(src, 200)}`"
        tb = tb.tb_next
    return list(reversed(found.values()))


def _message(exc: BaseException) -> str:
    try:
        return _clip(str(exc), 300)
    except Exception:  # noqa: BLE001
        return ""


def classify(exc: BaseException, sources: dict[str, list[str]]) -> tuple[str, str]:
    """Status and detail for an exception that ended the tests."""
    if isinstance(exc, ProgramExited):
        return "fail", f"program called exit({exc.args[0]!r}) before the tests finished"
    if isinstance(exc, Unreturnable):
        return "fail", str(exc)
    if isinstance(exc, ProxyLimit):
        return "error", str(exc)
    where = test_frames(exc, sources)
    origin = getattr(exc, _PROGRAM_EXCEPTION, None)
    if origin is not None:
        type_name, message, program_where = origin
        head = f"{type_name}: {message}" if message else type_name
        status = "fail" if type_name == "AssertionError" else "error"
        trail = [*program_where, *where]
        return status, head + (f" (at {'; called from '.join(trail)})" if trail else "")
    message = _message(exc)
    if isinstance(exc, AssertionError):
        check = where[0].split(": ", 1)[1].strip("`") if where else "assert"
        return "fail", f"AssertionError: {check}" + (f" ({message})" if message else "")
    if isinstance(exc, SyntaxError):
        return "error", f"SyntaxError in the tests: {exc.msg} ({exc.filename} line {exc.lineno})"
    head = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return "error", head + (f" (at {'; called from '.join(where)})" if where else "")


def namespace(spec: dict[str, Any], in_fd: int, out_fd: int,
              sources: dict[str, list[str]]) -> dict[str, Any]:
    """The tests' globals: the task's helpers, then a proxy for each function of the program.

    A program name that shadows a builtin or a helper (other than the entry point) is not
    proxied: the tests keep the real one. Modules the program imported are imported here again.
    """
    ns: dict[str, Any] = {"__builtins__": builtins}
    if spec["helpers"]:
        sources[HELPERS] = spec["helpers"].splitlines()
        exec(compile(spec["helpers"], HELPERS, "exec"), ns)  # noqa: S102 - the dataset's code
    trusted = set(ns) | set(dir(builtins))
    entry = spec["entry_point"]
    callables = set()
    for name, kind in spec["names"]:
        if name in trusted and name != entry:
            continue
        if kind == "callable":
            ns[name] = Proxy(name, in_fd, out_fd)
            callables.add(name)
        elif kind.startswith("module:"):
            try:
                ns[name] = importlib.import_module(kind.removeprefix("module:"))
            except Exception:  # noqa: BLE001, S112 - the program's own module: not needed here
                continue
    if entry and entry not in callables:
        ns.pop(entry, None)  # a stub from the helpers must not stand in for a missing answer
    return ns


def run_tests(spec: dict[str, Any], in_fd: int, out_fd: int) -> tuple[str, str]:
    sources = {TESTS: spec["tests"].splitlines()}
    try:
        ns = namespace(spec, in_fd, out_fd, sources)
    except BaseException as exc:  # noqa: BLE001
        _, detail = classify(exc, sources)
        return "error", f"the task's helper code does not run: {detail}"
    entry = spec["entry_point"]
    if entry and entry not in ns:
        return "error", f"the program defines no function `{entry}`"
    try:
        exec(compile(spec["tests"], TESTS, "exec"), ns)  # noqa: S102 - the dataset's tests
    except BaseException as exc:  # noqa: BLE001 - every way the tests end is a verdict
        values = {name for name, kind in spec["names"] if kind == "value"}
        if isinstance(exc, NameError) and getattr(exc, "name", None) in values:
            return "error", (f"the tests use `{exc.name}`, a value the program defines: only the "
                             "program's functions cross the sandbox boundary (by proxy)")
        return classify(exc, sources)
    return "pass", ""


def main(argv: list[str]) -> None:
    """``argv``: in fd, out fd, "jail" or "fallback", the scorer's pid (as for the server)."""
    in_fd, out_fd, mode, owner = int(argv[0]), int(argv[1]), argv[2], int(argv[3])
    if mode == "fallback":
        from faulttune.sandbox import fallback_guard

        fallback_guard.apply(owner)
    wire.write_frame(out_fd, b"H")
    _, body = wire.read_frame(in_fd)
    spec = wire.loads(body)
    from faulttune.sandbox.server import apply_rlimits

    apply_rlimits(spec["rlimits"])
    status, detail = run_tests(spec, in_fd, out_fd)
    wire.write_frame(out_fd, b"V", wire.dumps((status, detail)))
    os._exit(0)
