"""The report's CSV files: ``summary.csv`` (one row per experiment x benchmark family) and
``timings.csv`` (one row per rule).

``summary.csv`` columns (:data:`SUMMARY_COLUMNS`), rows sorted by family then experiment:

- ``experiment``; ``method`` (``unknown`` when the name is not in the settings' experiments);
  ``sweep_of``, ``swept_param``: the base experiment and the changed parameter of a sweep (and of
  its seed replicas); blank otherwise.
- ``benchmark``: the family. ``humaneval`` holds humaneval + humaneval_plus, ``mbpp`` holds mbpp +
  mbpp_plus; every other benchmark is its own family. ``demo_split``: True for
  ``humaneval-split-heldout`` (the demo's held-out HumanEval tasks; not comparable with papers).
- ``pass_at_1_base``, ``pass_at_1_plus``: pass@1 as a fraction (4 decimals) on the base and the
  EvalPlus plus tests (plus blank without one); ``n_tasks_base``, ``n_tasks_plus``: tasks scored;
  ``n_samples``: samples scored (of the base benchmark, else of the plus one).
- ``baseline``: the experiment it is compared against (a replica: its same-seed baseline; blank
  for an untrained experiment or one without a baseline).
- ``delta_vs_baseline``, ``delta_low``, ``delta_high``, ``p_value``, ``p_holm``,
  ``significant``: pass@1 minus the baseline's on the base tests, POOLED over the seeds of the
  experiment's family (every replica row repeats its family's numbers;
  :func:`faulttune.report.comparisons.pooled_comparisons`), its 95 % interval, the raw and the
  Holm-adjusted p-value (over every comparison of the report), and whether the adjusted one is
  below 0.05; ``delta_plus_*``, ``p_plus_*``, ``significant_plus``: the same on the plus tests.
  Blank when the baseline has no score there.
- ``exceeds_seed_spread``: whether ``|delta_vs_baseline|`` is larger than the standard deviation
  over seeds of the per-seed differences; blank with one seed.
- ``sens_prefer_correct``, ``sens_mean_margin``, ``sens_nll`` (each with ``_low``/``_high``, its
  interval over tasks): the probe's headline over all its pairs (the margin over the tokens where
  the twins differ) and the held-out NLL of the correct programs; ``sens_prefer_correct_sum``,
  ``sens_mean_margin_sum``: the summed whole-response statistic (secondary: it favours the
  shorter program).
  Repeated on each row of the experiment; an experiment with a probe and no scores gets one row
  with an empty ``benchmark``.
- ``train_tasks``, ``train_examples``, ``train_steps``, ``train_tokens``: its ``budget.json``
  (distinct source tasks, masks rows drawn, optimiser steps, tokens carrying a loss term).
- ``bugs``: the pairs source it trains on; ``n_pairs``, ``n_rejected``: rows of that source's
  pairs file and its rejected file (blank when not an input).
- ``replica_of``: the experiment a seed replica repeats; then :data:`PARAM_COLUMNS`: the method's
  parameters (registry defaults filled), the train overrides it sets and its training ``seed``;
  blank for a parameter its method does not take.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from faulttune import methods
from faulttune.io import DataError
from faulttune.report.comparisons import Pooled
from faulttune.report.readers import BUDGET_KEYS, PairCount, Row, Score
from faulttune.timings import RuleTime

DEMO_BENCHMARK = "humaneval-split-heldout"
PLUS_SUFFIX = "_plus"
SENSITIVITY_KEYS = (
    "prefer_correct",
    "prefer_correct_low",
    "prefer_correct_high",
    "mean_margin",
    "mean_margin_low",
    "mean_margin_high",
    "nll",
    "nll_low",
    "nll_high",
    "prefer_correct_sum",
    "mean_margin_sum",
)
BUDGET_COLUMNS = BUDGET_KEYS[:4]  # train_tasks, train_examples, train_steps, train_tokens
PARAM_COLUMNS = tuple(sorted({p.name for m in methods.METHODS.values() for p in m.params} - {"bugs"}))
PARAM_COLUMNS += tuple(p.name for p in methods.TRAIN_OVERRIDES) + ("seed",)
DELTA_COLUMNS = {
    "base": ("delta_vs_baseline", "delta_low", "delta_high", "p_value", "p_holm", "significant"),
    "plus": ("delta_plus_vs_baseline", "delta_plus_low", "delta_plus_high", "p_plus",
             "p_plus_holm", "significant_plus"),
}
SUMMARY_COLUMNS = (
    "experiment",
    "method",
    "sweep_of",
    "swept_param",
    "benchmark",
    "demo_split",
    "pass_at_1_base",
    "pass_at_1_plus",
    "n_tasks_base",
    "n_tasks_plus",
    "n_samples",
    "baseline",
    *DELTA_COLUMNS["base"],
    *DELTA_COLUMNS["plus"],
    "exceeds_seed_spread",
    *(f"sens_{k}" for k in SENSITIVITY_KEYS),
    *BUDGET_COLUMNS,
    "bugs",
    "n_pairs",
    "n_rejected",
    "replica_of",
    *PARAM_COLUMNS,
)
TIMINGS_COLUMNS = tuple(RuleTime.__dataclass_fields__)


def benchmark_family(benchmark: str) -> tuple[str, str]:
    """``humaneval_plus`` -> (``humaneval``, ``plus``); anything else -> (itself, ``base``)."""
    if benchmark.endswith(PLUS_SUFFIX):
        return benchmark.removesuffix(PLUS_SUFFIX), "plus"
    return benchmark, "base"


def experiment_columns(name: str, exp: Mapping[str, Any] | None) -> Row:
    """method, sweep, replica, baseline and parameter columns of one experiment."""
    if exp is None:
        return {"experiment": name, "method": "unknown"}
    method = methods.get(exp["method"])
    used = set(method.accepted_keys()) | ({"seed"} if method.trained else set())
    row: Row = {
        "experiment": name,
        "method": method.name,
        "sweep_of": exp.get("sweep_of") or "",
        "swept_param": (exp.get("swept") or [""])[0],
        "replica_of": exp.get("replica_of") or "",
        "baseline": exp.get("baseline") or "",
        "bugs": exp.get("bugs", ""),
    }
    row.update({k: exp[k] for k in PARAM_COLUMNS if k in used and exp.get(k) is not None})
    return row


def family_rows(scores: Sequence[Score]) -> dict[tuple[str, str], Row]:
    """(experiment, family) -> the pass@1 columns of its base and plus score files."""
    rows: dict[tuple[str, str], Row] = {}
    for s in scores:
        family, variant = benchmark_family(s.benchmark)
        row = rows.setdefault(
            (s.experiment, family), {"benchmark": family, "demo_split": family == DEMO_BENCHMARK}
        )
        if f"pass_at_1_{variant}" in row:
            raise DataError(f"two score files for {s.experiment}/{s.benchmark}")
        row[f"pass_at_1_{variant}"] = round(s.pass_at_1, 4)
        row[f"n_tasks_{variant}"] = s.n_tasks
        if variant == "base" or "n_samples" not in row:
            row["n_samples"] = s.n_samples
    return rows


def delta_columns(comparisons: Sequence[Pooled]) -> dict[tuple[str, str], Row]:
    """(experiment family, benchmark family) -> the pooled pass@1 delta columns of its base and
    plus benchmarks."""
    out: dict[tuple[str, str], Row] = {}
    for p in comparisons:
        c = p.comparison
        if c is None or p.measure.source != "score":
            continue
        family, variant = benchmark_family(p.measure.name)
        values = (round(c.estimate, 4), round(c.low, 4), round(c.high, 4), round(c.p_value, 4),
                  None if p.p_holm is None else round(p.p_holm, 4), p.significant)
        row = out.setdefault((p.experiment, family), {})
        row.update(zip(DELTA_COLUMNS[variant], values))
        if variant == "base" and p.exceeds_spread is not None:
            row["exceeds_seed_spread"] = p.exceeds_spread
    return out


def summary_rows(
    experiments: Mapping[str, Mapping[str, Any]],
    scores: Sequence[Score],
    sensitivity: Mapping[str, Mapping[str, Any]],
    pairs: Mapping[str, PairCount],
    budgets: Mapping[str, Row | None],
    comparisons: Sequence[Pooled],
) -> list[Row]:
    """The rows of summary.csv (columns in the module docstring)."""
    keyed = family_rows(scores)
    for name in sensitivity:  # a probed experiment without scores still gets a row
        if not any(e == name for e, _ in keyed):
            keyed[(name, "")] = {"benchmark": "", "demo_split": False}
    by_delta = delta_columns(comparisons)
    rows = []
    for (name, family), bench in keyed.items():
        row = {**experiment_columns(name, experiments.get(name)), **bench}
        row.update(by_delta.get((row.get("replica_of") or name, family), {}))
        overall = sensitivity.get(name, {}).get("overall", {})
        row.update({f"sens_{k}": overall.get(k, "") for k in SENSITIVITY_KEYS})
        row.update({k: v for k, v in (budgets.get(name) or {}).items() if k in BUDGET_COLUMNS})
        count = pairs.get(row.get("bugs", ""))
        if count is not None:
            row["n_pairs"] = count.n_pairs
            row["n_rejected"] = "" if count.n_rejected is None else count.n_rejected
        rows.append(row)
    return sorted(rows, key=lambda r: (r["benchmark"], r["experiment"]))


def write_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_summary(rows: Sequence[Row], path: Path) -> None:
    write_csv(rows, SUMMARY_COLUMNS, path)


def write_timings(rules: Sequence[RuleTime], path: Path) -> None:
    """timings.csv: rule, jobs, seconds (all jobs), slowest_job, slowest_seconds, max_rss_mb."""
    write_csv([asdict(r) for r in rules], TIMINGS_COLUMNS, path)
