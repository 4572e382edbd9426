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
through the response's last character, plus the end-of-turn token (``tokenizer.eos_token_id``)
right after it, which the model must learn to emit. Whatever the template writes after that
(e.g. a newline) is never masked.

Masks per kind (1 = token in the loss / segment):
    sft          chosen: every response token; no rejected side.
    cct          chosen and rejected: every response token; first_diff = first differing position.
    cct_seq      CCT's bug-fix sample (built with every cct row): prompt bugfix_messages(incorrect,
                 seeded template index), response = the correct code; chosen: every response token.
    fgit         chosen H_c, rejected H_i (line | token | hybrid, values {0, 1, 2}).
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
REJECT_REASONS = ("empty code", "empty instruction", "identical", "too long", "template error")
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


def encode_training(tokenizer: Any, messages: Any, code: str) -> Encoded:
    """Render and tokenise prompt + ``code_response(code)``; locate the response and the code."""
    try:
        full, start_char, end_char = render_training_text(tokenizer, messages, code_response(code))
    except ValueError as e:
        raise RowRejected("template error", str(e)) from e
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    start = next((i for i, (s, _) in enumerate(offsets) if s >= start_char), len(ids))
    end = next((i for i, (s, _) in enumerate(offsets) if s >= end_char), len(ids))
    if end < len(ids) and ids[end] == tokenizer.eos_token_id:
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
    tokenizer: Any, pair: PairInput, row_kind: str, granularity: str, seed: int, max_length: int
) -> dict[str, Any]:
    """Build one training example of ``row_kind``; raise RowRejected when it cannot be built."""
    correct, incorrect = _check_codes(pair, row_kind)
    if row_kind == "cct_seq":
        messages = bugfix_messages(incorrect, template_index(seed, pair.id))
        seq = encode_training(tokenizer, messages, correct)
        _check_length(seq, "chosen", max_length)
        return _row(row_kind, seq, seq.response_mask())
    prompt = solve_messages(pair.instruction)
    chosen = encode_training(tokenizer, prompt, correct)
    _check_length(chosen, "chosen", max_length)
    if row_kind == "sft":
        return _row(row_kind, chosen, chosen.response_mask())
    rejected = encode_training(tokenizer, prompt, incorrect)
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
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(pairs):
        pair = read_pair(raw, index, source, kind)
        for row_kind in row_kinds:
            try:
                row = _mask_row(tokenizer, pair, row_kind, granularity, seed, max_length)
            except RowRejected as e:
                rejected.append({**raw, "kind": row_kind, "reason": e.reason, "detail": e.detail})
                continue
            rows.append({"id": pair.id, "task_id": pair.task_id, **row})
    return rows, rejected


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
