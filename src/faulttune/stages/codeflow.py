"""Rules of ``codeflow.smk``: task synthesis, iterative debugging (CodeFlow) and IterPref's pairs.

The synthesis and the debugging take a shard (``"<k>-of-<n>"``, :mod:`faulttune.shards`) of their
task table and write that shard's files; the gather rules concatenate them into the files one job
writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from faulttune import io
from faulttune.settings import (
    BackendSettings,
    CodeflowPairsSettings,
    CodeflowSettings,
    SynthesisSettings,
)
from faulttune.stages import set_threads
from faulttune.stages.data import train_tasks

log = logging.getLogger("faulttune")


def rejected_schema() -> pa.Schema:
    from faulttune.codeflow import REJECTED_COLUMNS

    ints = {"rejected_iteration", "chosen_iteration", "n_iterations"}
    return pa.schema([(c, pa.int64() if c in ints else pa.string()) for c in REJECTED_COLUMNS])


def _token_counter(tokenizer_name: str):
    from faulttune.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    return lambda s: len(tokenizer(s, add_special_tokens=False).input_ids)


def _backend(settings: BackendSettings):
    from faulttune.generate import make_backend

    return make_backend(settings.backend, settings.model, **settings.options)


def synthesize(settings: SynthesisSettings, instructions: str, out: str, threads: int = 1,
               shard: str | None = None) -> None:
    """Tasks with tests from the instructions of one shard of the table (resumable)."""
    from faulttune.codeflow.synthesis import REJECTED_SCHEMA, TASK_SCHEMA, synthesize_tasks
    from faulttune.resume import Resumable
    from faulttune.shards import Shard

    set_threads(threads)
    rows, _ = Shard.parse(shard).take(train_tasks(instructions), 1)
    with Resumable(out, settings) as job:
        tasks, rejected = synthesize_tasks(
            rows, _backend(settings.backend) if rows else None, max_new_tokens=settings.max_new_tokens,
            seed=settings.seed, workers=threads, state=job.state / "chunks.jsonl",
            should_stop=lambda: job.stop_requested)
        io.write_rejected(rejected, out, "synthesize_tasks", REJECTED_SCHEMA)
        io.write_parquet(tasks, out, TASK_SCHEMA)
    measured = [t["coverage"] for t in tasks if t["coverage"] is not None]
    log.info("synthesis: %d tasks with tests, %d rejected of %d instructions; line coverage of "
             "the solutions by their tests %s", len(tasks), len(rejected), len(rows),
             f"{sum(measured) / len(measured):.1%} on average over {len(measured)} tasks"
             if measured else "not measured")


def codeflow(settings: CodeflowSettings, train: str, mutants: str | None,
             outputs: Mapping[str, str], threads: int = 1, shard: str | None = None) -> None:
    """CodeFlow debugging of one shard of the tasks, then IterPref pairs, judged by the teacher
    when ``settings.judge`` is set. Every round's versions and every judge answer go to the job's
    state (:mod:`faulttune.resume`), so a killed job continues where it stopped. ``outputs``:
    the paths of ``trajectories``, ``pairs`` and ``rejected``."""
    from faulttune.codeflow import run_codeflow
    from faulttune.generate import GenerationParams
    from faulttune.resume import Resumable
    from faulttune.shards import Shard

    set_threads(threads)
    tasks, _ = Shard.parse(shard).take(train_tasks(train), 1)
    with Resumable(outputs["trajectories"], settings) as job:
        debugger = _backend(settings.backend) if tasks else None
        trajectories, pairs, rejected = run_codeflow(
            tasks, debugger, max_iters=settings.max_iters, start=settings.start,
            mutants=io.read_parquet(mutants) if mutants else None,
            checkpoint=job.state / "versions.jsonl", seed=settings.seed,
            rejected=settings.rejected, max_length=settings.max_length,
            count_tokens=_token_counter(settings.tokenizer), workers=threads,
            params=GenerationParams(max_new_tokens=settings.max_new_tokens, seed=settings.seed),
            should_stop=lambda: job.stop_requested,
        )
        if settings.judge is not None and pairs:
            judge = debugger if settings.judge == settings.backend else _backend(settings.judge)
            pairs, rejected = _judged(pairs, rejected, judge, tasks, settings.seed,
                                      state=str(job.state / "judge.jsonl"),
                                      should_stop=lambda: job.stop_requested)
        io.write_parquet(pairs, outputs["pairs"])
        io.write_rejected(rejected, outputs["pairs"], "codeflow", rejected_schema())
        io.write_parquet(trajectories, outputs["trajectories"])
    log.info("codeflow: %d versions, %d pairs, %d without a pair",
             len(trajectories), len(pairs), len(rejected))


def _judged(pairs: list[dict[str, Any]], rejected: list[dict[str, Any]], backend: Any,
            tasks: list[dict[str, Any]], seed: int, **resume: Any
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The judge's verdicts on the pairs; judged-out rows join the rejected ones, in task order."""
    from faulttune.codeflow import judge_pairs

    position = {t["task_id"]: i for i, t in enumerate(tasks)}
    kept, out = judge_pairs(pairs, backend, seed=seed, **resume)
    return kept, sorted(rejected + out, key=lambda row: position.get(row["task_id"], -1))


def codeflow_pairs(settings: CodeflowPairsSettings, train: str, trajectories: str,
                   out: str) -> None:
    """IterPref pairs with another rejected-version rule (the paper's random|first|last ablation)
    from the trajectories already computed, judged as codeflow's are when the judge is on."""
    from faulttune.codeflow import build_pairs
    from faulttune.resume import Resumable

    tasks = train_tasks(train)
    instructions = {t["task_id"]: t["instruction"] for t in tasks}
    with Resumable(out, settings) as job:
        pairs, rejected = build_pairs(
            io.read_parquet(trajectories), instructions, rejected=settings.rejected,
            seed=settings.seed, max_length=settings.max_length,
            count_tokens=_token_counter(settings.tokenizer))
        if settings.judge is not None and pairs:
            pairs, rejected = _judged(pairs, rejected, _backend(settings.judge), tasks,
                                      settings.seed, state=str(job.state / "judge.jsonl"),
                                      should_stop=lambda: job.stop_requested)
        io.write_parquet(pairs, out)
        io.write_rejected(rejected, out, f"codeflow:{settings.rejected}", rejected_schema())
    log.info("codeflow pairs (rejected=%s): %d pairs, %d without", settings.rejected, len(pairs),
             len(rejected))
