"""Error bars (faulttune.stats) on hand-worked cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from faulttune.io import DataError
from faulttune.stats import (
    bootstrap_interval,
    exact_sign_test,
    holm,
    mean_std,
    minimum_detectable_effect,
    paired_bootstrap,
    paired_bootstrap_by_key,
    per_task_pass_rate,
    pooled_difference,
    pooled_difference_arrays,
    resampled_means,
    sign_flip_test,
)
from faulttune.stats_synthetic import binary_outcomes, continuous_differences


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


# --- pooled comparisons over seeds and tasks -------------------------------------------------


def as_maps(matrix: list[list[float]], seeds: list[int]) -> dict[int, dict[str, float]]:
    return {seed: {f"t/{t}": value for t, value in enumerate(row)}
            for seed, row in zip(seeds, matrix, strict=True)}


def test_two_way_variance_and_satterthwaite_df_on_a_hand_worked_matrix() -> None:
    """d = a - b = [[0, 0, 3], [0, 2, 7]] (2 seeds x 3 tasks).

    mean 12 / 6 = 2; seed means D = [1, 3]; task means [0, 1, 5].
    MS_seed = 3 * ((1-2)^2 + (3-2)^2) / 1 = 6
    MS_task = 2 * ((0-2)^2 + (1-2)^2 + (5-2)^2) / 2 = 14
    residuals d - D_s - dbar_t + 2 = [[1, 0, -1], [-1, 0, 1]]: MS_error = 4 / ((2-1)(3-1)) = 2
    var(estimate) = (6 + 14 - 2) / 6 = 3 (both components positive: 6 > 2, 14 > 2)
    Satterthwaite df = 18^2 / (6^2/1 + 14^2/2 + 2^2/2) = 324 / 136 = 2.38235...
    seed spread = sd([1, 3]) = sqrt(2)
    """
    b = [[1, 0, 2], [3, 1, 0]]
    a = [[1, 0, 5], [3, 3, 7]]
    result = pooled_difference(as_maps(a, [7, 8]), as_maps(b, [7, 8]))
    assert result.estimate == pytest.approx(2.0)
    assert result.standard_error == pytest.approx(math.sqrt(3))
    assert result.df == pytest.approx(324 / 136)
    assert result.seed_spread == pytest.approx(math.sqrt(2))
    assert (result.n_seeds, result.n_tasks, result.binary) == (2, 3, False)
    quantile = scipy_stats.t.ppf(0.975, 324 / 136)
    assert result.low == pytest.approx(2 - quantile * math.sqrt(3))
    assert result.high == pytest.approx(2 + quantile * math.sqrt(3))
    assert result.p_value == pytest.approx(2 * scipy_stats.t.sf(2 / math.sqrt(3), 324 / 136))
    assert result.p_value == result.p_value_t and result.p_value_exact is None
    assert "Satterthwaite df 2.4" in result.method
    assert result.as_dict()["estimate"] == result.estimate
    # seeds are matched by key and tasks by id, whatever the order of the maps
    shuffled = {8: dict(reversed(as_maps(a, [7, 8])[8].items())), 7: as_maps(a, [7, 8])[7]}
    assert pooled_difference(shuffled, as_maps(b, [7, 8])) == result


def test_a_seed_component_estimated_negative_counts_as_zero() -> None:
    """d = [[0, 1, 5], [1, 0, 5]]: seed means [2, 2], so MS_seed = 0; task means [0.5, 0.5, 5],
    MS_task = 2 * (1.5^2 + 1.5^2 + 3^2) / 2 = 13.5; residuals [[-0.5, 0.5, 0], [0.5, -0.5, 0]],
    MS_error = 1 / 2 = 0.5. MS_seed < MS_error: the seed variance is estimated as 0 and the
    variance is MS_task / 6 = 2.25 (not the unbiased (0 + 13.5 - 0.5) / 6 = 2.1667), which is
    the t over the task means: sd^2 = (1.5^2 + 1.5^2 + 3^2) / 2 = 6.75, / 3 tasks = 2.25, df 2.
    """
    result = pooled_difference_arrays(np.array([[0, 1, 5], [1, 0, 5]]), np.zeros((2, 3)))
    assert result.standard_error == pytest.approx(1.5)
    assert result.df == 2
    assert "seed component estimated 0" in result.method
    one_sample = scipy_stats.ttest_1samp([0.5, 0.5, 5], 0)
    assert result.p_value == pytest.approx(one_sample.pvalue)
    assert result.seed_spread == 0.0


def test_one_seed_is_the_paired_t_test_over_tasks() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(0.6, 0.2, size=12), rng.normal(0.5, 0.2, size=12)
    result = pooled_difference({0: dict(zip("abcdefghijkl", a))}, {0: dict(zip("abcdefghijkl", b))})
    reference = scipy_stats.ttest_rel(a, b)
    interval = reference.confidence_interval(0.95)
    assert result.estimate == pytest.approx(float(np.mean(a - b)))
    assert result.p_value == pytest.approx(reference.pvalue)
    assert (result.low, result.high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert result.df == 11 and result.seed_spread is None and result.n_seeds == 1
    assert result.method == "paired t over tasks (df 11)"


def test_one_task_is_the_t_over_seeds() -> None:
    a = {s: {"t": v} for s, v in enumerate([0.9, 0.7, 0.8, 0.95])}
    b = {s: {"t": v} for s, v in enumerate([0.5, 0.6, 0.4, 0.55])}
    result = pooled_difference(a, b)
    reference = scipy_stats.ttest_rel([0.9, 0.7, 0.8, 0.95], [0.5, 0.6, 0.4, 0.55])
    assert result.p_value == pytest.approx(reference.pvalue) and result.df == 3


def test_equal_differences_have_no_spread() -> None:
    same = pooled_difference_arrays(np.ones((2, 4)), np.ones((2, 4)))
    assert (same.estimate, same.low, same.high, same.p_value, same.df) == (0, 0, 0, 1.0, None)
    shifted = pooled_difference_arrays(np.full((3, 5), 0.75), np.full((3, 5), 0.25))
    assert (shifted.low, shifted.high, shifted.p_value) == (0.5, 0.5, 0.0)
    assert shifted.method.startswith("no spread")
    assert minimum_detectable_effect(shifted) == 0.0


def test_seeds_and_tasks_must_match_and_values_must_be_numbers() -> None:
    a = as_maps([[1, 0, 1], [1, 1, 0]], [1, 2])
    with pytest.raises(ValueError, match=r"seed sets differ: 1 only in a \[2\], 1 only in b \[3\]"):
        pooled_difference(a, as_maps([[1, 0, 1], [1, 1, 0]], [1, 3]))
    b = as_maps([[1, 0, 1], [1, 1, 0]], [1, 2])
    del b[2]["t/1"]
    b[1]["t/9"] = 0.0
    with pytest.raises(ValueError, match=r"2 \(seed, task\) missing in a \[\(1, 't/9'\), "
                       r"\(2, 't/9'\)\], 2 missing in b \[\(2, 't/1'\), \(2, 't/9'\)\]"):
        pooled_difference(a, b)
    with pytest.raises(DataError, match=r"b\[1\]\['t/0'\] is nan"):
        pooled_difference(a, as_maps([[math.nan, 0, 1], [1, 1, 0]], [1, 2]))
    with pytest.raises(DataError, match=r"a\[2\]\['t/2'\] is '1'"):
        pooled_difference(as_maps([[1, 0, 1], [1, 1, "1"]], [1, 2]), a)
    with pytest.raises(ValueError, match="binary=True but some values are not 0 or 1"):
        pooled_difference(as_maps([[1, 0, 0.5], [1, 1, 0]], [1, 2]), a, binary=True)
    with pytest.raises(ValueError, match="one seed and one task"):
        pooled_difference({0: {"t": 1.0}}, {0: {"t": 0.0}})
    with pytest.raises(ValueError, match="at least one seed"):
        pooled_difference({}, {})


# --- exact tests for 0/1 outcomes -------------------------------------------------------------


def test_exact_sign_test_on_hand_worked_splits() -> None:
    """Two-sided: 2 * P(X <= min) for X ~ Binomial(n, 1/2), capped at 1.
    4-0: 2 * 1/16 = 0.125.   5-0: 2 * 1/32 = 0.0625.
    6-1: 2 * (1 + 7) / 128 = 0.125.   3-3: 2 * (1 + 6 + 15 + 20) / 64 > 1 -> 1.   0-0: 1.
    """
    assert exact_sign_test(4, 0) == 0.125
    assert exact_sign_test(0, 4) == 0.125
    assert exact_sign_test(5, 0) == 0.0625
    assert exact_sign_test(6, 1) == 0.125
    assert exact_sign_test(3, 3) == 1.0
    assert exact_sign_test(0, 0) == 1.0
    with pytest.raises(ValueError, match="n_minus must be a count"):
        exact_sign_test(3, -1)


def test_four_to_nothing_of_sixteen_tasks_is_not_significant_with_one_seed() -> None:
    """The issue's case: the experiment alone solves 4 of 16 tasks, never the other way. The
    t (and the percentile bootstrap) call it significant; the exact sign test gives 0.125."""
    a = {0: {f"t/{i}": int(i < 4) for i in range(16)}}
    b = {0: {f"t/{i}": 0 for i in range(16)}}
    result = pooled_difference(a, b)
    assert result.binary and result.estimate == 0.25
    assert result.p_value_t < 0.05 and paired_bootstrap_by_key(a[0], b[0]).significant
    assert result.p_value == result.p_value_exact == 0.125
    assert "exact sign test" in result.method
    assert pooled_difference(a, b, binary=False).p_value == result.p_value_t  # the t alone
    # every task won by the experiment: exact p = 2 / 2^16, not the t's p = 0 of no spread
    assert pooled_difference({0: {f"t/{i}": 1 for i in range(16)}}, b).p_value == 2 / 2**16


def brute_force_sign_flip(values: np.ndarray) -> float:
    observed = abs(values.sum())
    sums = [abs(np.dot(signs, np.abs(values)))
            for signs in itertools.product([-1, 1], repeat=len(values))]
    return float(np.mean(np.array(sums) >= observed - 1e-9))


def test_exact_sign_flip_over_tasks_equals_brute_force_enumeration_with_three_seeds() -> None:
    rng = np.random.default_rng(5)
    for _ in range(5):
        a = (rng.uniform(size=(3, 11)) < 0.6).astype(float)
        b = (rng.uniform(size=(3, 11)) < 0.4).astype(float)
        result = pooled_difference_arrays(a, b)
        assert result.binary and result.n_seeds == 3
        expected = brute_force_sign_flip((a - b).sum(axis=0))
        assert result.p_value_exact == pytest.approx(expected, rel=1e-12)
        assert result.p_value == max(result.p_value_t, result.p_value_exact)


def test_sign_flip_of_fractions_enumerates_or_draws_and_agrees_with_the_exact_one() -> None:
    rng = np.random.default_rng(9)
    few = rng.normal(0.3, 1.0, size=12)  # not integers, 12 values: enumerated exactly
    assert sign_flip_test(few) == pytest.approx(brute_force_sign_flip(few), rel=1e-12)
    counts = rng.integers(-3, 4, size=40)  # the same test on halves: Monte Carlo (40 values)
    exact = sign_flip_test(counts)
    drawn = sign_flip_test(counts / 2, seed=1)
    assert 0.01 < exact < 0.99 and drawn == pytest.approx(exact, abs=0.01)
    assert drawn == sign_flip_test(counts / 2, seed=1)  # seeded
    assert sign_flip_test([0, 0]) == 1.0
    assert sign_flip_test([1] * 4) == exact_sign_test(4, 0)


# --- Holm and the minimum detectable effect --------------------------------------------------


def test_holm_adjusts_a_hand_worked_family() -> None:
    """p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03),
    0.03 (x2 = 0.06), 0.04 (x1 = 0.04, raised to the running maximum 0.06).
    In input order: [0.03, 0.06, 0.06, 0.02]. At 0.05 the raw column rejects all four, the
    adjusted one only the first and the last."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1; ties get one value whatever their order; a single test is unchanged
    assert holm([0.5, 0.2, 0.5]) == pytest.approx([1.0, 0.6, 1.0])
    assert holm([0.02, 0.02]) == pytest.approx([0.04, 0.04])
    assert holm([0.03]) == [0.03] and holm([]) == []
    with pytest.raises(ValueError, match="p-value 1 is 1.5"):
        holm([0.1, 1.5])


def test_the_minimum_detectable_effect_is_detected_with_the_stated_power() -> None:
    """One seed, 200 tasks, per-task differences with sd exactly 0.3: SE = 0.3 / sqrt(200)
    = 0.02121, df 199, MDE = (t_{0.975,199} + t_{0.8,199}) * SE = (1.972 + 0.843) * 0.02121
    = 0.0597. A true difference of the MDE, per-task sd 0.3, is detected at 5 % in about 80 %
    of 400 replications."""
    rng = np.random.default_rng(21)
    draw = rng.standard_normal(200)
    exact_sd = 0.3 * (draw - draw.mean()) / draw.std(ddof=1)
    reference = pooled_difference_arrays(exact_sd[None, :], np.zeros((1, 200)))
    mde = minimum_detectable_effect(reference)
    assert mde == pytest.approx((1.972 + 0.843) * 0.3 / math.sqrt(200), rel=1e-3)
    assert minimum_detectable_effect(reference, power=0.9) > mde
    assert minimum_detectable_effect(reference, alpha=0.01) > mde
    detected = [pooled_difference_arrays(rng.normal(mde, 0.3, size=(1, 200)),
                                         np.zeros((1, 200))).p_value < 0.05 for _ in range(400)]
    assert 0.74 < np.mean(detected) < 0.86
    with pytest.raises(ValueError, match="power"):
        minimum_detectable_effect(reference, power=80)


# --- coverage and false positives on synthetic data with a known effect ----------------------

SIMULATIONS = 400
SEEDS, TASKS = 3, 160
# (sd of the seed effect, sd of the task effect, sd of the noise) of the differences
REGIMES = {"task-dominated": (0.02, 0.3, 0.1), "seed-dominated": (0.1, 0.05, 0.05),
           "mixed": (0.03, 0.2, 0.2)}


def regime_differences(rng: np.random.Generator, delta: float, regime: str) -> np.ndarray:
    return continuous_differences(rng, SIMULATIONS, SEEDS, TASKS, delta, *REGIMES[regime])


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_pooled_intervals_cover_a_known_difference(regime: str) -> None:
    rng = np.random.default_rng(sorted(REGIMES).index(regime))
    baseline = rng.uniform(0, 1, size=(SEEDS, TASKS))  # levels: only the differences matter
    results = [pooled_difference_arrays(baseline + d, baseline)
               for d in regime_differences(rng, 0.1, regime)]
    covered = np.mean([r.low <= 0.1 <= r.high for r in results])
    assert covered >= 0.90, f"{regime}: {covered:.1%} of 95 % intervals cover 0.1"


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_pooled_false_positive_rate_under_no_difference_is_near_five_percent(regime: str) -> None:
    rng = np.random.default_rng(100 + sorted(REGIMES).index(regime))
    rejected = np.mean([pooled_difference_arrays(d, np.zeros_like(d)).p_value < 0.05
                        for d in regime_differences(rng, 0.0, regime)])
    assert 0.02 <= rejected <= 0.08, f"{regime}: {rejected:.1%} false positives"


def binary_replications(rng: np.random.Generator, delta: float, seed_shift: float,
                        shared: float, seeds: int = SEEDS, tasks: int = TASKS
                        ) -> tuple[np.ndarray, np.ndarray]:
    return binary_outcomes(rng, SIMULATIONS, seeds, tasks, delta, seed_shift, shared)


def test_the_synthetic_binary_outcomes_have_the_stated_difference() -> None:
    a, b = binary_replications(np.random.default_rng(7), 0.1, 0.05, 0.8)
    assert set(np.unique(a)) == set(np.unique(b)) == {0.0, 1.0}
    assert float((a - b).mean()) == pytest.approx(0.1, abs=0.005)
    with pytest.raises(ValueError, match="delta and seed_shift"):
        binary_replications(np.random.default_rng(7), 0.3, 0.05, 0.8)


BINARY_REGIMES = {"seed noise, mostly agreeing runs": (0.05, 0.8),
                  "little seed noise, half agreeing": (0.03, 0.5)}


@pytest.mark.parametrize("regime", sorted(BINARY_REGIMES))
def test_binary_outcomes_cover_and_keep_false_positives_near_five_percent(regime: str) -> None:
    rng = np.random.default_rng(200 + sorted(BINARY_REGIMES).index(regime))
    a, b = binary_replications(rng, 0.1, *BINARY_REGIMES[regime])
    covered = np.mean([(r := pooled_difference_arrays(x, y)).low <= 0.1 <= r.high
                       for x, y in zip(a, b, strict=True)])
    assert covered >= 0.90, f"{regime}: {covered:.1%} of 95 % intervals cover 0.1"
    a, b = binary_replications(rng, 0.0, *BINARY_REGIMES[regime])
    results = [pooled_difference_arrays(x, y) for x, y in zip(a, b, strict=True)]
    assert all(r.binary for r in results)
    rejected = np.mean([r.p_value < 0.05 for r in results])
    assert 0.02 <= rejected <= 0.08, f"{regime}: {rejected:.1%} false positives"


def test_with_seed_noise_the_sign_flip_over_tasks_alone_would_be_anti_conservative() -> None:
    """Why several seeds take the larger of the t and the exact p: a seed that shifts every
    task looks like many tasks agreeing, which the sign-flip over tasks cannot tell apart."""
    rng = np.random.default_rng(300)
    a, b = binary_replications(rng, 0.0, 0.05, 0.8)
    results = [pooled_difference_arrays(x, y) for x, y in zip(a, b, strict=True)]
    assert np.mean([r.p_value_exact < 0.05 for r in results]) > 0.15
    assert np.mean([r.p_value < 0.05 for r in results]) <= 0.08


def test_one_seed_few_tasks_the_exact_test_keeps_its_level() -> None:
    """16 tasks, one seed, mostly agreeing runs: few discordant tasks. The exact sign test's
    false-positive rate is at most 5 % (it is exact, so conservative through discreteness)."""
    rng = np.random.default_rng(400)
    a, b = binary_replications(rng, 0.0, 0.0, 0.8, seeds=1, tasks=16)
    p_values = [pooled_difference_arrays(x, y).p_value for x, y in zip(a, b, strict=True)]
    assert np.mean(np.array(p_values) < 0.05) <= 0.05
