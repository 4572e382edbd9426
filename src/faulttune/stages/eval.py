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


def generate(settings: GenerateSettings, bench: str, out: str, threads: int = 1) -> None:
    """Greedy samples of the settings' model for every task of a benchmark table. Samples go to
    the job's state (:mod:`faulttune.resume`) chunk by chunk, so a killed job generates only the
    tasks it had not finished; the samples file (and its raw file) appear when all are done."""
    from faulttune.generate import GenerationParams, make_backend
    from faulttune.generate.run import generate_samples, raw_path
    from faulttune.resume import Resumable, publish

    set_threads(threads)
    backend = settings.backend
    tasks = io.read_parquet(bench, required=("task_id", "prompt", "entry_point"))
    with Resumable(out, settings) as job:
        partial = job.state / "samples.jsonl"
        generate_samples(tasks, make_backend(backend.backend, backend.model, **backend.options),
                         partial, params=GenerationParams(max_new_tokens=settings.max_new_tokens),
                         chunk_size=GENERATE_CHUNK, should_stop=lambda: job.stop_requested)
        publish(raw_path(partial), raw_path(out))
        job.publish(partial)


def score(settings: ScoreSettings, bench: str, samples: str, out: str, workers: int | None) -> None:
    from faulttune.evaluate import score_samples

    scored_as = io.read_parquet(bench, required=("scored_as",))[0]["scored_as"]
    if scored_as.startswith("bigcodebench-"):
        result = _score_bigcodebench(settings, bench, scored_as, samples, out, workers)
    else:
        result = score_samples(scored_as, samples, out, data_dir=settings.data_dir, workers=workers)
    log.info("%s (scored as %s): pass@1 %.4f over %d samples",
             bench, scored_as, result["pass_at_1"], result["n_samples"])


def _score_bigcodebench(settings: ScoreSettings, bench: str, name: str, samples: str, out: str,
                        workers: int | None) -> dict[str, Any]:
    """The official package's local execution (the papers' numbers; its own environment)."""
    from faulttune import bigcodebench as bcb

    task_ids = [r["task_id"] for r in io.read_parquet(bench)]
    return bcb.score_official(samples, name, out, local_tasks=settings.bigcodebench_source,
                              task_ids=task_ids, parallel=workers)
