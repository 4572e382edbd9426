"""Fault localisation by execution trace, the pure part (docs/methods.md §7).

Given the line traces of the correct and the wrong twin on one input where their outputs differ,
the marked lines are, on each twin, the lines the text diff changes that the twin runs from the
FIRST DIVERGENCE of the two traces on. Two trace events agree when the wrong twin's line is the
correct twin's line under the text diff's alignment (ndiff keeps it unchanged); a changed line
never agrees, so running one is a divergence, and so is a branch the other twin does not take or
one trace ending before the other.

When the traces cannot tell, the mask falls back to the text diff (every changed line, the line
granularity; on the wrong twin the D- lines), and the status says why:

    diverged            the traced lines (the mask proper)
    no divergence       the two traces agree event by event (the difference lies where no line
                        event shows it)
    crashed before      the wrong twin raised while its trace still agreed with the correct one
                        (its trace is a prefix of the correct twin's): no changed line ran
    no marked line      the traces diverge, but the wrong twin runs none of its changed lines from
                        there on (e.g. it lacks a statement: D- is empty)
    no differing input  no test input on which the twins' outputs differ could be run
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from faulttune.masks import changed_lines, split_lines

DIVERGED = "diverged"
NO_DIVERGENCE = "no divergence"
CRASHED_BEFORE = "crashed before"
NO_MARKED_LINE = "no marked line"
NO_DIFFERING_INPUT = "no differing input"
STATUSES = (DIVERGED, NO_DIVERGENCE, CRASHED_BEFORE, NO_MARKED_LINE, NO_DIFFERING_INPUT)


@dataclass(frozen=True)
class Trace:
    """One twin on one input: the 1-based lines it ran, in order, and how the call ended
    (``returned`` with the value's repr, or ``raised`` with the exception's type)."""

    lines: tuple[int, ...]
    outcome: str
    value: str

    def same_output(self, other: Trace) -> bool:
        return (self.outcome, self.value) == (other.outcome, other.value)


@dataclass(frozen=True)
class TracedLines:
    """The lines to mark on each twin (1-based), why, and where the traces diverge (the index of
    the first disagreeing event; None when they never do)."""

    status: str
    correct: tuple[int, ...]
    incorrect: tuple[int, ...]
    divergence: int | None = None


def line_alignment(correct: str, incorrect: str) -> dict[int, int]:
    """Wrong twin's line -> correct twin's line, for every line ndiff keeps unchanged."""
    out: dict[int, int] = {}
    line_c = line_i = 0
    for entry in difflib.ndiff(split_lines(correct), split_lines(incorrect)):
        tag = entry[:2]
        if tag in ("  ", "- "):
            line_c += 1
        if tag in ("  ", "+ "):
            line_i += 1
        if tag == "  ":
            out[line_i] = line_c
    return out


def first_divergence(lines_c: Sequence[int], lines_i: Sequence[int],
                     alignment: dict[int, int]) -> int | None:
    """The first event where the traces disagree (the shorter trace's length when it is a prefix
    of the other); None when they agree throughout."""
    for k, (c, i) in enumerate(zip(lines_c, lines_i)):
        if alignment.get(i) != c:
            return k
    if len(lines_c) != len(lines_i):
        return min(len(lines_c), len(lines_i))
    return None


def changed(code_c: str, code_i: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The 1-based lines the text diff changes on each twin (ndiff ``-`` / ``+``)."""
    flags_c, flags_i = changed_lines(code_c, code_i)
    return (tuple(n + 1 for n, f in enumerate(flags_c) if f),
            tuple(n + 1 for n, f in enumerate(flags_i) if f))


def traced_lines(code_c: str, code_i: str, trace_c: Trace | None, trace_i: Trace | None,
                 ) -> TracedLines:
    """The marked lines of a pair from its twins' traces on an input where their outputs differ
    (None: there is no such input); the text diff's lines where the traces cannot tell."""
    changed_c, changed_i = changed(code_c, code_i)
    if trace_c is None or trace_i is None:
        return TracedLines(NO_DIFFERING_INPUT, changed_c, changed_i)
    k = first_divergence(trace_c.lines, trace_i.lines, line_alignment(code_c, code_i))
    if k is None:
        return TracedLines(NO_DIVERGENCE, changed_c, changed_i)
    if k == len(trace_i.lines) and trace_i.outcome == "raised":
        return TracedLines(CRASHED_BEFORE, changed_c, changed_i, k)
    ran_i = set(trace_i.lines[k:])
    marked_i = tuple(n for n in changed_i if n in ran_i)
    if not marked_i:
        return TracedLines(NO_MARKED_LINE, changed_c, changed_i, k)
    ran_c = set(trace_c.lines[k:])
    return TracedLines(DIVERGED, tuple(n for n in changed_c if n in ran_c), marked_i, k)
