"""CodeFlow: iterative debugging until the tests pass, and IterPref preference pairs.

docs/methods.md §3.1. For every task the model writes a program (iteration 0), the sandbox runs the
task's tests, and on failure the program and its execution output go back to the model with a
request for a fixed version; at most ``max_iters`` fix rounds, stopping at the first pass. The
final passing version is preferred over an earlier failing one (§3.1 step 4) and the rule filters
of §3.1 step 5 drop pairs whose difference is not a real logic change.

Prompts (``faulttune.generate.prompts``): iteration 0 is ``solve_messages(instruction)``; every fix is ONE
single-turn prompt ``fix_messages(instruction, last_program, last_feedback)`` holding only the
latest failing version, not the whole history. This keeps the context short for small models,
makes each round's prompt depend only on the stored last version (so a resumed run sends exactly
the prompts an uninterrupted run would), and matches the paper's "feed the error back" loop.

Inputs
------
tasks: rows ``task_id, instruction, test`` (+ ``entry_point``, optional); ``test`` is complete
    checking code run after the program (HumanEval: ``...check(f)\\n``). A model's answer becomes
    a program exactly as in benchmark generation (``generate.run.solution_program``: the
    instruction's imports when it is code, then EvalPlus's sanitiser with ``entry_point``), so a
    fix is not lost to a ``main()`` the model wrote after it.
mutants (``start="mutant"``): rows ``task_id, incorrect`` from the bugs stage; the first row of a
    task is its start (iteration 0, ``origin="mutant"``). Tasks without one get no trajectory and a
    rejected-pairs row with reason "no mutant for this task".

Outputs (the lead writes them to ``results/{run}/codeflow/``)
-------------------------------------------------------------
trajectories.parquet, one row per version (:data:`TRAJECTORY_COLUMNS`):
    task_id str, iteration int (0 = first attempt or mutant, k = k-th fix), code str (the program
    that was tested: the sanitised completion, or the mutant), status str
    (pass|fail|timeout|error), detail str (sandbox detail), feedback str (what a fix prompt shows
    for this version: status, detail and stderr tail, at most ``FEEDBACK_CHARS``; "" on a pass),
    passed bool, origin str ("model"|"mutant"), raw str (the model's completion after the
    ``python`` pre-fill, untouched; the mutant itself for a mutant start).
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
    "only comments or whitespace differ", "same AST as the chosen",
    "rename only (same AST after renaming local names)",
    "D- is empty (the rejected program has no line of its own)",
    "D- holds only comments or whitespace",
    "more than N changed lines (k)", "longer than N tokens (chosen c, rejected r)".
    D- (the rejected side's error lines) is computed exactly as the masks stage computes the
    Target-DPO mask (:func:`rejected_error_lines`); a pair with an empty or comment-only D- would
    give a rejected log-ratio of 0 (or one about comments), so the loss would only raise the
    chosen likelihood.

Resuming: after every round each new version is appended to the JSONL ``checkpoint``
(``faulttune.io.append_jsonl``). A rerun loads it and continues every task from its last stored
version; passed tasks and tasks whose budget is spent get no more model calls. Stored versions
beyond a smaller ``max_iters`` are kept as they are.
"""

from __future__ import annotations

import ast
import hashlib
import io
import logging
import random
import tokenize
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from rapidfuzz.distance import Levenshtein

from faulttune import sandbox
from faulttune.generate.base import Backend, Conversation, GenerationParams
from faulttune.generate.extract import solution_program
from faulttune.generate.prompts import fix_messages, solve_messages
from faulttune.io import DataError, append_jsonl, read_appended_jsonl
from faulttune.mask_table import normalise_code
from faulttune.masks import rejected_line_char_marks, split_lines

log = logging.getLogger(__name__)

TRAJECTORY_COLUMNS = (
    "task_id",
    "iteration",
    "code",
    "status",
    "detail",
    "feedback",
    "passed",
    "origin",
    "raw",
)
PAIR_COLUMNS = (
    "id", "task_id", "source", "instruction", "chosen", "rejected", "correct", "incorrect",
    "rejected_iteration", "chosen_iteration", "n_iterations", "family", "similarity", "verified",
)  # fmt: skip
REJECTED_COLUMNS = (
    "id", "task_id", "source", "instruction", "chosen", "rejected",
    "rejected_iteration", "chosen_iteration", "n_iterations", "reason",
)  # fmt: skip
FEEDBACK_CHARS = 1500  # cap on the execution output shown to the model
MAX_CHANGED_LINES = 20  # docs/methods.md §3.1 step 5 (ii): |D-| > 20 lines is dropped

Start = Literal["model", "mutant"]
RejectedRule = Literal["random", "first", "last"]
Row = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Feedback and prompts


def format_feedback(status: str, detail: str, stderr_tail: str, limit: int = FEEDBACK_CHARS) -> str:
    """The execution output a fix prompt shows: status and detail, then the end of stderr.

    The traceback is cut from the front (its last lines name the failing check); the whole text is
    at most ``limit`` characters. A pass has no feedback ("").
    """
    if status == "pass":
        return ""
    head = f"{status}: {detail}".strip()[: limit // 2]
    room = limit - len(head) - 1
    tail = stderr_tail.strip()
    if not tail or room <= 0 or tail in head:
        return head
    if len(tail) > room:
        tail = "..." + tail[-(room - 3) :]
    return f"{head}\n{tail}"


def conversation_for(instruction: str, last_version: Row | None) -> Conversation:
    """Iteration 0 asks for a solution; every later round asks to fix the last failing version."""
    if last_version is None:
        return solve_messages(instruction)
    return fix_messages(instruction, last_version["code"], last_version["feedback"])


# --------------------------------------------------------------------------------------------
# The debugging loop


def run_codeflow(
    tasks: Sequence[Mapping[str, Any]],
    backend: Backend,
    *,
    max_iters: int = 5,
    start: Start = "model",
    mutants: Sequence[Mapping[str, Any]] | None = None,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    rejected: RejectedRule = "random",
    max_length: int = 2048,
    count_tokens: Callable[[str], int],
    workers: int | None = None,
    params: GenerationParams | None = None,
    limits: sandbox.Limits | None = None,
    max_changed_lines: int = MAX_CHANGED_LINES,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[Row], list[Row], list[Row]]:
    """Debug every task until its tests pass or ``max_iters`` fixes are spent; build the pairs.
    When ``should_stop()`` turns true (SIGTERM at a time limit), the loop raises
    ``resume.Preempted`` after the round's versions are in the checkpoint.

    Returns ``(trajectories, pairs, rejected_pairs)`` with the schemas of the module docstring.
    ``count_tokens`` measures a program for the ``max_length`` filter: pass the student
    tokenizer's count (e.g. ``lambda s: len(tok(s).input_ids)``). ``params`` default to greedy;
    ``limits`` are the sandbox limits of every test run (``None``: the sandbox defaults).
    """
    _check_options(max_iters, start, rejected, params)
    by_id = _index_tasks(tasks)
    starts = _mutant_starts(mutants, by_id) if start == "mutant" else {}
    histories = _load_checkpoint(checkpoint, by_id, start) if checkpoint else {}
    todo = [tid for tid in by_id if start == "model" or tid in starts]
    for tid in todo:
        histories.setdefault(tid, [])
    params = params or GenerationParams()
    round_no = 0
    while active := [tid for tid in todo if _needs_version(histories[tid], max_iters)]:
        new = _run_round(active, histories, by_id, starts, backend, params, workers, limits)
        for row in new:
            histories[row["task_id"]].append(row)
            if checkpoint:
                append_jsonl(row, checkpoint)
        log.info(
            "codeflow round %d: %d tasks, %d passed",
            round_no,
            len(new),
            sum(r["passed"] for r in new),
        )
        round_no += 1
        if should_stop is not None and should_stop():
            from faulttune.resume import Preempted

            raise Preempted(f"codeflow stopped on request after round {round_no}")
    trajectories = [row for tid in by_id for row in histories.get(tid, [])]
    instructions = {tid: task["instruction"] for tid, task in by_id.items()}
    pairs, dropped = build_pairs(
        trajectories, instructions, rejected=rejected, seed=seed, max_length=max_length,
        count_tokens=count_tokens, max_changed_lines=max_changed_lines,
    )  # fmt: skip
    missing = [tid for tid in by_id if tid not in histories]
    dropped += [_rejected_row(tid, instructions[tid], "no mutant for this task") for tid in missing]
    return trajectories, pairs, dropped


def _check_options(
    max_iters: int, start: str, rejected: str, params: GenerationParams | None
) -> None:
    if max_iters < 0:
        raise ValueError(f"max_iters must be >= 0, got {max_iters}")
    if start not in ("model", "mutant"):
        raise ValueError(f"start must be 'model' or 'mutant', got {start!r}")
    if rejected not in ("random", "first", "last"):
        raise ValueError(f"rejected must be 'random', 'first' or 'last', got {rejected!r}")
    if params is not None and params.n != 1:
        raise ValueError(
            f"codeflow follows one trajectory per task: params.n must be 1, got {params.n}"
        )


def _needs_version(history: list[Row], max_iters: int) -> bool:
    """A task gets another version while it has not passed and iteration ``len`` is in budget."""
    return not (history and history[-1]["passed"]) and len(history) <= max_iters


def _run_round(
    active: list[str],
    histories: dict[str, list[Row]],
    by_id: Mapping[str, Mapping[str, Any]],
    starts: Mapping[str, str],
    backend: Backend,
    params: GenerationParams,
    workers: int | None,
    limits: sandbox.Limits | None,
) -> list[Row]:
    """One round: one ``backend.chat`` call for every task that needs the model, one ``run_many``."""
    programs: dict[str, tuple[str, str]] = {}
    asking = [tid for tid in active if histories[tid] or tid not in starts]
    for tid in active:
        if tid not in asking:
            programs[tid] = (starts[tid], "mutant")
    if asking:
        conversations = [
            conversation_for(
                by_id[tid]["instruction"], histories[tid][-1] if histories[tid] else None
            )
            for tid in asking
        ]
        completions = backend.chat(conversations, params)
        if len(completions) != len(asking):
            raise RuntimeError(
                f"backend returned {len(completions)} answers for {len(asking)} prompts"
            )
        for tid, answers in zip(asking, completions):
            programs[tid] = (answers[0], "model")
    tested = {tid: _program(by_id[tid], *programs[tid]) for tid in active}
    jobs = [sandbox.task_job(by_id[tid], tested[tid]) for tid in active]
    results = sandbox.run_many(jobs, limits=limits, workers=workers, desc="codeflow tests")
    return [
        _version_row(tid, len(histories[tid]), tested[tid], *programs[tid], result)
        for tid, result in zip(active, results)
    ]


def _program(task: Mapping[str, Any], text: str, origin: str) -> str:
    """What runs: the mutant as it is, or the model's answer made a program as for benchmarks."""
    if origin == "mutant":
        return text
    return solution_program(task["instruction"], task.get("entry_point") or "", text)


def _version_row(
    task_id: str, iteration: int, code: str, raw: str, origin: str, result: Any
) -> Row:
    return {
        "task_id": task_id,
        "iteration": iteration,
        "code": code,
        "status": result.status,
        "detail": result.detail,
        "feedback": format_feedback(result.status, result.detail, result.stderr_tail),
        "passed": bool(result.passed),
        "origin": origin,
        "raw": raw,
    }


def _index_tasks(tasks: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    by_id: dict[str, Mapping[str, Any]] = {}
    for i, task in enumerate(tasks):
        for key in ("task_id", "instruction", "test"):
            if not isinstance(task.get(key), str) or not task[key]:
                raise DataError(f"codeflow tasks row {i}: missing or empty '{key}'")
        if task["task_id"] in by_id:
            raise DataError(f"codeflow tasks row {i}: duplicate task_id {task['task_id']!r}")
        by_id[task["task_id"]] = task
    return by_id


def _mutant_starts(
    mutants: Sequence[Mapping[str, Any]] | None, by_id: Mapping[str, Any]
) -> dict[str, str]:
    """The first failing twin of each task (rows ``task_id, incorrect``)."""
    if mutants is None:
        raise ValueError("start='mutant' needs the mutants (rows with task_id, incorrect)")
    starts: dict[str, str] = {}
    for i, row in enumerate(mutants):
        for key in ("task_id", "incorrect"):
            if not isinstance(row.get(key), str):
                raise DataError(f"codeflow mutants row {i}: missing '{key}'")
        if row["task_id"] in by_id:
            starts.setdefault(row["task_id"], row["incorrect"])
    log.info("codeflow: %d of %d tasks have a mutant start", len(starts), len(by_id))
    return starts


# --------------------------------------------------------------------------------------------
# Checkpoint


def _load_checkpoint(
    path: str | Path, by_id: Mapping[str, Any], start: str
) -> dict[str, list[Row]]:
    """Stored versions per task; a torn last line (a run killed mid-write) is dropped and rewritten."""
    path = Path(path)
    if not path.exists():
        return {}
    rows = read_appended_jsonl(path)
    histories: dict[str, list[Row]] = {}
    for lineno, row in rows:
        _check_checkpoint_row(path, lineno, row, histories, by_id, start)
        histories.setdefault(row["task_id"], []).append(row)
    log.info("codeflow: resumed %d versions of %d tasks from %s", len(rows), len(histories), path)
    return histories


def _check_checkpoint_row(
    path: Path, lineno: int, row: Row, histories: Mapping[str, list[Row]],
    by_id: Mapping[str, Any], start: str,
) -> None:  # fmt: skip
    where = f"{path} line {lineno}"
    row.setdefault("raw", row.get("code"))  # checkpoints written before the column existed
    for key in TRAJECTORY_COLUMNS:
        if key not in row:
            raise DataError(f"{where}: missing '{key}'")
    if row["task_id"] not in by_id:
        raise DataError(f"{where}: task_id {row['task_id']!r} is not among this run's tasks")
    history = histories.get(row["task_id"], [])
    if row["iteration"] != len(history):
        raise DataError(f"{where}: iteration {row['iteration']}, expected {len(history)}")
    if history and history[-1]["passed"]:
        raise DataError(f"{where}: a version after the passing iteration {len(history) - 1}")
    if row["iteration"] == 0 and row["origin"] != start:
        raise DataError(f"{where}: origin {row['origin']!r} but this run starts from {start!r}")


# --------------------------------------------------------------------------------------------
# Pairs


def build_pairs(
    trajectories: Iterable[Row],
    instructions: Mapping[str, str],
    *,
    rejected: RejectedRule = "random",
    seed: int = 0,
    max_length: int = 2048,
    count_tokens: Callable[[str], int],
    max_changed_lines: int = MAX_CHANGED_LINES,
) -> tuple[list[Row], list[Row]]:
    """One pair per trajectory that passed after failing, or a rejected row with its reason."""
    pairs: list[Row] = []
    dropped: list[Row] = []
    for task_id, versions in _group_by_task(trajectories).items():
        instruction = instructions.get(task_id, "")
        reason = _unpairable_reason(versions)
        if reason:
            dropped.append(_rejected_row(task_id, instruction, reason, n_iterations=len(versions)))
            continue
        chosen = next(v for v in versions if v["passed"])
        failing = [v for v in versions if v["iteration"] < chosen["iteration"] and not v["passed"]]
        worse = pick_rejected(failing, rejected, seed, task_id)
        pair = _pair_row(task_id, instruction, chosen, worse)
        reason = filter_reason(
            chosen["code"], worse["code"], max_length=max_length, count_tokens=count_tokens,
            max_changed_lines=max_changed_lines,
        )  # fmt: skip
        if reason:
            dropped.append(
                {**{k: pair[k] for k in REJECTED_COLUMNS if k in pair}, "reason": reason}
            )
        else:
            pairs.append(pair)
    return pairs, dropped


def _group_by_task(trajectories: Iterable[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in trajectories:
        groups.setdefault(row["task_id"], []).append(row)
    return {tid: sorted(rows, key=lambda r: r["iteration"]) for tid, rows in groups.items()}


def _unpairable_reason(versions: list[Row]) -> str | None:
    if not any(v["passed"] for v in versions):
        return "never passed"
    if versions[0]["passed"]:
        return (
            "mutant passed the tests"
            if versions[0]["origin"] == "mutant"
            else "passed at first attempt"
        )
    return None


def pick_rejected(failing: Sequence[Row], rule: RejectedRule, seed: int, task_id: str) -> Row:
    """The earlier failing version to reject: first, last, or one drawn with a per-task seed.

    The random draw is seeded by sha256(seed, task_id), so it does not depend on the other tasks,
    on their order or on PYTHONHASHSEED.
    """
    if not failing:
        raise ValueError(f"task {task_id!r}: no failing version to reject")
    if rule == "first":
        return failing[0]
    if rule == "last":
        return failing[-1]
    if rule == "random":
        digest = hashlib.sha256(f"{seed}\x00{task_id}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big")).choice(list(failing))
    raise ValueError(f"rejected must be 'random', 'first' or 'last', got {rule!r}")


def _pair_row(task_id: str, instruction: str, chosen: Row, worse: Row) -> Row:
    return {
        "id": f"codeflow/{task_id}/{worse['iteration']}-{chosen['iteration']}",
        "task_id": task_id,
        "source": "codeflow",
        "instruction": instruction,
        "chosen": chosen["code"],
        "rejected": worse["code"],
        "correct": chosen["code"],
        "incorrect": worse["code"],
        "rejected_iteration": worse["iteration"],
        "chosen_iteration": chosen["iteration"],
        "n_iterations": chosen["iteration"] + 1,
        "family": "codeflow",
        "similarity": Levenshtein.normalized_similarity(chosen["code"], worse["code"]),
        "verified": "true",
    }


def _rejected_row(
    task_id: str, instruction: str, reason: str, n_iterations: int | None = None
) -> Row:
    row: Row = dict.fromkeys(REJECTED_COLUMNS)
    row.update(task_id=task_id, source="codeflow", instruction=instruction, reason=reason)
    row["n_iterations"] = n_iterations
    return row


# --------------------------------------------------------------------------------------------
# Rule filters (docs/methods.md §3.1 step 5)


def filter_reason(
    chosen: str,
    rejected: str,
    *,
    max_length: int,
    count_tokens: Callable[[str], int],
    max_changed_lines: int = MAX_CHANGED_LINES,
) -> str | None:
    """Why a (chosen, rejected) pair is dropped, or None to keep it.

    Checked in this order, the first hit names the reason: only comments or whitespace differ; the
    same AST; the same AST once local names are renamed consistently (a rule-based stand-in for
    the paper's LLM judge, which drops renames); an empty D-; a D- of only comments or blank
    lines; more than ``max_changed_lines`` D- lines; a side longer than ``max_length`` tokens.
    """
    if only_comments_or_whitespace_differ(chosen, rejected):
        return "only comments or whitespace differ"
    if same_ast(chosen, rejected):
        return "same AST as the chosen"
    if same_ast_after_renaming(chosen, rejected):
        return "rename only (same AST after renaming local names)"
    error_lines = rejected_error_lines(chosen, rejected)
    if not error_lines:
        return "D- is empty (the rejected program has no line of its own)"
    if not _holds_code(rejected, [number for number, _ in error_lines]):
        return "D- holds only comments or whitespace"
    if len(error_lines) > max_changed_lines:
        return f"more than {max_changed_lines} changed lines ({len(error_lines)})"
    n_chosen, n_rejected = count_tokens(chosen), count_tokens(rejected)
    if max(n_chosen, n_rejected) > max_length:
        return f"longer than {max_length} tokens (chosen {n_chosen}, rejected {n_rejected})"
    return None


_NOISE_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_LAYOUT_TOKENS = {tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE}


def _python_tokens(code: str) -> list[tokenize.TokenInfo] | None:
    try:
        return list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return None


def code_tokens(code: str) -> list[tuple[int, str]] | None:
    """Python tokens without comments and layout noise; None if ``code`` does not tokenize.

    INDENT/DEDENT/NEWLINE stay as bare types: indentation width does not matter, but moving a line
    into or out of a block changes the program and must not count as "whitespace only".
    """
    tokens = _python_tokens(code)
    if tokens is None:
        return None
    return [
        (t.type, "" if t.type in _LAYOUT_TOKENS else t.string)
        for t in tokens
        if t.type not in _NOISE_TOKENS
    ]


def only_comments_or_whitespace_differ(a: str, b: str) -> bool:
    """True when the two programs have the same token stream once comments and layout are removed."""
    tokens_a, tokens_b = code_tokens(a), code_tokens(b)
    if tokens_a is None or tokens_b is None:
        return a.split() == b.split()
    return tokens_a == tokens_b


def same_ast(a: str, b: str) -> bool:
    """True when both parse to the same AST (False if either does not parse)."""
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except (SyntaxError, ValueError):
        return False


def rejected_error_lines(chosen: str, rejected: str) -> list[tuple[int, str]]:
    """IterPref's D-: ``(line number from 0, line)`` of the rejected program's own lines.

    The same computation as the masks stage's Target-DPO rejected mask (``mask_table``): both
    programs normalised by ``normalise_code``, then ``masks.rejected_line_char_marks`` (ndiff
    '+' lines). Line numbers count lines of the normalised rejected program.
    """
    chosen, rejected = normalise_code(chosen), normalise_code(rejected)
    marks = rejected_line_char_marks(chosen, rejected)
    out, start = [], 0
    for number, line in enumerate(split_lines(rejected)):
        if marks[start]:
            out.append((number, line))
        start += len(line)
    return out


def count_rejected_diff_lines(chosen: str, rejected: str) -> int:
    """|D-|: the number of :func:`rejected_error_lines`."""
    return len(rejected_error_lines(chosen, rejected))


def _holds_code(code: str, line_numbers: Sequence[int]) -> bool:
    """Whether any of these lines (from 0, of ``normalise_code(code)``) holds a code token.

    A line inside a multi-line string holds code; a program that does not tokenize falls back to
    "not blank and not starting with #".
    """
    code = normalise_code(code)
    tokens = _python_tokens(code)
    if tokens is None:
        lines = split_lines(code)
        return any(lines[n].strip() and not lines[n].lstrip().startswith("#") for n in line_numbers)
    code_lines: set[int] = set()
    for t in tokens:
        if t.type not in _NOISE_TOKENS | _LAYOUT_TOKENS:
            code_lines.update(range(t.start[0] - 1, t.end[0]))
    return any(n in code_lines for n in line_numbers)


# --------------------------------------------------------------------------------------------
# Rename-only pairs: the same AST once the names local to functions are renamed consistently

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def same_ast_after_renaming(a: str, b: str) -> bool:
    """True when the two programs differ at most by a consistent renaming of local names.

    Local names are the parameters and the names bound inside a function or lambda (assignment,
    loop, ``with``/``except`` targets, nested definitions), minus ``global``/``nonlocal`` ones.
    Module-level names (the entry point, imports, helpers the tests may call), attributes and
    keyword names stay as they are. Parameters count as local: swapping two parameter names is a
    rename (only a keyword call could tell). False if either program does not parse.
    """
    try:
        tree_a, tree_b = ast.parse(a), ast.parse(b)
    except (SyntaxError, ValueError):
        return False
    return ast.dump(_LocalRenamer().visit(tree_a)) == ast.dump(_LocalRenamer().visit(tree_b))


def _parameters(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


def _own_nodes(body: Sequence[ast.AST]) -> Iterable[ast.AST]:
    """The nodes of a scope's body in source order, without the bodies of nested functions and
    lambdas (their names, decorators and defaults belong to this scope)."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _FUNCTIONS):
            children: list[ast.AST] = [*node.decorator_list, *node.args.defaults,
                                       *(d for d in node.args.kw_defaults if d is not None)]
        elif isinstance(node, ast.Lambda):
            children = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
        else:
            children = list(ast.iter_child_nodes(node))
        stack.extend(reversed(children))


def _local_names(params: Sequence[ast.arg], body: Sequence[ast.AST]) -> list[str]:
    """Names local to a scope, in the order they are first bound."""
    bound = [p.arg for p in params]
    declared: set[str] = set()
    for node in _own_nodes(body):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.append(node.id)
        elif isinstance(node, (*_FUNCTIONS, ast.ClassDef, ast.ExceptHandler)) and node.name:
            bound.append(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            declared.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return [name for name in dict.fromkeys(bound) if name not in declared]


class _LocalRenamer(ast.NodeTransformer):
    """Renames local names to ``<k>`` (k counts scopes' names in traversal order): not valid
    identifiers, so they never collide with a name left as it is."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}
        self.count = 0

    def _enter(self, params: Sequence[ast.arg], body: Sequence[ast.AST]) -> dict[str, str]:
        outer = self.env
        names = _local_names(params, body)
        self.env = {**outer, **{n: f"<{self.count + k}>" for k, n in enumerate(names)}}
        self.count += len(names)
        for param in params:
            param.arg = self.env[param.arg]
        return outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.name = self.env.get(node.name, node.name)
        for part in (*node.decorator_list, *node.args.defaults, *node.args.kw_defaults):
            if part is not None:
                self.visit(part)
        outer = self._enter(_parameters(node.args), node.body)
        node.body = [self.visit(statement) for statement in node.body]
        self.env = outer
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        for part in (*node.args.defaults, *node.args.kw_defaults):
            if part is not None:
                self.visit(part)
        outer = self._enter(_parameters(node.args), [node.body])
        node.body = self.visit(node.body)
        self.env = outer
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = self.env.get(node.name, node.name)
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self.env.get(node.id, node.id)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name:
            node.name = self.env.get(node.name, node.name)
        return self.generic_visit(node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        node.names = [self.env.get(name, name) for name in node.names]
        return node


# --------------------------------------------------------------------------------------------
# Report


def pass_rate_by_iteration(trajectories: Iterable[Row]) -> list[tuple[int, float]]:
    """Cumulative pass rate after each iteration: share of trajectories passed at <= iteration.

    The denominator is every trajectory (a task that stopped early counts as passed afterwards);
    iterations run from 0 to the largest one stored. Paper: 36.7 % at 0 -> 67.5 % after 5 fixes.
    """
    groups = _group_by_task(trajectories)
    if not groups:
        return []
    first_pass = [
        next((v["iteration"] for v in versions if v["passed"]), None)
        for versions in groups.values()
    ]
    last = max(v["iteration"] for versions in groups.values() for v in versions)
    return [
        (it, sum(p is not None and p <= it for p in first_pass) / len(first_pass))
        for it in range(last + 1)
    ]
