"""Seeds and baselines: the statistics behind the report's honest comparisons (pure functions).

- :func:`seed_spreads`: per experiment family (``replica_of or name``: an experiment and its
  ``@seed=`` replicas) the mean and sample standard deviation over seeds (:func:`stats.mean_std`)
  of one number per member: pass@1 per benchmark, the probe's headline statistics.
- :func:`score_deltas`: for every trained experiment with a baseline (``baseline`` in the
  settings' experiments; a replica's is its same-seed baseline) and every benchmark both were
  scored on, pass@1(experiment) - pass@1(baseline) with a paired bootstrap over tasks
  (:func:`stats.paired_bootstrap_by_key` of :func:`stats.per_task_pass_rate`). Significant only
  when the 95 % interval excludes 0.
- :func:`probe_deltas`: the same over the probe's pairs (:func:`sensitivity.paired_difference`,
  matched by ``pair_id``) for the headline ``prefer_correct`` and ``mean_margin``.
- A difference "exceeds the seed spread" when its size is larger than the larger standard
  deviation over seeds of the two families on that benchmark (None: neither has two seeds).
- :func:`budget_check`, :func:`few_step_runs`: each trained run's ``budget.json`` against its
  baseline's, and the runs under :data:`faulttune.training.MIN_STEPS` optimiser steps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faulttune import methods
from faulttune.io import DataError
from faulttune.report.readers import Row, Score, is_number
from faulttune.sensitivity import paired_difference
from faulttune.stats import MeanStd, PairedDifference, mean_std, paired_bootstrap_by_key

Experiments = Mapping[str, Mapping[str, Any]]
PROBE_KEYS = ("prefer_correct", "mean_margin")  # the probe's headline statistics
# budget.json fields that must match the baseline's for an equal-budget comparison
BUDGET_MATCH = {
    "train_tasks": "tasks",
    "units": "units per epoch",
    "train_steps": "optimiser steps",
    "batch_size": "batch",
}


@dataclass(frozen=True)
class Delta:
    """experiment - baseline on one benchmark (or probe statistic), or why it is missing."""

    experiment: str
    baseline: str
    benchmark: str
    difference: PairedDifference | None
    note: str = ""
    seed_spread: float | None = None  # the larger sd over seeds of the two families

    @property
    def exceeds_spread(self) -> bool | None:
        if self.difference is None or self.seed_spread is None:
            return None
        return abs(self.difference.difference) > self.seed_spread


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


def seed_spread_of(
    name: str, baseline: str, key: str, spreads: Mapping[tuple[str, str], MeanStd],
    experiments: Experiments,
) -> float | None:
    """The larger standard deviation over seeds of the two families on ``key``."""
    stds = [
        s.std
        for family in {seed_family(name, experiments), seed_family(baseline, experiments)}
        if (s := spreads.get((family, key))) is not None and s.std is not None
    ]
    return max(stds) if stds else None


def paired_or_note(compute: Callable[..., PairedDifference], *args: Any) -> PairedDifference | str:
    """``compute(*args)``, or why the two sides cannot be compared (not the same items)."""
    try:
        return compute(*args)
    except DataError:
        raise
    except ValueError as e:
        return f"not compared: {e}"


def _delta(
    name: str, baseline: str, key: str, result: PairedDifference | str,
    spreads: Mapping[tuple[str, str], MeanStd], experiments: Experiments,
) -> Delta:
    if isinstance(result, str):
        return Delta(name, baseline, key, None, result)
    spread = seed_spread_of(name, baseline, key, spreads, experiments)
    return Delta(name, baseline, key, result, seed_spread=spread)


def score_deltas(
    experiments: Experiments, scores: Sequence[Score], spreads: Mapping[tuple[str, str], MeanStd]
) -> list[Delta]:
    """Δ pass@1 to the baseline per benchmark of every compared experiment (module docstring)."""
    by_key = {(s.experiment, s.benchmark): s for s in scores}
    out = []
    for name, baseline in compared_pairs(experiments):
        for (exp, bench), score in sorted(by_key.items()):
            if exp != name:
                continue
            base = by_key.get((baseline, bench))
            if base is None:
                out.append(Delta(name, baseline, bench, None, "baseline not scored"))
                continue
            result = paired_or_note(paired_bootstrap_by_key, score.per_task, base.per_task)
            out.append(_delta(name, baseline, bench, result, spreads, experiments))
    return out


def probe_deltas(
    experiments: Experiments,
    sensitivity: Mapping[str, Mapping[str, Any]],
    spreads: Mapping[tuple[str, str], MeanStd],
) -> list[Delta]:
    """Δ of the probe's headline statistics to the baseline, paired over pairs."""
    out = []
    for name, baseline in compared_pairs(experiments):
        a, b = sensitivity.get(name), sensitivity.get(baseline)
        if a is None:
            continue
        for key in PROBE_KEYS:
            if b is None:
                out.append(Delta(name, baseline, key, None, "baseline not probed"))
            elif "per_task" not in a or "per_task" not in b:
                out.append(Delta(name, baseline, key, None, "no per-pair rows"))
            else:
                result = paired_or_note(paired_difference, a, b, key)
                out.append(_delta(name, baseline, key, result, spreads, experiments))
    return out


def budget_check(
    name: str, experiments: Experiments, budgets: Mapping[str, Row | None]
) -> tuple[bool | None, str]:
    """Whether the run's budget equals its baseline's (:data:`BUDGET_MATCH`): (True, ""),
    (False, "optimiser steps 12 vs 24; ..."), or (None, why it cannot be compared)."""
    baseline = (experiments.get(name) or {}).get("baseline")
    if not baseline:
        return None, "no baseline"
    if not is_trained(baseline, experiments):
        return None, f"baseline {baseline} is untrained"
    mine, theirs = budgets.get(name), budgets.get(baseline)
    if mine is None or theirs is None:
        return None, f"no budget.json for {name if mine is None else baseline}"
    diffs = [
        f"{label} {mine[key]} vs {theirs[key]}"
        for key, label in BUDGET_MATCH.items()
        if mine[key] != theirs[key]
    ]
    return not diffs, "; ".join(diffs)


def few_step_runs(budgets: Mapping[str, Row | None]) -> tuple[int, list[tuple[str, int]]]:
    """The trainer's minimum and every run below it: (MIN_STEPS, [(experiment, steps)])."""
    from faulttune.training import MIN_STEPS

    few = [
        (name, b["train_steps"])
        for name, b in sorted(budgets.items())
        if b is not None and b["train_steps"] < MIN_STEPS
    ]
    return MIN_STEPS, few
