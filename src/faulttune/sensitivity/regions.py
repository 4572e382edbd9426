"""Where two responses differ, on their token ids (pure functions).

The probe compares the correct and the buggy program as answers to the same prompt. Tokens before
the first difference have the same context on both sides, so their log-probs are identical and
carry no evidence; tokens after the last difference repeat the same text (the shared code after
the bug, the closing fence, the end-of-turn token) and dilute it. :func:`differing_region` keeps
what is left: the tokens where the two token sequences differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix, at most min(len) - 1 (each suffix keeps a token)."""
    n = 0
    limit = min(len(a), len(b)) - 1
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def region_start(correct: Sequence[int], buggy: Sequence[int]) -> int:
    """The first response token at which the two responses differ, at most min(len) - 1 (the
    previous headline's region runs from there to the end of each response)."""
    return common_prefix(correct, buggy)


class Region(NamedTuple):
    """``correct[start:end_correct]`` and ``buggy[start:end_buggy]`` are the differing tokens."""

    start: int
    end_correct: int
    end_buggy: int

    @property
    def n_correct(self) -> int:
        return self.end_correct - self.start

    @property
    def n_buggy(self) -> int:
        return self.end_buggy - self.start


def differing_region(correct: Sequence[int], buggy: Sequence[int]) -> Region:
    """The differing tokens of two sequences: what is left after dropping their longest common
    prefix and then their longest common suffix (which may not reach into the prefix).

    Substitution (``a + b`` vs ``a - b``): each side keeps its own operator token(s).
    Pure insertion or deletion: one side would keep nothing. Both sides then take back the first
    token of the common suffix (on the shorter side, the token that follows the edit point: where
    the model meets the missing or extra code), so neither region is empty; with no common suffix
    (one sequence is a prefix of the other) they take back the last token of the common prefix
    instead. Identical sequences: an empty region on both sides, ``Region(n, n, n)``.
    """
    n_a, n_b = len(correct), len(buggy)
    start = 0
    while start < min(n_a, n_b) and correct[start] == buggy[start]:
        start += 1
    if start == n_a == n_b:
        return Region(start, start, start)
    suffix = 0
    while (suffix < min(n_a, n_b) - start
           and correct[n_a - 1 - suffix] == buggy[n_b - 1 - suffix]):
        suffix += 1
    end_a, end_b = n_a - suffix, n_b - suffix
    if end_a == start or end_b == start:
        if suffix:
            end_a, end_b = end_a + 1, end_b + 1
        else:
            start -= 1
    return Region(start, end_a, end_b)
