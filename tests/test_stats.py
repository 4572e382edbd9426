"""Error bars (faulttune.stats) on hand-worked cases."""

from __future__ import annotations

import math

import pytest

from faulttune.io import DataError
from faulttune.stats import (
    bootstrap_interval,
    mean_std,
    paired_bootstrap,
    paired_bootstrap_by_key,
    per_task_pass_rate,
    resampled_means,
)


def test_mean_std_over_seeds_uses_the_sample_deviation() -> None:
    # mean 0.5; squared deviations 0.01 + 0 + 0.01 = 0.02; / (3 - 1) = 0.01; sqrt = 0.1
    result = mean_std([0.4, 0.5, 0.6])
    assert result.mean == pytest.approx(0.5)
    assert result.std == pytest.approx(0.1)
    assert result.n == 3
    assert mean_std([0.7]).std is None  # one seed: no spread to report
    with pytest.raises(ValueError, match="non-empty"):
        mean_std([])


def test_interval_of_a_constant_is_that_constant() -> None:
    interval = bootstrap_interval([1.0] * 12)
    assert (interval.estimate, interval.low, interval.high, interval.n) == (1.0, 1.0, 1.0, 12)


def test_interval_of_two_values_spans_both_ends() -> None:
    # resampled means of [0, 1] are 0, 0.5, 1 with probability 1/4, 1/2, 1/4: both 2.5 % tails
    # sit inside the 25 % masses at the ends, so the 95 % interval is exactly [0, 1]
    interval = bootstrap_interval([0.0, 1.0])
    assert (interval.estimate, interval.low, interval.high) == (0.5, 0.0, 1.0)
    means = resampled_means([0.0, 1.0], n_resamples=4000, seed=3)
    assert set(means.tolist()) == {0.0, 0.5, 1.0}
    assert abs((means == 0.5).mean() - 0.5) < 0.05


def test_interval_of_a_fraction_narrows_with_more_items() -> None:
    small = bootstrap_interval([1, 0] * 5)  # 10 items, fraction 0.5
    large = bootstrap_interval([1, 0] * 200)  # 400 items, fraction 0.5
    assert small.estimate == large.estimate == 0.5
    assert small.low < large.low < 0.5 < large.high < small.high
    # the normal approximation: 0.5 +- 1.96 * sqrt(0.25 / 400) = 0.5 +- 0.049
    assert large.low == pytest.approx(0.451, abs=0.01)
    assert large.high == pytest.approx(0.549, abs=0.01)


def test_the_same_seed_gives_the_same_interval_and_another_seed_may_not() -> None:
    values = [0.1, 0.9, 0.3, 0.35, 0.8, 0.2, 0.55]
    assert bootstrap_interval(values, seed=1) == bootstrap_interval(values, seed=1)
    assert bootstrap_interval(values, seed=1) != bootstrap_interval(values, seed=2)
    first = paired_bootstrap(values, values[::-1], seed=5)
    assert first == paired_bootstrap(values, values[::-1], seed=5)


def test_identical_experiments_differ_by_zero_and_not_significantly() -> None:
    passes = [1, 0, 1, 1, 0, 0, 1, 0]
    result = paired_bootstrap(passes, passes)
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
    assert not result.significant


def test_a_large_consistent_gap_is_significant_in_either_direction() -> None:
    better = [1.0] * 40 + [0.0] * 10
    worse = [0.0] * 40 + [0.0] * 10
    result = paired_bootstrap(better, worse)
    assert result.difference == pytest.approx(0.8)
    assert 0 < result.low < 0.8 < result.high <= 1.0
    assert result.significant and result.n == 50
    reverse = paired_bootstrap(worse, better)
    assert reverse.difference == pytest.approx(-0.8) and reverse.high < 0 and reverse.significant


def test_pairing_removes_the_spread_that_is_shared_across_tasks() -> None:
    # task difficulty varies a lot, but b is always exactly 0.1 below a on the same task: the
    # paired difference is exactly 0.1 on every resample
    a = [0.95, 0.15, 0.75, 0.35, 0.55, 0.25]
    b = [x - 0.1 for x in a]
    result = paired_bootstrap(a, b)
    assert result.low == pytest.approx(0.1) and result.high == pytest.approx(0.1)
    assert result.significant
    # a mixed sign gap of one task in six is not significant
    mixed = paired_bootstrap([1, 0, 1, 0, 1, 1], [0, 1, 1, 0, 1, 1])
    assert mixed.difference == 0.0 and mixed.low < 0 < mixed.high and not mixed.significant


def test_paired_by_key_aligns_items_and_refuses_different_item_sets() -> None:
    a = {"t/1": 1.0, "t/2": 0.0, "t/3": 1.0}
    b = {"t/3": 1.0, "t/1": 1.0, "t/2": 0.0}  # same values, another order
    assert paired_bootstrap_by_key(a, b).difference == 0.0
    with pytest.raises(ValueError, match=r"1 only in a \['t/3'\], 1 only in b \['t/4'\]"):
        paired_bootstrap_by_key(a, {"t/1": 1.0, "t/2": 0.0, "t/4": 1.0})


def test_bad_inputs_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="3 values in a but 2 in b"):
        paired_bootstrap([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="value 1 is nan"):
        bootstrap_interval([1.0, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([1.0], confidence=95)


def test_per_task_pass_rate_from_score_rows() -> None:
    rows = [{"task_id": "a", "status": "pass"}, {"task_id": "b", "status": "timeout"},
            {"task_id": "a", "status": "fail"}, {"task_id": "b", "status": "pass"},
            {"task_id": "c", "status": "error"}]
    assert per_task_pass_rate(rows) == {"a": 0.5, "b": 0.5, "c": 0.0}
    with pytest.raises(DataError, match="humaneval.json row 1: need string 'task_id'"):
        per_task_pass_rate([rows[0], {"status": "pass"}], source="humaneval.json")
