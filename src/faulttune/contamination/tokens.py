"""Text as the contamination check compares it (see :mod:`faulttune.contamination`): tokens
that ignore layout and comments, and their n-grams."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Sequence

SHINGLE = 5
_WORDS = re.compile(r"\w+|[^\w\s]")
_STRING_WORDS = re.compile(r"\w+|[^\w\s'\"]")  # inside a literal: no quote characters
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}
_STRING_TYPES = {tokenize.STRING} | (
    {tokenize.FSTRING_START, tokenize.FSTRING_MIDDLE, tokenize.FSTRING_END}
    if hasattr(tokenize, "FSTRING_START") else set())


def comparable_tokens(text: str, docstrings: bool = True) -> list[str]:
    """Normalised tokens of ``text`` (see the module docstring). ``docstrings=False`` also drops
    every statement that is only a string literal (docstrings)."""
    out: list[str] = []
    line: list[tuple[bool, list[str]]] = []  # the current logical line: (is string, tokens)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                out.extend(_flush(line, docstrings))
                line = []
            elif tok.type in _STRING_TYPES:
                line.append((True, _STRING_WORDS.findall(tok.string.lstrip("rRbBuUfFtT"))))
            elif tok.type not in _SKIP:
                line.append((False, [tok.string]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _WORDS.findall(text)
    return out + _flush(line, docstrings)


def _flush(line: list[tuple[bool, list[str]]], docstrings: bool) -> list[str]:
    if not docstrings and line and all(is_string for is_string, _ in line):
        return []
    return [t for _, tokens in line for t in tokens]


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """The set of ``n``-grams; a text shorter than ``n`` has one n-gram, itself (if non-empty)."""
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}
