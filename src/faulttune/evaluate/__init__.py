"""Score samples against a benchmark with verdicts that agree with EvalPlus 0.3.1.

``faulttune score BENCHMARK SAMPLES.jsonl --out RESULTS.json [--data-dir DIR] [--workers N]``

SAMPLES rows (several per task allowed, for pass@k)::

    {"task_id": "HumanEval/0", "solution": "<self-contained program>"}
    {"task_id": "HumanEval/0", "completion": "<code appended to the task's prompt>"}

RESULTS.json::

    {"benchmark": str, "isolation": str, "pass_at_1": float,
     "pass_at_k": {"pass@1": float, "pass@10": ...}, "n_samples": int, "n_tasks": int,
     "results": [{"task_id": str, "status": "pass|fail|timeout|error", "detail": str}, ...]}

``results`` has one entry per input row, in input order. pass@k uses the unbiased estimator and is
averaged over the tasks present in the samples (rows with a missing or unknown ``task_id`` count
for no task); k in (1, 10, 100) where every task has at least k rows, as EvalPlus does.
``isolation`` says what kind of jail the programs ran in (``faulttune.sandbox.jail``).

How each benchmark checks a program (``faulttune.sandbox``; the program never shares a process
with what judges it):

* ``humaneval``, ``humanevalfix``: the task's test code (``check(entry_point)``) runs in a judge
  process with the prompt's own helper functions and calls the program by proxy; 6 s wall clock.
* ``humaneval_plus``, ``mbpp``, ``mbpp_plus``: EvalPlus's differential testing. The program answers
  each base (and plus) input; this process compares the answer with the canonical solution's
  output (cached by ``expected``) with EvalPlus's rules (``atol``, float tolerance, the special
  oracles of Mbpp/164/295/558/581, set- and not-None-comparisons). Each input gets max(1 s, 4 x
  the canonical's time) and each stage (base, plus) at most min(60 s, sum of its limits) + 1 s of
  the program's time; the program runs under EvalPlus's reliability guard (no ``open``,
  ``os.remove``, ...) with a 4 GiB address-space limit. A sample passes ``*_plus`` only if it passes
  base and plus. An answer may take max(1 MiB, 4 x the task's largest canonical output) on the wire
  (:func:`answer_limit_kb`); a larger one fails ("answer too large").

Known deviation: EvalPlus 0.3.1 fails every HumanEval/32 (``find_zero``) sample, the canonical
solution included (its special oracle ``continue``s past the per-input bookkeeping, so the run
looks incomplete); this scorer applies the oracle as intended (``|poly(xs, x)| <= atol``).
A program whose answer is not a plain value (a ``numpy.float64``, a ``float`` or ``dict``
subclass, a ``defaultdict``) fails here even where EvalPlus's ``==`` would accept it: only plain
builtin values (and exact ``Counter`` / ``OrderedDict``) cross the sandbox boundary.

Known EvalPlus 0.3.1 artefacts (programs EvalPlus fails for reasons outside the program; this
scorer passes them, and ``bench/score_vs_evalplus.py`` lists them apart, see KNOWN_ARTEFACTS there):

* Mbpp/255 (``combinations_colors``), canonical solution included: ``evaluate()`` loads the
  expected outputs of *every* task (~1.7 GB resident for MBPP+), its pool workers fork with that
  heap and receive the task's ~800 MB of expected outputs as an argument, and the checking child
  they fork sets ``RLIMIT_AS`` = 4 GiB on an address space already at 4.7 GB. Plus input #85 (a
  1.6 M-tuple output) raises ``MemoryError``. Here the expected outputs stay in the scorer, so
  the program gets the whole 4 GiB.
* Mbpp/392 (canonical and comment-only mutants), same cause, carried over: a pool worker keeps
  its address space (4.5 GB) after Mbpp/255, and a sample it checks next runs above ``RLIMIT_AS``
  from the start; ``get_max_sum(10**6)`` (plus input #5) then times out.
* Mbpp/630 (canonical) and HumanEval/130 (canonical or a docstring-only mutant): failed once in
  a benchmark run, passed in EvalPlus reruns of the same samples (not reproduced).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from faulttune.data.benchmarks import BenchmarkTask, dataset_path, load_benchmark
from faulttune.evaluate.expected import (
    DIFF_BENCHMARKS,
    expected_outputs,
    read_cases,
    reference_seconds,
    reference_times,
)
from faulttune.evaluate.samples import (
    EMPTY_SOLUTION,
    SampleRow,
    check_writable,
    read_samples,
    row_problem,
    write_atomically,
)
from faulttune.io import DataError
from faulttune.sandbox import (
    DiffJob,
    Limits,
    OutputCheck,
    SandboxResult,
    Stage,
    TestJob,
    isolation,
    prompt_helpers,
    run_differential,
    run_in_pool,
    run_test_job,
)

__all__ = ["DIFF_BENCHMARKS", "diff_job", "expected_outputs", "score_command",
           "score_samples", "summarise"]

log = logging.getLogger(__name__)

TEST_TIMEOUT_S = 6.0
MIN_TIME_LIMIT_S = 1.0  # EvalPlus DEFAULT_MIN_TIME_LIMIT
GT_TIME_LIMIT_FACTOR = 4.0  # EvalPlus DEFAULT_GT_TIME_LIMIT_FACTOR
STAGE_CAP_S = 60.0  # EvalPlus EVALPLUS_TIMEOUT_PER_TASK default
MEMORY_MB = 4096  # EvalPlus EVALPLUS_MAX_MEMORY_BYTES default
TEST_LIMITS = Limits(timeout_s=TEST_TIMEOUT_S)


def score_command(args: Any) -> int:
    """``faulttune score``: write RESULTS.json, print pass@k; rc 2 on bad input."""
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        summary = score_samples(args.benchmark, args.samples, args.out,
                                data_dir=args.data_dir, workers=args.workers)
    except (DataError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = Counter(r["status"] for r in summary["results"])
    print(f"{args.benchmark}: pass@1 = {summary['pass_at_1']:.4f} over {summary['n_tasks']} tasks, "
          f"{summary['n_samples']} samples ({dict(counts)}; {summary['isolation']}) -> {args.out}")
    return 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the pool, which kills every jail


def score_samples(benchmark: str, samples: str | Path, out: str | Path, *, data_dir: Any = None,
                  workers: int | None = None, rows: tuple[int, int] | None = None) -> dict[str, Any]:
    """Score every row of ``samples`` (see the module docstring), write and return RESULTS.
    ``rows``: only the rows [start, stop) (a shard's; the file as a whole must be scorable)."""
    out = check_writable(out, samples)
    _probe_jails_meanwhile()
    all_rows = read_samples(samples)
    tasks = {t.task_id: t for t in load_benchmark(benchmark, data_dir)}
    if not all_rows:
        raise DataError(f"{samples}: no sample rows (the file is empty)")
    all_problems = [row_problem(r.row, set(tasks), benchmark) for r in all_rows]
    if all(p and p != EMPTY_SOLUTION for p in all_problems):
        raise DataError(f"{samples}: no scorable row in {len(all_rows)} ({_count(all_problems)})")
    part = slice(*rows) if rows else slice(None)
    rows_of, problems = all_rows[part], all_problems[part]
    expected = _expected_if_needed(benchmark, tasks, data_dir, workers)
    plans: list[Any] = [
        SandboxResult("error", f"{samples} line {r.lineno}: {problem}") if problem
        else _plan(benchmark, tasks[r.row["task_id"]], r, expected)
        for r, problem in zip(rows_of, problems)]
    runnable = sorted((i for i, p in enumerate(plans) if not isinstance(p, SandboxResult)),
                      key=lambda i: -_canonical_seconds(expected, rows_of[i].row["task_id"]))
    outcomes = run_in_pool(_run_plan, [plans[i] for i in runnable], workers=workers,
                           desc=f"score {benchmark}")
    for i, outcome in zip(runnable, outcomes):
        plans[i] = outcome
    results = [{"task_id": r.task_id_text(), "status": p.status, "detail": p.detail}
               for r, p in zip(rows_of, plans)]
    summary = {"benchmark": benchmark, "isolation": isolation().label(),
               **summarise(results, set(tasks)), "results": results}
    write_atomically(summary, out)
    return summary


def _probe_jails_meanwhile() -> None:
    """Probe the sandbox (a few jails started, ~0.3 s mostly waiting) while this thread reads the
    samples and the benchmark; a failure is raised again where the first jail needs it."""
    def probe() -> None:
        with contextlib.suppress(Exception):
            isolation()

    threading.Thread(target=probe, name="probe-jails", daemon=True).start()


def _count(problems: list[str]) -> str:
    kinds = Counter(p.split(" (")[0].split(" for ")[0] for p in problems)
    return ", ".join(f"{n} x {kind}" for kind, n in kinds.most_common())


def _canonical_seconds(expected: dict[str, Any] | None, task_id: str) -> float:
    """How long the task's canonical solution took on its inputs (0 without expected outputs):
    runs are started longest first, so that the last worker to finish does not start a long one
    last (a correct program of HumanEval/139 runs ~4 s, most run in ~0.05 s)."""
    if expected is None:
        return 0.0
    return reference_seconds(expected[task_id])


def _run_plan(plan: TestJob | DiffJob) -> SandboxResult:
    if isinstance(plan, DiffJob):
        return run_differential(plan)
    return run_test_job(plan, TEST_LIMITS)


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


def _program(task: BenchmarkTask, row: dict[str, Any]) -> str:
    """The self-contained program of a checked row (see ``samples.row_problem``)."""
    if "solution" in row:
        return row["solution"]
    return task.prompt + row["completion"]


def _plan(benchmark: str, task: BenchmarkTask, sample: SampleRow,
          expected: dict[str, Any] | None) -> TestJob | DiffJob:
    program = _program(task, sample.row)
    if expected is None:
        return TestJob(program, task.test, helpers=prompt_helpers(task.prompt),
                       entry_point=task.entry_point)
    return diff_job(benchmark, task, program, expected[task.task_id])


ANSWER_FLOOR_KB = 1024  # no task's answer limit is below 1 MiB ...
ANSWER_FACTOR = 4  # ... nor below 4 x its largest canonical output (ints may come back as floats)
ANSWER_CAP_KB = 1024 * 1024  # ... nor above 1 GiB (Mbpp/255's largest output is 261 MB)


def answer_limit_kb(largest_output_bytes: int) -> int:
    """The most one answer of a task may take on the wire: the canonical outputs of HumanEval+
    and MBPP+ are tiny (median 23 bytes; 8 tasks exceed 64 KiB), so the limit follows each
    task's own largest output rather than one size for all."""
    wanted = ANSWER_FACTOR * largest_output_bytes // 1024 + 1
    return min(ANSWER_CAP_KB, max(ANSWER_FLOOR_KB, wanted))


def _stage(name: str, expected: dict[str, Any]) -> Stage:
    """EvalPlus's limits (``max(1 s, 4 x the reference)``) on :func:`reference_times`."""
    limits = tuple(max(MIN_TIME_LIMIT_S, GT_TIME_LIMIT_FACTOR * t)
                   for t in reference_times(expected, name))
    return Stage(name, limits, min(STAGE_CAP_S, sum(limits)) + 1.0)


def diff_job(benchmark: str, task: BenchmarkTask, program: str,
             expected: dict[str, Any]) -> DiffJob:
    """The job that runs ``program`` on a task's inputs, compared with ``expected`` (the task's
    entry of :func:`expected_outputs`)."""
    dataset, with_plus = DIFF_BENCHMARKS[benchmark]
    stages = [_stage("base", expected)]
    if with_plus:
        stages.append(_stage("plus", expected))
    timeout = sum(s.budget_s for s in stages) + 5.0
    limits = Limits(timeout_s=timeout, memory_mb=MEMORY_MB, stack_mb=MEMORY_MB, cpu_s=timeout,
                    max_processes=1, max_answer_kb=answer_limit_kb(expected["largest"]))
    path = expected["file"]
    return DiffJob(program, task.entry_point, tuple(stages),
                   OutputCheck(dataset, task.entry_point, task.extra["atol"]),
                   lambda: read_cases(path), limits)


def _expected_if_needed(benchmark: str, tasks: dict[str, BenchmarkTask], data_dir: Any,
                        workers: int | None) -> dict[str, Any] | None:
    if benchmark not in DIFF_BENCHMARKS:
        return None
    return expected_outputs(benchmark, list(tasks.values()), dataset_path(benchmark, data_dir),
                            workers=workers)
