"""One memory and process limit for all processes of one program: a cgroup, where one can be made.

Each jail gets its own cgroup, ``faulttune-<scorer pid>-<n>``, under the scorer's own cgroup (so
every limit above the scorer still applies): cgroup v1 ``memory`` + ``pids`` (root on a v1 or
hybrid host) or one cgroup v2 folder with ``memory.max`` and ``pids.max`` (root, or a delegated
subtree whose controllers reach it); where the ``cpu`` controller is there too, one CPU's time
(``cpu`` on v1, ``cpu.max`` on v2). Where neither works (the usual case without root) jails go
without one, and :class:`~faulttune.sandbox.results.Limits` explains the bound that holds instead.
Cgroups left by a scorer that was killed are removed the next time one is made.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()
_lock = threading.Lock()
_parents: list[Path] | None = None
_STALE = re.compile(r"faulttune-(\d+)-\d+")


@dataclass(frozen=True)
class Cgroup:
    """One jail's cgroup folders (two or three on cgroup v1, one on v2); ``cpu``: whether it
    also holds the jail to one CPU's time (``cpu.max`` / ``cpu.cfs_quota_us``)."""

    folders: tuple[Path, ...]
    cpu: bool = False

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of this cgroup for exceeding its memory limit."""
        for name in ("memory.events", "memory.oom_control"):
            for folder in self.folders:
                with contextlib.suppress(OSError):
                    for line in (folder / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
        return False

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup."""
        import signal

        for folder in self.folders:
            with contextlib.suppress(OSError):
                for pid in (folder / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove_later(self) -> None:
        """Remove the folders in the background once the jail's last process is gone."""
        _reaper.put(self)

    def remove(self, wait_s: float = 2.0) -> None:
        """Remove the folders once their processes are gone (they die with the jail)."""
        deadline = time.monotonic() + wait_s
        for folder in self.folders:
            while True:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)


class _Reaper:
    """One thread that removes the cgroups of finished jails off the scorer's critical path;
    what is still queued when the scorer exits is removed then (atexit)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Cgroup] = queue.SimpleQueue()
        self.pending: set[Cgroup] = set()  # queued or being removed
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def put(self, group: Cgroup) -> None:
        with self.lock:
            self.pending.add(group)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="cgroup-reaper",
                                               daemon=True)
                self.thread.start()
                atexit.register(self.flush)
        self.queue.put(group)

    def _run(self) -> None:
        while True:
            group = self.queue.get()
            group.remove()
            with self.lock:
                self.pending.discard(group)

    def flush(self) -> None:
        with self.lock:
            groups = list(self.pending)
        for group in groups:
            group.remove()


_reaper = _Reaper()


def _own_paths() -> dict[str, str]:
    """controller (or "" for cgroup v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _candidate_parents() -> list[list[Path]]:
    own = _own_paths()
    options = []
    if "memory" in own and "pids" in own:
        v1 = [ROOT / "memory" / own["memory"].lstrip("/"), ROOT / "pids" / own["pids"].lstrip("/")]
        if "cpu" in own and (ROOT / "cpu").is_dir():
            options.append([*v1, ROOT / "cpu" / own["cpu"].lstrip("/")])
        options.append(v1)
    if "" in own and (ROOT / "cgroup.controllers").is_file():
        options.append([ROOT / own[""].lstrip("/")])
    return options


CPU_PERIOD_US = 100_000  # one CPU: this much time in every period of this length


def _write_limits(folders: list[Path], memory_bytes: int, processes: int) -> bool:
    """Write the limits; True when one of them is the CPU bound."""
    cpu = False
    for folder in folders:
        with contextlib.suppress(OSError):  # a CPU controller is a bonus, not a requirement
            if (folder / "cpu.max").exists():
                (folder / "cpu.max").write_text(f"{CPU_PERIOD_US} {CPU_PERIOD_US}")
                cpu = True
            elif (folder / "cpu.cfs_quota_us").exists():
                (folder / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (folder / "cpu.cfs_quota_us").write_text(str(CPU_PERIOD_US))
                cpu = True
        if (folder / "memory.limit_in_bytes").exists():
            (folder / "memory.limit_in_bytes").write_text(str(memory_bytes))
        if (folder / "memory.max").exists():
            (folder / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (folder / "memory.swap.max").write_text("0")
        if (folder / "pids.max").exists():
            (folder / "pids.max").write_text(str(processes))
    return cpu


def _complete(folders: list[Path]) -> bool:
    """Whether the folders together limit both memory and processes."""
    names = {p.name for folder in folders for p in folder.iterdir()}
    return bool({"memory.limit_in_bytes", "memory.max"} & names) and "pids.max" in names


def _try_make(parents: list[Path], memory_bytes: int, processes: int) -> Cgroup | None:
    name = f"faulttune-{os.getpid()}-{next(_counter)}"
    made: list[Path] = []
    try:
        for parent in parents:
            (parent / name).mkdir()
            made.append(parent / name)
        if not _complete(made):
            raise OSError("the cgroup has no memory or pids limit")
        cpu = _write_limits(made, memory_bytes, processes)
    except OSError:
        Cgroup(tuple(made)).remove(wait_s=0)
        return None
    return Cgroup(tuple(made), cpu)


def _sweep_stale(parents: list[Path]) -> None:
    """Remove the cgroups of scorers that no longer run (killed before they cleaned up),
    killing whatever still runs in them first."""
    for parent in parents:
        with contextlib.suppress(OSError):
            for child in parent.iterdir():
                match = _STALE.fullmatch(child.name)
                if match and not Path(f"/proc/{match.group(1)}").exists():
                    stale = Cgroup((child,))
                    stale.kill_all()
                    stale.remove(wait_s=1.0)


def _choose_parents() -> list[Path]:
    for parents in _candidate_parents():
        probe = _try_make(parents, 64 * 1024 * 1024, 8)
        if probe is not None:
            probe.remove(wait_s=0)
            _sweep_stale(parents)
            return parents
    return []


def search_roots() -> list[Path]:
    """The folders in which this process would make its jails' cgroups (for tests)."""
    return [parent for parents in _candidate_parents() for parent in parents]


def available() -> bool:
    """Whether jails get a cgroup here (probed once)."""
    global _parents
    with _lock:
        if _parents is None:
            _parents = _choose_parents()
        return bool(_parents)


def make(memory_mb: int, processes: int) -> Cgroup | None:
    """A new cgroup limiting memory and the number of processes, or None where none can be made."""
    if not available():
        return None
    assert _parents is not None
    return _try_make(_parents, memory_mb * 1024 * 1024, processes)


def reset_for_tests(parents: list[Path] | None) -> None:
    """Force the probe's answer (``[]``: no cgroups) or forget it (``None``)."""
    global _parents
    with _lock:
        _parents = parents
