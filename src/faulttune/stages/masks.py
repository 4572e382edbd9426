"""Rule of ``masks.smk``: training examples with their error-sensitive masks."""

from __future__ import annotations

import logging

from faulttune import io
from faulttune.settings import MaskSettings

log = logging.getLogger("faulttune")


def masks(settings: MaskSettings, records: str, out: str, tasks: str | None = None,
          traces: str | None = None) -> None:
    """Training examples of one examples kind of the registry (``settings.kind``), tokenised with
    the student's tokenizer. ``records``: the training table or a pairs table, as the kind reads;
    ``tasks``: the training table, for a kind that covers every task (a task without a usable pair
    is a plain row, so such a method trains on every task of the table); ``traces``: the pairs'
    execution traces (:mod:`faulttune.tracing`), for a kind marked by traced lines."""
    from faulttune import methods
    from faulttune.mask_table import build_examples, write_masks
    from faulttune.models import load_tokenizer
    from faulttune.tracing import read_traced_lines

    methods.load_plugins(settings.plugins)
    examples = methods.examples(settings.kind)
    examples_rows, rejected = build_examples(
        examples, io.read_parquet(records), load_tokenizer(settings.tokenizer),
        tasks=io.read_parquet(tasks) if tasks else None,
        traced=read_traced_lines(traces) if traces else None, seed=settings.seed,
        max_length=settings.max_length, source=records, tasks_source=tasks or "",
        traces_source=traces or "")
    write_masks(examples_rows, out, settings.tokenizer, examples=examples.name)
    io.write_rejected(rejected, out, f"masks:{settings.kind}")
    log.info("masks %s from %s: %d examples, %d rejected", settings.kind, records,
             len(examples_rows), len(rejected))
