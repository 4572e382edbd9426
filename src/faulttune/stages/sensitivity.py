"""Rules of ``sensitivity.smk``: the fault-sensitivity probe and its held-out twins."""

from __future__ import annotations

import logging
from typing import Any

from faulttune.settings import HeldoutSettings, SensitivitySettings
from faulttune.stages import set_threads

log = logging.getLogger("faulttune")


def heldout_tasks(settings: HeldoutSettings) -> list[dict[str, Any]]:
    """HumanEval tasks no experiment trains on: the demo split's held-out half, else all of them
    (as task rows for the bugs stage)."""
    from faulttune.bugs.pairs import task_rows
    from faulttune.data.benchmarks import load_benchmark
    from faulttune.data.sources import humaneval_split

    tasks = load_benchmark("humaneval", settings.data_dir)
    if settings.split is not None:
        keep = set(humaneval_split(*settings.split)[1])
        tasks = [t for t in tasks if t.task_id in keep]
    return task_rows(tasks)


def heldout_twins(settings: HeldoutSettings, out: str, workers: int) -> None:
    """Verified CCT twins of held-out HumanEval tasks, for the fault-sensitivity probe."""
    from faulttune.bugs.pairs import cct_pairs
    from faulttune.stages.bugs import write_pairs

    pairs, rejected = cct_pairs(heldout_tasks(settings), settings.seed, 1, per_family=1,
                                verify=True, workers=workers)
    write_pairs(pairs, rejected, out, "heldout_twins")


def sensitivity(settings: SensitivitySettings, twins: str, out: str, threads: int = 1) -> None:
    """Log-likelihood of correct vs buggy code: HumanEvalFix (with a benchmark folder) and the
    held-out twins, at most ``limit`` pairs of each."""
    from faulttune.sensitivity import humanevalfix_pairs, probe, twin_pairs, write_sensitivity

    set_threads(threads)
    limit = settings.limit or None
    pairs = (humanevalfix_pairs(settings.data_dir)[:limit] if settings.data_dir else [])
    pairs += twin_pairs(twins)[:limit]
    write_sensitivity(probe(settings.model, pairs, settings.batch_size), out)
    log.info("sensitivity of %s on %d pairs", settings.model, len(pairs))
