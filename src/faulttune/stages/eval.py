"""Rules of ``eval.smk``: generation (a model job) and scoring in the sandbox (a CPU job)."""

from __future__ import annotations

import logging
from typing import Any

from faulttune import io
from faulttune.settings import GenerateSettings, ScoreSettings
from faulttune.stages import set_threads

log = logging.getLogger("faulttune")


# Tasks per backend call: what a killed job can lose, and what the decode loop refills from.
GENERATE_CHUNK = 16


def generate(settings: GenerateSettings, bench: str, out: str, threads: int = 1,
             shard: str | None = None) -> None:
    """Greedy samples of the settings' model for every task of a benchmark table, or of one shard
    of it (:mod:`faulttune.shards`). Samples go to the job's state (:mod:`faulttune.resume`) chunk
    by chunk, so a killed job generates only the tasks it had not finished; the samples file (and
    its raw file) appear when all are done."""
    from faulttune.generate import GenerationParams, make_backend
    from faulttune.generate.run import generate_samples, raw_path
    from faulttune.resume import Resumable, publish
    from faulttune.shards import Shard

    set_threads(threads)
    backend = settings.backend
    tasks = io.read_parquet(bench, required=("task_id", "prompt", "entry_point"))
    tasks, _ = Shard.parse(shard).take(tasks, 1)
    with Resumable(out, settings) as job:
        partial = job.state / "samples.jsonl"
        model = make_backend(backend.backend, backend.model, **backend.options) if tasks else None
        generate_samples(tasks, model, partial,
                         params=GenerationParams(max_new_tokens=settings.max_new_tokens),
                         chunk_size=GENERATE_CHUNK, should_stop=lambda: job.stop_requested)
        publish(raw_path(partial), raw_path(out))
        job.publish(partial)


def score(settings: ScoreSettings, bench: str, samples: str, out: str, workers: int | None,
          shard: str | None = None) -> None:
    """RESULTS.json of a samples file, or of one shard of its rows (:mod:`faulttune.shards`; the
    gather recomputes the summary over every row, :func:`results_summary`)."""
    from faulttune.evaluate import score_samples
    from faulttune.shards import Shard

    scored_as = io.read_parquet(bench, required=("scored_as",))[0]["scored_as"]
    part = Shard.parse(shard)
    if part.count > 1 and not io.read_jsonl(samples)[slice(*_rows(part, samples))]:
        _write_json({"benchmark": scored_as, "results": []}, out)  # more shards than rows
        return
    if scored_as.startswith("bigcodebench-"):
        result = _score_bigcodebench(settings, bench, scored_as, samples, out, workers, part)
    else:
        result = score_samples(scored_as, samples, out, data_dir=settings.data_dir,
                               workers=workers, rows=_rows(part, samples))
    log.info("%s (scored as %s): pass@1 %.4f over %d samples",
             bench, scored_as, result["pass_at_1"], result["n_samples"])


def _rows(part: Any, samples: str) -> tuple[int, int]:
    """The [start, stop) of a shard's sample rows (any row may start a shard)."""
    with open(samples, encoding="utf-8") as f:
        n = sum(1 for line in f if line.strip())
    mine = part.chunks(n, 1)
    return mine.start, mine.stop


def _write_json(data: dict[str, Any], out: str) -> None:
    from pathlib import Path

    from faulttune.evaluate.samples import write_atomically

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(data, Path(out))


def results_summary(settings: ScoreSettings, bench: str, results: list[dict[str, Any]]
                    ) -> dict[str, Any]:
    """The summary keys a scorer writes for ``results`` (the rows of every shard), computed as
    that scorer computes them: pass@k over the benchmark's known tasks."""
    from faulttune.evaluate import summarise

    scored_as = io.read_parquet(bench, required=("scored_as",))[0]["scored_as"]
    if not scored_as.startswith("bigcodebench-"):
        from faulttune.data.benchmarks import load_benchmark

        known = {t.task_id for t in load_benchmark(scored_as, settings.data_dir)}
    else:
        from faulttune.bigcodebench import NOT_EVALUATED

        known = {r["task_id"] for r in results if r["detail"] != NOT_EVALUATED}
    return summarise(results, known)


def _score_bigcodebench(settings: ScoreSettings, bench: str, name: str, samples: str, out: str,
                        workers: int | None, part: Any) -> dict[str, Any]:
    """The official package's local execution (the papers' numbers; its own environment); a
    shard scores a copy of its rows beside its output."""
    from faulttune import bigcodebench as bcb

    if part.count > 1:
        start, stop = _rows(part, samples)
        rows = io.read_jsonl(samples)[start:stop]
        samples = f"{out}.samples.jsonl"
        io.write_jsonl(rows, samples)
    task_ids = [r["task_id"] for r in io.read_parquet(bench)]
    return bcb.score_official(samples, name, out, local_tasks=settings.bigcodebench_source,
                              task_ids=task_ids, parallel=workers)
