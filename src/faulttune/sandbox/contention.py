"""How long a jail's program waited for a CPU that another process held: the machine's load, which
a differential run's time limits forgive.

EvalPlus's limits are about the program's work (4 x the canonical solution's time). On a loaded
machine (other jails, other jobs on a node, eight test workers on two cores) the same work takes
longer by the wall clock, and a correct program can time out (Mbpp/255's canonical solution did on
a loaded CI runner). The kernel counts, per task, the time it was ready to run while the CPU ran
something else (``/proc/<pid>/schedstat``, second field, ns). That time is forgiven, but only the
part no other task of the jail can explain: a program that started a thread or a process to
compute while its server sat in the run queue would otherwise be forgiven its own work. So the
forgiven time is the server's wait less every CPU second of every other task the jail has run
(read from the jail's own ``/proc``: the server's other threads, live or ended, its children,
reaped or not, and whatever the jail's init reaped), which never exceeds what others took.

Only bwrap jails have one (their own PID namespace: the server is PID 2 under the jail's init, the
only child of the bwrap process the scorer started). Elsewhere, or where ``/proc`` does not let us
read them, :func:`probe` answers None and the wall clock alone counts, as before.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
SERVER_NS_PID = 2  # bwrap's init (PID 1 in the jail) forks the command once


@dataclass
class Contention:
    """The run-queue wait of one jail's server, and the CPU time of the rest of the jail."""

    jail_proc: str  # the jail's own /proc, seen from here: /proc/<init>/root/proc
    schedstat: int  # an open /proc/<server>/schedstat (read with pread, ~1 us)
    last_waited: float = 0.0

    def waited(self) -> float:
        """Seconds the server has waited in a run queue since it started (once it has ended:
        the last reading)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            self.last_waited = _field(os.pread(self.schedstat, 128, 0), 1) / 1e9
        return self.last_waited

    def others_ran(self) -> float:
        """An upper bound on the CPU seconds every other task of the jail has used so far
        (``/proc/<pid>/stat`` counts in clock ticks, each figure rounded down: one more tick
        per figure)."""
        total = 0.0
        # newest first: a task that ends meanwhile is then in its reaper's figures (the server's
        # or init's, read after it), counted once or twice but never missed
        for ns_pid in sorted((int(e) for e in os.listdir(self.jail_proc) if e.isdigit()),
                             reverse=True):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += self._cpu_besides_the_server(ns_pid)
        return max(0.0, total)

    def _cpu_besides_the_server(self, ns_pid: int) -> float:
        with open(f"{self.jail_proc}/{ns_pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        own, children = (int(fields[11]) + int(fields[12]),  # utime, stime: every thread
                         int(fields[13]) + int(fields[14]))  # cutime, cstime: reaped children
        if ns_pid != SERVER_NS_PID:
            return (own + children + 2) * _TICK_S
        main_thread = _field(os.pread(self.schedstat, 128, 0), 0) / 1e9
        return (own + 2) * _TICK_S - main_thread + (children + 1) * _TICK_S

    def forgiven(self, waited_before: float) -> float:
        """The server's run-queue wait since :meth:`waited` answered ``waited_before``, less
        what the jail's other tasks may have run meanwhile (never below 0; 0 once the jail's
        tasks cannot be read)."""
        try:
            others = self.others_ran()
        except (OSError, ValueError, IndexError):
            return 0.0
        return max(0.0, self.waited() - waited_before - others)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.schedstat)


def _field(line: bytes, index: int) -> int:
    return int(line.split()[index])


def probe(bwrap_pid: int) -> Contention | None:
    """The contention of the jail whose bwrap process is ``bwrap_pid`` (None: not readable)."""
    init = only_child(bwrap_pid)
    if init is None or not _own_pid_namespace(init):
        return None
    jail_proc = f"/proc/{init}/root/proc"
    try:
        fd = os.open(f"{jail_proc}/{SERVER_NS_PID}/schedstat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    contention = Contention(jail_proc, fd)
    try:
        contention.others_ran()  # the jail's own /proc can be read
    except (OSError, ValueError, IndexError):
        contention.close()
        return None
    return contention


def _own_pid_namespace(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def only_child(pid: int) -> int | None:
    """The child process of ``pid``, which has only one (bwrap's init; None: unreadable). Tries
    the next few PIDs first (a child started at once usually has one of them), then every one."""
    for guess in range(pid + 1, pid + 9):
        if _parent(guess) == pid:
            return guess
    children = [p for p in _pids() if _parent(p) == pid]
    return children[0] if len(children) == 1 else None


def children(pid: int) -> list[int]:
    """The child processes of ``pid``'s main thread (every process here that has children is
    single-threaded: bwrap, its init, the zygote); [] when gone or unreadable."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def _pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
