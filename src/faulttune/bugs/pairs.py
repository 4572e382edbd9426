"""Pairs of correct code and a wrong twin, from mutation, CCT injection and the teacher: the
table (:mod:`.table`), twins made by edits (:mod:`.injected`), the teacher's selected variants
(:mod:`.selection`), all verified in the sandbox (:mod:`.verify`).

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

from faulttune.bugs.injected import cct_pairs, mutation_pairs
from faulttune.bugs.selection import screen_candidate, select_pairs
from faulttune.bugs.table import (
    PAIRS_SCHEMA,
    REASONS,
    REJECTED_SCHEMA,
    counts,
    index_tasks,
    task_rows,
)
from faulttune.bugs.teacher import teacher_candidates
from faulttune.bugs.verify import verify_twins

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
