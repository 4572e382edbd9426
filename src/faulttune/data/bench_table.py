"""Benchmarks -> one Parquet schema (``results/{run}/data/bench/{benchmark}.parquet``).

| column | type | meaning |
|---|---|---|
| task_id | str | the benchmark's own id (``HumanEval/3``, ``Mbpp/2``, ``Python/7``) |
| benchmark | str | the benchmark named in the config |
| scored_as | str | the scorer benchmark (``humaneval-split-heldout`` scores as ``humaneval``) |
| prompt | str | the task text the model is asked to solve (fed to ``prompts.solve_messages``) |
| entry_point | str | the function under test |
| demo_split | bool | true for the demo split (the report labels these rows) |

Generation uses one prompt set per benchmark family: ``humaneval_plus`` is scored on the samples
generated for ``humaneval``, ``mbpp_plus`` on those of ``mbpp`` (:data:`PROMPT_SET`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from faulttune.data.benchmarks import BenchmarkTask, load_benchmark

BENCH_SCHEMA = pa.schema([
    ("task_id", pa.string()), ("benchmark", pa.string()), ("scored_as", pa.string()),
    ("prompt", pa.string()), ("entry_point", pa.string()), ("demo_split", pa.bool_()),
])
# benchmark -> the benchmark whose generated samples it scores
PROMPT_SET = {
    "humaneval-split-heldout": "humaneval-split-heldout",
    "humaneval": "humaneval",
    "humaneval_plus": "humaneval",
    "mbpp": "mbpp",
    "mbpp_plus": "mbpp",
    "humanevalfix": "humanevalfix",
}
PROMPT_SET.update({f"bigcodebench-{s}-{k}": f"bigcodebench-{s}-{k}"
                   for s in ("full", "hard") for k in ("complete", "instruct")})
SCORED_AS = {"humaneval-split-heldout": "humaneval"}

_FIX_TASK = (
    "Fix the bug in the function `{entry_point}` below. The tests it must pass are shown after it.\n\n"
    "```python\n{buggy}\n```\n\nTests:\n```python\n{tests}\n```"
)


def fix_task_prompt(task: BenchmarkTask) -> str:
    """HumanEvalFix as a generation task: the buggy function and its tests, in our own wording."""
    buggy = task.extra["declaration"] + task.extra["buggy_solution"]
    return _FIX_TASK.format(entry_point=task.entry_point, buggy=buggy.strip("\n"), tests=task.test.strip("\n"))


def benchmark_rows(
    name: str, *, split: tuple[int, int] | None = None, data_dir: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of one benchmark of :mod:`faulttune.data.benchmarks` in :data:`BENCH_SCHEMA`
    (BigCodeBench's come from :func:`faulttune.bigcodebench.bench_rows`); ``split``: the demo
    split's (seed, training tasks), needed by ``humaneval-split-heldout``."""
    if name == "humaneval-split-heldout":
        from faulttune.data.sources import humaneval_split

        if split is None:
            raise ValueError(f"{name} needs the demo split's (seed, training tasks)")
        _, heldout = humaneval_split(*split)
        keep = set(heldout)
        tasks = [t for t in load_benchmark("humaneval", data_dir) if t.task_id in keep]
    else:
        tasks = load_benchmark(name, data_dir)
    rows = [
        {"task_id": t.task_id, "benchmark": name, "scored_as": SCORED_AS.get(name, name),
         "prompt": fix_task_prompt(t) if name == "humanevalfix" else t.prompt,
         "entry_point": t.entry_point, "demo_split": name == "humaneval-split-heldout"}
        for t in tasks
    ]
    return rows[:limit] if limit else rows
