"""Benchmark tasks by id, across the spellings of their sources, and the evaluated benchmarks'
tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_TASK_FAMILIES = {"humaneval": "humaneval", "python": "humaneval", "mbpp": "mbpp"}


def task_key(task_id: Any) -> tuple[str, str] | None:
    """The benchmark task an id names, across the spellings of its sources: (family, number) for
    ``HumanEval/N``, ``Python/N`` (HumanEvalPack), ``Mbpp/N`` and ``mbpp/N`` (MBPP's train split);
    None for any other id."""
    family, _, number = str(task_id).partition("/")
    family = _TASK_FAMILIES.get(family.lower())
    return (family, number) if family and number.isdigit() else None


def same_task_ids(rows: Sequence[Mapping[str, Any]], benchmarks: Mapping[str, Sequence[Any]]
                  ) -> dict[int, str]:
    """row index -> reason, for every row whose ``task_id`` is a task of an evaluated benchmark."""
    owners: dict[tuple[str, str], str] = {}
    for name, tasks in benchmarks.items():
        for task in tasks:
            key = task_key(task.task_id)
            if key is not None:
                owners.setdefault(key, f"same task as {name} {task.task_id}")
    out = {}
    for r, row in enumerate(rows):
        key = task_key(row.get("task_id"))
        if key in owners:
            out[r] = owners[key]
    return out


def load_benchmarks(names: Sequence[str], data_dir: Any = None,
                    task_ids: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[Any]]:
    """name -> tasks via ``load_benchmark``; ``task_ids[name]`` restricts a benchmark to those ids
    (e.g. the held-out half of the demo split: only that half must stay unseen)."""
    from faulttune.data.benchmarks import load_benchmark

    out = {}
    for name in names:
        tasks = load_benchmark(name, data_dir)
        if task_ids and name in task_ids:
            keep = set(task_ids[name])
            tasks = [t for t in tasks if t.task_id in keep]
        out[name] = tasks
    return out
