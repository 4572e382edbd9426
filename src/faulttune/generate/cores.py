"""How many torch threads a CPU decode loop uses when other processes may want the same cores.

A decode step is a few hundred small parallel regions. When another process is runnable on a
core that one of our OpenMP threads needs, the other threads of every region spin until that
thread is scheduled again. The demo's generate job (``bench/generate_throughput.py``) took 367 s
and 44 s with 2 fixed threads while one more CPU-bound process ran on the 2 cores, and 19 s with
1 thread; on idle cores 2 threads took 12.7 s and 1 thread 19.6 s. A job's thread count (Snakemake's ``threads``) cannot know which case it will meet, so
:class:`CoreShare` looks every few decode steps at how many threads of *other* processes are
runnable (``/proc/loadavg`` minus our own running threads) and uses the job's threads only while
that leaves a core for each. It drops to fewer threads at once and climbs back only after two
checks in a row agree, because a wrong extra thread costs far more than a missing one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch


def other_runnable_threads() -> int | None:
    """Threads of other processes that are running or waiting for a core now (None off Linux)."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        own = sum(_thread_state(task) == "R" for task in Path("/proc/self/task").iterdir())
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def _thread_state(task: Path) -> str:
    """The one-letter scheduler state of a thread (it follows the command name in ``stat``)."""
    try:
        stat = (task / "stat").read_text()
    except OSError:  # the thread ended meanwhile
        return ""
    return stat[stat.rindex(")") + 2 :][:1]


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class CoreShare:
    """Sets ``torch.set_num_threads`` between 1 and ``allowed`` from the load of other processes.

    ``tick()`` once per decode step (a check every ``every`` steps); ``check()`` before work that
    should see the current load (a prefill); ``restore()`` gives the process its ``allowed`` threads
    back. ``runnable`` and ``cores`` are injectable for tests.
    """

    allowed: int
    every: int = 16
    runnable: Callable[[], int | None] = other_runnable_threads
    cores: Callable[[], int] = usable_cores
    _steps: int = 0
    _quiet_checks: int = 0

    def tick(self) -> None:
        self._steps += 1
        if self._steps % self.every == 0:
            self.check()

    def check(self) -> None:
        others = self.runnable()
        if others is None:
            return
        wanted = max(1, min(self.allowed, self.cores() - others))
        current = torch.get_num_threads()
        if wanted < current:
            self._quiet_checks = 0
            torch.set_num_threads(wanted)
        elif wanted > current:
            self._quiet_checks += 1
            if self._quiet_checks >= 2:
                self._quiet_checks = 0
                torch.set_num_threads(wanted)
        else:
            self._quiet_checks = 0

    def restore(self) -> None:
        torch.set_num_threads(self.allowed)
