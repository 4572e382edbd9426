"""Pairs of correct code and a wrong twin, from mutation, CCT injection and the teacher.

Input ``tasks``: dict rows of the training table with the string columns ``task_id``,
``instruction``, ``solution`` (the correct code, a full program), ``test`` (complete checking code
run after the program, or "" when the task has none) and ``entry_point`` ("" when unknown).

Pairs (``results/{run}/bugs/pairs_{source}.parquet``, :data:`PAIRS_SCHEMA`), one row per twin:

| column | type | meaning |
|---|---|---|
| id | str | ``<source>:<task_id>:...``, unique and stable for a seed |
| task_id, instruction | str | copied from the task |
| source | str | "mutation", "cct" or "teacher" |
| correct | str | the task's solution |
| incorrect | str | the twin (a full program) |
| family | str | cct: variable_misuse, operator_misuse or function_missing; mutation: the rule |
| | | (universalmutator's, e.g. ``< ==> <=``); teacher: "teacher" |
| similarity | float | of incorrect to correct; levenshtein unless select_pairs is told otherwise |
| verified | str | "true": fails the task's tests in the sandbox; "unknown": no tests to run |
| | | (the task has none, or verify=False) |
| edit_line | int or null | 1-based line of the edit (mutation, cct); null for teacher |
| edit_col | int or null | 0-based character column of the edit (cct); null otherwise |
| edit | str | human-readable edit, e.g. ``swap_operator 6:23 '*' -> '%'`` ("" for teacher) |
| detail | str | sandbox verdict of the failing run, "<status>: <detail>"; "" when not run |

Mutation and CCT edit only the code the model writes (:func:`faulttune.bugs.completion_start`):
for a HumanEval-style task (the solution is the prompt + the completion) the text after the prompt,
never the imports, helpers, signature or docstring the prompt gives; else the whole program.

Rejected (``*.rejected.parquet``, :data:`REJECTED_SCHEMA`): the same columns plus ``reason`` (one
of :data:`REASONS`) and ``raw`` (the teacher's full answer; "" for the other sources).
A twin "fails" when the sandbox says ``fail``, ``timeout`` (a twin that hangs is wrong) or
``error`` (an exception); a ``pass`` is rejected, and an ``error`` whose detail starts with
"sandbox failure" proves nothing and is rejected as such. Twins of a task whose correct solution
does not pass its own tests are rejected too: failing those tests proves nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from faulttune.bugs import ast_key, compile_error, completion_start
from faulttune.bugs.cct import FAMILIES, family_order, family_twins, twins
from faulttune.bugs.mutation import mutate_many, sample_mutants
from faulttune.bugs.similarity import levenshtein_similarity, make_scorer
from faulttune.bugs.teacher import teacher_candidates
from faulttune.generate.extract import defines
from faulttune.generate.extract import python_block as extract_code_block
from faulttune.io import DataError

__all__ = [
    "PAIRS_SCHEMA",
    "REASONS",
    "REJECTED_SCHEMA",
    "cct_pairs",
    "counts",
    "index_tasks",
    "mutation_pairs",
    "screen_candidate",
    "select_pairs",
    "task_rows",
    "teacher_candidates",
    "verify_twins",
]

TASK_FIELDS = ("task_id", "instruction", "solution", "test", "entry_point")
PAIRS_SCHEMA = pa.schema([
    ("id", pa.string()), ("task_id", pa.string()), ("source", pa.string()),
    ("instruction", pa.string()), ("correct", pa.string()), ("incorrect", pa.string()),
    ("family", pa.string()), ("similarity", pa.float64()), ("verified", pa.string()),
    ("edit_line", pa.int64()), ("edit_col", pa.int64()), ("edit", pa.string()),
    ("detail", pa.string()),
])
REJECTED_SCHEMA = PAIRS_SCHEMA.append(pa.field("reason", pa.string())).append(
    pa.field("raw", pa.string()))
REASONS = (
    "correct code does not compile", "no applicable edit", "no code block",
    "identical to the correct code", "does not compile", "same AST as the correct code",
    "same AST as another mutant", "does not define the entry point", "too long",
    "passes the tests", "correct code fails its own tests", "sandbox failure",
    "less similar than the selected variant",
)
FAILING_STATUSES = ("fail", "timeout", "error")


def index_tasks(tasks: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tasks by id; a missing or non-string field or a repeated task_id raises ``DataError``."""
    index: dict[str, dict[str, Any]] = {}
    for i, task in enumerate(tasks):
        for field in TASK_FIELDS:
            if not isinstance(task.get(field), str):
                raise DataError(f"tasks row {i} ({task.get('task_id', '?')}): field '{field}' "
                                f"missing or not a string")
        if task["task_id"] in index:
            raise DataError(f"tasks row {i}: task_id {task['task_id']!r} appears twice")
        index[task["task_id"]] = task
    return index


def task_rows(benchmark_tasks: Sequence[Any]) -> list[dict[str, Any]]:
    """Task rows (see the module doc) from :class:`faulttune.data.benchmarks.BenchmarkTask` rows:
    the prompt is the instruction and the canonical solution (a full program) the correct code."""
    return [{"task_id": t.task_id, "instruction": t.prompt, "solution": t.canonical_solution,
             "test": t.test, "entry_point": t.entry_point} for t in benchmark_tasks]


def _pair(source: str, task: dict[str, Any], pair_id: str, incorrect: str, family: str,
          **extra: Any) -> dict[str, Any]:
    row = {"id": pair_id, "task_id": task["task_id"], "source": source,
           "instruction": task["instruction"], "correct": task["solution"],
           "incorrect": incorrect, "family": family,
           "similarity": levenshtein_similarity(task["solution"], incorrect),
           "verified": "unknown", "edit_line": None, "edit_col": None, "edit": "", "detail": ""}
    row.update(extra)
    return row


def _reject(row: dict[str, Any], reason: str, raw: str = "") -> dict[str, Any]:
    return {**row, "reason": reason, "raw": raw}


# ---------------------------------------------------------------------------------------------
# verification


@dataclass(frozen=True)
class Verdict:
    """``verified`` is "true" / "unknown" for a kept twin, ``None`` for a rejected one."""

    verified: str | None
    detail: str  # the sandbox detail of a kept twin, or the rejection reason
    reason: str = ""


def _verdict(result: Any, correct_result: Any) -> Verdict:
    if not correct_result.passed:
        return Verdict(None, f"{correct_result.status}: {correct_result.detail}",
                       "correct code fails its own tests")
    if result.status == "error" and result.detail.startswith("sandbox failure"):
        return Verdict(None, result.detail, "sandbox failure")
    if result.status in FAILING_STATUSES:
        return Verdict("true", f"{result.status}: {result.detail}")
    return Verdict(None, f"{result.status}: {result.detail}", "passes the tests")


def verify_twins(rows: Sequence[dict[str, Any]], tasks: dict[str, dict[str, Any]], *,
                 verify: bool = True, workers: int | None = None, limits: Any = None
                 ) -> list[Verdict]:
    """One verdict per row: its twin run against its task's tests, all in one sandbox batch.

    Each task's correct solution runs in the same batch, once.
    """
    tested = [verify and bool(tasks[r["task_id"]]["test"].strip()) for r in rows]
    if not any(tested):
        return [Verdict("unknown", "") for _ in rows]
    from faulttune.sandbox import run_many, task_job

    task_ids = list(dict.fromkeys(r["task_id"] for r, t in zip(rows, tested) if t))
    jobs = [task_job(tasks[t], tasks[t]["solution"]) for t in task_ids]
    jobs += [task_job(tasks[r["task_id"]], r["incorrect"]) for r, t in zip(rows, tested) if t]
    results = run_many(jobs, workers=workers, limits=limits, desc="verify twins")
    correct_results = dict(zip(task_ids, results[:len(task_ids)]))
    twin_results = iter(results[len(task_ids):])
    return [_verdict(next(twin_results), correct_results[r["task_id"]]) if t
            else Verdict("unknown", "") for r, t in zip(rows, tested)]


def _apply_verdicts(rows: Sequence[dict[str, Any]], verdicts: Sequence[Verdict]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    kept, rejected = [], []
    for row, verdict in zip(rows, verdicts):
        if verdict.verified is None:
            rejected.append(_reject({**row, "detail": verdict.detail}, verdict.reason))
        else:
            kept.append({**row, "verified": verdict.verified, "detail": verdict.detail})
    return kept, rejected


# ---------------------------------------------------------------------------------------------
# mutation and CCT


def _written(task: dict[str, Any]) -> int:
    """Where the code the model writes starts in the task's solution: bugs go only there."""
    return completion_start(task["instruction"], task["solution"])


def _broken_solution(source: str, task: dict[str, Any]) -> dict[str, Any] | None:
    """A rejected row when the task's own solution does not compile, else ``None``."""
    error = compile_error(task["solution"])
    if error is None:
        return None
    row = _pair(source, task, f"{source}:{task['task_id']}:solution", "", source, detail=error)
    return _reject(row, "correct code does not compile")


def mutation_pairs(tasks: Sequence[dict[str, Any]], seed: int, max_per_task: int, *,
                   verify: bool = True, workers: int | None = None, limits: Any = None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Up to ``max_per_task`` verified mutants per task (seeded) and every rejected candidate."""
    index = index_tasks(tasks)
    candidates, rejected = [], []
    usable = []
    for task in index.values():
        broken = _broken_solution("mutation", task)
        rejected += [broken] if broken else []
        usable += [] if broken else [task]
    results = mutate_many([t["solution"] for t in usable], [_written(t) for t in usable])
    for task, result in zip(usable, results):
        tid = task["task_id"]
        for j, (mutant, reason) in enumerate(result.rejected):
            row = _pair("mutation", task, f"mutation:{tid}:r{j}", mutant.code, mutant.rule,
                        edit_line=mutant.line, edit=f"{mutant.rule} at line {mutant.line}")
            rejected.append(_reject(row, reason))
        numbered = {id(m): k for k, m in enumerate(result.valid)}
        for mutant in sample_mutants(result.valid, max_per_task, f"{seed}:{tid}"):
            candidates.append(_pair(
                "mutation", task, f"mutation:{tid}:{numbered[id(mutant)]}", mutant.code,
                mutant.rule, edit_line=mutant.line, edit=f"{mutant.rule} at line {mutant.line}"))
    kept, failed = _apply_verdicts(candidates, verify_twins(
        candidates, index, verify=verify, workers=workers, limits=limits))
    return kept, rejected + failed


def _cct_row(task: dict[str, Any], k: int, edit: Any, twin: str) -> dict[str, Any]:
    return _pair("cct", task, f"cct:{task['task_id']}:{edit.family}:{k}", twin, edit.family,
                 edit_line=edit.line, edit_col=edit.col,
                 edit=f"{edit.kind} {edit.line}:{edit.col} {edit.before!r} -> {edit.replacement!r}")


def _no_edit(task: dict[str, Any], family: str) -> dict[str, Any]:
    return _reject(_pair("cct", task, f"cct:{task['task_id']}:{family}:none", "", family),
                   "no applicable edit")


def _cct_task(task: dict[str, Any], seed: int, per_family: int, families: Sequence[str]
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tid = task["task_id"]
    made = twins(task["solution"], f"{seed}:{tid}", per_family, families, _written(task))
    rows = [_cct_row(task, k, edit, twin) for k, (edit, twin) in enumerate(made)]
    missing = [f for f in families if not any(e.family == f for e, _ in made)]
    return rows, [_no_edit(task, f) for f in missing]


def _usable_tasks(index: dict[str, dict[str, Any]]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    usable, rejected = [], []
    for task in index.values():
        broken = _broken_solution("cct", task)
        rejected += [broken] if broken else []
        usable += [] if broken else [task]
    return usable, rejected


def _drawn_family_pairs(usable: Sequence[dict[str, Any]], index: dict[str, dict[str, Any]],
                        seed: int, per_task: int, families: Sequence[str], verify: dict[str, Any]
                        ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Up to ``per_task`` verified twins per task, from the family drawn for the task; a task
    whose drawn family yields no edit or no verified twin falls back to the next family of its
    seeded order (one sandbox batch per round)."""
    orders = {t["task_id"]: family_order(f"{seed}:{t['task_id']}", families) for t in usable}
    wanted = {t["task_id"]: per_task for t in usable}
    kept, rejected = [], []
    for round_index in range(len(families)):
        candidates = []
        for tid, count in wanted.items():
            family = orders[tid][round_index]
            made = family_twins(index[tid]["solution"], f"{seed}:{tid}", family, count,
                                _written(index[tid]))
            candidates += [_cct_row(index[tid], k, e, twin) for k, (e, twin) in enumerate(made)]
            rejected += [] if made else [_no_edit(index[tid], family)]
        good, bad = _apply_verdicts(candidates, verify_twins(candidates, index, **verify))
        kept, rejected = kept + good, rejected + bad
        for row in good:
            wanted[row["task_id"]] -= 1
        wanted = {tid: n for tid, n in wanted.items() if n > 0}
        if not wanted:
            break
    return kept, rejected


def cct_pairs(tasks: Sequence[dict[str, Any]], seed: int, per_task: int = 1, *,
              per_family: int | None = None, families: Sequence[str] = FAMILIES,
              verify: bool = True, workers: int | None = None, limits: Any = None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Verified CCT twins, one edit each, seeded.

    Default: up to ``per_task`` twins per task, all from ONE family drawn per task (the paper
    draws one bug per sample; docs/methods.md §1.1). The next family of the task's seeded order stands in
    when the drawn one has no applicable edit or no twin that fails the tests.
    ``per_family=k`` (``per_task`` must then stay 1): up to ``k`` twins of EVERY family, i.e. up
    to ``k * len(families)`` per task.
    """
    if per_task < 1:
        raise ValueError(f"per_task must be >= 1, got {per_task}")
    if per_family is not None and (per_family < 1 or per_task != 1):
        raise ValueError(f"per_family must be >= 1 and per_task 1 when per_family is given, "
                         f"got per_family={per_family}, per_task={per_task}")
    index = index_tasks(tasks)
    usable, rejected = _usable_tasks(index)
    checks = {"verify": verify, "workers": workers, "limits": limits}
    if per_family is None:
        kept, dropped = _drawn_family_pairs(usable, index, seed, per_task, families, checks)
        return kept, rejected + dropped
    candidates = []
    for task in usable:
        rows, none = _cct_task(task, seed, per_family, families)
        candidates += rows
        rejected += none
    kept, failed = _apply_verdicts(candidates, verify_twins(candidates, index, **checks))
    return kept, rejected + failed


# ---------------------------------------------------------------------------------------------
# teacher selection


def screen_candidate(code: str | None, task: dict[str, Any], max_length_ratio: float = 2.0
                     ) -> str | None:
    """The rejection reason of an extracted teacher variant, or ``None`` if it may be a twin.

    "too long": more than ``max_length_ratio`` times the correct code's characters plus 100
    (slack for one-line solutions).
    """
    correct = task["solution"]
    if code is None:
        return "no code block"
    if code.strip() == correct.strip():
        return "identical to the correct code"
    if compile_error(code) is not None:
        return "does not compile"
    if ast_key(code) == ast_key(correct):
        return "same AST as the correct code"
    if task["entry_point"] and not defines(code, task["entry_point"]):
        return "does not define the entry point"
    if len(code) > max_length_ratio * len(correct) + 100:
        return "too long"
    return None


def _screen_candidates(candidate_rows: Sequence[dict[str, Any]], index: dict[str, dict[str, Any]],
                       max_length_ratio: float
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    survivors, rejected = [], []
    for i, cand in enumerate(candidate_rows):
        task = index.get(cand.get("task_id"))
        if task is None or not isinstance(cand.get("raw"), str):
            raise DataError(f"teacher candidates row {i}: unknown task_id "
                            f"{cand.get('task_id')!r} or no 'raw' text")
        code = extract_code_block(cand["raw"])
        row = _pair("teacher", task, cand["id"], code or "", "teacher")
        reason = screen_candidate(code, task, max_length_ratio)
        if reason:
            rejected.append(_reject(row, reason, cand["raw"]))
        else:
            survivors.append({**row, "raw": cand["raw"]})
    return survivors, rejected


def _pick_per_task(rows: Sequence[dict[str, Any]], verdicts: Sequence[Verdict]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The most similar failing (or unverifiable) variant of each task; the others rejected."""
    by_task: dict[str, list[tuple[dict[str, Any], Verdict]]] = defaultdict(list)
    for row, verdict in zip(rows, verdicts):
        by_task[row["task_id"]].append((row, verdict))
    pairs, rejected = [], []
    for group in by_task.values():
        ok = [(r, v) for r, v in group if v.verified is not None]
        best = max(ok, key=lambda rv: rv[0]["similarity"], default=(None, None))[0]
        for row, verdict in group:
            raw = row.pop("raw")
            if verdict.verified is None:
                rejected.append(_reject({**row, "detail": verdict.detail}, verdict.reason, raw))
            elif row is best:
                pairs.append({**row, "verified": verdict.verified, "detail": verdict.detail})
            else:
                rejected.append(_reject({**row, "verified": verdict.verified,
                                         "detail": verdict.detail},
                                        "less similar than the selected variant", raw))
    return pairs, rejected


def select_pairs(candidate_rows: Sequence[dict[str, Any]], tasks: Sequence[dict[str, Any]],
                 similarity: str = "levenshtein", verify: bool = True,
                 workers: int | None = None, *, max_length_ratio: float = 2.0,
                 scorer: Any = None, limits: Any = None
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One teacher pair per task: the most similar variant that passes the checks and fails the
    tests (any that passes the checks where the task has no tests), as in FGit §2.1.

    ``scorer`` overrides the similarity function (tests inject a tiny UniXcoder); ``limits``
    (a :class:`faulttune.sandbox.Limits`) applies to every builder's sandbox runs.
    """
    index = index_tasks(tasks)
    survivors, rejected = _screen_candidates(candidate_rows, index, max_length_ratio)
    score = scorer or make_scorer(similarity)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in survivors:
        by_task[row["task_id"]].append(row)
    for task_id, group in by_task.items():
        values = score(index[task_id]["solution"], [r["incorrect"] for r in group])
        for row, value in zip(group, values):
            row["similarity"] = float(value)
    verdicts = verify_twins(survivors, index, verify=verify, workers=workers, limits=limits)
    pairs, dropped = _pick_per_task(survivors, verdicts)
    return pairs, rejected + dropped


# ---------------------------------------------------------------------------------------------
# report


def counts(pairs: Sequence[dict[str, Any]], rejected: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per source: pairs, pairs by ``verified``, tasks with a pair, rejected rows by reason."""
    report: dict[str, Any] = {}
    for source in sorted({r["source"] for r in [*pairs, *rejected]}):
        mine = [p for p in pairs if p["source"] == source]
        report[source] = {
            "pairs": len(mine),
            "verified": dict(Counter(p["verified"] for p in mine)),
            "tasks_with_pairs": len({p["task_id"] for p in mine}),
            "rejected": dict(Counter(r["reason"] for r in rejected if r["source"] == source)),
        }
    return report
