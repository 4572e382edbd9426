"""Coverage and false-positive rate of the pooled seed x task comparison against bootstraps.

For each regime, ``--simulations`` synthetic experiments with a known difference (0.1: how
often the 95 % interval covers it) and as many with none (how often the comparison is called
significant at 5 %), the same data for every method, side by side:

    pooled     faulttune.stats.pooled_difference: two-way t interval; significance by p < 0.05
               (0/1 outcomes: the exact sign test with one seed, else the larger of t and exact)
    t only     the same interval, significance by the two-way t's p alone (no exact test)
    crossed    naive crossed bootstrap: resample seeds and tasks independently, percentile
               interval; significant when it excludes 0
    cells      the per-seed paired bootstrap pooled as if the seeds x tasks cells were
               independent items (resample cells), percentile interval
    per-seed   today's report: one paired bootstrap per seed; coverage is the share of per-seed
               intervals that cover the difference, a false positive is any seed significant

Regimes: the differences d = delta + seed + task + noise (normal; sds of the three named), or
0/1 outcomes (faulttune.stats_synthetic.binary_outcomes: seed shift, share of cells where both
runs agree by construction). A good method covers >= 95 % and rejects about 5 % of nulls.

A second table takes one seed and 16 tasks of 0/1 outcomes with k discordant tasks (one side
alone solves them): under no difference each of the 2^k sign patterns is equally likely, so
enumerating them all gives each test's exact false-positive rate given k (no simulation): the
exact sign test stays at or below 5 % for every k, the t and the percentile bootstrap do not.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/pooled_coverage.py [--simulations 400]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from faulttune.stats import pooled_difference_arrays
from faulttune.stats_synthetic import binary_outcomes, continuous_differences

DELTA = 0.1
CONFIDENCE = 0.95
RESAMPLES = 1_000


@dataclass(frozen=True)
class Regime:
    name: str
    seeds: int
    tasks: int
    draw: Callable[[np.random.Generator, int, float], tuple[np.ndarray, np.ndarray]]


def continuous(name: str, seeds: int, tasks: int, sds: tuple[float, float, float]) -> Regime:
    def draw(rng: np.random.Generator, n: int, delta: float) -> tuple[np.ndarray, np.ndarray]:
        d = continuous_differences(rng, n, seeds, tasks, delta, *sds)
        return d, np.zeros_like(d)

    return Regime(f"{name} (sd {sds[0]}/{sds[1]}/{sds[2]})", seeds, tasks, draw)


def binary(name: str, seeds: int, tasks: int, seed_shift: float, shared: float) -> Regime:
    def draw(rng: np.random.Generator, n: int, delta: float) -> tuple[np.ndarray, np.ndarray]:
        return binary_outcomes(rng, n, seeds, tasks, delta, seed_shift, shared)

    return Regime(f"0/1 {name} (shift {seed_shift}, agree {shared})", seeds, tasks, draw)


REGIMES = [
    continuous("task-dominated", 3, 160, (0.02, 0.3, 0.1)),
    continuous("seed-dominated", 3, 160, (0.1, 0.05, 0.05)),
    continuous("mixed", 3, 160, (0.03, 0.2, 0.2)),
    continuous("noise only", 3, 160, (0.0, 0.0, 0.3)),
    continuous("mixed, 16 tasks", 3, 16, (0.03, 0.2, 0.2)),
    binary("seed noise", 3, 160, 0.05, 0.8),
    binary("little seed noise", 3, 160, 0.03, 0.5),
    binary("1 seed, 16 tasks", 1, 16, 0.0, 0.8),
]
METHODS = ("pooled", "t only", "crossed", "cells", "per-seed")


def percentile(means: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def crossed_bootstrap(d: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Means of d over seeds and tasks resampled independently."""
    seeds, tasks = d.shape
    seed_rows = rng.integers(0, seeds, size=(RESAMPLES, seeds, 1))
    task_columns = rng.integers(0, tasks, size=(RESAMPLES, 1, tasks))
    return percentile(d[seed_rows, task_columns].mean(axis=(1, 2)))


def cell_bootstrap(d: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    cells = d.ravel()
    return percentile(cells[rng.integers(0, cells.size, size=(RESAMPLES, cells.size))].mean(1))


def per_seed_bootstraps(d: np.ndarray, rng: np.random.Generator) -> list[tuple[float, float]]:
    columns = rng.integers(0, d.shape[1], size=(RESAMPLES, d.shape[1]))
    return [percentile(row[columns].mean(axis=1)) for row in d]


def judge(a: np.ndarray, b: np.ndarray, delta: float, rng: np.random.Generator
          ) -> dict[str, tuple[float, bool]]:
    """method -> (share of its intervals covering ``delta``, called significant)."""
    pooled = pooled_difference_arrays(a, b)
    d = a - b
    covered = float(pooled.low <= delta <= pooled.high)
    out = {"pooled": (covered, pooled.p_value < 0.05), "t only": (covered, pooled.p_value_t < 0.05)}
    for name, method in (("crossed", crossed_bootstrap), ("cells", cell_bootstrap)):
        low, high = method(d, rng)
        out[name] = (float(low <= delta <= high), low > 0 or high < 0)
    intervals = per_seed_bootstraps(d, rng)
    out["per-seed"] = (float(np.mean([lo <= delta <= hi for lo, hi in intervals])),
                       any(lo > 0 or hi < 0 for lo, hi in intervals))
    return out


def measure(regime: Regime, simulations: int, seed: int) -> dict[str, tuple[float, float]]:
    """method -> (coverage of DELTA, false-positive rate under no difference)."""
    rng = np.random.default_rng(seed)
    effect = [judge(a, b, DELTA, rng) for a, b in zip(*regime.draw(rng, simulations, DELTA),
                                                       strict=True)]
    null = [judge(a, b, 0.0, rng) for a, b in zip(*regime.draw(rng, simulations, 0.0),
                                                   strict=True)]
    return {m: (float(np.mean([r[m][0] for r in effect])), float(np.mean([r[m][1] for r in null])))
            for m in METHODS}


def discordant_rates(tasks: int, discordant: int, rng: np.random.Generator
                     ) -> tuple[float, float, float]:
    """(exact, t, bootstrap) rejection rates over all sign patterns of ``discordant`` tasks."""
    rejected = np.zeros(3)
    for signs in itertools.product([1.0, -1.0], repeat=discordant):
        d = np.zeros((1, tasks))
        d[0, :discordant] = signs
        a, b = np.maximum(d, 0), np.maximum(-d, 0)
        result = pooled_difference_arrays(a, b)
        (low, high), = per_seed_bootstraps(d, rng)
        rejected += [result.p_value < 0.05, result.p_value_t < 0.05, low > 0 or high < 0]
    return tuple(rejected / 2**discordant)  # type: ignore[return-value]


def print_discordant_table(tasks: int = 16) -> None:
    rng = np.random.default_rng(0)
    print(f"\n1 seed x {tasks} tasks of 0/1 outcomes, k discordant tasks, no difference: "
          "false-positive rate over all 2^k sign patterns\n")
    print("| k | exact sign test | t | percentile bootstrap |")
    print("|---|---|---|---|")
    for k in range(3, 11):
        exact, t_only, bootstrap = discordant_rates(tasks, k, rng)
        print(f"| {k} | {exact:.1%} | {t_only:.1%} | {bootstrap:.1%} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=400)
    args = parser.parse_args()
    started = time.perf_counter()
    header = " | ".join(f"{m} cover / FP" for m in METHODS)
    print(f"{args.simulations} simulations per regime and per delta (0.1 and 0); "
          f"{RESAMPLES} bootstrap resamples; 95 % intervals, 5 % tests\n")
    print(f"| regime | seeds x tasks | {header} |")
    print("|---|---|" + "---|" * len(METHODS))
    for i, regime in enumerate(REGIMES):
        result = measure(regime, args.simulations, seed=i)
        cells = " | ".join(f"{result[m][0]:.1%} / {result[m][1]:.1%}" for m in METHODS)
        print(f"| {regime.name} | {regime.seeds} x {regime.tasks} | {cells} |", flush=True)
    print_discordant_table()
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
