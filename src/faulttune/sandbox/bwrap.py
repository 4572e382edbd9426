"""The command lines of jails: bubblewrap's arguments, the launcher that puts a jail in its cgroup
and on its CPU, and the zygote's jail (:mod:`.forkserver`); what a jail is started with, not how
it is run (:mod:`.jail`)."""

from __future__ import annotations

import functools
import itertools
import os
import secrets
import shutil
import subprocess
import sys
import threading
from typing import Any

from faulttune.sandbox import bootstrap, cgroup
from faulttune.sandbox.mounts import others_can_read, package_mounts, python_binary, system_mounts
from faulttune.sandbox.results import Limits

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
       "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
       "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "MPLBACKEND": "Agg"}
OWNER_VARIABLE = "FAULTTUNE_JAIL_OWNER"  # in the environment of bwrap itself, not of the jail
# what a zygote keeps inside its jail's user namespace: making namespaces and mounts, bringing up
# the loopback, dropping capabilities, and writing a program's user namespace's map
ZYGOTE_CAPABILITIES = ("CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SETPCAP", "CAP_SETFCAP")


def python_flags() -> list[str]:
    # -S: no site (sys.path is the standard library plus the allowed packages); -P: no cwd
    return ["-S", "-s", "-B", *(["-P"] if sys.version_info >= (3, 11) else [])]


@functools.lru_cache(maxsize=1)
def bwrap_path() -> tuple[str, bool] | None:
    """(path of bwrap, whether it supports --disable-userns), or None when it is not installed."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    try:
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10,
                               check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path, "--disable-userns" in usage


@functools.lru_cache(maxsize=1)
def drop_uid_before_bwrap() -> bool:
    """As root: whether bwrap itself can run under a random uid (every mount source readable).

    Otherwise (an interpreter under /root, say) bwrap runs as root and only the jail's inside uid
    is random; the kernel then does not count the jail's processes, and only a cgroup does.
    """
    return all(others_can_read(p) for p in system_mounts()[1])


def random_uid() -> int:
    return 1_000_000 + secrets.randbelow(1_000_000_000)


def bwrap_command(role: str, limits: Limits, channel: tuple[int, int],
                  uid: int | None, seccomp_fd: int | None = None) -> list[str]:
    """The full command line of one jail (``channel``: the fds the jail reads and writes;
    ``seccomp_fd``: the system-call filter bwrap installs, see :mod:`.seccomp`)."""
    path, disable_userns = bwrap_path() or ("bwrap", False)
    tmpfs = str(limits.max_file_mb * 1024 * 1024)
    args = [path, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
            "--clearenv"]
    args += ["--disable-userns"] if disable_userns else []
    args += ["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []
    args += ["--uid", str(uid), "--gid", str(uid)] if uid is not None else []
    for key, value in ENV.items():
        args += ["--setenv", key, value]
    args += list(system_mounts()[0]) + package_mounts(limits.packages)
    args += ["--proc", "/proc", "--dev", "/dev", "--size", tmpfs, "--tmpfs", "/dev/shm",
             "--size", tmpfs, "--tmpfs", "/tmp", "--remount-ro", "/dev", "--remount-ro", "/",
             "--chdir", "/tmp"]
    return [*args, "--", python_binary(), *python_flags(), "-c", bootstrap.BOOT,
            str(channel[0]), str(channel[1]), role, "jail", str(os.getpid())]


# Joins the jail's cgroups before bwrap starts (a process that is not forking moves in ~1 ms; bwrap
# in the middle of its clones takes ~10), then becomes bwrap, or setpriv dropping to a uid first.
_LAUNCH = 'for f in $FAULTTUNE_CGROUP_PROCS; do echo $$ > "$f" || exit 97; done; exec "$@"'


def launcher(group: cgroup.Cgroup | None, drop_to: int | None) -> tuple[list[str], dict[str, Any]]:
    """(command prefix, extra Popen arguments) that put bwrap in ``group`` under ``drop_to``,
    held to one CPU by the cgroup or else by its affinity."""
    env = {OWNER_VARIABLE: str(os.getpid())}
    one_cpu = [] if group is not None and group.cpu else _one_cpu()
    if group is None:
        user = {"user": drop_to, "group": drop_to, "extra_groups": []} if drop_to else {}
        return one_cpu, {"env": env, **user}
    env["FAULTTUNE_CGROUP_PROCS"] = " ".join(str(f / "cgroup.procs") for f in group.folders)
    prefix = ["/bin/sh", "-c", _LAUNCH, "sh", *one_cpu]
    if drop_to is not None:
        prefix += [shutil.which("setpriv") or "setpriv", f"--reuid={drop_to}",
                   f"--regid={drop_to}", "--clear-groups", "--"]
    return prefix, {"env": env}


_cpus = itertools.cycle(sorted(os.sched_getaffinity(0)))
_cpus_lock = threading.Lock()
_SET_AFFINITY = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); os.execv(sys.argv[2], sys.argv[2:])"


def next_cpu() -> int:
    """The next of our CPUs, in turn: where no cgroup bounds a jail's CPU time, the jail is held
    to one CPU by its affinity (the filter keeps the program from widening it)."""
    with _cpus_lock:
        return next(_cpus)


def _one_cpu() -> list[str]:
    """A command prefix that runs the rest on one CPU (:func:`next_cpu`)."""
    cpu = next_cpu()
    taskset = shutil.which("taskset")
    if taskset:
        return [taskset, "--cpu-list", str(cpu)]
    return [sys.executable, "-S", "-c", _SET_AFFINITY, str(cpu)]


def arguments_file(arguments: list[str]) -> int:
    """An fd holding ``arguments`` NUL-separated, for ``bwrap --args``."""
    return memory_file("bwrap-args", b"".join(a.encode() + b"\0" for a in arguments))


def memory_file(name: str, data: bytes) -> int:
    """An fd of an anonymous file holding ``data``, read from its start."""
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def zygote_command(limits: Limits, control: int, syscalls: int,
                   tmpfs: str) -> tuple[list[str], tuple[int, ...], dict[str, Any]]:
    """(command, fds to pass, extra Popen arguments) of a zygote's jail (:mod:`.forkserver`):
    a jail as :func:`bwrap_command` makes it, keeping the capabilities that make namespaces and
    mounts, with the programs' system-call filter for the zygote to install in each program.
    As root, bwrap runs under a random uid where it can, else each program switches to one in
    a user namespace of its own (bwrap's ``--uid`` would make a second user namespace for the
    whole jail, under which no program could mount its own ``/proc``)."""
    drop = os.geteuid() == 0 and drop_uid_before_bwrap()
    command = [a for a in bwrap_command("zygote", limits, (control, control), None)
               if a != "--disable-userns"]
    split = command.index("--")
    for capability in ZYGOTE_CAPABILITIES:
        command[split:split] = ["--cap-add", capability]
        split += 2
    arguments = arguments_file(command[1:split])
    env = {OWNER_VARIABLE: str(os.getpid())}
    uid = random_uid()
    user = {"user": uid, "group": uid, "extra_groups": []} if drop else {}
    per_program_uid = "uid" if os.geteuid() == 0 and not drop else "-"
    owner = command[-1]  # last, as in every jail's command line
    return ([command[0], "--args", str(arguments), *command[split:-1], str(syscalls), tmpfs,
             per_program_uid, owner], (control, arguments, syscalls), {"env": env, **user})
