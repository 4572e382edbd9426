"""Gather rules: the shards of a sharded stage written as the files one job writes
(:mod:`faulttune.shards`). Each gather reads its parts in shard order and writes through the
single job's own writer and schema, so the files are byte for byte those of one job."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from faulttune import shards
from faulttune.settings import GatherSettings

log = logging.getLogger("faulttune")


def gather(settings: GatherSettings, inputs: Any, outputs: Sequence[str]) -> None:
    """``inputs``: the rule's named inputs (``parts`` and what the stage needs besides)."""
    stage = settings.stage
    if stage == "teacher_variants":
        shards.gather_parquet(inputs.parts, outputs[0])
    elif stage == "synthesize_tasks":
        from faulttune.codeflow.synthesis import REJECTED_SCHEMA, TASK_SCHEMA

        shards.gather_parquet(inputs.parts, outputs[0], TASK_SCHEMA)
        shards.gather_rejected(inputs.parts, outputs[0], stage, REJECTED_SCHEMA)
    elif stage == "codeflow":
        from faulttune.stages.codeflow import rejected_schema

        shards.gather_parquet(inputs.trajectories, outputs[0])
        shards.gather_parquet(inputs.parts, outputs[1])
        shards.gather_rejected(inputs.parts, outputs[1], stage, rejected_schema())
    elif stage == "generate":
        from faulttune.generate.run import raw_path

        shards.gather_lines(inputs.parts, outputs[0])
        shards.gather_lines([raw_path(p) for p in inputs.parts], raw_path(outputs[0]))
    elif stage == "score":
        from faulttune.stages.eval import results_summary

        assert settings.score is not None
        shards.gather_results(inputs.parts, outputs[0],
                              lambda rows: results_summary(settings.score, inputs.bench, rows))
    else:
        raise ValueError(f"no gather for stage {stage!r}")
    log.info("gathered %d shards of %s into %s", len(inputs.parts), stage, ", ".join(outputs))
