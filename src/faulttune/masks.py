"""Error-sensitive token masks: first difference, middles, line / token / hybrid diffs, D- and the
execution-trace lines (docs/methods.md §1.2, §2.2, §3.2, §4, §7).

Everything here is pure. The work happens on CHARACTERS first and is mapped to tokens last, so the
same character-level core serves two callers:

* the public functions below, which tokenise a code string on its own
  (``tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)``), and
* :mod:`faulttune.mask_table`, which tokenises the code inside its full chat-templated training
  sequence and passes ``char_offset`` = where the code starts in that text.

Conventions
-----------
* Lines: a line ends after each ``"\\n"`` (the newline belongs to its line). ``"\\r"`` is an
  ordinary character of its line, so CRLF text splits exactly like LF text and a lone ``"\\r"``
  never starts a line (unlike ``str.splitlines``). The last line may lack a newline.
* Line diff: ``difflib.ndiff`` on those lines. Because newlines are part of the lines, ``"b"`` and
  ``"b\\n"`` differ: a last line whose only change is the missing newline is flagged on both sides
  (``-`` in one, ``+`` in the other). :mod:`faulttune.mask_table` normalises every code string to end
  with exactly one newline, so this cannot happen inside training sequences.
* Character -> token: a token is edit-marked when ANY character it covers is marked; a token belongs
  to the line of its FIRST character (a token such as ``"\\n    "`` belongs to the line its newline
  ends). Tokens with an empty span (special tokens a post-processor adds, e.g. BOS) are never marked.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import Levenshtein

GRANULARITIES = ("line", "token", "hybrid")
Offsets = Sequence[tuple[int, int]]


# ----------------------------------------------------------------------------------------------
# token-id level (CCT, Focused-DPO)


def first_diff_token(ids_a: Sequence[int], ids_b: Sequence[int]) -> int | None:
    """First position where two id sequences differ; the end of the shorter one counts as a
    difference. ``None`` when they are equal."""
    for i, (a, b) in enumerate(zip(ids_a, ids_b)):
        if a != b:
            return i
    if len(ids_a) != len(ids_b):
        return min(len(ids_a), len(ids_b))
    return None


def common_prefix_suffix(ids_a: Sequence[int], ids_b: Sequence[int]) -> tuple[int, int]:
    """Lengths of the longest common prefix and of the longest common suffix of what is left.

    The suffix never eats into the prefix: prefix + suffix <= min(len(a), len(b)).
    """
    prefix = first_diff_token(ids_a, ids_b)
    if prefix is None:
        return len(ids_a), 0
    room = min(len(ids_a), len(ids_b)) - prefix
    suffix = 0
    while suffix < room and ids_a[-1 - suffix] == ids_b[-1 - suffix]:
        suffix += 1
    return prefix, suffix


def middle_segments(
    chosen_ids: Sequence[int], rejected_ids: Sequence[int]
) -> tuple[list[int], list[int]]:
    """Focused-DPO (docs/methods.md §4): 1 on the tokens between the common prefix and the common suffix.

    Identical sequences give all zeros. When one sequence is the other plus extra tokens, the
    shorter side's middle is empty and the longer side's middle is exactly the extra tokens.
    """
    prefix, suffix = common_prefix_suffix(chosen_ids, rejected_ids)

    def mask(n: int) -> list[int]:
        return [1 if prefix <= i < n - suffix else 0 for i in range(n)]

    return mask(len(chosen_ids)), mask(len(rejected_ids))


# ----------------------------------------------------------------------------------------------
# character level


def split_lines(text: str) -> list[str]:
    """Lines of ``text``, each keeping its ``"\\n"``; ``"\\r"`` stays in its line. ``""`` -> []."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def changed_lines(a: str, b: str) -> tuple[list[int], list[int]]:
    """Per line of ``a`` / ``b``: 1 if ``difflib.ndiff`` tags it ``-`` (only in a) / ``+`` (only in
    b), else 0. ``?`` hint lines are skipped."""
    flags_a: list[int] = []
    flags_b: list[int] = []
    for entry in difflib.ndiff(split_lines(a), split_lines(b)):
        tag = entry[:2]
        if tag == "  ":
            flags_a.append(0)
            flags_b.append(0)
        elif tag == "- ":
            flags_a.append(1)
        elif tag == "+ ":
            flags_b.append(1)
    return flags_a, flags_b


def line_marks_to_char_marks(text: str, line_marks: Sequence[int]) -> list[int]:
    """Broadcast one value per line (see :func:`split_lines`) to every character of that line."""
    lines = split_lines(text)
    if len(lines) != len(line_marks):
        raise ValueError(f"{len(line_marks)} line marks for a text of {len(lines)} lines")
    out: list[int] = []
    for line, mark in zip(lines, line_marks):
        out.extend([mark] * len(line))
    return out


def edited_chars(correct: str, incorrect: str) -> tuple[list[int], list[int]]:
    """Characters touched by ``Levenshtein.editops(correct, incorrect)`` (docs/methods.md §2.2).

    replace: both sides; delete: the correct side; insert at source position p: the incorrect side
    and the correct characters p - 1 and p where they exist (the decision point lies between them).
    """
    marks_c = [0] * len(correct)
    marks_i = [0] * len(incorrect)
    for op, spos, dpos in Levenshtein.editops(correct, incorrect):
        if op in ("replace", "delete"):
            marks_c[spos] = 1
        if op in ("replace", "insert"):
            marks_i[dpos] = 1
        if op == "insert":
            for p in (spos - 1, spos):
                if 0 <= p < len(correct):
                    marks_c[p] = 1
    return marks_c, marks_i


@dataclass(frozen=True)
class PairCharMarks:
    """Character-level marks of a (correct, incorrect) pair; one entry per character."""

    line_correct: list[int]
    line_incorrect: list[int]
    edit_correct: list[int]
    edit_incorrect: list[int]


def pair_char_marks(correct: str, incorrect: str) -> PairCharMarks:
    """Line (ndiff) and edit (Levenshtein) marks of both sides, on characters."""
    lines_c, lines_i = changed_lines(correct, incorrect)
    edit_c, edit_i = edited_chars(correct, incorrect)
    return PairCharMarks(
        line_correct=line_marks_to_char_marks(correct, lines_c),
        line_incorrect=line_marks_to_char_marks(incorrect, lines_i),
        edit_correct=edit_c,
        edit_incorrect=edit_i,
    )


def rejected_line_char_marks(chosen: str, rejected: str) -> list[int]:
    """IterPref's D- on the characters of ``rejected``: lines ndiff tags ``+`` (only in rejected)."""
    _, lines_r = changed_lines(chosen, rejected)
    return line_marks_to_char_marks(rejected, lines_r)


# ----------------------------------------------------------------------------------------------
# character -> token


def char_marks_to_token_marks(
    offsets: Offsets, char_marks: Sequence[int], *, char_offset: int = 0, first_char: bool = False
) -> list[int]:
    """One mark per token from marks on the characters of a text that starts at ``char_offset``
    in the tokenised text.

    ``offsets`` is the fast tokenizer's offset mapping of the tokenised text. Default: the max
    mark over the characters the token covers (any overlap). ``first_char=True``: the mark of the
    token's first character (line membership). Characters outside the marked text count as 0.
    """
    n = len(char_marks)
    out: list[int] = []
    for start, end in offsets:
        lo, hi = max(start - char_offset, 0), min(end - char_offset, n)
        if end <= start or lo >= hi:
            out.append(0)
        elif first_char:
            out.append(char_marks[lo] if start - char_offset >= 0 else 0)
        else:
            out.append(max(char_marks[lo:hi]))
    return out


def combine_granularity(line: Sequence[int], token: Sequence[int], granularity: str) -> list[int]:
    """FGit's mask from the line and token masks of the same tokens.

    hybrid = line + token in {0, 1, 2}, where an edited token always counts as lying on an edited
    line: 2 = edited token, 1 = unedited token on an ndiff-flagged line, 0 = elsewhere (docs/methods.md
    §2.2's reading). The two differ only where a token mark falls outside an ndiff-flagged line:
    the neighbours of an insertion point (an inserted line marks the end of the line before it),
    or Levenshtein aligning repeated lines differently from ndiff.
    """
    if granularity == "line":
        return list(line)
    if granularity == "token":
        return list(token)
    if granularity == "hybrid":
        return [2 if t else (1 if l_ else 0) for l_, t in zip(line, token, strict=True)]
    raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")


def fgit_token_masks(
    marks: PairCharMarks,
    offsets_correct: Offsets,
    offsets_incorrect: Offsets,
    granularity: str,
    *,
    offset_correct: int = 0,
    offset_incorrect: int = 0,
) -> tuple[list[int], list[int]]:
    """H_c and H_i on the tokens of two tokenised texts in which the code starts at the offsets."""

    def side(line: list[int], edit: list[int], offsets: Offsets, shift: int) -> list[int]:
        line_tok = char_marks_to_token_marks(offsets, line, char_offset=shift, first_char=True)
        edit_tok = char_marks_to_token_marks(offsets, edit, char_offset=shift)
        return combine_granularity(line_tok, edit_tok, granularity)

    return (
        side(marks.line_correct, marks.edit_correct, offsets_correct, offset_correct),
        side(marks.line_incorrect, marks.edit_incorrect, offsets_incorrect, offset_incorrect),
    )


def token_offsets(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    """Offset mapping of ``tokenizer(text, add_special_tokens=False)`` (needs a fast tokenizer)."""
    if not getattr(tokenizer, "is_fast", True):
        raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer: no offset mapping")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [tuple(o) for o in enc["offset_mapping"]]


# ----------------------------------------------------------------------------------------------
# public mask functions on standalone code strings


def fgit_masks(
    correct: str, incorrect: str, tokenizer: Any, granularity: str = "hybrid"
) -> tuple[list[int], list[int]]:
    """FGit masks H_c, H_i: one value per token of ``tokenizer(x, add_special_tokens=False)``.

    line: 1 on tokens of ndiff-flagged lines; token: 1 on tokens overlapping a Levenshtein-edited
    character (see :func:`edited_chars`); hybrid: see :func:`combine_granularity`.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    marks = pair_char_marks(correct, incorrect)
    return fgit_token_masks(
        marks, token_offsets(tokenizer, correct), token_offsets(tokenizer, incorrect), granularity
    )


def d_minus_mask(chosen: str, rejected: str, tokenizer: Any) -> list[int]:
    """IterPref's D- mask: 1 on every token of a line that ndiff(chosen, rejected) tags ``+``
    (only in rejected); one value per token of ``tokenizer(rejected, add_special_tokens=False)``."""
    char_marks = rejected_line_char_marks(chosen, rejected)
    return char_marks_to_token_marks(token_offsets(tokenizer, rejected), char_marks, first_char=True)


# ----------------------------------------------------------------------------------------------
# marks of a pair inside its training sequences (the registry's mask kinds)


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


@dataclass(frozen=True)
class Twins:
    """A (correct, incorrect) pair as a mask kind sees it: both codes as the training sequences
    hold them and their encodings; ``traced``: the 1-based lines of each twin that the execution
    trace marks (``faulttune.tracing``; trace masks only)."""

    correct: str
    incorrect: str
    chosen: Encoded
    rejected: Encoded
    traced: tuple[Sequence[int], Sequence[int]] | None = None


@dataclass(frozen=True)
class Marks:
    """Token marks of both sides of a pair (aligned to their ids) and, for the first-difference
    kind, the first position where the two id sequences differ."""

    chosen: list[int]
    rejected: list[int]
    first_diff: int | None = None


def response_marks(twins: Twins) -> Marks:
    """Every response token of both sides (DPO)."""
    return Marks(twins.chosen.response_mask(), twins.rejected.response_mask())


def first_diff_marks(twins: Twins) -> Marks:
    """Every response token, and the first differing token position (CCT's comparison)."""
    first = first_diff_token(twins.chosen.ids, twins.rejected.ids)
    return Marks(twins.chosen.response_mask(), twins.rejected.response_mask(), first)


def middle_marks(twins: Twins) -> Marks:
    """The tokens between the common prefix and the common suffix of the responses (Focused-DPO)."""
    chosen, rejected = twins.chosen, twins.rejected
    mid_c, mid_r = middle_segments(chosen.ids[chosen.start:], rejected.ids[rejected.start:])
    return Marks(chosen.place(mid_c), rejected.place(mid_r))


def segment_marks(granularity: str) -> Any:
    """The marks of a diff granularity (:data:`GRANULARITIES`) on both twins (FGit's H_c, H_i)."""
    def marks(twins: Twins) -> Marks:
        h_c, h_i = fgit_token_masks(
            pair_char_marks(twins.correct, twins.incorrect), twins.chosen.offsets,
            twins.rejected.offsets, granularity, offset_correct=twins.chosen.code_char,
            offset_incorrect=twins.rejected.code_char)
        return Marks(h_c, h_i)

    marks.__name__ = f"{granularity}_marks"
    return marks


def _line_flag_marks(text: str, flags: Sequence[int], encoded: Encoded) -> list[int]:
    chars = line_marks_to_char_marks(text, flags)
    return char_marks_to_token_marks(encoded.offsets, chars, char_offset=encoded.code_char,
                                     first_char=True)


def d_minus_marks(twins: Twins) -> Marks:
    """IterPref's D-: the wrong twin's lines that ndiff tags ``+`` (the correct twin's ``-``)."""
    flags_c, flags_i = changed_lines(twins.correct, twins.incorrect)
    return Marks(_line_flag_marks(twins.correct, flags_c, twins.chosen),
                 _line_flag_marks(twins.incorrect, flags_i, twins.rejected))


def _line_set_marks(text: str, lines: Sequence[int], encoded: Encoded) -> list[int]:
    wanted = set(lines)
    flags = [1 if n in wanted else 0 for n in range(1, len(split_lines(text)) + 1)]
    return _line_flag_marks(text, flags, encoded)


def trace_marks(twins: Twins) -> Marks:
    """The lines the execution trace marks (``faulttune.tracing``: changed lines run from the
    first divergence on, or the line diff where the traces cannot tell), on both twins."""
    if twins.traced is None:
        raise ValueError("trace marks need the traced lines of the pair")
    lines_c, lines_i = twins.traced
    return Marks(_line_set_marks(twins.correct, lines_c, twins.chosen),
                 _line_set_marks(twins.incorrect, lines_i, twins.rejected))
