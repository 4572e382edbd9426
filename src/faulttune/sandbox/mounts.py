"""What a jail mounts from the host: the interpreter, its standard library, the system's
shared-library folders (with every ``site-packages``/``dist-packages`` in them hidden) and the
allowed packages, all read-only. Nothing else of the host is in a jail."""

from __future__ import annotations

import functools
import glob
import os
import stat
import sys
import sysconfig

from faulttune.sandbox.packages import SITE, resolve

LIBRARY_FOLDERS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/usr/local/lib",
                   "/usr/local/lib64")
TOP_LEVEL_LIBRARIES = ("/lib", "/lib64", "/lib32", "/libx32")
PACKAGE_FOLDERS = ("site-packages", "dist-packages")


def python_binary() -> str:
    return os.path.realpath(sys.executable)


def _libpython() -> list[str]:
    folder, name = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    path = os.path.join(folder or "", name or "")
    return [path] if folder and name and os.path.isfile(path) else []


def _stdlib() -> str:
    return os.path.dirname(os.__file__)


def _package_folders(roots: list[str]) -> list[str]:
    """``site-packages``/``dist-packages`` folders inside the mounted roots: hidden in the jail."""
    found = set()
    for root in roots:
        for pattern in ("python3*/{}", "python3/{}", "{}"):
            for name in PACKAGE_FOLDERS:
                found.update(p for p in glob.glob(os.path.join(root, pattern.format(name)))
                             if os.path.isdir(p))
    return sorted(found)


@functools.lru_cache(maxsize=1)
def system_mounts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(bwrap arguments that mount the interpreter and its libraries, the host paths they read)."""
    args: list[str] = []
    sources: list[str] = []
    for top in TOP_LEVEL_LIBRARIES:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
            sources.append(top)
    folders = [d for d in LIBRARY_FOLDERS if os.path.isdir(d) and not os.path.islink(d)]
    for folder in folders:
        args += ["--ro-bind", folder, folder]
    stdlib, python = _stdlib(), python_binary()
    args += ["--ro-bind", stdlib, stdlib, "--ro-bind", python, python]
    for lib in _libpython():
        args += ["--ro-bind", os.path.realpath(lib), lib]
    for hidden in _package_folders([*folders, os.path.dirname(stdlib), stdlib]):
        args += ["--tmpfs", hidden, "--remount-ro", hidden]
    sources += [*folders, stdlib, python, *_libpython()]
    return tuple(args), tuple(sources)


def package_mounts(packages: tuple[str, ...]) -> list[str]:
    args = ["--dir", SITE]
    for mount in resolve(packages):
        target = f"{SITE}/{mount.name}"
        args += ["--ro-bind", mount.source, target]
        for masked in mount.masked:
            args += ["--ro-bind", "/dev/null", f"{target}/{masked}"]
    return args


def others_can_read(path: str) -> bool:
    """Whether a uid with no relation to the file's owner can reach and read ``path``."""
    current = os.path.realpath(path)
    try:
        if not os.stat(current).st_mode & stat.S_IROTH:
            return False
        while current != "/":
            current = os.path.dirname(current)
            if not os.stat(current).st_mode & stat.S_IXOTH:
                return False
    except OSError:
        return False
    return True


