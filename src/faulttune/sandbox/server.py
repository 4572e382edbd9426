"""The program's side of the boundary: a server of calls, run inside the jail.

The scorer sends frames on ``in_fd`` and reads the answers on ``out_fd``:

* ``L`` load: ``{"program", "guard", "swallow_io", "rlimits"}`` -> ``O`` with the program's
  top-level names ``[(name, "callable" | "value" | "module:<module name>"), ...]``, or ``X``
  ``(status, detail)`` when the program does not load (a syntax error, an exception, an exit).
  Every load runs the program again in a fresh namespace (EvalPlus runs base and plus inputs in
  separate processes, so state does not carry from one stage to the next).
* ``C`` call: ``(name, args, kwargs[, "presence"])`` -> ``R`` the return value in the restricted
  format (with "presence", only :func:`presence` of it: EvalPlus checks some MBPP answers, regex
  match objects, for being not None and nothing else)
  ``E`` ``(type name, message, where, exit code or None)`` when the call raised, or
  ``U`` ``what`` when the return value cannot cross (a subclass, a generator, ...).

Nothing here is trusted by the judging side: this code shares a process with the program, which
can rewrite any of it. It exists to make honest programs answer; the verdict is made elsewhere
from the plain values it sends. Standard library only.
"""

from __future__ import annotations

import builtins
import io
import os
import resource
import sys
import types

from faulttune.sandbox import framing, wire

TYPE_CHECKING = False  # typing and contextlib cost the jail's start-up more than all the rest
if TYPE_CHECKING:
    from typing import Any

PROGRAM = "<program>"
_MESSAGE_CHARS = 300


class _Sink(io.StringIO):
    """Like EvalPlus's swallow_io stream: writes vanish, reads raise."""

    def write(self, s: str) -> int:
        return len(s)

    def read(self, *args: Any, **kwargs: Any) -> str:
        raise OSError("stdin is not readable in the sandbox")

    readline = read

    def readlines(self, *args: Any, **kwargs: Any) -> list[str]:
        raise OSError("stdin is not readable in the sandbox")

    def readable(self) -> bool:
        return False


_SINK = _Sink()


def _swallowing(enabled: bool, run: Any) -> Any:
    """``run()`` with stdin, stdout and stderr swallowed when ``enabled`` (EvalPlus's swallow_io)."""
    if not enabled:
        return run()
    sink = _SINK
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = sys.stdout = sys.stderr = sink
    try:
        return run()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def _clip(text: str, limit: int = _MESSAGE_CHARS) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(exc: BaseException) -> str:
    try:
        return _clip(str(exc))
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return ""


def program_frames(exc: BaseException, lines: list[str]) -> list[str]:
    """'<program> line 3: `src`' for the deepest frame of the program in the traceback."""
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == PROGRAM:
            lineno = tb.tb_lineno
            src = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
            found = f"{PROGRAM} line {lineno}: `{_clip(src, 200)}`"
        tb = tb.tb_next
    return [found] if found else []


def describe_failure(exc: BaseException, lines: list[str]) -> tuple[str, str, list[str], Any]:
    """(type name, message, where, exit code or None) of an exception the program raised."""
    if isinstance(exc, SystemExit):
        return "SystemExit", "", [], exc.code if isinstance(exc.code, (int, str)) else None
    if isinstance(exc, SyntaxError):
        where = [f"{exc.filename} line {exc.lineno}"]
        return "SyntaxError", _clip(str(exc.msg)), where, None
    return type(exc).__name__, _message(exc), program_frames(exc, lines), None


class Server:
    """Loads the program and answers calls until the scorer closes the channel."""

    def __init__(self, in_fd: int, out_fd: int):
        self.in_fd, self.out_fd = in_fd, out_fd
        self.namespace: dict[str, Any] = {}
        self.lines: list[str] = []
        self.swallow = False
        self.limited = False

    def serve(self) -> None:
        handlers = {b"L": self.load, b"C": self.call}
        frames = framing.FrameReader(self.in_fd)
        while True:
            try:
                kind, body = frames.next()
            except EOFError:
                return
            kind, answer = handlers[kind](wire.loads_trusted(body))
            framing.write_frame(self.out_fd, kind, answer)

    def load(self, request: dict[str, Any]) -> tuple[bytes, bytes]:
        if not self.limited:
            sys.path.extend(p for p in request["path"] if p not in sys.path)
            apply_rlimits(request["rlimits"])
            if request["guard"]:
                preimport_for_guard(request["program"])
                apply_evalplus_guard()
            self.limited = True
        self.swallow = request["swallow_io"]
        self.lines = request["program"].splitlines()
        # no __name__: like EvalPlus's exec(code, {}), so `if __name__ == "__main__"` is off
        self.namespace = {"__builtins__": builtins}
        try:
            code = compile(request["program"], PROGRAM, "exec")
            _swallowing(self.swallow, lambda: exec(code, self.namespace))  # noqa: S102
        except BaseException as exc:  # noqa: BLE001 - every way a program fails is a verdict
            return b"X", wire.dumps(describe_failure(exc, self.lines))
        return b"O", wire.dumps(self.names())

    def names(self) -> list[tuple[str, str]]:
        found = []
        for name, value in list(self.namespace.items()):
            if not isinstance(name, str) or name.startswith("__"):
                continue
            if isinstance(value, types.ModuleType):
                found.append((name, "module:" + str(getattr(value, "__name__", ""))))
            else:
                found.append((name, "callable" if callable(value) else "value"))
        return found

    def call(self, request: tuple[Any, ...]) -> tuple[bytes, bytes]:
        name, args, kwargs, *projection = request
        function = self.namespace.get(name)
        if function is None:
            return b"E", wire.dumps(("NameError", f"name '{name}' is not defined", [], None))
        try:
            value = _swallowing(self.swallow, lambda: function(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001
            return b"E", wire.dumps(describe_failure(exc, self.lines))
        if projection == ["presence"]:
            value = presence(value)
        try:
            return b"R", wire.dumps(value)
        except wire.Uncarriable as e:
            return b"U", wire.dumps(e.what)


def presence(value: Any) -> tuple[str, bool]:
    """What EvalPlus looks at for its not-None tasks: a bool itself, else whether it is None."""
    return ("bool", value) if type(value) is bool else ("is None", value is None)


def apply_rlimits(rlimits: dict[str, int]) -> None:
    """soft = hard = value (never above an inherited hard limit); irreversible without privilege."""
    for name, value in rlimits.items():
        kind = getattr(resource, name)
        _, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))


# Imported already in EvalPlus's checking process, and not importable once the guard is on
# (their import calls os.putenv): programs that use them import them before it, as there.
PREIMPORTED = ("numpy", "multiprocessing")


def preimport_for_guard(program: str) -> None:
    import importlib

    for name in PREIMPORTED:
        if name in program:
            try:
                importlib.import_module(name)
            except ImportError:
                continue


# attributes EvalPlus's guard sets to None in modules it imports; here they are patched when the
# program first imports them (importing shutil and subprocess up front costs a jail ~10 ms)
GUARDED_LATER = {"shutil": ("rmtree", "move", "chown"), "subprocess": ("Popen",)}


def _disable(module: Any) -> None:
    for attr in GUARDED_LATER[module.__name__]:
        setattr(module, attr, None)


class _GuardOnImport:
    """A meta-path finder that hands out :data:`GUARDED_LATER` modules already guarded."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in GUARDED_LATER:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    spec.loader.exec_module = _guarded(spec.loader.exec_module)
                    return spec
        return None


def _guarded(execute: Any) -> Any:
    def exec_module(module: Any) -> None:
        execute(module)
        _disable(module)

    return exec_module


def apply_evalplus_guard() -> None:
    """Disable what EvalPlus's reliability_guard disables, so verdicts agree with it."""
    import faulthandler

    faulthandler.disable()
    for name in ("exit", "quit", "open", "help"):
        setattr(builtins, name, None)
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
                 "fork", "forkpty", "killpg", "rename", "renames", "truncate", "replace",
                 "unlink", "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod",
                 "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    for name in GUARDED_LATER:
        if name in sys.modules:
            _disable(sys.modules[name])
    sys.meta_path.insert(0, _GuardOnImport())
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    """``argv``: in fd, out fd, "jail" or "fallback" (no jail around us), the scorer's pid."""
    in_fd, out_fd, mode, owner = int(argv[0]), int(argv[1]), argv[2], int(argv[3])
    if mode == "fallback":
        from faulttune.sandbox import fallback_guard

        fallback_guard.apply(owner)
    framing.write_frame(out_fd, b"H")
    Server(in_fd, out_fd).serve()
