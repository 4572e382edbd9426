"""Rules of ``data.smk``: the training task tables and the benchmark tables."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from faulttune import io
from faulttune.settings import BenchmarkSource, TrainTableSettings

log = logging.getLogger("faulttune")

# data/train.parquet (and codeflow_train.parquet): one task per row.
TRAIN_SCHEMA = pa.schema([(c, pa.string()) for c in
                          ("task_id", "source", "instruction", "solution", "test", "entry_point")])


def load_benchmark_tasks(sources: Sequence[BenchmarkSource]) -> dict[str, list[Any]]:
    """name -> tasks of each benchmark (the demo split's held-out half only: the other half is
    what it trains on; BigCodeBench from where its generation reads it)."""
    from faulttune.bigcodebench import benchmark_tasks
    from faulttune.contamination import load_benchmarks
    from faulttune.data.sources import humaneval_split

    out: dict[str, list[Any]] = {}
    for source in sources:
        if source.name.startswith("bigcodebench-"):
            out[source.name] = benchmark_tasks(source.name, source.bigcodebench_source)
            continue
        name, ids = source.name, None
        if source.split is not None:
            name, ids = "humaneval", {"humaneval": humaneval_split(*source.split)[1]}
        out[source.name] = load_benchmarks([name], source.data_dir, ids)[name]
    return out


def prepare_train(settings: TrainTableSettings, out: str, stage: str = "prepare_train") -> None:
    """The task table of one training source, without the rows that overlap an evaluated
    benchmark (kept in ``*.rejected.parquet`` with the reason)."""
    from faulttune.data.sources import load_training_rows

    rows, rejected = load_training_rows(settings.source, settings.seed, settings.data_dir)
    if settings.decontaminate:
        from faulttune.contamination import decontaminate

        rows, overlapping = decontaminate(rows, load_benchmark_tasks(settings.decontaminate))
        rejected += overlapping
        log.info("decontaminate: %d rows overlap an evaluated benchmark", len(overlapping))
    io.write_rejected(rejected, out, stage)
    if not rows:
        raise io.DataError(f"{out}: no training rows left of source {settings.source['source']!r} "
                           f"({len(rejected)} rejected; see {io.rejected_path(out)})")
    io.write_parquet(rows, out, TRAIN_SCHEMA)
    log.info("%s: source %s, %d rows, %d rejected", stage, settings.source["source"], len(rows),
             len(rejected))


def prepare_benchmark(settings: BenchmarkSource, out: str) -> None:
    from faulttune.data.bench_table import BENCH_SCHEMA, benchmark_rows

    rows = benchmark_rows(settings.name, split=settings.split, data_dir=settings.data_dir,
                          limit=settings.limit, bigcodebench_source=settings.bigcodebench_source)
    io.write_parquet(rows, out, BENCH_SCHEMA)
    log.info("benchmark %s: %d tasks", settings.name, len(rows))


def train_tasks(path: str) -> list[dict[str, Any]]:
    return io.read_parquet(path, required=TRAIN_SCHEMA.names)
