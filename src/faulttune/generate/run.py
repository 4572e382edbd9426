"""Benchmark generation: tasks -> the scorer's sample JSONL, resumable (``faulttune generate``).

Files written (both append-only, flushed after every chunk of tasks):

- ``SAMPLES.jsonl``: one row per sample, ``{"task_id": str, "solution": str}``; ``solution`` is a
  self-contained program (see :func:`solution_program`). A task has ``params.n`` rows.
- ``SAMPLES.raw.jsonl`` (:func:`raw_path`): ``{"task_id": str, "raw": str, "prompt_hash": str}``,
  the backend's completion untouched and a digest of the conversation + pre-fill that produced it.

Resume: a task is finished when SAMPLES.jsonl holds ``n`` rows for it. On start both files are
rewritten (atomically) with the finished tasks only, so a half-written last line or a task cut
mid-write is dropped and generated again; finished tasks are never regenerated. A finished task
whose recorded prompt hash differs from the current prompt raises: results are never mixed silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faulttune.generate.base import Backend, GenerationParams
from faulttune.generate.extract import solution_program
from faulttune.generate.prompts import solve_messages
from faulttune.generate.stops import AnswerComplete
from faulttune.io import DataError, append_jsonl, read_appended_jsonl, read_parquet, write_jsonl

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    """What generation needs of a benchmark task."""

    task_id: str
    prompt: str
    entry_point: str


def task_spec(task: Any, index: int) -> TaskSpec:
    """The fields of a ``BenchmarkTask`` or of a row with task_id, prompt, entry_point."""
    values = {}
    for field in ("task_id", "prompt", "entry_point"):
        value = task.get(field) if isinstance(task, Mapping) else getattr(task, field, None)
        if not isinstance(value, str) or (field != "entry_point" and not value):
            raise DataError(
                f"task {index}: field '{field}' must be a non-empty string, got {value!r}"
            )
        values[field] = value
    return TaskSpec(**values)


def prompt_hash(conversation: Sequence[Mapping[str, str]], prefill: str) -> str:
    """16 hex digits of sha256 over the messages and the pre-fill."""
    payload = json.dumps({"messages": list(conversation), "prefill": prefill}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def raw_path(out_path: str | Path) -> Path:
    """``x/samples.jsonl`` -> ``x/samples.raw.jsonl``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name.removesuffix(".jsonl") + ".raw.jsonl")


def _read_tolerant(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of a JSONL file being appended to (a torn last line dropped); a missing key raises."""
    rows = []
    for lineno, row in read_appended_jsonl(path):
        missing = [k for k in required if k not in row]
        if missing:
            raise DataError(f"{path} line {lineno}: missing {missing}")
        rows.append(row)
    return rows


def _rows_by_task(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["task_id"], []).append(row)
    return grouped


def restore_finished(out_path: Path, n: int, hashes: Mapping[str, str]) -> set[str]:
    """Keep only finished tasks in both files (rewritten atomically); their task ids.

    ``hashes`` maps task_id -> the prompt hash generation would use now.
    """
    samples = _rows_by_task(_read_tolerant(out_path, ("task_id", "solution")))
    raws = _rows_by_task(_read_tolerant(raw_path(out_path), ("task_id", "raw", "prompt_hash")))
    done = {tid for tid, rows in samples.items() if len(rows) >= n}
    for tid in done:
        recorded = {row["prompt_hash"] for row in raws.get(tid, [])}
        if tid in hashes and recorded - {hashes[tid]}:
            raise DataError(
                f"{raw_path(out_path)}: task {tid} was generated from a different prompt "
                f"(hash {sorted(recorded)} vs {hashes[tid]}); write to a fresh --out"
            )
    if out_path.exists() or raw_path(out_path).exists():
        write_jsonl([r for tid in samples if tid in done for r in samples[tid][:n]], out_path)
        write_jsonl([r for tid in raws if tid in done for r in raws[tid][:n]], raw_path(out_path))
    return done


def answer_rules(specs: Sequence[TaskSpec]) -> list[AnswerComplete]:
    """Each task's stop rule: its completion ends once the answer is complete."""
    return [AnswerComplete(s.prompt, s.entry_point) for s in specs]


def generate_samples(
    tasks: Sequence[Any],
    backend: Backend,
    out_path: str | Path,
    *,
    params: GenerationParams,
    limit: int | None = None,
    chunk_size: int = 64,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Generate ``params.n`` samples per task into ``out_path`` (+ raw file), resuming if present.

    ``tasks``: BenchmarkTask objects or rows with task_id, prompt, entry_point; ``limit`` keeps the
    first N. Tasks go to ``backend.chat`` ``chunk_size`` at a time, each with its
    :class:`AnswerComplete` stop rule (a row stops at the first top-level line after a complete
    answer); each chunk is appended and flushed, raw rows first, so the samples file decides what
    is finished. When ``should_stop()`` turns true after a chunk (SIGTERM at a time limit), it
    raises ``resume.Preempted``.
    """
    specs = [task_spec(t, i) for i, t in enumerate(tasks)][:limit]
    conversations = {s.task_id: solve_messages(s.prompt) for s in specs}
    hashes = {tid: prompt_hash(conv, params.prefill) for tid, conv in conversations.items()}
    out_path = Path(out_path)
    done = restore_finished(out_path, params.n, hashes)
    todo = [s for s in specs if s.task_id not in done]
    log.info(
        "%s: %d tasks, %d already done, %d to generate",
        out_path,
        len(specs),
        len(specs) - len(todo),
        len(todo),
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.touch()
    raw_path(out_path).touch()
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        completions = backend.chat(
            [conversations[s.task_id] for s in chunk], params, answer_rules(chunk)
        )
        if len(completions) != len(chunk) or any(len(c) != params.n for c in completions):
            raise RuntimeError(f"backend {backend.name} returned the wrong number of completions")
        for spec, samples in zip(chunk, completions):
            for text in samples:
                append_jsonl(
                    {"task_id": spec.task_id, "raw": text, "prompt_hash": hashes[spec.task_id]},
                    raw_path(out_path),
                )
        for spec, samples in zip(chunk, completions):
            for text in samples:
                append_jsonl(
                    {
                        "task_id": spec.task_id,
                        "solution": solution_program(spec.prompt, spec.entry_point, text),
                    },
                    out_path,
                )
        log.info("%s: %d/%d tasks generated", out_path, start + len(chunk), len(todo))
        if should_stop is not None and should_stop() and start + chunk_size < len(todo):
            from faulttune.resume import Preempted

            raise Preempted(f"{out_path}: stopped on request after {start + len(chunk)} tasks")


def load_tasks(benchmark: str, data_dir: str | None = None) -> list[Any]:
    """A benchmark by name (``faulttune.data.benchmarks``) or a Parquet file of task rows."""
    if benchmark.endswith(".parquet") or Path(benchmark).is_file():
        return read_parquet(benchmark, required=("task_id", "prompt", "entry_point"))
    from faulttune.data.benchmarks import load_benchmark

    return load_benchmark(benchmark, data_dir)


def run_generation(
    model: str,
    benchmark: str,
    out_path: str | Path,
    *,
    generation: Mapping[str, Any],
    data_dir: str | None = None,
    limit: int | None = None,
) -> None:
    """Greedy samples of ``model`` on ``benchmark`` into ``out_path`` (the ``generate`` rule).

    ``generation`` is the config section: ``backend`` (default hf), ``max_new_tokens`` (512) and
    the backend's options (:data:`faulttune.generate.BACKEND_OPTIONS`).
    """
    from faulttune.generate import backend_options, make_backend
    from faulttune.io import check_output_file

    check_output_file(out_path, "--out")
    check_output_file(raw_path(out_path), "--out (its raw file)")
    tasks = load_tasks(benchmark, data_dir)
    backend = make_backend(generation.get("backend", "hf"), model, **backend_options(generation))
    params = GenerationParams(max_new_tokens=generation.get("max_new_tokens", 512))
    generate_samples(tasks, backend, out_path, params=params, limit=limit)


def generate_command(args: Any) -> int:
    """``faulttune generate --model M --benchmark B --out SAMPLES.jsonl [...]``."""
    generation = {
        "backend": args.backend,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        # flags the CLI may add later; OPENAI_BASE_URL works for the openai backend meanwhile
        "tensor_parallel_size": getattr(args, "tensor_parallel_size", None),
        "base_url": getattr(args, "base_url", None),
    }
    from faulttune.io import DataError

    try:
        run_generation(args.model, args.benchmark, args.out, generation=generation,
                       data_dir=args.data_dir, limit=args.limit)
    except DataError as e:
        log.error("%s", e)
        return 2
    print(args.out)
    return 0
