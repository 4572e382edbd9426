"""Seeds and baselines: the statistics behind the report's honest comparisons (pure functions).

- :func:`seed_spreads`: per experiment family (``replica_of or name``: an experiment and its
  ``@seed=`` replicas) the mean and sample standard deviation over seeds (:func:`stats.mean_std`)
  of one number per member: pass@1 per benchmark, the probe's headline statistics (levels, shown
  in the seeds table and beside the papers' numbers).
- :func:`pooled_comparisons`: every trained experiment family against its baseline's family, one
  pooled estimate per measure over the family's seeds and the measure's tasks
  (:func:`stats.pooled_difference`: seed ``s`` of the experiment against seed ``s`` of its
  baseline, tasks as clusters), then a Holm correction over the whole family of comparisons in
  the report (:func:`stats.holm`): a comparison is **significant** when its Holm-adjusted p-value
  is below 1 - confidence. The measures (:class:`Measure`): pass@1 per benchmark (0/1 per task
  under greedy decoding: an exact test), and per probe part (twins, HumanEvalFix) the headline
  margin over the differing tokens, the share of pairs preferring the correct program (0/1 per
  pair: exact test) and the held-out NLL of the correct program (lower is better).
- A difference "exceeds the seed spread" when it is larger than the standard deviation over seeds
  of the per-seed differences (None with one seed).
- :func:`budget_differences`, :func:`few_step_runs`: what each trained run's ``budget.json``
  differs in from its baseline's, and the runs under :data:`faulttune.training.MIN_STEPS` steps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from faulttune import methods
from faulttune.report.readers import Row, Score, is_number
from faulttune.sensitivity import HUMANEVALFIX_FAMILY, task_values
from faulttune.stats import (
    CONFIDENCE,
    Comparison,
    MeanStd,
    holm,
    mean_std,
    minimum_detectable_effect,
    pooled_difference,
)

Experiments = Mapping[str, Mapping[str, Any]]
TaskValues = dict[str, float]
PROBE_KEYS = ("prefer_correct", "mean_margin", "nll")  # the probe's statistics in the seeds table
ALPHA = 1 - CONFIDENCE
# budget.json fields that must match the baseline's for an equal-budget comparison
BUDGET_MATCH = {
    "train_tasks": "tasks",
    "units": "units per epoch",
    "train_steps": "optimiser steps",
    "batch_size": "batch",
}
BUDGET_LABELS = {
    "train_tasks": "tasks",
    "train_examples": "examples",
    "train_steps": "optimiser steps",
    "train_tokens": "loss tokens",
    "units": "units per epoch",
    "steps_per_epoch": "steps per epoch",
    "batch_size": "batch",
}


@dataclass(frozen=True)
class Measure:
    """What a comparison compares: pass@1 on a benchmark or a probe statistic on a probe part."""

    source: str  # "score" | "probe"
    name: str  # the benchmark, or the probe part ("twins", "humanevalfix")
    key: str  # "pass_at_1", or a probe key (faulttune.sensitivity.PER_PAIR)
    lower_is_better: bool = False

    @property
    def label(self) -> str:
        if self.source == "score":
            return f"pass@1 {self.name}"
        return f"probe {self.name}: {self.key}"


PROBE_MEASURES = (
    ("mean_margin", False),  # headline: mean margin over the differing tokens
    ("prefer_correct", False),  # the share of pairs whose margin is > 0
    ("nll", True),  # held-out NLL of the correct program
)
PROBE_PARTS = ("twins", HUMANEVALFIX_FAMILY)


@dataclass(frozen=True)
class Pooled:
    """An experiment family against its baseline's family on one measure, or why not."""

    experiment: str
    baseline: str
    measure: Measure
    comparison: Comparison | None
    note: str = ""
    p_holm: float | None = None

    @property
    def significant(self) -> bool | None:
        return None if self.p_holm is None else self.p_holm < ALPHA

    @property
    def exceeds_spread(self) -> bool | None:
        c = self.comparison
        if c is None or c.seed_spread is None:
            return None
        return abs(c.estimate) > c.seed_spread

    @property
    def minimum_detectable(self) -> float | None:
        return None if self.comparison is None else minimum_detectable_effect(self.comparison)


def seed_family(name: str, experiments: Experiments) -> str:
    return (experiments.get(name) or {}).get("replica_of") or name


def is_trained(name: str, experiments: Experiments) -> bool:
    exp = experiments.get(name)
    return exp is not None and methods.get(exp["method"]).trained


def compared_pairs(experiments: Experiments) -> list[tuple[str, str]]:
    """(experiment, baseline) for every trained experiment that has a baseline."""
    return [
        (name, exp["baseline"])
        for name, exp in experiments.items()
        if exp.get("baseline") and is_trained(name, experiments)
    ]


def seed_spreads(
    experiments: Experiments, values: Mapping[tuple[str, str], float], min_seeds: int = 2
) -> dict[tuple[str, str], MeanStd]:
    """(family, key) -> mean ± sd over the family's members with a value for ``key``; only
    families with at least ``min_seeds`` such members."""
    grouped: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (name, key), value in sorted(values.items()):
        grouped[(seed_family(name, experiments), key)].append(value)
    return {k: mean_std(v) for k, v in sorted(grouped.items()) if len(v) >= min_seeds}


def pass_at_1_values(scores: Sequence[Score]) -> dict[tuple[str, str], float]:
    """(experiment, benchmark) -> pass@1."""
    return {(s.experiment, s.benchmark): s.pass_at_1 for s in scores}


def probe_values(sensitivity: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """(experiment, headline key) -> its value over all the probe's pairs (``overall``)."""
    return {
        (name, key): data["overall"][key]
        for name, data in sensitivity.items()
        for key in PROBE_KEYS
        if is_number(data["overall"].get(key))
    }


# ---------------------------------------------------------------------------------------------
# per-task values of every measure, then the pooled comparisons


def probe_part_rows(rows: Sequence[Row], part: str) -> list[Row]:
    fix = part == HUMANEVALFIX_FAMILY
    return [r for r in rows if (r["family"] == HUMANEVALFIX_FAMILY) == fix]


def measure_values(
    scores: Sequence[Score], sensitivity: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[Measure, TaskValues]]:
    """experiment -> measure -> {task_id: value} (a probe task's value: the mean of its pairs)."""
    out: dict[str, dict[Measure, TaskValues]] = defaultdict(dict)
    for s in scores:
        out[s.experiment][Measure("score", s.benchmark, "pass_at_1")] = dict(s.per_task)
    for name, data in sensitivity.items():
        rows = data.get("per_task") or []
        for part in PROBE_PARTS:
            part_rows = probe_part_rows(rows, part)
            if not part_rows:
                continue
            for key, lower in PROBE_MEASURES:
                measure = Measure("probe", part, key, lower)
                out[name][measure] = task_values(part_rows, key, source=f"{name} probe")
    return dict(out)


def _bound_note(a: Mapping[Any, TaskValues], b: Mapping[Any, TaskValues]) -> str:
    values = {v for side in (a, b) for per in side.values() for v in per.values()}
    if values == {0.0}:
        return "at floor: 0 on every task, both sides"
    if values == {1.0}:
        return "at ceiling: 1 on every task, both sides"
    return ""


def _family_comparison(
    family: str, members: Sequence[str], measure: Measure, experiments: Experiments,
    values: Mapping[str, Mapping[Measure, TaskValues]],
) -> Pooled:
    baseline = seed_family(experiments[members[0]]["baseline"], experiments)
    a: dict[int, TaskValues] = {}
    b: dict[int, TaskValues] = {}
    missing = []
    for member in members:
        base = experiments[member]["baseline"]
        mine, theirs = values.get(member, {}).get(measure), values.get(base, {}).get(measure)
        if mine is None:
            continue
        if theirs is None:
            missing.append(base)
            continue
        a[experiments[member]["seed"]], b[experiments[member]["seed"]] = mine, theirs
    if not a:
        return Pooled(family, baseline, measure, None, f"baseline not evaluated ({missing[0]})")
    try:
        comparison = pooled_difference(a, b)
    except ValueError as e:
        return Pooled(family, baseline, measure, None, f"not compared: {e}")
    notes = [_bound_note(a, b)]
    if missing:
        notes.append(f"seeds without a baseline value left out: {', '.join(sorted(missing))}")
    return Pooled(family, baseline, measure, comparison, "; ".join(n for n in notes if n))


def pooled_comparisons(
    experiments: Experiments, scores: Sequence[Score],
    sensitivity: Mapping[str, Mapping[str, Any]],
) -> list[Pooled]:
    """Every trained family against its baseline's on every measure both were evaluated on,
    pooled over seeds, with Holm-adjusted p-values over the whole list (module docstring)."""
    values = measure_values(scores, sensitivity)
    families: dict[str, list[str]] = defaultdict(list)
    for name, _ in compared_pairs(experiments):
        families[seed_family(name, experiments)].append(name)
    out = []
    for family, members in families.items():
        measures = sorted({m for name in members for m in values.get(name, {})},
                          key=lambda m: (m.source != "score", m.name, m.key))
        out += [_family_comparison(family, members, m, experiments, values) for m in measures]
    tested = [i for i, p in enumerate(out) if p.comparison is not None]
    adjusted = holm([out[i].comparison.p_value for i in tested])  # type: ignore[union-attr]
    for i, p_holm in zip(tested, adjusted):
        out[i] = replace(out[i], p_holm=p_holm)
    return out


# ---------------------------------------------------------------------------------------------
# budgets


def budget_differences(
    name: str, experiments: Experiments, budgets: Mapping[str, Row | None]
) -> tuple[bool | None, str]:
    """Whether the run draws the same units for the same steps as its baseline
    (:data:`BUDGET_MATCH`), and every budget figure it differs in, with the ratio:
    ``(True, "examples 3.00x (384 vs 128); loss tokens 2.31x (...)")``, ``(True, "none")``,
    or ``(None, why it cannot be compared)``."""
    baseline = (experiments.get(name) or {}).get("baseline")
    if not baseline:
        return None, "no baseline"
    if not is_trained(baseline, experiments):
        return None, f"baseline {baseline} is untrained"
    mine, theirs = budgets.get(name), budgets.get(baseline)
    if mine is None or theirs is None:
        return None, f"no budget.json for {name if mine is None else baseline}"
    same = all(mine[key] == theirs[key] for key in BUDGET_MATCH)
    diffs = []
    for key, label in BUDGET_LABELS.items():
        if mine[key] != theirs[key]:
            ratio = f"{mine[key] / theirs[key]:.2f}x " if theirs[key] else ""
            diffs.append(f"{label} {ratio}({mine[key]} vs {theirs[key]})")
    return same, "; ".join(diffs) or "none"


def few_step_runs(budgets: Mapping[str, Row | None]) -> tuple[int, list[tuple[str, int]]]:
    """The trainer's minimum and every run below it: (MIN_STEPS, [(experiment, steps)])."""
    from faulttune.training import MIN_STEPS

    few = [
        (name, b["train_steps"])
        for name, b in sorted(budgets.items())
        if b is not None and b["train_steps"] < MIN_STEPS
    ]
    return MIN_STEPS, few
