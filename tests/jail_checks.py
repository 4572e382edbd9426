"""Helpers for the sandbox tests: the hostile corpus, and what a run left on the host, looked at
from outside (processes, cgroups, folders, System V IPC objects)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from faulttune.sandbox import forkserver, isolation
from faulttune.sandbox.jail import OWNER_VARIABLE

HOSTILE = Path(__file__).parent / "hostile"
TEST_USER = "faulttune-test"


def hostile(name: str, **fill: object) -> str:
    """A program of the corpus, with its ``NAME = 0/[]  # replaced by the test`` lines filled."""
    source = (HOSTILE / f"{name}.py").read_text()
    for key, value in fill.items():
        for empty in ("[]", "0"):
            source = source.replace(f"{key} = {empty}  # replaced by the test", f"{key} = {value!r}")
    return source


def needs_jail() -> None:
    """Skip where no jail can be made here (CI sets FAULTTUNE_SANDBOX=bwrap, which fails instead)."""
    if isolation().kind != "bwrap":
        pytest.skip(f"no jail on this machine: {isolation().reason}")


def _owner_of(proc: psutil.Process) -> int | None:
    try:
        cmdline = proc.cmdline()
        if any(part.startswith("#faulttune-jail") for part in cmdline) and cmdline[-1].isdigit():
            return int(cmdline[-1])
        value = proc.environ().get(OWNER_VARIABLE)
        return int(value) if value else None
    except (psutil.Error, OSError, ValueError):
        return None


def jail_processes(owner: int) -> list[psutil.Process]:
    """Live processes of jails started by the scorer ``owner`` (bwrap itself or the interpreter
    inside, recognised by their command line or environment, wherever they were reparented)."""
    found, own = [], forkserver.zygote_pids() if owner == os.getpid() else set()
    for proc in psutil.process_iter():
        try:
            if proc.pid in own:  # this scorer's zygotes (they start programs, and live on)
                continue
            if _owner_of(proc) == owner and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:  # gone while we looked
            continue
    return found


def leftovers(owner: int, seconds: float = 5.0) -> dict[str, list[object]]:
    """What the scorer ``owner`` left (processes, cgroups, folders) once ``seconds`` have passed
    or nothing is left: jails die and cgroups go away a moment after a verdict."""
    deadline = time.monotonic() + seconds
    while True:
        found = {"processes": jail_processes(owner), "cgroups": leftover_cgroups(owner),
                 "folders": leftover_folders(owner)}
        if not any(found.values()) or time.monotonic() > deadline:
            return {k: v for k, v in found.items() if v}
        time.sleep(0.05)


def leftover_cgroups(owner: int) -> list[Path]:
    """Cgroups of the scorer ``owner`` (it makes them where this process would, see cgroup)."""
    from faulttune.sandbox import cgroup

    return [p for root in cgroup.search_roots() for p in root.glob(f"faulttune-{owner}-*")]


def leftover_folders(owner: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"faulttune-sandbox-{owner}-*"))


def sysv_objects() -> set[tuple[str, int]]:
    """(kind, key) of every System V shared-memory segment and message queue on the host."""
    found = set()
    for kind in ("shm", "msg"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        found |= {(kind, int(line.split()[0])) for line in lines if line.strip()}
    return found


def make_test_user() -> str:
    """An unprivileged account for running the scorer as a researcher would (root only)."""
    if os.geteuid() != 0:
        pytest.skip("creating a test user needs root; this run is already unprivileged")
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/false", TEST_USER],
                       check=True)
    return TEST_USER


AS_USER = r"""
set -e
user=$1; shift
# The interpreter may live under a folder only root can enter (pyenv under /root): in this private
# mount namespace that folder becomes a world-traversable tmpfs holding only what is needed.
for path in $FT_HIDDEN; do
    stage=$(mktemp -d)
    mount --bind "$path" "$stage"
    parent=$(dirname "$path")
    mount -t tmpfs -o mode=0755,size=1m tmpfs "$parent"
    mkdir -p "$path"
    mount --move "$stage" "$path"
    rmdir "$stage"  # the empty staging folder, left on the host's /tmp otherwise
done
exec setpriv --reuid="$user" --regid="$user" --init-groups -- env -i HOME=/tmp \
    PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"
"""


def hidden_parents(paths: list[str], user: str) -> list[str]:
    """The outermost folders on the way to ``paths`` whose parent ``user`` cannot enter."""
    entry = pwd.getpwnam(user)
    needed = []
    for path in paths:
        current = Path(path).resolve()
        for parent in reversed(current.parents):
            if parent == Path("/"):
                continue
            st = parent.stat()
            if not st.st_mode & 0o001 and st.st_uid != entry.pw_uid:
                needed.append(str(parent / current.relative_to(parent).parts[0]))
                break
    return sorted(set(needed))


def start_as_user(user: str, command: list[str], hidden: list[str]) -> subprocess.Popen[str]:
    """Start ``command`` as ``user`` (its pid is the command's: every step execs), with the
    ``hidden`` folders made reachable (see AS_USER); stdin, stdout and stderr are pipes."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("unshare/setpriv (util-linux) are needed to run as another user")
    env = dict(os.environ, FT_HIDDEN=" ".join(hidden))
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             AS_USER, "sh", user, *command], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def start_driver_as(user: str, driver: str = "jail_driver.py",
                    arguments: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """``tests/<driver> <arguments>`` as ``user``, from this checkout and this interpreter."""
    python, root = str(Path(sys.executable)), Path(__file__).resolve().parents[1]
    closed = [str(d) for d in [*reversed(Path(python).parents), root] if not enterable(d, user)]
    if closed:  # e.g. a checkout in a `mktemp -d` folder (mode 0700)
        pytest.skip(f"{user} cannot enter {closed[0]}: the runs as another user need a checkout "
                    "and a venv that other users can reach")
    return start_as_user(user, [python, str(root / "tests" / driver), *arguments],
                         hidden=hidden_parents([os.path.realpath(python)], user))


def enterable(folder: Path, user: str) -> bool:
    st, uid = folder.stat(), pwd.getpwnam(user).pw_uid
    return bool(st.st_mode & 0o001) or st.st_uid == uid


def unprivileged_label() -> str:
    """What RESULTS.json says of the jails of a plain user (no cgroup), forked as here."""
    return "bwrap+seccomp" + ("+fork" if isolation().forked else "")
