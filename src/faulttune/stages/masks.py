"""Rule of ``masks.smk``: training examples with their error-sensitive masks."""

from __future__ import annotations

import logging

from faulttune import io
from faulttune.settings import MaskSettings

log = logging.getLogger("faulttune")


def masks(settings: MaskSettings, pairs: str, out: str, tasks: str | None = None) -> None:
    """Training examples of one kind (sft, cct, dpo, target_dpo, focused_dpo, fgit-line,
    fgit-token, fgit-hybrid), tokenised with the student's tokenizer; ``pairs`` is the training
    table itself for ``sft``. FGit kinds need ``tasks`` (the training table): every task is a
    row, plain SFT where it has no usable pair, so FGit trains on the tasks SFT trains on."""
    from faulttune.mask_table import build_fgit_rows, build_mask_rows, write_masks
    from faulttune.models import load_tokenizer

    base_kind, _, granularity = settings.kind.partition("-")
    tokenizer = load_tokenizer(settings.tokenizer)
    if base_kind == "fgit":
        if tasks is None:
            raise ValueError(f"{out}: FGit masks need the training table (tasks)")
        examples, rejected = build_fgit_rows(
            io.read_parquet(tasks), io.read_parquet(pairs), tokenizer, granularity=granularity,
            max_length=settings.max_length, tasks_source=tasks, pairs_source=pairs)
    else:
        examples, rejected = build_mask_rows(
            io.read_parquet(pairs), tokenizer, base_kind, granularity="hybrid", seed=settings.seed,
            max_length=settings.max_length, source=pairs)
    write_masks(examples, out, settings.tokenizer)
    io.write_rejected(rejected, out, f"masks:{settings.kind}")
    log.info("masks %s from %s: %d examples, %d rejected", settings.kind, pairs, len(examples),
             len(rejected))
