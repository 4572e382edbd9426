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
import sys

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
            request = wire.dumps_trusted((self.__name__, list(args), kwargs))
        except wire.Uncarriable as e:
            raise ProxyLimit(f"the tests pass {e.what} to `{self.__name__}`, which cannot cross "
                             "the sandbox boundary (plain builtin values only)") from None
        in_fd, out_fd = self._fds
        wire.write_frame(out_fd, b"C", request)
        kind, body = wire.read_frame(in_fd)
        value = self._decoded(body)
        if kind == b"R":
            return value
        if kind == b"U" and type(value) is str:
            raise Unreturnable(f"`{self.__name__}` returned {_clip(value, 200)}, which cannot "
                               "cross the sandbox boundary (plain builtin values only)")
        if kind == b"E" and type(value) is tuple and len(value) == 4 and type(value[0]) is str \
                and type(value[1]) is str and type(value[2]) is list:
            raise rebuilt_exception(*value)
        raise Unreturnable(f"the program's server answered a call of `{self.__name__}` with a "
                           "malformed frame")

    def _decoded(self, body: bytes) -> Any:
        """The program's answer; one that cannot be decoded here is the program's failure."""
        try:
            return wire.loads(body)
        except wire.WireError as e:
            raise Unreturnable(f"`{self.__name__}` returned a value that cannot cross the sandbox "
                               f"boundary: {_clip(str(e), 200)}") from None
        except MemoryError:
            raise Unreturnable(f"`{self.__name__}` returned an answer too large for the tests' "
                               "memory") from None


def rebuilt_exception(type_name: str, message: str, where: list[Any],
                      exit_code: Any) -> BaseException:
    """The judge's own exception for one the program raised (a builtin type where one exists);
    the program's texts are clipped (a verdict stays small whatever it sent)."""
    if type_name == "SystemExit":
        return ProgramExited(exit_code if type(exit_code) in (int, str) else None)
    type_name, message = _clip(type_name, 100), _clip(message, 300)
    where = [_clip(str(w), 300) for w in where[:3]]
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


DETAIL_CHARS = 600


def classify(exc: BaseException, sources: dict[str, list[str]]) -> tuple[str, str]:
    """Status and detail (at most :data:`DETAIL_CHARS`) for an exception that ended the tests."""
    status, detail = _classify(exc, sources)
    return status, _clip(detail, DETAIL_CHARS)


def _classify(exc: BaseException, sources: dict[str, list[str]]) -> tuple[str, str]:
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


def imported_modules(*sources: str) -> set[str]:
    """Top-level modules that code imports (``import a.b``, ``from a import b``: ``a``)."""
    import ast

    found = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def names_used(source: str) -> set[str]:
    """Every name the code reads (the tests may read a module the program imported)."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _module_for_tests(module: str, allowed: set[str]) -> Any:
    """``module`` imported here if its top-level package is allowed, else None; a module whose
    import fails or raises anything is left out (the program named it, not the task)."""
    if module.split(".")[0] not in allowed:
        return None
    try:
        return importlib.import_module(module)
    except BaseException:  # noqa: BLE001 - SystemExit or KeyboardInterrupt from its import too
        return None


def namespace(spec: dict[str, Any], in_fd: int, out_fd: int, sources: dict[str, list[str]],
              helpers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The tests' globals: the task's helpers, then a proxy for each function of the program.

    A program name that shadows a builtin or a helper (other than the entry point) is not
    proxied: the tests keep the real one. A module the program imported (``import M as N``) is
    imported here too only when the tests read ``N`` and the tests or helpers import ``M``'s
    package themselves, or ``M`` is a standard-library module imported under its own name
    (Mbpp/596's tests read the program's ``sys``): a program cannot make the judge import
    anything the task does not use.
    """
    ns = helpers_namespace(spec, sources) if helpers is None else helpers
    trusted = set(ns) | set(dir(builtins))
    entry = spec["entry_point"]
    used = names_used(spec["tests"]) | names_used(spec["helpers"])
    imported = imported_modules(spec["tests"], spec["helpers"])
    standard = set(getattr(sys, "stdlib_module_names", ()))
    callables = set()
    for name, kind in spec["names"]:
        if name in trusted and name != entry:
            continue
        if kind == "callable":
            ns[name] = Proxy(name, in_fd, out_fd)
            callables.add(name)
        elif kind.startswith("module:") and name in used:
            module = kind.removeprefix("module:")
            allowed = imported | ({name} & standard if module == name else set())
            found = _module_for_tests(module, allowed)
            if found is not None:
                ns[name] = found
    if entry and entry not in callables:
        ns.pop(entry, None)  # a stub from the helpers must not stand in for a missing answer
    return ns


def helpers_namespace(spec: dict[str, Any], sources: dict[str, list[str]]) -> dict[str, Any]:
    """The builtins and the task's own helper code (HELPERS), run here."""
    ns: dict[str, Any] = {"__builtins__": builtins}
    if spec["helpers"]:
        sources[HELPERS] = spec["helpers"].splitlines()
        exec(compile(spec["helpers"], HELPERS, "exec"), ns)  # noqa: S102 - the dataset's code
    return ns


def run_tests(spec: dict[str, Any], in_fd: int, out_fd: int) -> tuple[str, str]:
    sources = {TESTS: spec["tests"].splitlines()}
    try:
        helpers = helpers_namespace(spec, sources)  # the task's own code: its failures are its own
    except BaseException as exc:  # noqa: BLE001
        _, detail = classify(exc, sources)
        return "error", f"the task's helper code does not run: {detail}"
    ns = namespace(spec, in_fd, out_fd, sources, helpers)
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
    spec = wire.loads_trusted(body)
    from faulttune.sandbox.server import apply_rlimits

    sys.path.extend(p for p in spec.get("path", ()) if p not in sys.path)
    apply_rlimits(spec["rlimits"])
    status, detail = run_tests(spec, in_fd, out_fd)
    wire.write_frame(out_fd, b"V", wire.dumps((status, detail)))
    os._exit(0)
