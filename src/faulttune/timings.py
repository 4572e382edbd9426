"""Where a run spends its time: every job's wall time and peak memory, from the files Snakemake's
``benchmark:`` directive writes (``results/<run>/benchmarks/<rule>/<wildcards>.tsv``, one row per
job: ``s`` seconds, ``max_rss`` MB, ...).

The report's per-rule table, ``faulttune timings RESULTS_DIR`` and ``bench/demo_timings.py`` read
them. The report globs the folder (timings are not results: a new timing never reruns anything).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faulttune.io import DataError


@dataclass(frozen=True)
class JobTime:
    rule: str
    job: str          # the benchmark file's path below the rule's folder (its wildcards)
    seconds: float
    max_rss_mb: float | None


@dataclass(frozen=True)
class RuleTime:
    rule: str
    jobs: int
    seconds: float
    slowest_job: str
    slowest_seconds: float
    max_rss_mb: float | None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "-", "NA") else None
    except ValueError:
        return None


def read_job(path: Path, root: Path) -> JobTime:
    """One benchmark file (its first data row: Snakemake writes one per repeat)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or _number(rows[0].get("s")) is None:
        raise DataError(f"{path}: not a Snakemake benchmark file (no 's' column or no row)")
    relative = path.relative_to(root)
    rule = relative.parts[0].removesuffix(".tsv")
    job = str(Path(*relative.parts[1:])).removesuffix(".tsv") if len(relative.parts) > 1 else ""
    return JobTime(rule, job, float(rows[0]["s"]), _number(rows[0].get("max_rss")))


def read_jobs(folder: str | Path) -> list[JobTime]:
    root = Path(folder)
    return [read_job(p, root) for p in sorted(root.rglob("*.tsv"))] if root.is_dir() else []


def per_rule(jobs: Sequence[JobTime]) -> list[RuleTime]:
    """Jobs, total seconds, the slowest job and the peak memory of every rule, slowest rule first."""
    out = []
    for rule in sorted({j.rule for j in jobs}):
        mine = [j for j in jobs if j.rule == rule]
        slowest = max(mine, key=lambda j: j.seconds)
        rss = [j.max_rss_mb for j in mine if j.max_rss_mb is not None]
        out.append(RuleTime(rule, len(mine), sum(j.seconds for j in mine), slowest.job,
                            slowest.seconds, max(rss) if rss else None))
    return sorted(out, key=lambda r: -r.seconds)


def format_table(rules: Sequence[RuleTime]) -> str:
    slowest = [f"{r.slowest_job or '-'} ({r.slowest_seconds / 60:.1f})" for r in rules]
    width = 2 + max(map(len, ["slowest job (min)", *slowest]))  # job names can be long (sweeps)
    lines = [f"{'rule':<24}{'jobs':>6}{'minutes':>10}{'slowest job (min)':>{width}}{'peak MB':>10}"]
    for r, job in zip(rules, slowest):
        rss = f"{r.max_rss_mb:.0f}" if r.max_rss_mb is not None else "-"
        lines.append(f"{r.rule:<24}{r.jobs:>6}{r.seconds / 60:>10.1f}{job:>{width}}{rss:>10}")
    total = sum(r.seconds for r in rules)
    lines.append(f"{'all jobs':<24}{sum(r.jobs for r in rules):>6}{total / 60:>10.1f}")
    return "\n".join(lines)


def timings_command(args: Any) -> int:
    folder = Path(args.run_dir) / "benchmarks"
    rules = per_rule(read_jobs(folder))
    if not rules:
        print(f"no benchmark files under {folder}")
        return 1
    print(format_table(rules[: args.slowest]))
    return 0
