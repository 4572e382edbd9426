"""Synthetic seeds x tasks data with a known difference, to measure how often the intervals of
:func:`faulttune.stats.pooled_difference` cover it and how often its tests reject a true null
(tests/test_stats.py, bench/pooled_coverage.py). Each function draws ``n`` replications at once:
arrays of shape (n, seeds, tasks)."""

from __future__ import annotations

import numpy as np


def continuous_differences(rng: np.random.Generator, n: int, seeds: int, tasks: int,
                           delta: float, seed_sd: float, task_sd: float, noise_sd: float
                           ) -> np.ndarray:
    """d[s, t] = delta + seed_s + task_t + e[s, t], normal with the given standard deviations
    (the two-way model the pooled comparison assumes)."""
    return (delta + seed_sd * rng.standard_normal((n, seeds, 1))
            + task_sd * rng.standard_normal((n, 1, tasks))
            + noise_sd * rng.standard_normal((n, seeds, tasks)))


def binary_outcomes(rng: np.random.Generator, n: int, seeds: int, tasks: int, delta: float,
                    seed_shift: float, shared: float) -> tuple[np.ndarray, np.ndarray]:
    """0/1 outcomes (a, b) per (seed, task), the pass@1 of greedy decoding.

    The baseline passes with probability q_t + g_b,s, the experiment with q_t + delta + g_a,s:
    q_t ~ U(0.15, 0.75) per task, g ~ U(-seed_shift, seed_shift) per seed and side (a seed's
    training noise lifts or sinks all its tasks). So E[a - b] = delta on every task for
    ``delta`` <= 0.1 and ``seed_shift`` <= 0.1 (no probability leaves [0, 1]). In a fraction
    ``shared`` of the cells both sides draw the same uniform, as two runs mostly agree on a
    task: fewer discordant tasks, the case where exact tests matter.
    """
    if not (0 <= delta <= 0.1 and 0 <= seed_shift <= 0.1):
        raise ValueError("binary_outcomes: delta and seed_shift must lie in [0, 0.1]")
    shape = (n, seeds, tasks)
    q = rng.uniform(0.15, 0.75, size=(n, 1, tasks))
    shift_a, shift_b = (rng.uniform(-seed_shift, seed_shift, size=(n, seeds, 1))
                        for _ in range(2))
    u_b = rng.uniform(size=shape)
    u_a = np.where(rng.uniform(size=shape) < shared, u_b, rng.uniform(size=shape))
    return (u_a < q + delta + shift_a).astype(float), (u_b < q + shift_b).astype(float)
