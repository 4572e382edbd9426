"""Reading the report's inputs; each reader names the file in its errors (:class:`DataError`).

The experiment of a score, sensitivity, train-log or budget file is the name of its parent folder
(``.../eval/{experiment}/{benchmark}.json``, ``.../models/{experiment}/budget.json``).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from faulttune.io import DataError, read_jsonl, rejected_path
from faulttune.stats import per_task_pass_rate
from faulttune.timings import RuleTime, per_rule, read_job

Row = dict[str, Any]
PROBE_PARTS = ("overall", "humanevalfix", "twins")  # top-level SUMMARY keys of a probe (may be null)
# budget.json keys the report shows (faulttune.training.budget writes them all)
BUDGET_KEYS = (
    "train_tasks",
    "train_examples",
    "train_steps",
    "train_tokens",
    "units",
    "steps_per_epoch",
    "batch_size",
)


@dataclass(frozen=True)
class Score:
    """One score file: pass@1 (a fraction), and each task's pass rate for the paired bootstrap."""

    experiment: str
    benchmark: str
    pass_at_1: float
    n_samples: int
    n_tasks: int
    per_task: dict[str, float] = field(compare=False, repr=False)


@dataclass
class PairCount:
    source: str
    n_pairs: int
    n_rejected: int | None  # None: no rejected file beside the pairs
    by_reason: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Timings:
    """Per-rule times (slowest first) and the benchmark files that could not be read."""

    rules: list[RuleTime]
    unreadable: list[str]


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from e


def read_score(path: str | Path) -> Score:
    """One score file; the experiment is its folder, the benchmark its stem."""
    p = Path(path)
    data = read_json(p)
    for key in ("pass_at_1", "n_samples", "results"):
        if key not in data:
            raise DataError(f"{p}: missing '{key}'")
    per_task = per_task_pass_rate(data["results"], source=str(p))
    n_tasks = data.get("n_tasks", len(per_task))
    return Score(
        p.parent.name,
        p.stem,
        float(data["pass_at_1"]),
        int(data["n_samples"]),
        int(n_tasks),
        per_task,
    )


def read_sensitivity(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """experiment -> the probe's JSON (must hold ``overall``; ``per_task`` is needed only for the
    paired comparison with the baseline)."""
    out = {}
    for path in paths:
        data = read_json(path)
        if not isinstance(data.get("overall"), dict):
            raise DataError(f"{path}: missing 'overall' (an object)")
        out[Path(path).parent.name] = data
    return out


def read_budgets(paths: Sequence[str]) -> dict[str, Row | None]:
    """experiment -> its ``budget.json`` (None: the model folder has none)."""
    out: dict[str, Row | None] = {}
    for path in paths:
        p = Path(path)
        if not p.is_file():
            out[p.parent.name] = None
            continue
        data = read_json(p)
        missing = [k for k in BUDGET_KEYS if not isinstance(data.get(k), int)]
        if missing:
            raise DataError(f"{p}: missing or non-integer {missing}")
        out[p.parent.name] = data
    return out


def probe_parts(data: Mapping[str, Any]) -> dict[str, Row]:
    """One probe result's SUMMARY per part: overall, humanevalfix, twins, then each HumanEvalFix
    bug type (parts that are null are left out)."""
    parts = {**{p: data.get(p) for p in PROBE_PARTS}, **(data.get("by_bug_type") or {})}
    return {name: summary for name, summary in parts.items() if isinstance(summary, dict)}


def pairs_source(path: str | Path) -> str:
    """``pairs_teacher.parquet`` -> ``teacher``; ``codeflow/pairs.parquet`` -> ``codeflow``."""
    p = Path(path)
    if p.name == "pairs.parquet":
        return p.parent.name
    return p.name.removesuffix(".parquet").removeprefix("pairs_")


def rejection_reasons(path: Path) -> Counter[str]:
    table = pq.read_table(path)
    if table.num_rows and "reason" not in table.column_names:
        raise DataError(
            f"{path}: rejected rows without a 'reason' column; has {table.column_names}"
        )
    return Counter(table.column("reason").to_pylist()) if table.num_rows else Counter()


def count_pairs(paths: Sequence[str]) -> dict[str, PairCount]:
    """source -> pair and rejection counts (two files of one source are an error)."""
    out: dict[str, PairCount] = {}
    for path in paths:
        source = pairs_source(path)
        if source in out:
            raise DataError(f"{path}: a second pairs file for source {source!r}")
        rejected = rejected_path(path)
        reasons = rejection_reasons(rejected) if rejected.is_file() else None
        out[source] = PairCount(
            source,
            pq.read_metadata(path).num_rows,
            sum(reasons.values()) if reasons is not None else None,
            reasons or Counter(),
        )
    return out


def codeflow_curves(paths: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """label (the run folder) -> cumulative pass rate after each iteration."""
    from faulttune.codeflow import pass_rate_by_iteration

    curves = {}
    for path in paths:
        table = pq.read_table(path)
        missing = {"task_id", "iteration", "passed"} - set(table.column_names)
        if table.num_rows and missing:
            raise DataError(f"{path}: missing column(s) {sorted(missing)}")
        rows = (
            table.select(["task_id", "iteration", "passed"]).to_pylist() if table.num_rows else []
        )
        label = Path(path).parent.parent.name or str(path)
        curves[label] = pass_rate_by_iteration(rows)
    return curves


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_train_logs(paths: Sequence[str]) -> dict[str, list[Row]]:
    """experiment -> its log rows, numeric values only; ``step`` is the line index if absent."""
    logs = {}
    for path in paths:
        rows = []
        for index, row in enumerate(read_jsonl(path)):
            numeric = {k: float(v) for k, v in row.items() if is_number(v)}
            numeric.setdefault("step", float(index))
            rows.append(numeric)
        logs[Path(path).parent.name] = rows
    return logs


def read_timings(folder: str | Path) -> Timings:
    """Per-rule times from Snakemake's benchmark files under ``folder`` (:mod:`faulttune.timings`).
    Informational: a file still being written or left empty by a killed job is listed as
    unreadable instead of failing the report."""
    root = Path(folder)
    jobs, unreadable = [], []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        try:
            jobs.append(read_job(path, root))
        except (DataError, OSError, UnicodeDecodeError):
            unreadable.append(str(path.relative_to(root)))
    return Timings(per_rule(jobs), unreadable)


def load_papers() -> list[Row]:
    """The papers' published pass@1 (percent), as transcribed in ``resources/papers.csv``."""
    text = resources.files("faulttune").joinpath("resources/papers.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    for row in rows:
        row["pass_at_1"] = float(row["pass_at_1"])
    return rows
