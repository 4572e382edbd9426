"""Score samples against a benchmark with verdicts that agree with EvalPlus 0.3.1.

``faulttune score BENCHMARK SAMPLES.jsonl --out RESULTS.json [--data-dir DIR] [--workers N]``

SAMPLES rows (several per task allowed, for pass@k)::

    {"task_id": "HumanEval/0", "solution": "<self-contained program>"}
    {"task_id": "HumanEval/0", "completion": "<code appended to the task's prompt>"}

RESULTS.json::

    {"benchmark": str, "pass_at_1": float, "pass_at_k": {"pass@1": float, "pass@10": ...},
     "n_samples": int, "n_tasks": int,
     "results": [{"task_id": str, "status": "pass|fail|timeout|error", "detail": str}, ...]}

``results`` has one entry per input row, in input order. pass@k uses the unbiased estimator and is
averaged over the tasks present in the samples (rows with a missing or unknown ``task_id`` count
for no task); k in (1, 10, 100) where every task has at least k rows, as EvalPlus does.

How each benchmark checks a program (each sample runs in one sandbox process):

* ``humaneval``, ``humanevalfix``: the task's test code (``check(entry_point)``), 6 s wall clock.
* ``humaneval_plus``, ``mbpp``, ``mbpp_plus``: EvalPlus's differential testing. The canonical
  solution's outputs on the base (and plus) inputs are computed once and cached in
  ``$FAULTTUNE_CACHE/expected/<sha256 of the dataset file>.pkl`` (default ``~/.cache/faulttune``).
  Each input gets max(1 s, 4 x the canonical's time) and each stage (base, plus) at most
  min(60 s, sum of its limits) + 1 s; outputs are compared with EvalPlus's rules (``atol``, float
  tolerance, the special oracles of Mbpp/164/295/558/581, set- and not-None-comparisons), and the
  program runs under EvalPlus's reliability guard (no ``open``, ``os.remove``, ... ) with a 4 GiB
  memory limit. A sample passes ``*_plus`` only if it passes base and plus.

Known deviation: EvalPlus 0.3.1 fails every HumanEval/32 (``find_zero``) sample, the canonical
solution included (its special oracle ``continue``s past the per-input bookkeeping, so the run
looks incomplete); this scorer applies the oracle as intended (``|poly(xs, x)| <= atol``).

Known EvalPlus 0.3.1 artefacts (programs EvalPlus fails for reasons outside the program; this
scorer passes them, and ``bench/score_vs_evalplus.py`` lists them apart, see KNOWN_ARTEFACTS there):

* Mbpp/255 (``combinations_colors``), canonical solution included: ``evaluate()`` loads the
  expected outputs of *every* task (~1.7 GB resident for MBPP+), its pool workers fork with that
  heap and receive the task's ~800 MB of expected outputs as an argument, and the checking child
  they fork sets ``RLIMIT_AS`` = 4 GiB on an address space already at 4.7 GB (VmSize measured at
  the child's start). Plus input #85 (a 1.3 M-tuple output) raises ``MemoryError``. The limit
  meant for the program is spent by EvalPlus's own copies of the expected outputs; this scorer
  streams them from disk, so the program gets the whole 4 GiB.
* Mbpp/392 (canonical and comment-only mutants), same cause, carried over: a pool worker keeps
  its address space (4.5 GB) after Mbpp/255, and a sample it checks next runs above ``RLIMIT_AS``
  from the start. ``get_max_sum(10**6)`` (plus input #5) then takes > 1.63 s (its limit) and
  fails with ``TimeoutException``, while the identical program checked by the other worker
  (3.2 GB) passes it in < 0.25 s. Which samples hit it depends on EvalPlus's scheduling.
* Mbpp/630 (canonical) and HumanEval/130 (canonical or a docstring-only mutant): failed once in
  the benchmark run, passed in two EvalPlus reruns of the same samples (not reproduced). Mbpp/630
  is most likely the Mbpp/392 case (a worker after Mbpp/255); HumanEval/130 (1 M-element outputs,
  0.25 s per input against a 1 s limit) most likely a per-input time limit tripped under load.
  Both scorers set per-input limits from their own timing of the canonical solution, so limits
  differ between them (HumanEval/130 plus: 1 s in EvalPlus, up to 1.7 s here).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any

from faulttune.data.benchmarks import BenchmarkTask, dataset_path, load_benchmark
from faulttune.io import DataError, read_jsonl
from faulttune.sandbox import Limits, SandboxResult, run_in_pool, run_job

log = logging.getLogger(__name__)

DIFF_BENCHMARKS = {"humaneval_plus": ("humaneval", True), "mbpp": ("mbpp", False),
                   "mbpp_plus": ("mbpp", True)}  # name -> (EvalPlus dataset, with plus inputs)
TEST_TIMEOUT_S = 6.0
MIN_TIME_LIMIT_S = 1.0  # EvalPlus DEFAULT_MIN_TIME_LIMIT
GT_TIME_LIMIT_FACTOR = 4.0  # EvalPlus DEFAULT_GT_TIME_LIMIT_FACTOR
STAGE_CAP_S = 60.0  # EvalPlus EVALPLUS_TIMEOUT_PER_TASK default
MEMORY_MB = 4096  # EvalPlus EVALPLUS_MAX_MEMORY_BYTES default
_CACHE_VERSION = 2


def score_command(args: Any) -> int:
    """``faulttune score``: write RESULTS.json, print pass@k; rc 2 on unreadable samples."""
    try:
        summary = score_samples(args.benchmark, args.samples, args.out,
                                data_dir=args.data_dir, workers=args.workers)
    except (DataError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 2
    counts = defaultdict(int)
    for r in summary["results"]:
        counts[r["status"]] += 1
    print(f"{args.benchmark}: pass@1 = {summary['pass_at_1']:.4f} over {summary['n_tasks']} tasks, "
          f"{summary['n_samples']} samples ({dict(counts)}) -> {args.out}")
    return 0


def score_samples(benchmark: str, samples: str | Path, out: str | Path, *, data_dir: Any = None,
                  workers: int | None = None) -> dict[str, Any]:
    """Score every row of ``samples`` (see the module docstring), write and return RESULTS."""
    rows = read_jsonl(samples)
    tasks = {t.task_id: t for t in load_benchmark(benchmark, data_dir)}
    expected = _expected_if_needed(benchmark, tasks, data_dir, workers)
    plans: list[Any] = [_plan_row(benchmark, tasks, expected, row, i + 1, samples)
                        for i, row in enumerate(rows)]
    runnable = [i for i, p in enumerate(plans) if not isinstance(p, SandboxResult)]
    outcomes = run_in_pool(lambda i: run_job(*plans[i]), runnable, workers=workers,
                           desc=f"score {benchmark}")
    for i, outcome in zip(runnable, outcomes):
        plans[i] = outcome
    results = [{"task_id": _task_id_text(row), "status": r.status, "detail": r.detail}
               for row, r in zip(rows, plans)]
    summary = {"benchmark": benchmark, **summarise(results, set(tasks)), "results": results}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    return summary


def _task_id_text(row: dict[str, Any]) -> str:
    value = row.get("task_id")
    return value if isinstance(value, str) else ("" if value is None else str(value))


def summarise(results: list[dict[str, Any]], known: set[str]) -> dict[str, Any]:
    """pass@k (unbiased estimator, averaged over tasks) from per-row results."""
    from evalplus.eval import estimate_pass_at_k

    n: dict[str, int] = defaultdict(int)
    c: dict[str, int] = defaultdict(int)
    for r in results:
        if r["task_id"] in known:
            n[r["task_id"]] += 1
            c[r["task_id"]] += r["status"] == "pass"
    task_ids = sorted(n)
    totals = [n[t] for t in task_ids]
    correct = [c[t] for t in task_ids]
    pass_at_k = {f"pass@{k}": float(estimate_pass_at_k(totals, correct, k).mean())
                 for k in (1, 10, 100) if totals and min(totals) >= k}
    return {"pass_at_1": pass_at_k.get("pass@1", 0.0), "pass_at_k": pass_at_k,
            "n_samples": len(results), "n_tasks": len(task_ids)}


def _row_program(task: BenchmarkTask, row: dict[str, Any]) -> tuple[str | None, str]:
    """(program, "") or (None, reason) for one sample row."""
    if "solution" in row:
        code, prefix = row["solution"], ""
    elif "completion" in row:
        code, prefix = row["completion"], task.prompt
    else:
        return None, "row has neither 'solution' nor 'completion'"
    if not isinstance(code, str):
        return None, f"'solution'/'completion' must be a string, got {type(code).__name__}"
    if not code.strip():
        return None, "empty solution"
    return prefix + code, ""


def _plan_row(benchmark: str, tasks: dict[str, BenchmarkTask], expected: dict[str, Any] | None,
              row: dict[str, Any], lineno: int, samples: Any) -> Any:
    """A sandbox job ``(payload, limits)`` for one row, or an ``error`` SandboxResult."""
    where = f"{samples} line {lineno}"
    task_id = row.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        return SandboxResult("error", f"{where}: missing 'task_id'")
    if task_id not in tasks:
        return SandboxResult("error", f"{where}: unknown task_id {task_id!r} for {benchmark}")
    program, reason = _row_program(tasks[task_id], row)
    if program is None:
        return SandboxResult("error", f"{where}: {reason}")
    task = tasks[task_id]
    if expected is None:
        return {"mode": "tests", "program": program, "tests": task.test}, \
            Limits(timeout_s=TEST_TIMEOUT_S)
    return diff_job(benchmark, task, program, expected[task_id])


# --- differential testing ----------------------------------------------------------------------
#
# Expected outputs live in one folder per dataset file: ``<sha256>-v2/index.pkl`` maps task_id to
# ``{"file", "base_time", "plus_time", "needs_numpy"}`` and each task file is a pickle stream of
# ``(input, expected_output)`` pairs, base inputs then plus inputs. The harness reads the pairs one
# at a time, so a task with huge outputs (Mbpp/255: ~800 MB) never sits in memory whole.


def _stage(name: str, times: list[float]) -> dict[str, Any]:
    limits = [max(MIN_TIME_LIMIT_S, GT_TIME_LIMIT_FACTOR * t) for t in times]
    return {"name": name, "count": len(limits), "time_limits": limits,
            "budget_s": min(STAGE_CAP_S, sum(limits)) + 1.0}


def _oracle_sources() -> dict[str, str]:
    from evalplus.eval import _special_oracle as oracles

    names = ("_poly", "_surface_Area", "_digit_distance_nums")
    return {n: inspect.getsource(getattr(oracles, n)) for n in names}


def diff_job(benchmark: str, task: BenchmarkTask, program: str,
             expected: dict[str, Any]) -> tuple[dict[str, Any], Limits]:
    """The sandbox job that runs ``program`` on a task's inputs and compares with ``expected``.

    ``expected`` is the task's entry of :func:`expected_outputs`.
    """
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS, MBPP_OUTPUT_SET_EQ_TASKS

    dataset, with_plus = DIFF_BENCHMARKS[benchmark]
    stages = [_stage("base", expected["base_time"])]
    if with_plus:
        stages.append(_stage("plus", expected["plus_time"]))
    payload = {"mode": "diff", "program": program, "entry_point": task.entry_point,
               "dataset": dataset, "atol": task.extra["atol"], "stages": stages,
               "expected_file": expected["file"],
               "needs_numpy": expected["needs_numpy"] or task.extra["atol"] != 0,
               "oracle_sources": _oracle_sources(), "set_eq_tasks": MBPP_OUTPUT_SET_EQ_TASKS,
               "not_none_tasks": MBPP_OUTPUT_NOT_NONE_TASKS}
    timeout = sum(s["budget_s"] for s in stages) + 5.0
    limits = Limits(timeout_s=timeout, memory_mb=MEMORY_MB, stack_mb=MEMORY_MB, cpu_s=timeout)
    return payload, limits


def _expected_if_needed(benchmark: str, tasks: dict[str, BenchmarkTask], data_dir: Any,
                        workers: int | None) -> dict[str, Any] | None:
    if benchmark not in DIFF_BENCHMARKS:
        return None
    return expected_outputs(benchmark, list(tasks.values()), dataset_path(benchmark, data_dir),
                            workers=workers)


def cache_dir() -> Path:
    return Path(os.environ.get("FAULTTUNE_CACHE") or Path.home() / ".cache" / "faulttune")


def expected_outputs(benchmark: str, tasks: list[BenchmarkTask], source: Path,
                     workers: int | None = None) -> dict[str, dict[str, Any]]:
    """Index of the canonical outputs: ``{task_id: {file, base_time, plus_time, needs_numpy}}``.

    Computed once per dataset file (keyed by its sha256) with EvalPlus's ``trusted_exec``.
    """
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    folder = cache_dir() / "expected" / f"{digest}-v{_CACHE_VERSION}"
    if not (folder / "index.pkl").is_file():
        log.info("computing expected outputs of %s (%d tasks) into %s", benchmark, len(tasks),
                 folder)
        _build_expected(DIFF_BENCHMARKS[benchmark][0], tasks, folder, workers)
    with open(folder / "index.pkl", "rb") as f:
        index = pickle.load(f)
    return {tid: {**entry, "file": str(folder / entry["file"])} for tid, entry in index.items()}


def _build_expected(dataset: str, tasks: list[BenchmarkTask], folder: Path,
                    workers: int | None) -> None:
    import concurrent.futures as cf
    import multiprocessing
    import shutil
    import tempfile

    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    jobs = [(str(staging / f"{i}.pkl"), t.prompt + t.extra["canonical_body"], t.entry_point,
             t.extra["base_input"], t.extra["plus_input"],
             dataset == "mbpp" and t.entry_point in MBPP_OUTPUT_NOT_NONE_TASKS)
            for i, t in enumerate(tasks)]
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max(1, workers or os.cpu_count() or 1), mp_context=ctx) as pool:
        metas = list(pool.map(_write_canonical_outputs, jobs))
    index = {t.task_id: {**meta, "file": f"{i}.pkl"} for i, (t, meta) in
             enumerate(zip(tasks, metas))}
    with open(staging / "index.pkl", "wb") as f:
        pickle.dump(index, f)
    os.chmod(staging, 0o755)
    try:
        staging.rename(folder)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)


def _write_canonical_outputs(job: tuple[Any, ...]) -> dict[str, Any]:
    """Run one trusted canonical solution (EvalPlus's ``trusted_exec``) and stream its outputs."""
    from evalplus.eval import is_floats
    from evalplus.gen.util import trusted_exec

    path, code, entry, base, plus, not_none = job
    meta: dict[str, Any] = {"needs_numpy": False}
    with open(path, "wb") as f:
        for name, inputs in (("base", base), ("plus", plus)):
            outputs, meta[f"{name}_time"] = trusted_exec(
                code, inputs, entry, record_time=True, output_not_none=not_none)
            for inp, out in zip(inputs, outputs):
                pickle.dump((inp, out), f, protocol=pickle.HIGHEST_PROTOCOL)
                meta["needs_numpy"] = meta["needs_numpy"] or is_floats(out)
    return meta
