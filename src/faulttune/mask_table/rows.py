"""The rows of a masks file, built as its examples kind (:class:`faulttune.methods.Examples`)
says: each input record becomes one row per :class:`~faulttune.methods.RowSpec`, marked by the
registry's mask kinds (pure functions of :mod:`faulttune.masks`).

Every pair is tokenised INSIDE its training sequence: prompt ``solve_messages(instruction)``,
response ``code_response(code)``, rendered by ``render_training_text`` and tokenised with
``add_special_tokens=False`` (the chat template writes every special token itself). Marks are
computed on the code characters and mapped to the tokens of the full text through the offset
mapping, shifted by where the code starts in it. The code is normalised as ``code_response``
places it (``code.strip("\\n") + "\\n"``).

Rows that cannot be built go to the rejected list: the input record plus ``kind``, ``reason`` (one
of ``REJECT_REASONS``) and ``detail``. Nothing is truncated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faulttune.generate.prompts import bugfix_messages, solve_messages
from faulttune.io import DataError
from faulttune.mask_table.encoding import (
    Encoder,
    RowRejected,
    check_length,
    encode_training,
    normalise_code,
    template_index,
)
from faulttune.masks import Encoded, Twins
from faulttune.methods import Examples, RowSpec, mask_kind
from faulttune.methods.kinds import BUGFIX, EVERY_TASK, PAIR, SOLUTION, TASKS

Traced = Mapping[str, tuple[Sequence[int], Sequence[int]]]  # pair id -> (correct, incorrect) lines


@dataclass(frozen=True)
class PairInput:
    """The fields of a pair row that masks need (``correct``/``incorrect`` or ``chosen``/``rejected``)."""

    id: str
    task_id: str
    instruction: str
    correct: str
    incorrect: str | None  # None for a training-table row


def read_pair(pair: dict[str, Any], index: int, source: str, table: bool = False) -> PairInput:
    """Check one pair row; a missing field raises naming the source, the row and the field.

    ``table``: a training-table row (``task_id``, ``instruction``, ``solution``), read as it is:
    its id is the task id, it has no incorrect code.
    """
    def field(*names: str) -> Any:
        for name in names:
            if name in pair:
                return pair[name]
        raise DataError(f"{source} row {index}: missing {' / '.join(repr(n) for n in names)}")

    return PairInput(
        id=str(field("id", "task_id") if table else field("id")), task_id=str(field("task_id")),
        instruction=field("instruction"),
        correct=field("correct", "chosen", "solution") if table else field("correct", "chosen"),
        incorrect=None if table else field("incorrect", "rejected"),
    )


def _check_codes(pair: PairInput, spec: RowSpec, reject_identical: bool) -> tuple[str, str]:
    """The normalised codes the row uses (an unused side is "")."""
    used = {"correct", "incorrect"} if spec.build in (PAIR, BUGFIX) else {spec.side}
    codes = {}
    for side, code in (("correct", pair.correct), ("incorrect", pair.incorrect)):
        if side not in used:
            codes[side] = ""
            continue
        if not isinstance(code, str) or not code.strip():
            raise RowRejected("empty code", f"{side} code is {code!r}")
        codes[side] = normalise_code(code)
    if not isinstance(pair.instruction, str) or not pair.instruction.strip():
        raise RowRejected("empty instruction", f"instruction is {pair.instruction!r}")
    if reject_identical and codes["correct"] == codes["incorrect"]:
        raise RowRejected("identical", "correct and incorrect code are the same")
    return codes["correct"], codes["incorrect"]


def _row(
    kind: str, chosen: Encoded, chosen_mask: list[int],
    rejected: Encoded | None = None, rejected_mask: list[int] | None = None,
    first_diff: int | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "chosen_ids": chosen.ids, "chosen_start": chosen.start, "chosen_mask": chosen_mask,
        "rejected_ids": rejected.ids if rejected else None,
        "rejected_start": rejected.start if rejected else None,
        "rejected_mask": rejected_mask, "first_diff": first_diff,
    }


@dataclass(frozen=True)
class _Build:
    """What building one row needs besides the pair."""

    encoder: Encoder
    seed: int
    max_length: int
    traced: Traced | None
    traces_source: str
    reject_identical: bool


def _build_row(build: _Build, pair: PairInput, spec: RowSpec) -> dict[str, Any]:
    """One training example as ``spec`` says; raise RowRejected when it cannot be built."""
    correct, incorrect = _check_codes(pair, spec, build.reject_identical and spec.build != SOLUTION)
    if spec.build == BUGFIX:
        messages = bugfix_messages(incorrect, template_index(build.seed, pair.id))
        seq = encode_training(build.encoder, messages, correct)
        check_length(seq, "chosen", build.max_length)
        return _row(spec.kind, seq, seq.response_mask())
    prompt = solve_messages(pair.instruction)
    if spec.build != PAIR:
        code = correct if spec.side == "correct" else incorrect
        solution = encode_training(build.encoder, prompt, code)
        check_length(solution, "chosen", build.max_length)
        return _row(spec.kind, solution, solution.response_mask())
    chosen = encode_training(build.encoder, prompt, correct)
    check_length(chosen, "chosen", build.max_length)
    rejected = encode_training(build.encoder, prompt, incorrect)
    check_length(rejected, "rejected", build.max_length)
    twins = Twins(correct, incorrect, chosen, rejected, _traced_lines(build, pair, spec))
    marks = {name: mask_kind(name).marks(twins) for name in spec.masks()}
    first = next((m.first_diff for name, m in marks.items() if mask_kind(name).first_diff), None)
    return _row(spec.kind, chosen, marks[spec.chosen_mask].chosen, rejected,
                marks[spec.rejected_mask].rejected, first)


def _traced_lines(build: _Build, pair: PairInput, spec: RowSpec) -> Any:
    if not any(mask_kind(m).traced for m in spec.masks()):
        return None
    if build.traced is None or pair.id not in build.traced:
        raise DataError(f"{build.traces_source}: no trace of pair {pair.id!r}")
    return build.traced[pair.id]


def build_examples(
    examples: Examples,
    records: Sequence[dict[str, Any]],
    tokenizer: Any,
    *,
    tasks: Sequence[dict[str, Any]] | None = None,
    traced: Traced | None = None,
    seed: int = 0,
    max_length: int = 1024,
    source: str = "pairs",
    tasks_source: str = "train",
    traces_source: str = "traces",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``examples`` for every record (training-table rows when it reads the table,
    else pairs rows), and the rejected records. An every-task kind needs ``tasks`` (the training
    table); a traced mask kind needs ``traced`` (pair id -> the lines each twin's trace marks).
    ``seed`` picks the bug-fix templates; ``source`` names the input in error messages."""
    build = _Build(Encoder.of(tokenizer), seed, max_length, traced, traces_source,
                   reject_identical=examples.reads != EVERY_TASK)
    if examples.reads == EVERY_TASK:
        if tasks is None:
            raise ValueError(f"examples {examples.name!r} cover every task: pass the training table")
        return _every_task_rows(build, examples.rows[0], tasks, records, tasks_source, source)
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(records):
        pair = read_pair(raw, index, source, table=examples.reads == TASKS)
        for spec in examples.rows:
            try:
                row = _build_row(build, pair, spec)
            except RowRejected as e:
                rejected.append({**raw, "kind": spec.kind, "reason": e.reason, "detail": e.detail})
                continue
            rows.append({"id": pair.id, "task_id": pair.task_id, **row})
    return rows, rejected


def _every_task_rows(
    build: _Build, spec: RowSpec, tasks: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]],
    tasks_source: str, pairs_source: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per task of the training table, in its order (docs/methods.md §2.1, §2.6: "same
    data, same settings" as a baseline on the table). A task with a pair becomes a pair row of ``spec``; when the
    pairs hold several for a task, the most similar one (highest ``similarity``, then file order).
    A task without a pair, or whose pair cannot be built, becomes a plain row (:func:`plain_row`).
    A pair of an unknown task is an error.

    Rejected rows (``id, task_id, kind, reason, detail``): pairs that could not be built (their
    task trains as a plain row), less similar pairs of a task, and tasks whose plain row cannot
    be built (those are missing from the table's solution rows too)."""
    tasks_read = [read_pair(raw, i, tasks_source, table=True) for i, raw in enumerate(tasks)]
    best, rejected = _most_similar_pairs(pairs, {t.task_id for t in tasks_read}, pairs_source,
                                         spec.kind)
    solution = RowSpec(spec.kind, SOLUTION)
    rows = []
    for task in tasks_read:
        pair = best.get(task.task_id)
        if pair is not None:
            try:
                rows.append({"id": pair.id, "task_id": pair.task_id, **_build_row(build, pair, spec)})
                continue
            except RowRejected as e:
                rejected.append(_rejected_entry(pair, spec.kind, e.reason, e.detail))
        try:
            chosen = _build_row(build, task, solution)
        except RowRejected as e:
            rejected.append(_rejected_entry(task, spec.kind, e.reason, e.detail))
            continue
        rows.append(plain_row({"id": task.id, "task_id": task.task_id, **chosen}))
    return rows, rejected


def plain_row(row: dict[str, Any]) -> dict[str, Any]:
    """The plain row of a task from a row holding its correct code on the chosen side (a
    solution row, or a pair row of an every-task kind, whose chosen side is the task's solution
    in the same prompt): id = the task id, no rejected side, all-zero chosen mask (trained at
    weight 1 inside such a method's run)."""
    return {**row, "id": row["task_id"], "chosen_mask": [0] * len(row["chosen_ids"]),
            "rejected_ids": None, "rejected_start": None, "rejected_mask": None, "first_diff": None}


def _rejected_entry(pair: PairInput, kind: str, reason: str, detail: str) -> dict[str, Any]:
    return {"id": pair.id, "task_id": pair.task_id, "kind": kind, "reason": reason, "detail": detail}


def _most_similar_pairs(
    pairs: Sequence[dict[str, Any]], task_ids: set[str], source: str, kind: str,
) -> tuple[dict[str, PairInput], list[dict[str, Any]]]:
    """The most similar pair of each task (ties: the first), and the others as rejected rows."""
    best: dict[str, tuple[float, PairInput]] = {}
    rejected = []
    for index, raw in enumerate(pairs):
        pair = read_pair(raw, index, source)
        if pair.task_id not in task_ids:
            raise DataError(f"{source} row {index}: field task_id {pair.task_id!r} is not a task "
                            f"of the training table")
        similarity = float(raw.get("similarity") or 0.0)
        held = best.get(pair.task_id)
        if held is None or similarity > held[0]:
            best[pair.task_id] = (similarity, pair)
            pair, similarity = (held[1], held[0]) if held else (None, 0.0)
        if pair is not None:
            rejected.append(_rejected_entry(pair, kind, "another pair of the task is more similar",
                                            f"similarity {similarity}"))
    return {task_id: pair for task_id, (_, pair) in best.items()}, rejected
