"""Small text helpers shared by the stages."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[ \t]*$", re.MULTILINE)


def extract_code_block(text: str) -> str | None:
    """The body of the first fenced code block (python/py/bare), or None when there is none.

    An unclosed fence yields everything after it (a model cut off by its token budget). Text with
    no fence at all is returned unchanged only if it parses as Python.
    """
    fences = list(_FENCE.finditer(text))
    if not fences:
        return text if _parses(text) else None
    opening = next((m for m in fences if m.group(1).lower() in ("python", "py", "python3", "")), None)
    if opening is None:
        return None
    closing = next((m for m in fences if m.start() > opening.end()), None)
    body = text[opening.end() + 1 : closing.start() if closing else len(text)]
    return body.rstrip("\n") + "\n" if body.strip() else None


def _parses(text: str) -> bool:
    import ast

    if not text.strip():
        return False
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True
