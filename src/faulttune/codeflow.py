"""CodeFlow: iterative debugging until the tests pass, and IterPref preference pairs.

METHODS.md §3.1. For every task the model writes a program (iteration 0), the sandbox runs the
task's tests, and on failure the program and its execution output go back to the model with a
request for a fixed version; at most ``max_iters`` fix rounds, stopping at the first pass. The
final passing version is preferred over an earlier failing one (§3.1 step 4) and the rule filters
of §3.1 step 5 drop pairs whose difference is not a real logic change.

Prompts (``faulttune.prompts``): iteration 0 is ``solve_messages(instruction)``; every fix is ONE
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
    "more than N changed lines (k)", "longer than N tokens (chosen c, rejected r)".

Resuming: after every round each new version is appended to the JSONL ``checkpoint``
(``faulttune.io.append_jsonl``). A rerun loads it and continues every task from its last stored
version; passed tasks and tasks whose budget is spent get no more model calls. Stored versions
beyond a smaller ``max_iters`` are kept as they are.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import io
import json
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
from faulttune.io import DataError, append_jsonl, write_jsonl

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
MAX_CHANGED_LINES = 20  # METHODS §3.1 step 5 (ii): |D-| > 20 lines is dropped

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
) -> tuple[list[Row], list[Row], list[Row]]:
    """Debug every task until its tests pass or ``max_iters`` fixes are spent; build the pairs.

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
    jobs = [(tested[tid], by_id[tid]["test"]) for tid in active]
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
    rows = _read_checkpoint_rows(path)
    histories: dict[str, list[Row]] = {}
    for lineno, row in rows:
        _check_checkpoint_row(path, lineno, row, histories, by_id, start)
        histories.setdefault(row["task_id"], []).append(row)
    log.info("codeflow: resumed %d versions of %d tasks from %s", len(rows), len(histories), path)
    return histories


def _read_checkpoint_rows(path: Path) -> list[tuple[int, Row]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    rows: list[tuple[int, Row]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            if lineno != len(lines):
                raise DataError(f"{path} line {lineno}: not valid JSON ({e.msg})") from e
            log.warning("%s line %d: torn last line dropped (run killed mid-write)", path, lineno)
            write_jsonl([row for _, row in rows], path)
    return rows


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
# Rule filters (METHODS §3.1 step 5)


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
    same AST; more than ``max_changed_lines`` rejected-side diff lines (D-); a side longer than
    ``max_length`` tokens.
    """
    if only_comments_or_whitespace_differ(chosen, rejected):
        return "only comments or whitespace differ"
    if same_ast(chosen, rejected):
        return "same AST as the chosen"
    changed = count_rejected_diff_lines(chosen, rejected)
    if changed > max_changed_lines:
        return f"more than {max_changed_lines} changed lines ({changed})"
    n_chosen, n_rejected = count_tokens(chosen), count_tokens(rejected)
    if max(n_chosen, n_rejected) > max_length:
        return f"longer than {max_length} tokens (chosen {n_chosen}, rejected {n_rejected})"
    return None


_NOISE_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}


def code_tokens(code: str) -> list[tuple[int, str]] | None:
    """Python tokens without comments and layout noise; None if ``code`` does not tokenize.

    INDENT/DEDENT/NEWLINE stay as bare types: indentation width does not matter, but moving a line
    into or out of a block changes the program and must not count as "whitespace only".
    """
    layout = {tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    return [
        (t.type, "" if t.type in layout else t.string)
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


def count_rejected_diff_lines(chosen: str, rejected: str) -> int:
    """|D-|: lines of the rejected program that ``difflib.ndiff`` marks as not shared with chosen."""
    diff = difflib.ndiff(chosen.splitlines(), rejected.splitlines())
    return sum(line.startswith("+ ") for line in diff)


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
