"""Rules of ``bugs.smk``: wrong-but-similar twins by mutation, CCT's AST bugs and the teacher."""

from __future__ import annotations

import logging
from typing import Any

from faulttune import io
from faulttune.settings import BugSettings, SelectSettings, TeacherSettings
from faulttune.stages import set_threads
from faulttune.stages.data import train_tasks

log = logging.getLogger("faulttune")


def write_pairs(pairs: list[dict[str, Any]], rejected: list[dict[str, Any]], out: str,
                stage: str) -> None:
    from faulttune.bugs.pairs import PAIRS_SCHEMA, REJECTED_SCHEMA, counts

    io.write_parquet(pairs, out, PAIRS_SCHEMA)
    io.write_rejected(rejected, out, stage, REJECTED_SCHEMA)
    log.info("%s: %s", stage, counts(pairs, rejected))


def mutate(settings: BugSettings, train: str, out: str, workers: int) -> None:
    """Verified twins by universalmutator (``mutation``) or CCT's AST injection (``cct``)."""
    from faulttune.bugs.pairs import cct_pairs, mutation_pairs

    tasks = train_tasks(train)
    if settings.source == "mutation":
        pairs, rejected = mutation_pairs(tasks, settings.seed, settings.max_per_task,
                                         verify=settings.verify, workers=workers)
    else:
        pairs, rejected = cct_pairs(tasks, settings.seed, settings.max_per_task,
                                    per_family=settings.cct_per_family, verify=settings.verify,
                                    workers=workers)
    write_pairs(pairs, rejected, out, f"mutate:{settings.source}")


def teacher_variants(settings: TeacherSettings, train: str, out: str, threads: int = 1,
                     shard: str | None = None) -> None:
    """FGit's teacher: ``n_variants`` raw wrong-but-similar answers per task of one shard of the
    table (:mod:`faulttune.shards`; whole chunks, seeded as a whole run seeds them). Finished
    chunks go to the job's state (:mod:`faulttune.resume`), so a killed job asks only for the
    rest."""
    from faulttune.bugs.teacher import CHUNK, teacher_candidates
    from faulttune.generate import make_backend
    from faulttune.resume import Resumable
    from faulttune.shards import Shard

    set_threads(threads)
    tasks, first_chunk = Shard.parse(shard).take(train_tasks(train), CHUNK)
    backend = make_backend(settings.backend.backend, settings.backend.model,
                           **settings.backend.options) if tasks else None
    with Resumable(out, settings) as job:
        rows = teacher_candidates(tasks, backend, settings.n_variants,
                                  settings.temperature, settings.seed, settings.max_new_tokens,
                                  state=job.state / "candidates.jsonl",
                                  should_stop=lambda: job.stop_requested, first_chunk=first_chunk)
        io.write_parquet(rows, out)
    log.info("teacher %s: %d raw variants", settings.backend.model, len(rows))


def select_pairs(settings: SelectSettings, train: str, candidates: str, out: str,
                 workers: int) -> None:
    """The most similar teacher variant per task, verified against the tests where they exist."""
    from faulttune.bugs.pairs import select_pairs as select

    pairs, rejected = select(io.read_parquet(candidates), train_tasks(train),
                             similarity=settings.similarity, verify=settings.verify,
                             workers=workers)
    write_pairs(pairs, rejected, out, "select_pairs")
