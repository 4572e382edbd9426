"""Error bars for honest comparisons: spread over seeds and bootstrap intervals (pure functions).

* :func:`mean_std`: mean and sample standard deviation (n - 1) of one number per seed.
* :func:`bootstrap_interval`: percentile-bootstrap interval of a mean (a fraction is the mean of
  0/1 values), resampling the values with replacement.
* :func:`paired_bootstrap`: the difference of two means measured on the SAME items (tasks of a
  benchmark, pairs of the sensitivity probe), resampling items jointly so that both experiments
  always see the same resampled items. ``significant`` means the interval excludes 0.
* :func:`paired_bootstrap_by_key`: the same on ``{item_id: value}`` maps; the item sets must match.
* :func:`per_task_pass_rate`: a score file's ``results`` rows -> ``{task_id: passed samples / samples}``
  (the per-task pass@1 estimate, 0/1 under greedy decoding), the input of the paired bootstrap.

Everything is seeded (``numpy.random.default_rng(seed)``): the same inputs and seed give the same
interval. Intervals are percentile intervals (``numpy.quantile``, linear interpolation) of
``n_resamples`` resampled means; they are only as honest as the items are independent.

Pooled comparisons (several seeds, tasks as clusters, a family of comparisons):

* :func:`pooled_difference`: one estimate, interval and p-value for experiment - baseline over
  all seeds and tasks at once, ``a[seed][task_id]`` vs ``b[seed][task_id]`` (seed s of the
  experiment against seed s of its baseline), not one test per seed. A task's items (samples,
  probe pairs) are averaged into one value first: items of one task are not independent, tasks
  are. :func:`pooled_difference_arrays` is the same on seeds x tasks arrays. The result's
  ``seed_spread`` is the sd over seeds of the per-seed mean *differences* D_s, the spread a
  difference must exceed to stand out from seed noise (not the spread of either side's level).
* :func:`exact_sign_test`, :func:`sign_flip_test`: exact tests for paired outcomes.
* :func:`holm`: Holm-Bonferroni adjusted p-values for the report's family of comparisons.
* :func:`minimum_detectable_effect`: the true difference a design would detect with 80 % power,
  stated beside a null result.

The model. The differences d[s, t] = a[s][t] - b[s][t] (S seeds x T tasks) follow the two-way
random-effects model without replication d = delta + seed_s + task_t + e[s, t]: the seeds are
the training runs' randomness (a seed shifts every task of one run), the tasks a sample of the
task population (a task is easier for one method whatever the seed), e the rest; all mean-zero,
independent, with variances sigma_seed^2, sigma_task^2, sigma_e^2. The estimand delta is the
difference expected for a new seed on a new task. The estimate is mean(d), whose variance is
sigma_seed^2 / S + sigma_task^2 / T + sigma_e^2 / (S T). With the ANOVA mean squares
MS_seed = T sum_s (D_s - mean)^2 / (S - 1), MS_task = S sum_t (dbar_t - mean)^2 / (T - 1) and
MS_error (the residual, df (S - 1)(T - 1)), (MS_seed + MS_task - MS_error) / (S T) estimates it
without bias. A variance component whose estimate is not positive (MS_seed or MS_task below
MS_error) counts as 0, as usual for variance components, so the variance used is
(max(MS_seed, MS_error) + max(MS_task, MS_error) - MS_error) / (S T): never below what the
t over task means (MS_task / (S T)) or the t over seed means (MS_seed / (S T)) alone would use.
Its degrees of freedom are Satterthwaite's for the mean squares kept. The interval is the
t interval and p the two-sided t p-value. With one seed this is the paired t-test over tasks
(df T - 1) and the interval speaks only of those two training runs: seed noise cannot be seen,
so a seed-driven difference looks real (the report says so). With one task it is the t over
seeds (df S - 1). When every difference is equal there is no spread: the interval is
[estimate, estimate], p is 1 for a zero estimate and 0 otherwise, df is None.

0/1 outcomes (pass@1 per task under greedy decoding; detected, or ``binary=True``): the
t interval is kept, and is approximate; significance follows an exact test. The per-task sums
k_t = sum_s d[s, t] are integers; under "no difference" each task's k_t is as likely to be
-k_t (a sign-flip test over tasks, computed exactly by dynamic programming over the integer
sums). With one seed it is the exact sign test (McNemar) and is the p-value: 4 tasks that only
the experiment solves and none the other way give p = 0.125, where the percentile bootstrap
and the t call it significant. With several seeds the sign-flip over tasks ignores seed noise
(a seed that shifts every task reads as many concordant tasks) and the t ignores
discreteness, so p is the larger of the two: each is a valid level-alpha test where its
assumption holds, and the larger is valid where either holds (conservative otherwise).

bench/pooled_coverage.py measures coverage and false-positive rates of these rules against
crossed and naive bootstraps on synthetic data.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from faulttune.io import DataError

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
_CHUNK = 1_000  # resamples drawn at once (bounds memory at _CHUNK x n indices)


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation of ``n`` values; ``std`` is None for a single value."""

    mean: float
    std: float | None
    n: int


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap interval [low, high] at ``confidence``, over ``n`` values."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedDifference:
    """mean(a) - mean(b) over ``n`` shared items, its bootstrap interval, and whether the
    interval excludes 0."""

    difference: float
    low: float
    high: float
    significant: bool
    confidence: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_array(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: need a non-empty list of numbers, got {len(array)} values")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name}: value {bad} is {float(array[bad])}, not a finite number")
    return array


def _check_options(confidence: float, n_resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def mean_std(values: Sequence[float]) -> MeanStd:
    """Mean and sample standard deviation (divisor n - 1) of one value per seed."""
    array = _as_array(values, "mean_std")
    std = float(array.std(ddof=1)) if array.size > 1 else None
    return MeanStd(float(array.mean()), std, int(array.size))


def resampled_means(values: Sequence[float], n_resamples: int = N_RESAMPLES, seed: int = 0
                    ) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement, same size) of ``values``."""
    array = _as_array(values, "resampled_means")
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, n_resamples, _CHUNK):
        rows = min(_CHUNK, n_resamples - start)
        means.append(array[rng.integers(0, array.size, size=(rows, array.size))].mean(axis=1))
    return np.concatenate(means)


def _percentiles(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_interval(values: Sequence[float], *, confidence: float = CONFIDENCE,
                       n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
    """The mean of ``values`` (a fraction: 0/1 values) and its percentile-bootstrap interval.

    A single value gives the degenerate interval [value, value]: there is no spread to resample.
    """
    _check_options(confidence, n_resamples)
    array = _as_array(values, "bootstrap_interval")
    low, high = _percentiles(resampled_means(array, n_resamples, seed), confidence)
    return Interval(float(array.mean()), low, high, confidence, int(array.size))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, confidence: float = CONFIDENCE,
                     n_resamples: int = N_RESAMPLES, seed: int = 0) -> PairedDifference:
    """mean(a) - mean(b) where ``a[i]`` and ``b[i]`` are two experiments' values on item i.

    Items are resampled jointly (the bootstrap of the per-item differences), so the interval
    reflects how consistently one experiment beats the other across items, not the spread of
    either alone.
    """
    _check_options(confidence, n_resamples)
    first, second = _as_array(a, "paired_bootstrap a"), _as_array(b, "paired_bootstrap b")
    if first.size != second.size:
        raise ValueError(f"paired_bootstrap: {first.size} values in a but {second.size} in b; "
                         "a paired comparison needs one value per item on both sides")
    differences = first - second
    low, high = _percentiles(resampled_means(differences, n_resamples, seed), confidence)
    return PairedDifference(float(differences.mean()), low, high, is_significant(low, high),
                            confidence, int(differences.size))


def paired_bootstrap_by_key(a: Mapping[str, float], b: Mapping[str, float], *,
                            confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                            seed: int = 0) -> PairedDifference:
    """:func:`paired_bootstrap` on ``{item_id: value}`` maps, aligned by sorted item id.

    Raises ``ValueError`` naming (up to five of) the items only one side has: comparing
    experiments on different items is exactly what a paired comparison must not do.
    """
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        raise ValueError(f"paired_bootstrap_by_key: the item sets differ: {len(only_a)} only in a "
                         f"{only_a[:5]}, {len(only_b)} only in b {only_b[:5]}")
    keys = sorted(a)
    return paired_bootstrap([a[k] for k in keys], [b[k] for k in keys], confidence=confidence,
                            n_resamples=n_resamples, seed=seed)


def per_task_pass_rate(results: Iterable[Mapping[str, Any]], source: str = "results"
                       ) -> dict[str, float]:
    """``{task_id: passing samples / samples}`` from score-file rows ``{"task_id", "status"}``.

    A row passes when its status is "pass". ``source`` names the input in error messages
    (``DataError`` naming the row and field).
    """
    passed: dict[str, int] = {}
    total: dict[str, int] = {}
    for i, row in enumerate(results):
        task_id, status = row.get("task_id"), row.get("status")
        if not isinstance(task_id, str) or not isinstance(status, str):
            raise DataError(f"{source} row {i}: need string 'task_id' and 'status', got "
                             f"{task_id!r}, {status!r}")
        total[task_id] = total.get(task_id, 0) + 1
        passed[task_id] = passed.get(task_id, 0) + (status == "pass")
    return {task_id: passed[task_id] / total[task_id] for task_id in total}


def is_significant(low: float, high: float) -> bool:
    """Whether an interval of a difference excludes 0."""
    return low > 0 or high < 0


# ---------------------------------------------------------------------------------------------
# Pooled comparisons over seeds and tasks, exact tests for 0/1 outcomes, multiplicity correction


@dataclass(frozen=True)
class Comparison:
    """a - b pooled over seeds and tasks (:func:`pooled_difference`).

    ``p_value`` is the two-sided raw p (before any multiplicity correction) that significance
    follows; for 0/1 outcomes it combines ``p_value_t`` (the two-way t test behind the
    interval) with ``p_value_exact`` (the exact sign-flip test over tasks), see the module
    docstring. ``method`` says in words how both were computed.
    """

    estimate: float  # mean over (seed, task) cells of a[s][t] - b[s][t]
    low: float  # t interval at ``confidence`` (approximate for 0/1 outcomes)
    high: float
    p_value: float
    method: str
    df: float | None  # degrees of freedom of the t; None when every difference is equal
    standard_error: float
    n_tasks: int
    n_seeds: int
    seed_spread: float | None  # sample sd over seeds of the per-seed mean differences
    binary: bool  # 0/1 outcomes: the exact test was applied
    confidence: float
    p_value_t: float
    p_value_exact: float | None  # the exact sign-flip test over tasks (0/1 outcomes only)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _TwoWayVariance:
    variance: float  # of the grand mean of the differences
    df: float | None
    method: str


def _cell_value(side: str, seed: Any, task: str, value: Any) -> float:
    """One cell as a float; bad data (not a finite number) raises ``DataError`` naming it."""
    number = float(value) if isinstance(value, numbers.Real) else math.nan
    if not math.isfinite(number):
        raise DataError(f"pooled_difference: {side}[{seed!r}][{task!r}] is {value!r}, "
                        "not a finite number")
    return number


def _aligned_matrices(a: Mapping[Any, Mapping[str, float]], b: Mapping[Any, Mapping[str, float]]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as seeds x tasks arrays over the same sorted seeds and tasks."""
    if not a or not b:
        raise ValueError(f"pooled_difference: need at least one seed on both sides, got "
                         f"{len(a)} in a and {len(b)} in b")
    only_a = sorted(set(a) - set(b), key=str)
    only_b = sorted(set(b) - set(a), key=str)
    if only_a or only_b:
        raise ValueError(f"pooled_difference: seeds are matched by key and the seed sets differ: "
                         f"{len(only_a)} only in a {only_a[:5]}, {len(only_b)} only in b "
                         f"{only_b[:5]}")
    seeds = sorted(a, key=str)
    tasks = sorted({task for side in (a, b) for seed in seeds for task in side[seed]})
    missing = {
        name: [(seed, task) for seed in seeds for task in tasks if task not in side[seed]]
        for name, side in (("a", a), ("b", b))
    }
    if missing["a"] or missing["b"]:
        raise ValueError(
            "pooled_difference: every seed must hold the same tasks on both sides: "
            f"{len(missing['a'])} (seed, task) missing in a {missing['a'][:5]}, "
            f"{len(missing['b'])} missing in b {missing['b'][:5]}")
    first, second = (
        np.array([[_cell_value(name, seed, task, side[seed][task]) for task in tasks]
                  for seed in seeds])
        for name, side in (("a", a), ("b", b)))
    return first, second


def _satterthwaite(terms: Sequence[tuple[float, float, float]]) -> tuple[float, float | None]:
    """sum(coef * ms) over ``(coef, mean square, df)`` terms and its Satterthwaite df."""
    total = sum(coef * ms for coef, ms, _ in terms)
    spread = sum((coef * ms) ** 2 / df for coef, ms, df in terms)
    return total, (total**2 / spread if spread > 0 else None)


def _two_way_variance(d: np.ndarray) -> _TwoWayVariance:
    """Variance of ``d.mean()`` under d[s, t] = delta + seed_s + task_t + e[s, t] (module
    docstring), with its degrees of freedom and a description."""
    n_seeds, n_tasks = d.shape
    if n_seeds == 1:
        variance, df = float(d[0].var(ddof=1)) / n_tasks, n_tasks - 1
        return _TwoWayVariance(variance, df if variance > 0 else None,
                               f"paired t over tasks (df {df})")
    if n_tasks == 1:
        variance, df = float(d[:, 0].var(ddof=1)) / n_seeds, n_seeds - 1
        return _TwoWayVariance(variance, df if variance > 0 else None,
                               f"t over seeds (df {df})")
    grand = d.mean()
    seed_means, task_means = d.mean(axis=1), d.mean(axis=0)
    df_seed, df_task, df_error = n_seeds - 1, n_tasks - 1, (n_seeds - 1) * (n_tasks - 1)
    ms_seed = n_tasks * float(((seed_means - grand) ** 2).sum()) / df_seed
    ms_task = n_seeds * float(((task_means - grand) ** 2).sum()) / df_task
    residuals = d - seed_means[:, None] - task_means[None, :] + grand
    ms_error = float((residuals**2).sum()) / df_error
    # a variance component whose estimate (MS - MS_error) is not positive counts as 0
    keep_seed, keep_task = ms_seed > ms_error, ms_task > ms_error
    if keep_seed and keep_task:
        terms = [(1.0, ms_seed, df_seed), (1.0, ms_task, df_task), (-1.0, ms_error, df_error)]
        label = "two-way seed x task t (Satterthwaite df {df:.1f})"
    elif keep_task:
        terms = [(1.0, ms_task, df_task)]
        label = "two-way t; seed component estimated 0, so t over task means (df {df:.0f})"
    elif keep_seed:
        terms = [(1.0, ms_seed, df_seed)]
        label = "two-way t; task component estimated 0, so t over seed means (df {df:.0f})"
    else:
        terms = [(1.0, ms_error, df_error)]
        label = "two-way t; seed and task components estimated 0 (df {df:.0f})"
    total, df = _satterthwaite(terms)
    return _TwoWayVariance(max(total, 0.0) / (n_seeds * n_tasks), df,
                           label.format(df=df if df is not None else 0))


def _t_quantile(probability: float, df: float) -> float:
    # imported here: scipy costs seconds to import, and most users of this module never need it
    from scipy.special import stdtrit

    return float(stdtrit(df, probability))


def _t_two_sided_p(statistic: float, df: float) -> float:
    from scipy.special import stdtr

    return float(min(1.0, 2 * stdtr(df, -abs(statistic))))


def pooled_difference(a: Mapping[Any, Mapping[str, float]], b: Mapping[Any, Mapping[str, float]],
                      *, confidence: float = CONFIDENCE, binary: bool | None = None
                      ) -> Comparison:
    """mean(a - b) over seeds and tasks with one pooled interval and p-value (module docstring).

    ``a[seed][task_id]`` and ``b[seed][task_id]`` are per-task values (a task's items already
    averaged into one value: tasks are the clusters); seed s of ``a`` is compared with seed s
    of ``b``. Raises ``ValueError`` when the seed sets differ or a seed lacks a task on either
    side (naming up to five missing (seed, task) ids per side), or on a non-finite value.
    ``binary=None`` detects 0/1 outcomes (every value 0 or 1) and then applies the exact test;
    ``True`` insists on them (a ``ValueError`` otherwise); ``False`` uses the t alone.
    """
    first, second = _aligned_matrices(a, b)
    return pooled_difference_arrays(first, second, confidence=confidence, binary=binary)


def pooled_difference_arrays(a: np.ndarray, b: np.ndarray, *, confidence: float = CONFIDENCE,
                             binary: bool | None = None) -> Comparison:
    """:func:`pooled_difference` on two aligned seeds x tasks arrays (rows: seeds)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.ndim != 2 or first.shape != second.shape or first.size == 0:
        raise ValueError(f"pooled_difference: need two seeds x tasks arrays of one shape, got "
                         f"{first.shape} and {second.shape}")
    if not (np.all(np.isfinite(first)) and np.all(np.isfinite(second))):
        raise ValueError("pooled_difference: the values must be finite numbers")
    n_seeds, n_tasks = first.shape
    if n_seeds * n_tasks < 2:
        raise ValueError("pooled_difference: one seed and one task leave no spread to estimate "
                         "an interval from; need two tasks or two seeds")
    all_binary = bool(np.all((first == 0) | (first == 1)) and np.all((second == 0) | (second == 1)))
    if binary and not all_binary:
        raise ValueError("pooled_difference: binary=True but some values are not 0 or 1")
    is_binary = all_binary if binary is None else binary
    d = first - second
    estimate = float(d.mean())
    two_way = _two_way_variance(d)
    se = math.sqrt(two_way.variance)
    if two_way.df is None or se == 0:
        low = high = estimate
        p_t = 1.0 if estimate == 0 else 0.0
        method, df = "no spread: every difference equals the estimate", None
    else:
        df = float(two_way.df)
        half = _t_quantile(0.5 + confidence / 2, df) * se
        low, high = estimate - half, estimate + half
        p_t = _t_two_sided_p(estimate / se, df)
        method = two_way.method
    p_exact = None
    p_value = p_t
    if is_binary:
        p_exact = sign_flip_test(d.sum(axis=0))  # integers: the exact lattice algorithm
        if n_seeds == 1:
            p_value = p_exact
            method += "; p: exact sign test over tasks (McNemar), the interval is approximate"
        else:
            p_value = max(p_t, p_exact)
            method += ("; p: the larger of the t and the exact sign-flip over tasks, "
                       "the interval is approximate")
    seed_means = d.mean(axis=1)
    return Comparison(
        estimate=estimate, low=low, high=high, p_value=p_value, method=method, df=df,
        standard_error=se, n_tasks=n_tasks, n_seeds=n_seeds,
        seed_spread=float(seed_means.std(ddof=1)) if n_seeds > 1 else None,
        binary=is_binary, confidence=confidence, p_value_t=p_t, p_value_exact=p_exact)


def exact_sign_test(n_plus: int, n_minus: int) -> float:
    """Two-sided exact sign test: P(a split at least as uneven as ``n_plus`` : ``n_minus``)
    when each non-tied pair is + or - with probability 1/2 (McNemar's exact test on the
    discordant pairs). 0 : 0 gives 1.0."""
    for name, count in (("n_plus", n_plus), ("n_minus", n_minus)):
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"exact_sign_test: {name} must be a count >= 0, got {count!r}")
    n, k = int(n_plus) + int(n_minus), min(int(n_plus), int(n_minus))
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


SIGN_FLIP_DRAWS = 100_000
_MAX_ENUMERATED = 20  # nonzero values enumerated exactly (2**20 sums) when not integers
_MAX_LATTICE_WORK = 50_000_000  # nonzero values x sum of |values| for the integer algorithm


def sign_flip_test(values: Sequence[float] | np.ndarray, *, n_draws: int = SIGN_FLIP_DRAWS,
                   seed: int = 0) -> float:
    """Two-sided sign-flip (permutation) test that ``values`` are symmetric about 0.

    The p-value is P(|sum_t e_t |v_t|| >= |sum_t v_t|) over independent fair signs e_t (zeros
    drop out). Integer values: exact, by dynamic programming over the integer sums. Otherwise
    exact enumeration when at most 20 values are nonzero, else a seeded Monte Carlo estimate
    with ``n_draws`` sign vectors, (1 + hits) / (1 + n_draws) so that it is never 0.
    """
    array = _as_array(values, "sign_flip_test") if len(values) else np.zeros(0)
    nonzero = np.abs(array[array != 0])
    if nonzero.size == 0:
        return 1.0
    observed = abs(float(array.sum()))
    if np.all(nonzero == np.rint(nonzero)) and nonzero.size * nonzero.sum() <= _MAX_LATTICE_WORK:
        return _sign_flip_lattice(nonzero.astype(np.int64), round(observed))
    tolerance = 1e-9 * float(nonzero.sum())  # the observed sum is one of the flipped sums
    if nonzero.size <= _MAX_ENUMERATED:
        sums = np.zeros(1)
        for value in nonzero:
            sums = np.concatenate([sums + value, sums - value])
        return float(np.mean(np.abs(sums) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_draws, _CHUNK):
        signs = rng.choice([-1.0, 1.0], size=(min(_CHUNK, n_draws - start), nonzero.size))
        hits += int(np.sum(np.abs(signs @ nonzero) >= observed - tolerance))
    return (1 + hits) / (1 + n_draws)


def _sign_flip_lattice(magnitudes: np.ndarray, observed: int) -> float:
    """Exact :func:`sign_flip_test` p for positive integers: the flipped sum is 2 Y - M where
    Y is the sum of the values given a + sign, M the sum of all; Y's distribution is built one
    value at a time (each in or out with probability 1/2)."""
    total = int(magnitudes.sum())
    probabilities = np.zeros(total + 1)
    probabilities[0] = 1.0
    for value in magnitudes.tolist():
        shifted = np.zeros_like(probabilities)
        shifted[value:] = probabilities[:-value]
        probabilities = 0.5 * (probabilities + shifted)
    flipped_sums = 2 * np.arange(total + 1) - total
    return float(min(1.0, probabilities[np.abs(flipped_sums) >= observed].sum()))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in input order: the i-th smallest of m is multiplied
    by m - i + 1, made non-decreasing in that order, and capped at 1. Rejecting where the
    adjusted p <= alpha controls the family-wise error rate at alpha."""
    array = np.asarray(p_values, dtype=float)
    if array.ndim != 1:
        raise ValueError("holm: need a list of p-values")
    if array.size and not np.all((array >= 0) & (array <= 1)):
        bad = int(np.flatnonzero(~((array >= 0) & (array <= 1)))[0])
        raise ValueError(f"holm: p-value {bad} is {float(array[bad])}, not in [0, 1]")
    m = array.size
    order = np.argsort(array, kind="stable")
    scaled = np.minimum(1.0, array[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


def minimum_detectable_effect(comparison: Comparison, power: float = 0.8, alpha: float = 0.05
                              ) -> float:
    """The smallest true difference this design detects with probability ``power`` in a
    two-sided test at ``alpha``: (t_{1 - alpha/2, df} + t_{power, df}) x standard error, with
    the comparison's standard error and df (the t approximation, also for 0/1 outcomes).
    0.0 when the comparison had no spread (every difference equal)."""
    for name, value in (("power", power), ("alpha", alpha)):
        if not 0 < value < 1:
            raise ValueError(f"minimum_detectable_effect: {name} must be in (0, 1), got {value}")
    if comparison.df is None or comparison.standard_error == 0:
        return 0.0
    quantiles = _t_quantile(1 - alpha / 2, comparison.df) + _t_quantile(power, comparison.df)
    return quantiles * comparison.standard_error
