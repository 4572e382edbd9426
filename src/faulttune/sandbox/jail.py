"""Isolation: start one sandboxed interpreter (a program's server or a judge) in a jail.

The jail is bubblewrap (``bwrap``, the sandbox Flatpak uses), which needs no root where
unprivileged user namespaces work. Each jail gets new user, PID, network, IPC, mount, UTS and
cgroup namespaces (``--unshare-all``) and sees only:

* the interpreter, its standard library and the system's shared-library folders, read-only, with
  every ``site-packages`` / ``dist-packages`` folder in them hidden;
* the allowed packages (:mod:`.packages`), read-only, under ``/faulttune/site``;
* its own ``/proc``, a minimal ``/dev``, private tmpfs ``/tmp`` and ``/dev/shm`` of
  ``Limits.max_file_mb``; everything else read-only, and no other host path: no data folder, no
  project tree, no cache, no home.

It dies with the scorer (``--die-with-parent``: the jail's processes get SIGKILL when the scorer's
thread that started them ends, however the scorer ends), cannot create further user namespaces
where bwrap supports ``--disable-userns``, and leaves nothing on the host: no folder, and its IPC
objects die with its IPC namespace. As root the program runs under a random unprivileged uid.

Where the system-call filter is installed, a program's jail is made by a fork of a zygote (an
interpreter booted once in a jail of its own) rather than a new bwrap: the same namespaces and
limits, a few milliseconds instead of ~20 (:mod:`.forkserver`). Command lines: :mod:`.bwrap`.

Where bwrap is missing or user namespaces do not work, the **fallback** runs the interpreter as a
plain child process in a temporary folder: the program keeps the caller's file permissions and
network access through ``_socket``/``ctypes``. It warns once, loudly, and RESULTS.json records it.
``FAULTTUNE_SANDBOX=fallback`` forces the fallback; ``FAULTTUNE_SANDBOX=bwrap`` makes a missing
jail an error instead.
"""

from __future__ import annotations

import glob
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass

from faulttune.sandbox import bootstrap, cgroup, forkserver, reaper, seccomp
from faulttune.sandbox.bwrap import (
    ENV,
    OWNER_VARIABLE,
    arguments_file,
    bwrap_command,
    bwrap_path,
    drop_uid_before_bwrap,
    launcher,
    memory_file,
    python_flags,
    random_uid,
)
from faulttune.sandbox.packages import SITE, resolve
from faulttune.sandbox.results import Limits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Isolation:
    """What jails are like on this machine."""

    kind: str  # "bwrap" or "fallback"
    cgroup: bool  # one memory/process limit per program (else the Limits bound applies)
    reason: str = ""  # why the fallback
    seccomp: bool = False  # the system-call filter (:mod:`.seccomp`) is installed in each jail
    forked: bool = False  # programs start as forks of a zygote (:mod:`.forkserver`)

    def label(self) -> str:
        if self.kind == "fallback":
            return f"fallback (weak: {self.reason})"
        base = "bwrap+cgroup" if self.cgroup else "bwrap"
        base += "+seccomp" if self.seccomp else " (no system-call filter here)"
        base += "+fork" if self.forked else ""
        return base if self.cgroup or counts_processes() else (
            base + " (no process limit: root without cgroups)")


@dataclass(eq=False)  # one object per jail: compared and hashed by identity
class Spawned:
    """A started jail: its process, the two ends of its channel, and what to clean up."""

    proc: subprocess.Popen[bytes] | forkserver.ForkedProcess  # bwrap's, or a forked program's
    to_jail: int  # write end of the request pipe
    from_jail: int  # read end of the reply pipe
    preamble: bytes  # the bootstrap bundle, to be written first
    cgroup: cgroup.Cgroup | None = None
    workdir: str | None = None  # the fallback's temporary folder


def counts_processes() -> bool:
    """Whether ``RLIMIT_NPROC`` inside a jail limits that jail's processes alone."""
    return isolation().kind == "bwrap" and (os.geteuid() != 0 or drop_uid_before_bwrap())


def _program_group(limits: Limits) -> cgroup.Cgroup | None:
    """A program's own cgroup (None: none here); 2 for bwrap or the monitor, and the init."""
    return cgroup.make(limits.memory_mb, 2 + limits.max_processes)


def _spawn_bwrap(role: str, limits: Limits) -> Spawned:
    group = _program_group(limits)
    root = os.geteuid() == 0
    drop = root and drop_uid_before_bwrap()
    uid = random_uid() if root else None
    request, reply = os.pipe(), os.pipe()
    syscalls = _filter_file()
    command = bwrap_command(role, limits, (request[0], reply[1]), None if drop else uid, syscalls)
    split = command.index("--")
    arguments = arguments_file(command[1:split])  # the jail's /proc/1/cmdline: no host path
    prefix, options = launcher(group, uid if drop else None)
    child_fds = (request[0], reply[1], arguments, *([syscalls] if syscalls is not None else []))
    try:
        proc = subprocess.Popen([*prefix, command[0], "--args", str(arguments), *command[split:]],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=child_fds,
                                start_new_session=True, **options)
    except BaseException:
        for fd in (*request, *reply, *child_fds[2:]):
            os.close(fd)
        if group is not None:
            group.remove(wait_s=0)
        raise
    for fd in child_fds:
        os.close(fd)
    return Spawned(proc, request[1], reply[0], bootstrap.bundle(role), group)


def _spawn_forked(role: str, limits: Limits) -> Spawned:
    proc, to_jail, from_jail, group = forkserver.spawn(role, limits,
                                                       lambda: _program_group(limits))
    return Spawned(proc, to_jail, from_jail, b"", group)


def _filter_file() -> int | None:
    """An fd holding the system-call filter, for ``bwrap --seccomp`` (None: no filter here)."""
    program = seccomp.program() if isolation().seccomp else None
    return None if program is None else memory_file("bwrap-seccomp", program)


_stale_swept = False


def _sweep_stale_folders() -> None:
    """Remove fallback folders of scorers that were killed before they could clean up."""
    global _stale_swept
    if _stale_swept:
        return
    _stale_swept = True
    for folder in glob.glob(os.path.join(tempfile.gettempdir(), "faulttune-sandbox-*-*")):
        owner = os.path.basename(folder).split("-")[2]
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            shutil.rmtree(folder, ignore_errors=True)


def _spawn_fallback(role: str, limits: Limits) -> Spawned:
    _sweep_stale_folders()
    workdir = tempfile.mkdtemp(prefix=f"faulttune-sandbox-{os.getpid()}-")
    request, reply = os.pipe(), os.pipe()
    command = [sys.executable, *python_flags(), "-c", bootstrap.BOOT, str(request[0]),
               str(reply[1]), role, "fallback", str(os.getpid())]
    env = {**ENV, "HOME": workdir, "TMPDIR": workdir, OWNER_VARIABLE: str(os.getpid())}
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=(request[0], reply[1]),
                                start_new_session=True, cwd=workdir, env=env)
    except BaseException:
        for fd in (*request, *reply):
            os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    os.close(request[0])
    os.close(reply[1])
    return Spawned(proc, request[1], reply[0], bootstrap.bundle(role), workdir=workdir)


def _spawn_checker() -> Spawned:
    """The checker (``checker``): the scorer's own code, run as a plain process of its own (it
    runs nothing of the program's), which its first frame limits."""
    request, reply = os.pipe(), os.pipe()
    command = [sys.executable, *python_flags(), "-c", bootstrap.BOOT, str(request[0]),
               str(reply[1]), "checker", "plain", str(os.getpid())]
    env = {**ENV, OWNER_VARIABLE: str(os.getpid())}
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=(request[0], reply[1]),
                                start_new_session=True, cwd="/", env=env)
    except BaseException:
        for fd in (*request, *reply):
            os.close(fd)
        raise
    os.close(request[0])
    os.close(reply[1])
    return Spawned(proc, request[1], reply[0], bootstrap.bundle("checker"))


def spawn(role: str, limits: Limits) -> Spawned:
    """Start a jail for ``role`` ("server" or "judge"), or the checker; it waits for its
    bootstrap bundle."""
    if role == "checker":
        return _spawn_checker()
    iso = isolation()
    if iso.forked:
        return _spawn_forked(role, limits)
    if iso.kind == "bwrap":
        return _spawn_bwrap(role, limits)
    return _spawn_fallback(role, limits)


def import_path(packages: tuple[str, ...]) -> list[str]:
    """Where the allowed packages are, as the jailed interpreter sees them."""
    if isolation().kind == "bwrap":
        return [SITE]
    return sorted({os.path.dirname(m.source) for m in resolve(packages)})


_isolation: Isolation | None = None
_isolation_lock = threading.Lock()


def _probe() -> Isolation:
    wanted = os.environ.get("FAULTTUNE_SANDBOX", "")
    if wanted == "fallback":
        return Isolation("fallback", False, "FAULTTUNE_SANDBOX=fallback")
    reason = _bwrap_problem(with_filter=False)
    if reason and wanted == "bwrap":
        raise RuntimeError(f"FAULTTUNE_SANDBOX=bwrap but the jail does not work: {reason}")
    if reason:
        return Isolation("fallback", False, reason)
    filtered = seccomp.program() is not None and not _bwrap_problem(with_filter=True)
    if not filtered:
        log.warning("the jails run without a system-call filter (seccomp) here: %s",
                    "unsupported architecture" if seccomp.program() is None
                    else _bwrap_problem(with_filter=True))
    forked = filtered and os.environ.get("FAULTTUNE_SANDBOX_FORK", "1") != "0"
    if forked and (problem := _fork_problem()):
        log.warning("each program gets a fresh jail: forking them does not work here (%s)", problem)
        forked = False
    return Isolation("bwrap", cgroup.available(), seccomp=filtered, forked=forked)


def _fork_problem() -> str:
    """'' when a program's server starts as a fork of a zygote here, else why not."""
    try:
        spawned = _spawn_forked("server", Limits())
    except Exception as e:  # noqa: BLE001 - the reason is what is wanted
        return f"{type(e).__name__}: {e}"
    try:
        ready, _, _ = select.select([spawned.from_jail], [], [], 30)
        if not ready:
            return "the forked server did not answer"
        if os.read(spawned.from_jail, 64):
            return ""
        stderr = os.read(spawned.proc.stderr.fileno(), 4000).decode(errors="replace")
        return "the forked server did not start: " + stderr.strip()[-300:]
    finally:
        reaper.kill(spawned)
        reaper.release(spawned)


def _bwrap_problem(with_filter: bool) -> str:
    """'' when a jail starts here (with the system-call filter), else why not."""
    if bwrap_path() is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    root = os.geteuid() == 0
    drop = root and drop_uid_before_bwrap()
    uid = random_uid() if root else None
    program = seccomp.program() if with_filter else None
    syscalls = memory_file("bwrap-seccomp", program) if program is not None else None
    command = bwrap_command("server", Limits(), (0, 1), None if drop else uid, syscalls)
    command[command.index("-c") + 1:] = ["import sys"]
    user = {"user": uid, "group": uid, "extra_groups": []} if drop else {}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, env={},
                              check=False, pass_fds=() if syscalls is None else (syscalls,),
                              **user)
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap does not start ({e})"
    finally:
        if syscalls is not None:
            os.close(syscalls)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"bwrap cannot make a jail here (user namespaces disabled?): {last}"
    return ""


def isolation() -> Isolation:
    """What jails are like here (probed once); the fallback is announced once, loudly."""
    global _isolation
    with _isolation_lock:
        if _isolation is None:
            _isolation = _probe()
            if _isolation.kind == "fallback":
                log.warning("SANDBOX FALLBACK: model-written code runs WITHOUT a jail (%s). It can "
                            "read and write your files and reach the network. Install bubblewrap "
                            "and enable user namespaces, or run inside a container.",
                            _isolation.reason)
        return _isolation


def set_isolation_for_tests(value: Isolation | None) -> None:
    """Force what :func:`isolation` answers (``None``: probe again)."""
    global _isolation
    with _isolation_lock:
        _isolation = value


def memory_bound_mb(limits: Limits) -> int | None:
    """The most memory one program can hold here, or None where nothing bounds it together."""
    iso = isolation()
    if iso.cgroup or counts_processes():
        return limits.memory_bound_mb(iso.cgroup)
    return None
