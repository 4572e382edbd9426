"""Jails started ahead: while a pool's worker scores one program, the jail for its next starts.

Starting a jail is mostly waiting, not computing: bubblewrap's namespaces, the interpreter's start
and, where the jail gets a cgroup v1, the kernel's move of the launcher into it (a grace period of
the kernel's RCU, 5-15 ms on the team machine, in which no CPU works). A worker that starts its
next jail when it takes the current one finds it ready (its hello sent) when the next program
comes, and those milliseconds overlap the current program's run.

A spare is a fresh jail like any other: started for no program, bootstrap bundle already written,
given whole to the next session of the *same thread* that asks for the same role and spawn-time
limits, never shared and never reused (the jail's ``--die-with-parent`` is bound to the thread that
started it). One spare per role and thread at most; a spare of another kind is killed, not kept.
Spares are made only inside :func:`ahead` (the pool's workers when more runs than workers are
queued) and every one left is killed by :func:`discard_all` when the pool ends or is interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from faulttune.sandbox import jail, reaper
from faulttune.sandbox.results import Limits

_local = threading.local()  # .ahead: bool, .spares: {role: (key, Spawned)}
_all: set[Any] = set()  # every spare not yet taken, of every thread
_lock = threading.Lock()
_closed = threading.Event()  # set by discard_all(stop=True): no new spare until reopen()
log = logging.getLogger("faulttune.sandbox")


def _key(role: str, limits: Limits) -> tuple[Any, ...]:
    """What a jail is started with (the rest of ``limits`` applies when the program loads)."""
    return role, limits.memory_mb, limits.max_processes, limits.max_file_mb, limits.packages


@contextlib.contextmanager
def ahead() -> Iterator[None]:
    """Within this block, each jail this thread starts leaves a spare of its kind started."""
    previous = getattr(_local, "ahead", False)
    _local.ahead = True
    try:
        yield
    finally:
        _local.ahead = previous


def spawn(role: str, limits: Limits) -> jail.Spawned:
    """A jail for ``role``: this thread's spare of that kind when it has a live one, else a new
    one; inside :func:`ahead`, the next spare starts before this returns."""
    key = _key(role, limits)
    spawned = _take(role, key)
    if spawned is None:
        spawned = jail.spawn(role, limits)
    if getattr(_local, "ahead", False) and role != "checker":
        try:
            _start_spare(role, key, limits)
        except Exception:  # the jail in hand is fine: the next run starts its own
            log.warning("could not start a spare jail", exc_info=True)
    return spawned


def _take(role: str, key: tuple[Any, ...]) -> jail.Spawned | None:
    spares: dict[str, tuple[tuple[Any, ...], jail.Spawned]] = getattr(_local, "spares", {})
    _local.spares = spares
    kept = spares.pop(role, None)
    if kept is None:
        return None
    with _lock:  # whoever removes a spare from _all owns it: discard_all() may have come first
        if kept[1] not in _all:
            return None
        _all.discard(kept[1])
    if kept[0] != key or kept[1].proc.poll() is not None:
        dispose(kept[1])
        return None
    return kept[1]


def _start_spare(role: str, key: tuple[Any, ...], limits: Limits) -> None:
    if _closed.is_set():
        return
    spawned = jail.spawn(role, limits)
    _write_preamble(spawned)
    with _lock:
        _all.add(spawned)
        stopped = _closed.is_set()
    if stopped:  # discard_all() may have run before it was added
        discard_all()
        return
    _local.spares[role] = (key, spawned)


def _write_preamble(spawned: jail.Spawned) -> None:
    """Write what the pipe takes of the bootstrap bundle now, so the jail boots while it waits;
    the session that takes it writes the rest."""
    os.set_blocking(spawned.to_jail, False)
    with contextlib.suppress(BlockingIOError, BrokenPipeError):
        written = os.write(spawned.to_jail, spawned.preamble)
        spawned.preamble = spawned.preamble[written:]


def discard_all(stop: bool = False) -> None:
    """Kill every spare of every thread; ``stop``: and start none until :func:`reopen`."""
    if stop:
        _closed.set()
    with _lock:
        doomed = list(_all)
        _all.clear()
    for spawned in doomed:
        dispose(spawned)


def dispose(spawned: jail.Spawned) -> None:
    """Kill a jail no session took (a spare), and close the scorer's ends of its pipes."""
    reaper.kill(spawned)
    reaper.release(spawned)


def reopen() -> None:
    _closed.clear()


def count() -> int:
    """Spares alive now (for tests)."""
    with _lock:
        return len(_all)
