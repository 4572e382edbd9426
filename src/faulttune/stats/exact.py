"""Exact tests for paired 0/1 outcomes and Holm's multiplicity correction (see
:mod:`faulttune.stats`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from faulttune.stats.bootstrap import _CHUNK, _as_array


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
