"""Rule ``traces`` of ``masks.smk``: where each pair's twins first diverge when run (the trace
mask kind's input, docs/methods.md §7)."""

from __future__ import annotations

import logging

from faulttune import io
from faulttune.settings import TraceSettings

log = logging.getLogger("faulttune")


def traces(settings: TraceSettings, pairs: str, tasks: str, out: str, threads: int = 1) -> None:
    """The traces table of a pairs table; ``tasks``: the table holding the pairs' tasks (their
    tests and entry points)."""
    from faulttune.tracing import trace_pairs, write_traces

    rows = trace_pairs(io.read_parquet(pairs), io.read_parquet(tasks),
                       max_inputs=settings.max_inputs, timeout_s=settings.timeout_s,
                       workers=threads, source=pairs)
    statuses = write_traces(rows, out)
    log.info("traces of %s: %d pairs, %s", pairs, len(rows), dict(statuses))
