"""Programs started as forks of a booted interpreter (:mod:`.zygote`), each in namespaces of its own.

A fresh bwrap jail costs ~13 ms of bubblewrap and interpreter start and ~3 ms of bootstrap per
program; a fork of a zygote that has booted once costs a few. What a program gets is what a fresh
jail gives it (see :mod:`.jail`): its own mount, PID, network, IPC, UTS, cgroup and user
namespaces (as root, a random uid in the last), a private ``/tmp`` and ``/dev/shm``, its own
``/proc``, its own cgroup (joined before the namespaces are made), no capability, no new
privileges, the system-call filter, the jail's read-only file system and environment. What it
shares with the programs before it: the zygote's jail (its read-only files) and the modules the
zygote imported; nothing any program did.

The zygote's jail is the usual bwrap jail but keeps :data:`.bwrap.ZYGOTE_CAPABILITIES` inside its
user namespace, and has no ``--disable-userns`` (bwrap makes that with a second user namespace,
whose locked mounts forbid a program's own ``/proc``; the filter refuses the programs every call
that makes a namespace). One zygote per spawn-time kind (packages, private folder size) serves
every worker; it is started from a thread that lives as long as the scorer (bwrap's
``--die-with-parent`` is bound to the starting thread). Forking is used only where the
system-call filter is installed; elsewhere every program gets a fresh jail.
``FAULTTUNE_SANDBOX_FORK=0`` turns it off.
"""

from __future__ import annotations

import array
import concurrent.futures as cf
import contextlib
import logging
import os
import queue
import select
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

from faulttune.sandbox import bootstrap, bwrap, cgroup, contention, seccomp
from faulttune.sandbox.results import Limits
from faulttune.sandbox.zygote import receive_exact

log = logging.getLogger("faulttune.sandbox")
ROLE_BYTES = {"server": b"S", "judge": b"J"}


class ForkedProcess:
    """What the runner needs of a ``Popen``, for a program a zygote started: the pid of its
    monitor (a process of the zygote's jail, not our child: its process group holds the
    program's init), its output pipes, and its exit status, which the monitor sends before it
    ends (none: the monitor was killed, read as SIGKILL)."""

    def __init__(self, pid: int, status: socket.socket, stdout: int, stderr: int):
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = _pidfd(pid)  # the monitor, not a later process that reuses its pid
        self.stdout = open(stdout, "rb", buffering=0)  # noqa: SIM115 - closed by reaper.release
        self.stderr = open(stderr, "rb", buffering=0)  # noqa: SIM115
        self._status = status

    def kill(self) -> None:
        """SIGKILL the monitor (its process group, which holds the program's init, may not
        exist yet: the monitor makes it first thing, but the scorer does not wait for that)."""
        if self._pidfd is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def poll(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            poller = select.poll()
            poller.register(self._status, select.POLLIN)
            if not poller.poll(None if timeout is None else timeout * 1000):
                raise subprocess.TimeoutExpired("forked program", timeout or 0)
            data = b""
            with contextlib.suppress(OSError):
                while len(data) < 4 and (chunk := self._status.recv(4 - len(data))):
                    data += chunk
            self.returncode = int.from_bytes(data, "big") if len(data) == 4 else 128 + signal.SIGKILL
            self.close()
        return self.returncode

    def close(self) -> None:
        """Close the status socket and the pidfd, once the program is ended (killed, if it had
        not said how it ended)."""
        if self.returncode is None:
            self.returncode = 128 + signal.SIGKILL
        self._status.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # Linux before 5.3
        return None


@dataclass
class _Zygote:
    proc: subprocess.Popen[bytes]
    control: socket.socket
    init: int  # bwrap's init in the zygote's jail
    host_pid: int  # the zygote's own pid (the init's child)
    lock: threading.Lock


_zygotes: dict[tuple[Any, ...], _Zygote] = {}
_zygotes_lock = threading.Lock()


def _key(limits: Limits) -> tuple[Any, ...]:
    return limits.packages, limits.max_file_mb


def spawn(role: str, limits: Limits, make_group: Any) -> tuple[ForkedProcess, int, int,
                                                                cgroup.Cgroup | None]:
    """Start ``role`` for one program: (its process, our end of its request pipe, our end of its
    reply pipe, its cgroup). ``make_group``: makes the program's cgroup (or None)."""
    zygote = _zygote(limits)
    request, reply, out, err = os.pipe(), os.pipe(), os.pipe(), os.pipe()
    ours, theirs = socket.socketpair()
    given = [request[0], reply[1], out[1], err[1], theirs.fileno()]
    group = None
    try:
        with zygote.lock:
            zygote.control.sendmsg([ROLE_BYTES[role]], [
                (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", given))])
            ns_pid = int.from_bytes(receive_exact(zygote.control, 4, "the zygote"), "big")
        monitor = _host_pid(zygote.host_pid, ns_pid)
        group = make_group()
        proc = ForkedProcess(monitor, ours, out[0], err[0])
    except BaseException:
        for fd in (request[1], reply[0], out[0], err[0]):
            os.close(fd)
        ours.close()
        if group is not None:
            group.remove(wait_s=0)
        raise
    finally:
        for fd in given[:4]:
            os.close(fd)
        theirs.close()
    _joiner().submit(_join_then_go, proc, ours, group)
    return proc, request[1], reply[0], group


_joiners: cf.ThreadPoolExecutor | None = None
_joiners_lock = threading.Lock()


def _joiner() -> cf.ThreadPoolExecutor:
    """Moving a process into a cgroup (v1) waits for the kernel (an RCU grace period, 5-15 ms
    per folder, no CPU used): done beside the worker, which meanwhile goes on with its run
    (the bwrap jails' launcher moves itself for the same reason)."""
    global _joiners
    with _joiners_lock:
        if _joiners is None:
            _joiners = cf.ThreadPoolExecutor(4, thread_name_prefix="faulttune-join")
        return _joiners


def _join_then_go(proc: ForkedProcess, status: socket.socket, group: cgroup.Cgroup | None) -> None:
    """Put the monitor in the program's cgroup and on its CPUs, then let it go on (it makes
    the program's namespaces only then); on failure it is killed, and the program's run says
    the jail did not start."""
    try:
        _join(proc.pid, group)
        status.sendall(b"g")
    except Exception:
        log.debug("a forked jail could not join its cgroup", exc_info=True)
        proc.kill()


def _join(pid: int, group: cgroup.Cgroup | None) -> None:
    if group is not None:
        for folder in group.folders:
            (folder / "cgroup.procs").write_text(str(pid))
    # the zygote's forks start on its one CPU: the cgroup's quota holds the program to one CPU's
    # time on any of ours, else its own CPU does
    cpus = os.sched_getaffinity(0) if group is not None and group.cpu else {bwrap.next_cpu()}
    os.sched_setaffinity(pid, cpus)


def _host_pid(zygote_pid: int, ns_pid: int) -> int:
    """The pid, seen from here, of the zygote's child that is ``ns_pid`` in the zygote's jail."""
    for child in contention.children(zygote_pid):
        with contextlib.suppress(OSError), open(f"/proc/{child}/status") as f:
            for line in f:
                if line.startswith("NSpid:") and line.split()[-1] == str(ns_pid):
                    return child
    raise OSError(f"the zygote's child {ns_pid} is not among its children")


def _zygote(limits: Limits) -> _Zygote:
    key = _key(limits)
    with _zygotes_lock:
        zygote = _zygotes.get(key)
        if zygote is not None and zygote.proc.poll() is None:
            return zygote
        future: cf.Future[_Zygote] = cf.Future()
        _keeper().put((limits, future))
        zygote = _zygotes[key] = future.result()
        return zygote


_keeper_queue: queue.Queue[tuple[Limits, cf.Future[_Zygote]]] | None = None


def _keeper() -> queue.Queue[tuple[Limits, cf.Future[_Zygote]]]:
    """The queue of the thread that starts zygotes (it lives as long as the scorer)."""
    global _keeper_queue
    if _keeper_queue is None:
        _keeper_queue = queue.Queue()
        threading.Thread(target=_keep, args=(_keeper_queue,), name="faulttune-zygotes",
                         daemon=True).start()
    return _keeper_queue


def _keep(requests: queue.Queue[tuple[Limits, cf.Future[_Zygote]]]) -> None:
    while True:
        limits, future = requests.get()
        try:
            future.set_result(_start(limits))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            future.set_exception(e)


def _start(limits: Limits) -> _Zygote:
    ours, theirs = socket.socketpair()
    program = seccomp.program()
    if program is None:
        raise RuntimeError("forking programs needs the system-call filter")
    filter_fd = bwrap.memory_file("bwrap-seccomp", program)
    tmpfs = str(limits.max_file_mb * 1024 * 1024)
    command, pass_fds, options = bwrap.zygote_command(limits, theirs.fileno(), filter_fd, tmpfs)
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, pass_fds=pass_fds,
                                start_new_session=True, **options)
    finally:
        for fd in pass_fds[1:]:  # the argument and filter files
            os.close(fd)
        theirs.close()
    try:
        ours.sendall(bootstrap.bundle("zygote"))
        if receive_exact(ours, 1, "the zygote") != b"H":
            raise OSError("the zygote's first byte was not its hello")
        init = contention.only_child(proc.pid)
        children = contention.children(init) if init is not None else []
        if init is None or len(children) != 1:
            raise OSError("the zygote's jail does not hold one zygote")
        # its forks start on one CPU, before the scorer gives each its own (or its cgroup's)
        os.sched_setaffinity(children[0], {bwrap.next_cpu()})
    except OSError as e:
        ours.close()
        proc.kill()
        _, err = proc.communicate()
        raise RuntimeError(f"the zygote did not start: {e}: {err.decode(errors='replace')[-500:]}"
                           ) from None
    if proc.stderr is not None:
        proc.stderr.close()  # read only when the start fails: nothing writes there after it
    return _Zygote(proc, ours, init, children[0], threading.Lock())


def zygote_pids() -> set[int]:
    """The processes of the live zygotes' jails (bwrap, its init, the zygote): the scorer's own,
    which outlive every program."""
    with _zygotes_lock:
        return {pid for z in _zygotes.values() if z.proc.poll() is None
                for pid in (z.proc.pid, z.init, z.host_pid)}


def stop_all() -> None:
    """End every zygote (the programs they started are ended by their own sessions)."""
    with _zygotes_lock:
        zygotes = list(_zygotes.values())
        _zygotes.clear()
    for zygote in zygotes:
        zygote.control.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(zygote.proc.pid, signal.SIGKILL)
        zygote.proc.wait()
        if zygote.proc.stderr is not None:
            zygote.proc.stderr.close()
