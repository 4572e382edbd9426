"""CodeFlow: tasks with tests, iterative debugging until the tests pass, and IterPref's pairs.

docs/methods.md §3.1, one idea per module:

- :mod:`.synthesis` (step 1): the teacher writes, for each instruction, a solution and a unittest
  file in the paper's format (:mod:`.testfiles` reads the answer and readies the file for the
  sandbox); a test file that does not run drops the task with its reason; the tests' line
  coverage is recorded.
- :mod:`.loop` (step 3): for every task the debugger (the student or the teacher) writes a program,
  or the task starts from a given one (a verified failing twin, or the task's own solution); the
  sandbox runs the task's tests, and on failure the program and its execution output go back to
  the debugger with a request for a fixed version; at most ``max_iters`` fix rounds, stopping at
  the first pass. :mod:`.checkpoint` stores every version as it is tested.
- :mod:`.pairs` (step 4): the final passing version is preferred over an earlier failing one;
  :mod:`.filters` (step 5) drops pairs whose difference is not a real logic change, and
  :mod:`.judge` asks the teacher whether the two differ in logic (the paper's LLM judge).

Prompts (``faulttune.generate.prompts``): iteration 0 is ``solve_messages(instruction)``; every fix is ONE
single-turn prompt ``fix_messages(instruction, last_program, last_feedback)`` holding only the
latest failing version, not the whole history. This keeps the context short for small models,
makes each round's prompt depend only on the stored last version (so a resumed run sends exactly
the prompts an uninterrupted run would), and matches the paper's "feed the error back" loop.

Inputs
------
tasks: rows ``task_id, instruction, test`` (+ ``entry_point`` and ``solution``, optional);
    ``test`` is complete checking code run after the program (HumanEval: ``...check(f)\\n``; a
    synthesized task: its unittest file readied by :func:`.testfiles.judge_tests`). A debugger's
    answer becomes a program exactly as in benchmark generation
    (``generate.run.solution_program``: the instruction's imports when it is code, then EvalPlus's
    sanitiser with ``entry_point``), so a fix is not lost to a ``main()`` written after it.
mutants (``start="mutant"``): rows ``task_id, incorrect`` from the bugs stage; the first row of a
    task is its start (iteration 0, ``origin="mutant"``). Tasks without one get no trajectory and a
    rejected-pairs row with reason "no mutant for this task".
``start="solution"``: the task's own ``solution`` is iteration 0 (``origin="solution"``; IterPref:
    the teacher's synthesized solution); tasks without one: "no solution for this task".

Outputs (the lead writes them to ``results/{run}/codeflow/``), every file in the order of the tasks
--------------------------------------------------------------------------------------------------
trajectories.parquet, one row per version (:data:`TRAJECTORY_COLUMNS`):
    task_id str, iteration int (0 = first attempt or start, k = k-th fix), code str (the program
    that was tested: the sanitised completion, or the start), status str
    (pass|fail|timeout|error), detail str (sandbox detail), feedback str (what a fix prompt shows
    for this version: status, detail and stderr tail, at most ``FEEDBACK_CHARS``; "" on a pass),
    passed bool, origin str ("model"|"mutant"|"solution"), raw str (the debugger's completion
    after the ``python`` pre-fill, untouched; the start itself for a mutant or solution start).
pairs.parquet, one row per kept pair (:data:`PAIR_COLUMNS`):
    id str ("codeflow/{task_id}/{rejected_iteration}-{chosen_iteration}"), task_id, source
    ("codeflow"), instruction, chosen (final passing code), rejected (earlier failing code),
    correct (= chosen), incorrect (= rejected), rejected_iteration int, chosen_iteration int,
    n_iterations int (versions in the trajectory = chosen_iteration + 1), family ("codeflow"),
    similarity float (rapidfuzz normalised Levenshtein similarity of chosen vs rejected, 1 = same),
    verified ("true": chosen passed the tests, rejected failed them).
pairs.rejected.parquet, one row per trajectory without a pair (:data:`REJECTED_COLUMNS`):
    the pair columns that exist at the point of the drop (None otherwise) plus ``reason``:
    "never passed", "passed at first attempt", "mutant passed the tests", "no mutant for this task",
    "no solution for this task", "only comments or whitespace differ", "same AST as the chosen",
    "rename only (same AST after renaming local names)",
    "D- is empty (the rejected program has no line of its own)",
    "D- holds only comments or whitespace",
    "more than N changed lines (k)", "longer than N tokens (chosen c, rejected r)", and with the
    judge on "judge: no logic difference: <its answer>" or "judge: neither yes nor no: <answer>".
    D- (the rejected side's error lines) is computed exactly as the masks stage computes the
    Target-DPO mask (:func:`rejected_error_lines`); a pair with an empty or comment-only D- would
    give a rejected log-ratio of 0 (or one about comments), so the loss would only raise the
    chosen likelihood.

Resuming: after every round each new version is appended to the JSONL ``checkpoint``
(``faulttune.io.append_jsonl``). A rerun loads it and continues every task from its last stored
version; passed tasks and tasks whose budget is spent get no more model calls. Stored versions
beyond a smaller ``max_iters`` are kept as they are. The judge's answers are kept the same way.
"""

from faulttune.codeflow.columns import (
    FEEDBACK_CHARS,
    MAX_CHANGED_LINES,
    PAIR_COLUMNS,
    REJECTED_COLUMNS,
    STARTS,
    TRAJECTORY_COLUMNS,
    RejectedRule,
    Row,
    Start,
)
from faulttune.codeflow.filters import (
    code_tokens,
    count_rejected_diff_lines,
    filter_reason,
    only_comments_or_whitespace_differ,
    rejected_error_lines,
    same_ast,
    same_ast_after_renaming,
)
from faulttune.codeflow.judge import judge_pairs, parse_verdict
from faulttune.codeflow.loop import conversation_for, format_feedback, run_codeflow
from faulttune.codeflow.pairs import build_pairs, pass_rate_by_iteration, pick_rejected

__all__ = [
    "FEEDBACK_CHARS", "MAX_CHANGED_LINES", "PAIR_COLUMNS", "REJECTED_COLUMNS", "STARTS",
    "TRAJECTORY_COLUMNS", "RejectedRule", "Row", "Start", "build_pairs", "code_tokens",
    "conversation_for", "count_rejected_diff_lines", "filter_reason", "format_feedback",
    "judge_pairs", "only_comments_or_whitespace_differ", "parse_verdict", "pass_rate_by_iteration",
    "pick_rejected", "rejected_error_lines", "run_codeflow", "same_ast", "same_ast_after_renaming",
]
