"""Spread over seeds and bootstrap intervals of means and paired differences (see
:mod:`faulttune.stats`)."""

from __future__ import annotations

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
