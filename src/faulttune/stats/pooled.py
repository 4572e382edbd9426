"""One comparison pooled over seeds and tasks: the two-way random-effects t, the exact test for
0/1 outcomes, the minimum detectable effect (the model: :mod:`faulttune.stats`)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from faulttune.io import DataError
from faulttune.stats.bootstrap import CONFIDENCE
from faulttune.stats.exact import sign_flip_test


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
