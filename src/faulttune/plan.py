"""What every trained experiment will train on, known before any GPU is used (``faulttune plan``,
and the Snakefile's table at the start of every run and dry run).

Per experiment: where its units come from, how many units (examples: a task of the training
table, or a pair) and optimiser steps that gives at its global batch and epochs. Counts come from
the best that exists: the run's file itself when an earlier job wrote it (exact), else a bound
from the task tables or the configured sources (one pair per task at most; decontamination only
removes rows), else unknown. For CodeFlow's pairs, not known before CodeFlow ran, the plan also
gives the count expected at IterPref's reported yields (docs/methods.md §3.1: 36.7 % of the tasks
pass at once and 67.5 % after the loop, so 30.8 % give a raw pair; the filters and the judge keep
59k of 104k). An experiment whose steps (exact, else expected, else the bound) fall under
:data:`faulttune.training.MIN_STEPS` is flagged: Snakemake warns, ``faulttune plan`` exits 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faulttune import methods
from faulttune.settings import SOURCES_IN_DATA_DIR, Plan

log = logging.getLogger(__name__)

PAIR_YIELD = (0.675 - 0.367) * 59 / 104  # IterPref: pairs per debugged task (~0.175)
_CCT_FAMILIES = 3  # variable, operator and function misuse


@dataclass(frozen=True)
class Count:
    """A number of rows: ``exact`` when counted in the run's own file, else an upper bound
    (``None``: unknown); ``how`` says where it comes from."""

    value: int | None
    exact: bool
    how: str

    def times(self, factor: int, how: str) -> Count:
        value = None if self.value is None else self.value * factor
        return Count(value, False, f"{how} ({self.how})")


@dataclass(frozen=True)
class PlannedRun:
    experiment: str
    method: str
    source: str
    units: Count
    expected_units: int | None
    global_batch: int
    epochs: float
    max_steps: int | None

    def steps(self, units: int | None) -> int | None:
        from faulttune.training.data import total_steps

        if self.max_steps is not None:
            return self.max_steps
        return None if units is None else total_steps(units, self.global_batch, self.epochs, None)

    @property
    def planned_steps(self) -> int | None:
        """Exact when the units are, else the expected count's, else the bound's."""
        if self.units.exact or self.expected_units is None:
            return self.steps(self.units.value)
        return self.steps(self.expected_units)

    @property
    def few_steps(self) -> bool:
        from faulttune.training import MIN_STEPS

        steps = self.planned_steps
        return steps is not None and steps < MIN_STEPS


def plan_training(plan: Plan, run_dir: str | Path) -> list[PlannedRun]:
    """The planned runs of every trained experiment (a seed replica trains what its first does:
    only first seeds are listed)."""
    run_dir = Path(run_dir)
    out = []
    for name in plan.trained:
        exp = plan.experiments[name]
        if exp.replica_of:
            continue
        train = plan.train(name)
        source = methods.get(exp.method).unit_source(exp.params) or "train"
        pairs = methods.pairs_source(exp.params) if source != "train" else "train"
        units = _units(plan, run_dir, pairs)
        expected = None
        if pairs.startswith("codeflow") and not units.exact and units.value is not None:
            expected = round(units.value * PAIR_YIELD)
        out.append(PlannedRun(name, exp.method, pairs, units, expected, train.global_batch,
                              train.epochs, train.max_steps))
    return out


def _units(plan: Plan, run_dir: Path, source: str) -> Count:
    config = plan.config
    if source == "train":
        return _table(run_dir / "data" / "train.parquet", _source_size(plan, "train"))
    pairs_file = (run_dir / "codeflow" / f"pairs{source.removeprefix('codeflow')}.parquet"
                  if source.startswith("codeflow") else run_dir / "bugs" / f"pairs_{source}.parquet")
    if pairs_file.is_file():
        return _table(pairs_file, Count(None, False, f"{pairs_file} cannot be read"))
    if source.startswith("codeflow"):
        return _codeflow_tasks(plan, run_dir).times(1, "at most one pair per CodeFlow task")
    tasks = _table(run_dir / "data" / "train.parquet", _source_size(plan, "train"))
    if source == "teacher":
        return tasks.times(1, "at most one teacher twin per task")
    per_task = config["bugs"]["max_per_task"]
    if source == "cct" and config["bugs"].get("cct_per_family"):
        per_task = config["bugs"]["cct_per_family"] * _CCT_FAMILIES
    return tasks.times(per_task, f"at most {per_task} twin(s) per task")


def _codeflow_tasks(plan: Plan, run_dir: Path) -> Count:
    section = "codeflow_train" if plan.config["data"]["codeflow_train"] else "train"
    table = _table(run_dir / "data" / f"{section}.parquet", _source_size(plan, section))
    if plan.config["codeflow"]["tasks"] != "synthesize":
        return table
    return _table(run_dir / "codeflow" / "tasks.parquet",
                  table.times(1, "at most one synthesized task per instruction"))


def _table(path: Path, fallback: Count) -> Count:
    """The rows of the run's own file, else ``fallback`` (no file, or one that cannot be read:
    a placeholder, a file being written; the plan is a preview and never fails the run)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        return fallback
    try:
        return Count(pq.ParquetFile(path).metadata.num_rows, True, f"rows of {path}")
    except (OSError, pa.ArrowException):
        return fallback


def _source_size(plan: Plan, section: str) -> Count:
    """At most how many rows a training source gives (before decontamination drops some)."""
    from faulttune.data.sources import DEMO_SPLIT, mbpp_split_ids

    spec: Mapping[str, Any] = plan.config["data"][section]
    source, limit = spec["source"], spec.get("limit")
    name = f"data.{section}"
    if source == DEMO_SPLIT:
        return Count(limit or 64, False, f"{name}: {DEMO_SPLIT} limit")
    if source in SOURCES_IN_DATA_DIR:
        split = "train" if source == "mbpp-train" else spec.get("split", "train")
        n = len(mbpp_split_ids(split))
        return Count(min(n, limit) if limit else n, False, f"{name}: MBPP {split}, {n} tasks")
    path = Path(source)
    if path.suffix in (".jsonl", ".parquet") and path.is_file():
        n = _rows_in(path)
        return Count(min(n, limit) if limit else n, False, f"{name}: {n} rows of {source}")
    if limit:
        return Count(limit, False, f"{name}: limit {limit} of {source}")
    return Count(None, False, f"{name}: {source} (size unknown until prepare_train reads it; "
                 "set its limit to plan)")


def _rows_in(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


# ---------------------------------------------------------------------------------------------
# the table


def format_plan(runs: list[PlannedRun]) -> str:
    """One line per experiment (units, steps, schedule), then what the count rests on."""
    from faulttune.training import MIN_STEPS

    width = max([len("experiment"), *(len(r.experiment) for r in runs)])
    header = (f"{'experiment':<{width}} {'method':<12} {'units from':<15} {'examples':>10} "
              f"{'steps':>8}  schedule")
    lines = [header]
    indent = " " * (width + 1)
    for run in runs:
        bound = "" if run.units.exact else "<= "
        units = "?" if run.units.value is None else f"{bound}{run.units.value}"
        steps = run.steps(run.units.value)
        text = "?" if steps is None else f"{'' if run.units.exact or run.max_steps else '<= '}{steps}"
        schedule = (f"max_steps {run.max_steps}" if run.max_steps is not None
                    else f"global batch {run.global_batch}, {run.epochs:g} epochs")
        flag = f"  << FEWER THAN {MIN_STEPS} STEPS" if run.few_steps else ""
        lines.append(f"{run.experiment:<{width}} {run.method:<12} {run.source:<15} {units:>10} "
                     f"{text:>8}  {schedule}{flag}")
        if run.expected_units is not None:
            lines.append(f"{indent}~{run.expected_units} pairs, ~{run.planned_steps} steps at "
                         "IterPref's reported yields")
        lines.append(f"{indent}{run.units.how}")
    return "\n".join(lines)


def few_step_warning(runs: list[PlannedRun]) -> str | None:
    from faulttune.training import MIN_STEPS

    few = [f"{r.experiment} ({r.planned_steps} steps)" for r in runs if r.few_steps]
    if not few:
        return None
    return (f"faulttune: {len(few)} experiment(s) would train fewer than {MIN_STEPS} optimiser "
            f"steps and hardly train: {', '.join(few)}. Add data (more tasks or pairs), epochs, "
            "or lower the global batch before spending GPU time")


def plan_command(args: Any) -> int:
    """``faulttune plan [--configfile X]``: the table; rc 1 when an experiment is under the
    step threshold."""
    from faulttune.config import load_config

    config = load_config(args.configfile)
    plan = Plan(config)
    runs = plan_training(plan, Path(args.results) / config["run"])
    print(format_plan(runs))
    warning = few_step_warning(runs)
    if warning:
        print("\n" + warning)
        return 1
    return 0
