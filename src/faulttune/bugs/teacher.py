"""FGit's teacher variants (docs/methods.md §2.1): ask an LLM for incorrect-but-similar code.

:func:`teacher_candidates` sends :func:`faulttune.generate.prompts.teacher_messages` once per task and
samples ``n_variants`` answers (FGit: 3 at temperature 0.8). The teacher answers in markdown, so
there is no assistant pre-fill and no stop string. Candidate rows keep the raw text; code
extraction, checks and selection happen in :func:`faulttune.bugs.pairs.select_pairs`.

Candidate row schema: ``id`` (``teacher:<task_id>:<variant>``), ``task_id``, ``variant`` (int,
0-based sample index), ``raw`` (the full answer text).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faulttune.generate.base import Backend, GenerationParams
from faulttune.generate.prompts import teacher_messages
from faulttune.generate.stops import FirstPythonBlock
from faulttune.io import DataError, read_appended_jsonl

log = logging.getLogger(__name__)


def _require(task: dict[str, Any], index: int, fields: Sequence[str]) -> None:
    for field in fields:
        if not isinstance(task.get(field), str):
            raise DataError(f"tasks row {index} ({task.get('task_id', '?')}): "
                             f"field '{field}' missing or not a string")


# Tasks per backend call. Chunk c samples with the seed (seed, c), so the variants do not depend
# on where a run was interrupted: a resumed run gives the rows an uninterrupted one gives.
CHUNK = 16


def teacher_candidates(tasks: Sequence[dict[str, Any]], backend: Backend, n_variants: int = 3,
                       temperature: float = 0.8, seed: int = 0, max_new_tokens: int = 768, *,
                       state: str | Path | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       first_chunk: int = 0) -> list[dict[str, Any]]:
    """``n_variants`` raw teacher answers per task, one row each (schema in the module doc).

    ``state``: a JSONL file the rows of every finished chunk are appended to; chunks already in
    it are not asked again. ``should_stop()`` (SIGTERM) ends the run after a chunk with
    ``resume.Preempted``. ``first_chunk``: the index of the first task's chunk in the whole table
    (a shard's, :mod:`faulttune.shards`), which seeds each chunk as a whole run would."""
    for i, task in enumerate(tasks):
        _require(task, i, ("task_id", "instruction", "solution"))
    done = _finished_chunks(state, tasks, n_variants)
    chunks = -(-len(tasks) // CHUNK)
    log.info("teacher: %d tasks in %d chunks, %d chunks already asked", len(tasks), chunks, len(done))
    rows: list[dict[str, Any]] = []
    for index, start in enumerate(range(0, len(tasks), CHUNK)):
        chunk = tasks[start:start + CHUNK]
        if index in done:
            rows += done[index]
            continue
        new = _ask(chunk, backend, n_variants, temperature,
                   seed * 1_000_003 + first_chunk + index, max_new_tokens)
        if state is not None:
            _append_chunk(state, new, index)
        rows += new
        if should_stop is not None and should_stop() and start + CHUNK < len(tasks):
            from faulttune.resume import Preempted

            raise Preempted(f"teacher stopped on request after {start + len(chunk)} tasks")
    return rows


def _ask(chunk: Sequence[dict[str, Any]], backend: Backend, n_variants: int, temperature: float,
         seed: int, max_new_tokens: int) -> list[dict[str, Any]]:
    conversations = [teacher_messages(t["instruction"], t["solution"]) for t in chunk]
    params = GenerationParams(n=n_variants, temperature=temperature, seed=seed, prefill="",
                              stop=(), max_new_tokens=max_new_tokens)
    answers = backend.chat(conversations, params, [FirstPythonBlock()] * len(chunk))
    if len(answers) != len(chunk):
        raise RuntimeError(f"backend {backend.name} returned {len(answers)} answer lists "
                           f"for {len(chunk)} conversations")
    return [{"id": f"teacher:{task['task_id']}:{k}", "task_id": task["task_id"], "variant": k,
             "raw": text}
            for task, texts in zip(chunk, answers) for k, text in enumerate(texts)]


def _append_chunk(state: str | Path, rows: Sequence[dict[str, Any]], index: int) -> None:
    """A chunk's rows in one write (flushed), so a kill cuts at most the chunk being written."""
    Path(state).parent.mkdir(parents=True, exist_ok=True)
    with open(state, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps({**row, "chunk": index}, ensure_ascii=False) + "\n" for row in rows))
        f.flush()


def _finished_chunks(state: str | Path | None, tasks: Sequence[dict[str, Any]], n_variants: int
                     ) -> dict[int, list[dict[str, Any]]]:
    """chunk index -> its rows, for every chunk whose rows are all in ``state`` (a chunk cut short
    by a kill is asked again)."""
    if state is None:
        return {}
    by_chunk: dict[int, list[dict[str, Any]]] = {}
    for _, row in read_appended_jsonl(state):
        by_chunk.setdefault(row.pop("chunk"), []).append(row)
    return {index: rows for index, rows in by_chunk.items()
            if len(rows) == n_variants * len(tasks[index * CHUNK:(index + 1) * CHUNK])}
