"""Ending a jail: SIGKILL it and everything it started, wait for it, remove what it left."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from typing import TYPE_CHECKING, Any

from faulttune.sandbox import contention

if TYPE_CHECKING:
    from faulttune.sandbox.jail import Spawned


def kill(spawned: Spawned) -> None:
    """SIGKILL the jail and everything in it, reap it (bwrap, our child), and remove what it
    left (the cgroup once its processes are gone).

    The jail's init (bwrap's child, PID 1 of the jail's namespace) is killed directly: the kernel
    then kills every process of the namespace. Killing bwrap alone relies on the init's
    parent-death signal, which a jail killed while still setting up has not armed yet.
    """
    monitor = spawned.proc.pid
    if spawned.workdir is None:
        doomed = contention.children(monitor)
    else:
        doomed = [child.pid for child in _descendants(monitor)]
    spawned.proc.kill()  # a forked program's monitor may not lead its process group yet
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(monitor, signal.SIGKILL)
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if isinstance(spawned.proc, subprocess.Popen):
        spawned.proc.wait()  # our child, reaped here; a forked program's monitor is the zygote's
    if spawned.cgroup is not None:
        spawned.cgroup.remove_later()
    if spawned.workdir is not None:
        shutil.rmtree(spawned.workdir, ignore_errors=True)


def release(spawned: Spawned) -> None:
    """Close the scorer's ends of a jail's pipes (once: after this the fds may be reused)."""
    for fd in (spawned.to_jail, spawned.from_jail):
        with contextlib.suppress(OSError):
            os.close(fd)
    for stream in (spawned.proc.stdout, spawned.proc.stderr):
        if stream is not None:
            stream.close()
    if not isinstance(spawned.proc, subprocess.Popen):
        spawned.proc.close()


def _descendants(pid: int) -> list[Any]:
    """The fallback has no PID namespace: what the program started, found by ancestry."""
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - the process may be gone already
        return []
