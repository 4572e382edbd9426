"""Training examples with their masks: the rows of ``results/{run}/masks/{kind}_{source}.parquet``.

Schema (:data:`MASKS_SCHEMA`, docs/CONTRACTS.md "Training examples"): one row per example,

    id, task_id, kind            str
    chosen_ids                   list<int32>   chat-templated prompt + response
    chosen_start                 int32         index of the first response token
    chosen_mask                  list<int8>    per token of chosen_ids, 0 on the prompt
    rejected_ids / _start / _mask              same for the rejected response, or null
    first_diff                   int32 or null (cct only)

Every pair is tokenised INSIDE its training sequence: prompt ``solve_messages(instruction)``,
response ``code_response(code)``, rendered by ``render_training_text`` and tokenised with
``add_special_tokens=False`` (the chat template writes every special token itself). Marks are
computed on the code characters by :mod:`faulttune.masks` and mapped to the tokens of the full
text through the offset mapping, shifted by where the code starts in it. The code is normalised
as ``code_response`` places it (``code.strip("\\n") + "\\n"``).

Response tokens: from the first token that starts at or after the response's first character
through the response's last character, plus the end-of-turn token right after it, which the
model must learn to emit. The end-of-turn token is the one the CHAT TEMPLATE closes an assistant
turn with (:func:`end_of_turn_id`: ChatML ``<|im_end|>``, Llama 3 ``<|eot_id|>``), which need not
be ``tokenizer.eos_token_id``. Whatever the template writes after it (e.g. a newline) is never
masked.

Masks per kind (1 = token in the loss / segment):
    sft          chosen: every response token; no rejected side.
    cct          chosen and rejected: every response token; first_diff = first differing position.
    cct_seq      CCT's bug-fix sample (built with every cct row): prompt bugfix_messages(incorrect,
                 seeded template index), response = the correct code; chosen: every response token.
    fgit         chosen H_c, rejected H_i (line | token | hybrid, values {0, 1, 2}). A task without
                 a usable pair is a plain fgit row (:func:`build_fgit_rows`): no rejected side,
                 H_c all zero, i.e. ordinary SFT at weight 1 inside the FGit run.
    dpo          chosen and rejected: every response token.
    target_dpo   chosen: every response token; rejected: tokens of D- lines (ndiff '+').
    focused_dpo  both: the tokens between the common prefix and suffix of the two responses.

Rows that cannot be built go to the rejected list: the input pair plus ``kind``, ``reason`` (one of
:data:`REJECT_REASONS`) and ``detail``. Nothing is truncated.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from faulttune import masks as M
from faulttune.generate.prompts import (
    BUGFIX_TEMPLATES,
    CODE_PREFILL,
    bugfix_messages,
    code_response,
    render_training_text,
    solve_messages,
)
from faulttune.io import DataError

KINDS = ("sft", "cct", "fgit", "dpo", "target_dpo", "focused_dpo")  # cct also yields cct_seq rows
PAIR_KINDS = ("cct", "dpo", "target_dpo", "focused_dpo")  # an identical pair carries no signal
REJECT_REASONS = ("empty code", "empty instruction", "identical", "too long", "template error",
                  "another pair of the task is more similar")
METADATA_MODEL_KEY = b"faulttune.model"

MASKS_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("task_id", pa.string()),
    ("kind", pa.string()),
    ("chosen_ids", pa.list_(pa.int32())),
    ("chosen_start", pa.int32()),
    ("chosen_mask", pa.list_(pa.int8())),
    ("rejected_ids", pa.list_(pa.int32())),
    ("rejected_start", pa.int32()),
    ("rejected_mask", pa.list_(pa.int8())),
    ("first_diff", pa.int32()),
])


class RowRejected(Exception):
    """A pair that cannot become a training example; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Encoded:
    """One training sequence: ids, offsets, the response token span and the code's char start."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    start: int        # first response token
    end: int          # one past the last response token (end-of-turn token included)
    code_char: int    # character where the code starts in the full text

    def response_mask(self) -> list[int]:
        return [1 if self.start <= i < self.end else 0 for i in range(len(self.ids))]

    def place(self, response_values: Sequence[int]) -> list[int]:
        """Values for ids[start:] placed into a full-length mask (0 on the prompt)."""
        return [0] * self.start + list(response_values)


def normalise_code(code: str) -> str:
    """The code exactly as :func:`code_response` writes it (surrounding newlines stripped, one
    newline at the end)."""
    return code.strip("\n") + "\n"


_TURN_PROBE = "faulttune-end-of-turn-probe"


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token that closes an assistant turn: the first special token the chat template
    writes after an assistant message (ChatML ``<|im_end|>``, Llama 3 ``<|eot_id|>``, Gemma
    ``<end_of_turn>``, Mistral ``</s>``). ``eos_token_id`` when the tokenizer has no chat template
    or the template writes no special token after the message."""
    if not getattr(tokenizer, "chat_template", None):
        return tokenizer.eos_token_id
    messages = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": _TURN_PROBE}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    after = text[text.rindex(_TURN_PROBE) + len(_TURN_PROBE):]
    special = set(tokenizer.all_special_ids)
    special |= {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    ids = tokenizer(after, add_special_tokens=False).input_ids
    return next((i for i in ids if i in special), tokenizer.eos_token_id)


@dataclass(frozen=True)
class Encoder:
    """A tokenizer and the end-of-turn token its chat template closes a response with."""

    tokenizer: Any
    end_of_turn: int | None

    @classmethod
    def of(cls, tokenizer: Any) -> Encoder:
        return cls(tokenizer, end_of_turn_id(tokenizer))


def encode_training(encoder: Encoder, messages: Any, code: str) -> Encoded:
    """Render and tokenise prompt + ``code_response(code)``; locate the response and the code."""
    tokenizer = encoder.tokenizer
    try:
        full, start_char, end_char = render_training_text(tokenizer, messages, code_response(code))
    except ValueError as e:
        raise RowRejected("template error", str(e)) from e
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    start = next((i for i, (s, _) in enumerate(offsets) if s >= start_char), len(ids))
    end = next((i for i, (s, _) in enumerate(offsets) if s >= end_char), len(ids))
    if end < len(ids) and ids[end] == encoder.end_of_turn:
        end += 1
    return Encoded(ids, offsets, start, end, start_char + len(CODE_PREFILL))


def _check_length(encoded: Encoded, side: str, max_length: int) -> None:
    if len(encoded.ids) > max_length:
        raise RowRejected("too long", f"{side} has {len(encoded.ids)} tokens > max_length {max_length}")


def template_index(seed: int, pair_id: str) -> int:
    """CCT bug-fix template for a pair: seeded, and independent of the order of the pairs."""
    digest = hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(BUGFIX_TEMPLATES)


@dataclass(frozen=True)
class PairInput:
    """The fields of a pair row that masks need (``correct``/``incorrect`` or ``chosen``/``rejected``)."""

    id: str
    task_id: str
    instruction: str
    correct: str
    incorrect: str | None  # None for sft examples


def read_pair(pair: dict[str, Any], index: int, source: str, kind: str = "pair") -> PairInput:
    """Check one pair row; a missing field raises naming the source, the row and the field.

    ``sft`` examples need only the correct side, so a training-table row (``task_id``,
    ``instruction``, ``solution``) is read as it is: its id is the task id, it has no incorrect code.
    """
    def field(*names: str) -> Any:
        for name in names:
            if name in pair:
                return pair[name]
        raise DataError(f"{source} row {index}: missing {' / '.join(repr(n) for n in names)}")

    sft = kind == "sft"
    return PairInput(
        id=str(field("id", "task_id") if sft else field("id")), task_id=str(field("task_id")),
        instruction=field("instruction"),
        correct=field("correct", "chosen", "solution") if sft else field("correct", "chosen"),
        incorrect=None if sft else field("incorrect", "rejected"),
    )


def _check_codes(pair: PairInput, row_kind: str) -> tuple[str, str]:
    codes = []
    sides = [("correct", pair.correct)] + ([] if row_kind == "sft" else [("incorrect", pair.incorrect)])
    for side, code in sides:
        if not isinstance(code, str) or not code.strip():
            raise RowRejected("empty code", f"{side} code is {code!r}")
        codes.append(normalise_code(code))
    if not isinstance(pair.instruction, str) or not pair.instruction.strip():
        raise RowRejected("empty instruction", f"instruction is {pair.instruction!r}")
    if row_kind in (*PAIR_KINDS, "cct_seq") and codes[0] == codes[1]:
        raise RowRejected("identical", "correct and incorrect code are the same")
    return codes[0], codes[1] if len(codes) > 1 else ""


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


def _mask_row(
    encoder: Encoder, pair: PairInput, row_kind: str, granularity: str, seed: int, max_length: int
) -> dict[str, Any]:
    """Build one training example of ``row_kind``; raise RowRejected when it cannot be built."""
    correct, incorrect = _check_codes(pair, row_kind)
    if row_kind == "cct_seq":
        messages = bugfix_messages(incorrect, template_index(seed, pair.id))
        seq = encode_training(encoder, messages, correct)
        _check_length(seq, "chosen", max_length)
        return _row(row_kind, seq, seq.response_mask())
    prompt = solve_messages(pair.instruction)
    chosen = encode_training(encoder, prompt, correct)
    _check_length(chosen, "chosen", max_length)
    if row_kind == "sft":
        return _row(row_kind, chosen, chosen.response_mask())
    rejected = encode_training(encoder, prompt, incorrect)
    _check_length(rejected, "rejected", max_length)
    return _pair_row(row_kind, chosen, rejected, correct, incorrect, granularity)


def _pair_row(
    kind: str, chosen: Encoded, rejected: Encoded, correct: str, incorrect: str, granularity: str
) -> dict[str, Any]:
    if kind in ("dpo", "cct"):
        first = M.first_diff_token(chosen.ids, rejected.ids) if kind == "cct" else None
        return _row(kind, chosen, chosen.response_mask(), rejected, rejected.response_mask(), first)
    if kind == "fgit":
        h_c, h_i = M.fgit_token_masks(
            M.pair_char_marks(correct, incorrect), chosen.offsets, rejected.offsets, granularity,
            offset_correct=chosen.code_char, offset_incorrect=rejected.code_char,
        )
        return _row(kind, chosen, h_c, rejected, h_i)
    if kind == "target_dpo":
        d_minus = M.char_marks_to_token_marks(
            rejected.offsets, M.rejected_line_char_marks(correct, incorrect),
            char_offset=rejected.code_char, first_char=True,
        )
        return _row(kind, chosen, chosen.response_mask(), rejected, d_minus)
    if kind == "focused_dpo":
        mid_c, mid_r = M.middle_segments(chosen.ids[chosen.start:], rejected.ids[rejected.start:])
        return _row(kind, chosen, chosen.place(mid_c), rejected, rejected.place(mid_r))
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def build_mask_rows(
    pairs: Sequence[dict[str, Any]],
    tokenizer: Any,
    kind: str,
    *,
    granularity: str = "hybrid",
    seed: int = 0,
    max_length: int = 1024,
    source: str = "pairs",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training examples of ``kind`` for every pair, and the rejected pairs.

    ``kind="cct"`` yields a ``cct`` and a ``cct_seq`` row per pair. ``granularity`` only affects
    fgit; ``seed`` picks the cct_seq templates; ``source`` names the input in error messages.
    Rows follow :data:`MASKS_SCHEMA`; rejected rows are the pair plus kind, reason and detail.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if granularity not in M.GRANULARITIES:
        raise ValueError(f"granularity must be one of {M.GRANULARITIES}, got {granularity!r}")
    row_kinds = ("cct", "cct_seq") if kind == "cct" else (kind,)
    encoder = Encoder.of(tokenizer)
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(pairs):
        pair = read_pair(raw, index, source, kind)
        for row_kind in row_kinds:
            try:
                row = _mask_row(encoder, pair, row_kind, granularity, seed, max_length)
            except RowRejected as e:
                rejected.append({**raw, "kind": row_kind, "reason": e.reason, "detail": e.detail})
                continue
            rows.append({"id": pair.id, "task_id": pair.task_id, **row})
    return rows, rejected


def build_fgit_rows(
    tasks: Sequence[dict[str, Any]],
    pairs: Sequence[dict[str, Any]],
    tokenizer: Any,
    *,
    granularity: str = "hybrid",
    max_length: int = 1024,
    tasks_source: str = "train",
    pairs_source: str = "pairs",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """FGit's training examples over the WHOLE training table, one row per task, in its order.

    A task with a pair becomes an ``fgit`` row (H_c, H_i); when the pairs hold several for a task,
    the most similar one (highest ``similarity``, then file order: FGit §2.1 keeps the most
    similar variant). A task without a pair, or whose pair cannot be built, becomes a plain
    ``fgit`` row: id = task id, its solution as the response, no rejected side and an all-zero
    H_c, i.e. ordinary SFT at weight 1. So FGit trains on exactly the tasks the SFT baseline
    trains on ("same data, same settings", §2.6). ``tasks`` are training-table rows (``task_id``,
    ``instruction``, ``solution``), ``pairs`` pairs rows (``id``, ``task_id``, ``instruction``,
    ``correct``/``chosen``, ``incorrect``/``rejected``). A pair of an unknown task is an error.

    Rejected rows (``id, task_id, kind, reason, detail``): pairs that could not be built (their
    task trains as a plain row), less similar pairs of a task, and tasks whose plain row cannot
    be built (those are missing from the SFT examples too).
    """
    if granularity not in M.GRANULARITIES:
        raise ValueError(f"granularity must be one of {M.GRANULARITIES}, got {granularity!r}")
    encoder = Encoder.of(tokenizer)
    tasks_read = [read_pair(raw, i, tasks_source, "sft") for i, raw in enumerate(tasks)]
    best, rejected = _most_similar_pairs(pairs, {t.task_id for t in tasks_read}, pairs_source)
    rows = []
    for task in tasks_read:
        pair = best.get(task.task_id)
        if pair is not None:
            try:
                row = _mask_row(encoder, pair, "fgit", granularity, 0, max_length)
                rows.append({"id": pair.id, "task_id": pair.task_id, **row})
                continue
            except RowRejected as e:
                rejected.append(_rejected_entry(pair, e.reason, e.detail))
        try:
            chosen = _mask_row(encoder, task, "sft", granularity, 0, max_length)
        except RowRejected as e:
            rejected.append(_rejected_entry(task, e.reason, e.detail))
            continue
        rows.append(plain_fgit_row({"id": task.id, "task_id": task.task_id, **chosen}))
    return rows, rejected


def plain_fgit_row(row: dict[str, Any]) -> dict[str, Any]:
    """The plain ``fgit`` row of a task from a row holding its correct code on the chosen side
    (an ``sft`` row, or an ``fgit`` pair row, whose chosen side is the task's solution in the same
    prompt): id = the task id, no rejected side, all-zero H_c (ordinary SFT at weight 1)."""
    return {**row, "id": row["task_id"], "kind": "fgit",
            "chosen_mask": [0] * len(row["chosen_ids"]), "rejected_ids": None,
            "rejected_start": None, "rejected_mask": None, "first_diff": None}


def _rejected_entry(pair: PairInput, reason: str, detail: str) -> dict[str, Any]:
    return {"id": pair.id, "task_id": pair.task_id, "kind": "fgit", "reason": reason, "detail": detail}


def _most_similar_pairs(
    pairs: Sequence[dict[str, Any]], task_ids: set[str], source: str
) -> tuple[dict[str, PairInput], list[dict[str, Any]]]:
    """The most similar pair of each task (ties: the first), and the others as rejected rows."""
    best: dict[str, tuple[float, PairInput]] = {}
    rejected = []
    for index, raw in enumerate(pairs):
        pair = read_pair(raw, index, source, "fgit")
        if pair.task_id not in task_ids:
            raise DataError(f"{source} row {index}: field task_id {pair.task_id!r} is not a task "
                            f"of the training table")
        similarity = float(raw.get("similarity") or 0.0)
        held = best.get(pair.task_id)
        if held is None or similarity > held[0]:
            best[pair.task_id] = (similarity, pair)
            pair, similarity = (held[1], held[0]) if held else (None, 0.0)
        if pair is not None:
            rejected.append(_rejected_entry(pair, "another pair of the task is more similar",
                                            f"similarity {similarity}"))
    return {task_id: pair for task_id, (_, pair) in best.items()}, rejected


def write_masks(
    rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], model_name: str
) -> None:
    """Write rows with :data:`MASKS_SCHEMA`; the schema metadata keeps the tokenizer's model name
    (``faulttune.model``) so a viewer can decode the ids. Atomic (temporary file renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = MASKS_SCHEMA.with_metadata({METADATA_MODEL_KEY: model_name.encode()})
    table = pa.Table.from_pylist(list(rows), schema=schema)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def read_masks(path: str | os.PathLike[str]) -> tuple[pa.Table, str | None]:
    """A masks table and the model name stored in its metadata (None if absent)."""
    table = pq.read_table(path)
    missing = [n for n in MASKS_SCHEMA.names if n not in table.column_names]
    if missing:
        raise DataError(f"{path}: not a masks file, missing column(s) {missing}")
    meta = table.schema.metadata or {}
    name = meta.get(METADATA_MODEL_KEY)
    return table, name.decode() if name is not None else None
