"""Rules of ``sensitivity.smk``: the fault-sensitivity probe and its held-out twins."""

from __future__ import annotations

import logging
from typing import Any

from faulttune.settings import HeldoutSettings, ProbePairsSettings, SensitivitySettings
from faulttune.stages import set_threads

log = logging.getLogger("faulttune")


def heldout_tasks(settings: HeldoutSettings) -> list[dict[str, Any]]:
    """HumanEval tasks no experiment trains on: the demo split's held-out half, else all of them;
    a seeded sample of ``limit`` of them when there are more (as task rows for the bugs stage, in
    HumanEval's order). The probe spreads its ``limit`` pairs over tasks, so twins of more tasks
    would never be drawn."""
    import random

    from faulttune.bugs.pairs import task_rows
    from faulttune.data.benchmarks import load_benchmark
    from faulttune.data.sources import humaneval_split

    tasks = load_benchmark("humaneval", settings.data_dir)
    if settings.split is not None:
        keep = set(humaneval_split(*settings.split)[1])
        tasks = [t for t in tasks if t.task_id in keep]
    if settings.limit is not None and len(tasks) > settings.limit:
        drawn = set(random.Random(settings.seed).sample([t.task_id for t in tasks], settings.limit))
        tasks = [t for t in tasks if t.task_id in drawn]
    return task_rows(tasks)


def heldout_twins(settings: HeldoutSettings, out: str, workers: int) -> None:
    """Verified twins of held-out HumanEval tasks, for the fault-sensitivity probe: CCT's bugs
    (one twin of every family per task) and universalmutator's (one per task)."""
    from faulttune.bugs.pairs import cct_pairs, mutation_pairs
    from faulttune.stages.bugs import write_pairs

    tasks = heldout_tasks(settings)
    cct, cct_rejected = cct_pairs(tasks, settings.seed, 1, per_family=1, verify=True,
                                  workers=workers)
    mutants, mutants_rejected = mutation_pairs(tasks, settings.seed, 1, verify=True,
                                               workers=workers)
    write_pairs(cct + mutants, cct_rejected + mutants_rejected, out, "heldout_twins")


def probe_pairs(settings: ProbePairsSettings, twins: str, out: str) -> None:
    """A seeded random sample of ``limit`` held-out twins, spread over the tasks, chosen by no
    model: every experiment is probed on this file."""
    from faulttune.sensitivity import sample_probe_pairs, twin_pairs, write_probe_pairs

    candidates = twin_pairs(twins)
    rows = sample_probe_pairs(candidates, settings.limit, settings.seed)
    write_probe_pairs(rows, out)
    log.info("probe pairs: %d of %d held-out twins, from %d of %d tasks", len(rows),
             len(candidates), len({r["task_id"] for r in rows}),
             len({c["task_id"] for c in candidates}))


def humanevalfix_probe_pairs(settings: SensitivitySettings, twins: list[dict[str, Any]]
                             ) -> list[dict[str, Any]]:
    """HumanEvalFix's pairs of the tasks the probe's twins come from (held-out tasks, drawn at
    random): the same tasks with their human-written bugs."""
    from faulttune.contamination import task_key
    from faulttune.sensitivity import humanevalfix_pairs

    probed = {task_key(p["task_id"]) for p in twins}
    return [p for p in humanevalfix_pairs(settings.data_dir) if task_key(p["task_id"]) in probed]


def sensitivity(settings: SensitivitySettings, pairs: str, out: str, threads: int = 1) -> None:
    """Log-likelihood of correct vs buggy code on the probe pairs, plus HumanEvalFix's pairs of
    the same tasks when a benchmark folder is set (``settings.data_dir``)."""
    from faulttune.sensitivity import probe, twin_pairs, write_sensitivity

    set_threads(threads)
    twins = twin_pairs(pairs)
    fix = humanevalfix_probe_pairs(settings, twins) if settings.data_dir else []
    write_sensitivity(probe(settings.model, fix + twins, settings.batch_size), out)
    log.info("sensitivity of %s on %d twins and %d HumanEvalFix pairs", settings.model,
             len(twins), len(fix))
