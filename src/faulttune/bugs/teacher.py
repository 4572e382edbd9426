"""FGit's teacher variants (docs/methods.md §2.1): ask an LLM for incorrect-but-similar code.

:func:`teacher_candidates` sends :func:`faulttune.generate.prompts.teacher_messages` once per task and
samples ``n_variants`` answers (FGit: 3 at temperature 0.8). The teacher answers in markdown, so
there is no assistant pre-fill and no stop string. Candidate rows keep the raw text; code
extraction, checks and selection happen in :func:`faulttune.bugs.pairs.select_pairs`.

Candidate row schema: ``id`` (``teacher:<task_id>:<variant>``), ``task_id``, ``variant`` (int,
0-based sample index), ``raw`` (the full answer text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faulttune.generate.base import Backend, GenerationParams
from faulttune.generate.prompts import teacher_messages
from faulttune.generate.stops import FirstPythonBlock
from faulttune.io import DataError


def _require(task: dict[str, Any], index: int, fields: Sequence[str]) -> None:
    for field in fields:
        if not isinstance(task.get(field), str):
            raise DataError(f"tasks row {index} ({task.get('task_id', '?')}): "
                             f"field '{field}' missing or not a string")


def teacher_candidates(tasks: Sequence[dict[str, Any]], backend: Backend, n_variants: int = 3,
                       temperature: float = 0.8, seed: int = 0,
                       max_new_tokens: int = 768) -> list[dict[str, Any]]:
    """``n_variants`` raw teacher answers per task, one row each (schema in the module doc)."""
    for i, task in enumerate(tasks):
        _require(task, i, ("task_id", "instruction", "solution"))
    conversations = [teacher_messages(t["instruction"], t["solution"]) for t in tasks]
    params = GenerationParams(n=n_variants, temperature=temperature, seed=seed, prefill="",
                              stop=(), max_new_tokens=max_new_tokens)
    stop_rules = [FirstPythonBlock()] * len(conversations)
    answers = backend.chat(conversations, params, stop_rules) if conversations else []
    if len(answers) != len(tasks):
        raise RuntimeError(f"backend {backend.name} returned {len(answers)} answer lists "
                           f"for {len(tasks)} conversations")
    return [{"id": f"teacher:{task['task_id']}:{k}", "task_id": task["task_id"], "variant": k,
             "raw": text}
            for task, texts in zip(tasks, answers) for k, text in enumerate(texts)]
