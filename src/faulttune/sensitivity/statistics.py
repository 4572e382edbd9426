"""Per-pair statistics of the probe and their summaries (pure functions of log-probs).

Per pair, from the per-token log-probs of the two responses (correct, buggy) and their token ids::

    region: differing_region(correct ids, buggy ids)  (the tokens where the two differ; regions.py)
    margin_diff     = mean log p(correct region) - mean log p(buggy region)        HEADLINE
    margin_diff_sum = sum  log p(correct region) - sum  log p(buggy region)
    nll_correct     = - mean log p over every response token of the correct program
    margin_region   = mean over tokens >= the first difference, correct - buggy   (previous headline)
    margin_sum      = sum over the whole response, correct - buggy               (favours the shorter)
    margin_mean     = mean over the whole response, correct - buggy

Why a per-token mean over the differing tokens only: a summed log-likelihood is a sum of negative
terms, so it favours whichever program has fewer tokens (a deletion bug makes the buggy program
shorter); the tokens before the first difference are identical on both sides, and the tokens after
the last one (the shared code after the bug, the closing fence, the end-of-turn token) dilute the
one place where the twins differ. A pair "prefers the correct program" when ``margin_diff > 0``
(ties count as not preferred).

Tasks are the clusters: a task's pairs share its prompt and its correct program, so every summary
first averages the pairs of a task, then averages the tasks, and its interval resamples tasks
(:func:`faulttune.stats.bootstrap_interval` over the per-task values, seeded). ``nll`` is the mean
over tasks of the correct program's per-token NLL: held-out correct code, a check that a method
that wins the probe has not forgotten how to write code (lower is better).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from faulttune.io import DataError
from faulttune.sensitivity.pairs import HUMANEVALFIX_FAMILY
from faulttune.sensitivity.regions import differing_region, region_start
from faulttune.stats import CONFIDENCE, N_RESAMPLES, bootstrap_interval

HEADLINE = "margin_diff"
Row = dict[str, Any]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / max(len(values), 1)


def pair_row(pair: dict[str, Any], correct: Sequence[float], buggy: Sequence[float],
             correct_ids: Sequence[int], buggy_ids: Sequence[int]) -> Row:
    """One ``per_task`` row from the per-token log-probs and the token ids of the two responses
    (response tokens only, aligned: ``correct[i]`` is the log-prob of ``correct_ids[i]``)."""
    if len(correct) != len(correct_ids) or len(buggy) != len(buggy_ids):
        raise ValueError(f"pair {pair.get('pair_id')!r}: log-probs and token ids differ in length")
    diff = differing_region(correct_ids, buggy_ids)
    diff_c, diff_b = correct[diff.start:diff.end_correct], buggy[diff.start:diff.end_buggy]
    region = region_start(correct_ids, buggy_ids)
    return {"task_id": pair["task_id"], "pair_id": pair.get("pair_id", pair["task_id"]),
            "family": pair["family"], "bug_type": pair.get("bug_type", ""),
            "logp_correct": sum(correct), "logp_buggy": sum(buggy),
            "n_tokens_correct": len(correct), "n_tokens_buggy": len(buggy),
            "diff_start": diff.start, "n_diff_correct": diff.n_correct,
            "n_diff_buggy": diff.n_buggy,
            "logp_diff_correct": sum(diff_c), "logp_diff_buggy": sum(diff_b),
            "margin_diff": _mean(diff_c) - _mean(diff_b),
            "margin_diff_sum": sum(diff_c) - sum(diff_b),
            "nll_correct": -_mean(correct),
            "margin_sum": sum(correct) - sum(buggy),
            "margin_mean": _mean(correct) - _mean(buggy),
            "region_start": region,
            "margin_region": _mean(correct[region:]) - _mean(buggy[region:])}


# SUMMARY key -> the per-pair value behind it
PER_PAIR: dict[str, Callable[[Row], float]] = {
    "prefer_correct": lambda r: float(r[HEADLINE] > 0),
    "mean_margin": lambda r: r[HEADLINE],
    "nll": lambda r: r["nll_correct"],
    "mean_margin_diff_sum": lambda r: r["margin_diff_sum"],
    "prefer_correct_sum": lambda r: float(r["margin_sum"] > 0),
    "mean_margin_sum": lambda r: r["margin_sum"],
    "prefer_correct_region": lambda r: float(r["margin_region"] > 0),
    "mean_margin_region": lambda r: r["margin_region"],
    "prefer_correct_mean": lambda r: float(r["margin_mean"] > 0),
    "mean_margin_mean": lambda r: r["margin_mean"],
    "buggy_shorter": lambda r: float(r["n_tokens_buggy"] < r["n_tokens_correct"]),
}
WITH_INTERVAL = ("prefer_correct", "mean_margin", "nll")  # the rest: point estimates
BINARY_KEYS = frozenset(k for k in PER_PAIR if k.startswith("prefer_correct"))


@dataclass(frozen=True)
class Bootstrap:
    """How the intervals are drawn (:mod:`faulttune.stats`)."""

    confidence: float = CONFIDENCE
    n_resamples: int = N_RESAMPLES
    seed: int = 0


DEFAULT_BOOTSTRAP = Bootstrap()


def task_values(rows: Sequence[Row], key: str, families: Collection[str] | None = None,
                source: str = "probe") -> dict[str, float]:
    """``{task_id: mean over the task's pairs of PER_PAIR[key]}`` over the rows of ``families``
    (None: every row); ``source`` names the input in errors (a pair_id given twice)."""
    if key not in PER_PAIR:
        raise ValueError(f"key must be one of {sorted(PER_PAIR)}, got {key!r}")
    grouped: dict[str, list[float]] = defaultdict(list)
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if families is not None and row["family"] not in families:
            continue
        if row["pair_id"] in seen:
            raise DataError(f"{source}, per_task row {i}: pair_id {row['pair_id']!r} appears twice")
        seen.add(row["pair_id"])
        grouped[row["task_id"]].append(PER_PAIR[key](row))
    return {task: _mean(values) for task, values in sorted(grouped.items())}


def summarise(rows: Sequence[Row], bootstrap: Bootstrap = Bootstrap()) -> Row | None:
    """SUMMARY of ``per_task`` rows (module docstring): task-weighted means, and for the headline
    and ``nll`` an interval that resamples tasks; None for no rows."""
    if not rows:
        return None
    out: Row = {"n": len(rows), "n_tasks": len({r["task_id"] for r in rows})}
    for key in PER_PAIR:
        values = list(task_values(rows, key).values())
        if key not in WITH_INTERVAL:
            out[key] = _mean(values)
            continue
        interval = bootstrap_interval(values, confidence=bootstrap.confidence,
                                      n_resamples=bootstrap.n_resamples, seed=bootstrap.seed)
        out.update({key: interval.estimate, f"{key}_low": interval.low,
                    f"{key}_high": interval.high})
    return out


def _grouped(rows: Sequence[Row], key: str, bootstrap: Bootstrap) -> dict[str, Row | None]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row[key]:
            groups[row[key]].append(row)
    return {name: summarise(group, bootstrap) for name, group in sorted(groups.items())}


def report(per_task: Sequence[Row], bootstrap: Bootstrap = Bootstrap()) -> Row:
    """The summary part of a probe result from its ``per_task`` rows: every pair (``overall``),
    HumanEvalFix's (``humanevalfix``), every other family (``twins``), and per bug type and
    family."""
    fix = [r for r in per_task if r["family"] == HUMANEVALFIX_FAMILY]
    twins = [r for r in per_task if r["family"] != HUMANEVALFIX_FAMILY]
    return {"headline": HEADLINE, "bootstrap": asdict(bootstrap),
            "overall": summarise(per_task, bootstrap), "humanevalfix": summarise(fix, bootstrap),
            "twins": summarise(twins, bootstrap),
            "by_bug_type": _grouped(fix, "bug_type", bootstrap),
            "by_family": _grouped(per_task, "family", bootstrap)}
