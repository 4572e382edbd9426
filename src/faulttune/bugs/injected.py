"""Twins made by editing the correct code: universalmutator's mutants and CCT's AST bugs
(docs/methods.md §1.1), only in the code the model writes, each verified to fail the tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faulttune.bugs import compile_error, completion_start
from faulttune.bugs.cct import FAMILIES, family_order, family_twins, twins
from faulttune.bugs.mutation import mutate_many, sample_mutants
from faulttune.bugs.table import index_tasks, pair_row, rejected_row
from faulttune.bugs.verify import apply_verdicts, verify_twins


def _written(task: dict[str, Any]) -> int:
    """Where the code the model writes starts in the task's solution: bugs go only there."""
    return completion_start(task["instruction"], task["solution"])


def _broken_solution(source: str, task: dict[str, Any]) -> dict[str, Any] | None:
    """A rejected row when the task's own solution does not compile, else ``None``."""
    error = compile_error(task["solution"])
    if error is None:
        return None
    row = pair_row(source, task, f"{source}:{task['task_id']}:solution", "", source, detail=error)
    return rejected_row(row, "correct code does not compile")


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
            row = pair_row("mutation", task, f"mutation:{tid}:r{j}", mutant.code, mutant.rule,
                        edit_line=mutant.line, edit=f"{mutant.rule} at line {mutant.line}")
            rejected.append(rejected_row(row, reason))
        numbered = {id(m): k for k, m in enumerate(result.valid)}
        for mutant in sample_mutants(result.valid, max_per_task, f"{seed}:{tid}"):
            candidates.append(pair_row(
                "mutation", task, f"mutation:{tid}:{numbered[id(mutant)]}", mutant.code,
                mutant.rule, edit_line=mutant.line, edit=f"{mutant.rule} at line {mutant.line}"))
    kept, failed = apply_verdicts(candidates, verify_twins(
        candidates, index, verify=verify, workers=workers, limits=limits))
    return kept, rejected + failed


def _cct_row(task: dict[str, Any], k: int, edit: Any, twin: str) -> dict[str, Any]:
    return pair_row("cct", task, f"cct:{task['task_id']}:{edit.family}:{k}", twin, edit.family,
                 edit_line=edit.line, edit_col=edit.col,
                 edit=f"{edit.kind} {edit.line}:{edit.col} {edit.before!r} -> {edit.replacement!r}")


def _no_edit(task: dict[str, Any], family: str) -> dict[str, Any]:
    return rejected_row(pair_row("cct", task, f"cct:{task['task_id']}:{family}:none", "", family),
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
        good, bad = apply_verdicts(candidates, verify_twins(candidates, index, **verify))
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
    kept, failed = apply_verdicts(candidates, verify_twins(candidates, index, **checks))
    return kept, rejected + failed
