"""Rules of ``codeflow.smk``: iterative debugging (CodeFlow) and IterPref's pairs."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from faulttune import io
from faulttune.settings import CodeflowPairsSettings, CodeflowSettings
from faulttune.stages import set_threads
from faulttune.stages.data import train_tasks

log = logging.getLogger("faulttune")


def _rejected_schema() -> pa.Schema:
    from faulttune.codeflow import REJECTED_COLUMNS

    ints = {"rejected_iteration", "chosen_iteration", "n_iterations"}
    return pa.schema([(c, pa.int64() if c in ints else pa.string()) for c in REJECTED_COLUMNS])


def _token_counter(tokenizer_name: str):
    from faulttune.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    return lambda s: len(tokenizer(s, add_special_tokens=False).input_ids)


def codeflow(settings: CodeflowSettings, train: str, mutants: str | None, out_dir: str,
             threads: int = 1) -> None:
    """CodeFlow debugging of every training task, then IterPref pairs. Every round's versions go
    to the job's state (:mod:`faulttune.resume`), so a killed job continues from the last round."""
    from faulttune.codeflow import run_codeflow
    from faulttune.generate import GenerationParams, make_backend
    from faulttune.resume import Resumable

    set_threads(threads)
    backend = settings.backend
    with Resumable(Path(out_dir) / "trajectories.parquet", settings) as job:
        trajectories, pairs, rejected = run_codeflow(
            train_tasks(train), make_backend(backend.backend, backend.model, **backend.options),
            max_iters=settings.max_iters, start=settings.start,
            mutants=io.read_parquet(mutants) if mutants else None,
            checkpoint=job.state / "versions.jsonl", seed=settings.seed,
            rejected=settings.rejected, max_length=settings.max_length,
            count_tokens=_token_counter(backend.model), workers=threads,
            params=GenerationParams(max_new_tokens=settings.max_new_tokens, seed=settings.seed),
            should_stop=lambda: job.stop_requested,
        )
        io.write_parquet(pairs, Path(out_dir) / "pairs.parquet")
        io.write_rejected(rejected, Path(out_dir) / "pairs.parquet", "codeflow", _rejected_schema())
        io.write_parquet(trajectories, Path(out_dir) / "trajectories.parquet")
    log.info("codeflow: %d versions, %d pairs, %d without a pair",
             len(trajectories), len(pairs), len(rejected))


def codeflow_pairs(settings: CodeflowPairsSettings, train: str, trajectories: str,
                   out: str) -> None:
    """IterPref pairs with another rejected-version rule (the paper's random|first|last ablation)
    from the trajectories already computed."""
    from faulttune.codeflow import build_pairs

    instructions = {t["task_id"]: t["instruction"] for t in train_tasks(train)}
    pairs, rejected = build_pairs(
        io.read_parquet(trajectories), instructions, rejected=settings.rejected,
        seed=settings.seed, max_length=settings.max_length,
        count_tokens=_token_counter(settings.tokenizer))
    io.write_parquet(pairs, out)
    io.write_rejected(rejected, out, f"codeflow:{settings.rejected}", _rejected_schema())
    log.info("codeflow pairs (rejected=%s): %d pairs, %d without", settings.rejected, len(pairs),
             len(rejected))
