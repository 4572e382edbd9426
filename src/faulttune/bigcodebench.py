"""BigCodeBench (full / hard x complete / instruct): tasks, generation rows, samples and scoring.

Tasks are dicts in BigCodeBench's own format (one JSON object per line)::

    {"task_id": "BigCodeBench/13", "complete_prompt": str, "instruct_prompt": str,
     "canonical_solution": str, "code_prompt": str, "test": str, "entry_point": str,
     "libs": str | list}          # ``test`` defines a unittest ``TestCases`` class

They come from a local JSONL (:func:`read_tasks_jsonl`) or the hub datasets
``bigcode/bigcodebench`` / ``bigcode/bigcodebench-hard`` (:func:`load_hub_tasks`, needs network),
for generation and for the contamination check alike (:func:`benchmark_tasks`).

Benchmark names: ``bigcodebench-{subset}-{split}``, subset in ``full|hard``, split in
``complete|instruct`` (BigCodeBench's CLI calls the first ``--subset`` and the second ``--split``).
The model sees ``complete_prompt`` (complete) or ``instruct_prompt`` (instruct) through
``prompts.solve_messages`` like every other benchmark; samples are ``{"task_id", "solution"}``
with a self-contained program, which is BigCodeBench's own sample format.

Scoring comes ONLY from the official package's local execution, run in its own environment
(``envs/bigcodebench.yaml``): :func:`evaluate_command` builds
``bigcodebench.evaluate --execution local ...`` (never its remote ``gradio`` default, never
``e2b``) and :func:`parse_official_results` turns its ``<samples>_eval_results.json`` into our
RESULTS.json shape (``evaluate.score_samples``'s)::

    {"benchmark": str, "scorer": str, "pass_at_1": float, "pass_at_k": {...}, "n_samples": int,
     "n_tasks": int, "results": [{"task_id": str, "status": "pass|fail|timeout|error",
                                  "detail": str}, ...]}

There is no fallback through ``faulttune.sandbox``: BigCodeBench's tests check DataFrames,
arrays, plots and files that the tests and the program share, which cannot cross between a judge
and a program in separate jails (only plain values do), so such a scorer would fail correct
programs.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faulttune.io import DataError, read_jsonl, write_jsonl

TASK_FIELDS = ("task_id", "complete_prompt", "instruct_prompt", "canonical_solution",
               "code_prompt", "test", "entry_point", "libs")
SUBSETS = ("full", "hard")
SPLITS = ("complete", "instruct")
HUB_DATASETS = {"full": "bigcode/bigcodebench", "hard": "bigcode/bigcodebench-hard"}
HUB_VERSION = "v0.1.4"  # the split name of the hub datasets that bigcodebench 0.2.x evaluates
OFFICIAL_SCORER = "bigcodebench.evaluate --execution local"
NOT_EVALUATED = "not evaluated by bigcodebench (task not in the selected subset)"


# ------------------------------------------------------------------------------------------------
# names and tasks


def benchmark_name(subset: str, split: str) -> str:
    """``bigcodebench-hard-instruct`` etc.; unknown values raise."""
    if subset not in SUBSETS or split not in SPLITS:
        raise ValueError(f"BigCodeBench subset must be one of {SUBSETS} and split one of {SPLITS}, "
                         f"got {subset!r} / {split!r}")
    return f"bigcodebench-{subset}-{split}"


def subset_name(subset: str) -> str:
    """``bigcodebench-full`` / ``bigcodebench-hard``: a subset's tasks under both prompts (what
    the contamination check compares training data with)."""
    benchmark_name(subset, "complete")
    return f"bigcodebench-{subset}"


def parse_benchmark_name(name: str) -> tuple[str, str]:
    """``bigcodebench-hard-instruct`` -> ("hard", "instruct")."""
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "bigcodebench":
        raise ValueError(f"not a BigCodeBench benchmark name: {name!r} "
                         "(expected bigcodebench-{full|hard}-{complete|instruct})")
    benchmark_name(parts[1], parts[2])
    return parts[1], parts[2]


def check_task(task: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A task dict with every field of :data:`TASK_FIELDS` (strings; ``libs`` a string or list)."""
    for field in TASK_FIELDS:
        if field not in task:
            raise DataError(f"{where}: missing '{field}'")
        if field != "libs" and not isinstance(task[field], str):
            raise DataError(f"{where}: '{field}' must be a string, got {type(task[field]).__name__}")
    if "class TestCases" not in task["test"]:
        raise DataError(f"{where}: 'test' defines no unittest class TestCases")
    return dict(task)


def read_tasks_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Tasks from a JSONL in BigCodeBench's format; errors name the file, line and field."""
    rows = read_jsonl(path, required=TASK_FIELDS)
    return [check_task(row, f"{path} line {i + 1}") for i, row in enumerate(rows)]


def load_hub_tasks(subset: str = "full", version: str = HUB_VERSION) -> list[dict[str, Any]]:
    """Tasks of ``bigcode/bigcodebench[-hard]`` at split ``version`` (``datasets``, network)."""
    from datasets import load_dataset

    benchmark_name(subset, "complete")
    dataset = load_dataset(HUB_DATASETS[subset], split=version)
    return [check_task(row, f"{HUB_DATASETS[subset]}@{version} row {i}")
            for i, row in enumerate(dataset)]


def load_tasks(source: str | os.PathLike[str] | None = None, subset: str = "full",
               version: str = HUB_VERSION) -> list[dict[str, Any]]:
    """A local JSONL when ``source`` is given, else the hub dataset of ``subset``."""
    return read_tasks_jsonl(source) if source is not None else load_hub_tasks(subset, version)


def benchmark_tasks(name: str, source: str | os.PathLike[str] | None = None) -> list[Any]:
    """The tasks of ``bigcodebench-{subset}-{split}`` (or of a whole subset,
    ``bigcodebench-{subset}``) as :class:`faulttune.data.benchmarks.BenchmarkTask` rows, from
    the same place :func:`load_tasks` reads them for generation (``source``, else the hub): the
    prompt the model sees (a whole subset: ``complete_prompt``, with ``instruct_prompt`` in
    ``extra["instruct_prompt"]``) and the reference program ``complete_prompt +
    canonical_solution``. For the contamination check."""
    from faulttune.data.benchmarks import BenchmarkTask

    parts = name.split("-")
    if len(parts) == 2 and parts[0] == "bigcodebench":
        subset, split = parts[1], None
        subset_name(subset)
    else:
        subset, split = parse_benchmark_name(name)
    return [BenchmarkTask(
        task_id=t["task_id"], benchmark=name,
        prompt=task_prompt(t, split) if split else t["complete_prompt"],
        entry_point=t["entry_point"], canonical_solution=t["complete_prompt"] + t["canonical_solution"],
        test=t["test"], extra={} if split else {"instruct_prompt": t["instruct_prompt"]})
        for t in load_tasks(source, subset)]


def write_tasks_jsonl(tasks: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write tasks in BigCodeBench's format (e.g. a local copy for ``BIGCODEBENCH_OVERRIDE_PATH``)."""
    rows = [{f: check_task(t, f"task {i}")[f] for f in TASK_FIELDS} for i, t in enumerate(tasks)]
    write_jsonl(rows, path)
    return Path(path)


def task_prompt(task: Mapping[str, Any], split: str) -> str:
    """What the model is asked: ``complete_prompt`` or ``instruct_prompt``."""
    benchmark_name("full", split)
    return task["complete_prompt"] if split == "complete" else task["instruct_prompt"]


def bench_rows(tasks: Sequence[Mapping[str, Any]], subset: str, split: str,
               limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of ``data.bench_table.BENCH_SCHEMA`` for generation through our backends."""
    name = benchmark_name(subset, split)
    rows = [{"task_id": t["task_id"], "benchmark": name, "scored_as": name,
             "prompt": task_prompt(t, split), "entry_point": t["entry_point"], "demo_split": False}
            for t in tasks]
    return rows[:limit] if limit else rows


# ------------------------------------------------------------------------------------------------
# samples


def write_samples(samples: Sequence[Mapping[str, Any]], path: str | os.PathLike[str],
                  tasks: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Samples in BigCodeBench's format, one ``{"task_id", "solution"}`` per line, in input order.

    ``samples`` are our generation rows (``task_id``, ``solution``: a self-contained program); with
    ``tasks``, a sample of an unknown task raises.
    """
    known = None if tasks is None else {t["task_id"] for t in tasks}
    rows = []
    for i, sample in enumerate(samples):
        for field in ("task_id", "solution"):
            if not isinstance(sample.get(field), str):
                raise DataError(f"sample {i}: '{field}' must be a string")
        if known is not None and sample["task_id"] not in known:
            raise DataError(f"sample {i}: unknown task_id {sample['task_id']!r}")
        rows.append({"task_id": sample["task_id"], "solution": sample["solution"]})
    write_jsonl(rows, path)
    return Path(path)


# ------------------------------------------------------------------------------------------------
# official scoring (bigcodebench package, local execution)


def official_result_path(samples: str | os.PathLike[str]) -> Path:
    """Where ``bigcodebench.evaluate`` writes its results for a ``.jsonl`` samples file."""
    samples = Path(samples)
    if samples.suffix != ".jsonl":
        raise ValueError(f"{samples}: bigcodebench.evaluate needs a .jsonl samples file")
    return samples.with_name(samples.name.removesuffix(".jsonl") + "_eval_results.json")


def evaluate_command(samples: str | os.PathLike[str], subset: str, split: str, *,
                     task_ids: Sequence[str] | None = None, parallel: int | None = None,
                     pass_k: Sequence[int] = (1,), calibrated: bool = True) -> list[str]:
    """argv of the official evaluation with LOCAL execution (bigcodebench >= 0.2, a Fire CLI).

    ``task_ids``: evaluate only these tasks (``--selective_evaluate``; the package otherwise
    asserts that the samples cover every task of the subset). An existing result file raises: the
    package would silently reuse it, or stop to ask on stdin.
    """
    benchmark_name(subset, split)
    result = official_result_path(samples)
    if result.exists():
        raise FileExistsError(f"{result} exists; bigcodebench.evaluate would reuse it. Remove it.")
    argv = ["bigcodebench.evaluate", "--execution", "local", "--split", split, "--subset", subset,
            "--samples", str(samples), "--pass_k", ",".join(str(k) for k in pass_k),
            "--calibrated", str(calibrated), "--save_pass_rate", "True"]
    if parallel is not None:
        argv += ["--parallel", str(parallel)]
    if task_ids:
        argv += ["--selective_evaluate", ",".join(task_ids)]
    return argv


def official_env(local_tasks: str | os.PathLike[str] | None = None,
                 base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the official run; with ``local_tasks`` (a BigCodeBench-format JSONL) the
    package reads it instead of the hub (``BIGCODEBENCH_OVERRIDE_PATH``)."""
    env = dict(os.environ if base is None else base)
    if local_tasks is not None:
        env["BIGCODEBENCH_OVERRIDE_PATH"] = str(Path(local_tasks).resolve())
    return env


def _official_status(status: Any, details: Mapping[str, str]) -> str:
    if status in ("pass", "fail", "timeout"):
        # the harness says "fail" when the program itself could not run (details["ALL"])
        return "error" if status == "fail" and set(details) == {"ALL"} else status
    return "error"


def _official_detail(details: Mapping[str, str], limit: int = 600) -> str:
    """'test_name: last line of its traceback; ...' (``ALL``: the exception outside the tests)."""
    parts = []
    for name, trace in sorted(details.items()):
        lines = [line for line in str(trace).strip().splitlines() if line.strip()]
        parts.append(f"{name}: {lines[-1].strip() if lines else ''}")
    text = "; ".join(parts)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_official_results(result_json: str | os.PathLike[str], benchmark: str,
                           samples: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Our RESULTS.json shape from ``<samples>_eval_results.json``.

    Rows follow the order of ``samples`` when given (the package groups by task, in completion
    order within a task); otherwise task by task as in the file.
    """
    from faulttune.evaluate import summarise

    with open(result_json, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data.get("eval"), dict):
        raise DataError(f"{result_json}: no 'eval' mapping (not a bigcodebench result file)")
    per_task: dict[str, list[dict[str, Any]]] = {}
    for task_id, entries in data["eval"].items():
        per_task[task_id] = [{"task_id": task_id,
                              "status": _official_status(e.get("status"), e.get("details") or {}),
                              "detail": _official_detail(e.get("details") or {})}
                             for e in entries]
    results = _in_sample_order(per_task, samples) if samples else [
        r for rows in per_task.values() for r in rows]
    return {"benchmark": benchmark, "scorer": OFFICIAL_SCORER,
            **summarise(results, set(per_task)), "results": results}


def _in_sample_order(per_task: dict[str, list[dict[str, Any]]], samples: str | os.PathLike[str]
                     ) -> list[dict[str, Any]]:
    queues = {k: list(v) for k, v in per_task.items()}
    results = []
    for row in read_jsonl(samples, required=("task_id",)):
        queue = queues.get(row["task_id"])
        results.append(queue.pop(0) if queue else {
            "task_id": row["task_id"], "status": "error",
            "detail": NOT_EVALUATED})
    return results


def score_official(samples: str | os.PathLike[str], benchmark: str, out: str | os.PathLike[str],
                   *, local_tasks: str | os.PathLike[str] | None = None,
                   task_ids: Sequence[str] | None = None, parallel: int | None = None,
                   log_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run the official local evaluation (inside ``envs/bigcodebench.yaml``) and write RESULTS."""
    subset, split = parse_benchmark_name(benchmark)
    argv = evaluate_command(samples, subset, split, task_ids=task_ids, parallel=parallel)
    with open(log_path or os.devnull, "w", encoding="utf-8") as log:
        log.write(shlex.join(argv) + "\n")
        log.flush()
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                              env=official_env(local_tasks), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {done.returncode} (log: {log_path})")
    summary = parse_official_results(official_result_path(samples), benchmark, samples)
    _write_json(summary, out)
    return summary


def _write_json(data: dict[str, Any], out: str | os.PathLike[str]) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
