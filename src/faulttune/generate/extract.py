"""Pull the code out of a model's markdown reply.

:func:`extract_code_block` and :func:`cut_at_stop` are public: the backends use them, and the bug
generators can use :func:`extract_code_block` on teacher replies (written without the pre-fill).
:func:`solution_program` turns a benchmark completion into the program that is scored.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

# An opening fence at the start of a line: ``` then an optional language tag, then the newline.
_OPEN = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[ \t]*\n", re.MULTILINE)
_CLOSE = re.compile(r"^[ \t]*```", re.MULTILINE)
_PYTHON_TAGS = {"python", "py", "python3"}


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of every fenced block; an unclosed last block runs to the end."""
    found: list[tuple[str, str]] = []
    pos = 0
    while (opening := _OPEN.search(text, pos)) is not None:
        closing = _CLOSE.search(text, opening.end())
        end = closing.start() if closing else len(text)
        found.append((opening.group(1).lower(), text[opening.end() : end]))
        pos = closing.end() if closing else len(text)
    return found


def extract_code_block(text: str) -> str:
    """The body of the first python-tagged fenced block, else of the first fenced block.

    Rules, in order: a block tagged ``python``/``py``/``python3`` wins over untagged or other
    blocks; a block whose closing fence is missing (a reply cut by the token limit) runs to the end
    of the text; a reply without any fence is returned unchanged (the model answered with bare
    code). The body is returned exactly as written, with its final newline.

    >>> extract_code_block("Here:\\n```python\\nx = 1\\n```\\nDone.")
    'x = 1\\n'
    """
    blocks = _blocks(text)
    if not blocks:
        return text
    for tag, body in blocks:
        if tag in _PYTHON_TAGS:
            return body
    return blocks[0][1]


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether one occurred.

    >>> cut_at_stop("x = 1\\n```\\nmore", ("```",))
    ('x = 1\\n', True)
    """
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    if not hits:
        return text, False
    return text[: min(hits)], True


# An opening fence at the start of a line, optionally tagged; the tag decides if it is Python.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n", re.MULTILINE)
_ANY_CLOSE = re.compile(r"```")  # the first fence after the opening closes it, even mid-line
_STRICT_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})


def _first_python_block(text: str) -> tuple[int, int, int | None] | None:
    """(body start, body end, end of the closing fence or None when unclosed) of the first Python
    or untagged fenced block; None when there is none (yet)."""
    position = 0
    while (opening := _FENCE.search(text, position)) is not None:
        closing = _ANY_CLOSE.search(text, opening.end())
        if opening.group(1).lower() in _STRICT_PYTHON_TAGS:
            if closing is None:
                return opening.end(), len(text), None
            return opening.end(), closing.start(), closing.end()
        if closing is None:
            return None
        position = closing.end()
    return None


def python_block(text: str) -> str | None:
    """The body of the first Python (or untagged) fenced block, or ``None`` when there is none.

    Tags ``python``, ``py``, ``python3`` or none count (case-insensitive); blocks tagged with
    another language are skipped. An unclosed fence runs to the end of the text. The body is
    returned with surrounding blank lines removed and one final newline; an empty body counts as
    none.
    """
    block = _first_python_block(text)
    if block is None:
        return None
    body = text[block[0]:block[1]].strip("\n")
    return body.rstrip() + "\n" if body.strip() else None


def python_block_end(text: str) -> int | None:
    """Where the closing fence of the first Python block ends, or ``None`` while it is open:
    :func:`python_block` reads nothing after that point."""
    block = _first_python_block(text)
    return None if block is None else block[2]


# Top-level statements a clean program is made of; anything else (a call, a print, a
# ``if __name__ == "__main__":`` block, a loop) is code the model added after its answer.
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                ast.Assign, ast.AnnAssign)


def _parse(program: str) -> ast.Module | None:
    try:
        return ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _is_clean(tree: ast.Module) -> bool:
    def docstring(node: ast.stmt) -> bool:
        return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
            node.value.value, str)

    return all(isinstance(node, _DEFINITIONS) or docstring(node) for node in tree.body)


def defines(code: str, name: str) -> bool:
    """``name`` is defined (def, class or assignment) somewhere in ``code``; False if it does not
    parse."""
    tree = _parse(code)
    if tree is None:
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and node.name == name:
            return True
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id == name:
            return True
    return False


def sanitize_program(program: str, entry_point: str = "") -> str:
    """EvalPlus's sanitiser (``evalplus.sanitize``) on a program that needs it.

    Small models often keep writing after their answer: a ``main()`` with prints, an
    ``if __name__ == "__main__":`` block, or a cut-off extra function (the token limit). EvalPlus
    scores the *sanitised* sample: the longest block of lines that parses, reduced to the imports,
    ``entry_point`` and the definitions it reaches. Rules here:

    - a program that parses and holds only imports, definitions, assignments and docstrings at
      the top level is returned unchanged (its formatting is kept);
    - otherwise EvalPlus's result, when it parses and defines ``entry_point`` (any result when
      ``entry_point`` is empty);
    - otherwise the program unchanged, so that the scorer reports its real error.

    >>> sanitize_program("def f():\\n    return 1\\nprint(f())\\n", "f")
    'def f():\\n    return 1\\n'
    """
    tree = _parse(program)
    if tree is not None and _is_clean(tree):
        return program
    from evalplus.sanitize import sanitize

    cleaned = sanitize(program, entry_point or None).strip("\n") + "\n"
    usable = defines(cleaned, entry_point) if entry_point else _parse(cleaned) is not None
    return cleaned if cleaned.strip() and usable else program


def _def_pattern(entry_point: str, top_level: bool) -> re.Pattern[str]:
    indent = "" if top_level else r"[ \t]*"
    return re.compile(
        rf"^{indent}(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", re.MULTILINE
    )


def assemble_program(prompt: str, entry_point: str, completion: str) -> str:
    """The program a completion stands for, before sanitising (rules in :func:`solution_program`)."""
    prompt_def = _def_pattern(entry_point, top_level=True).search(prompt) if entry_point else None
    if entry_point and defines_entry_point(completion, entry_point):
        preamble = prompt[: prompt_def.start()] if prompt_def else ""
        return preamble + completion
    if prompt_def:
        return prompt + ("" if prompt.endswith("\n") else "\n") + completion
    return completion


def defines_entry_point(completion: str, entry_point: str) -> bool:
    """The completion has a ``def entry_point(`` line (at any indentation)."""
    return _def_pattern(entry_point, top_level=False).search(completion) is not None


def solution_program(prompt: str, entry_point: str, completion: str) -> str:
    """The sanitising rule that turns a completion into a self-contained program.

    - completion defines ``entry_point`` (a ``def`` line): the prompt's *preamble* (its text before
      the top-level ``def entry_point(``: imports and helper functions, empty when the prompt is
      not code) + the completion, so imports and helpers the model left out still exist;
    - otherwise, when the prompt defines ``entry_point`` (HumanEval style): the prompt + the
      completion, read as the function body;
    - otherwise: the completion as it is (the scorer reports what is missing).

    The program is then sanitised as EvalPlus does (:func:`sanitize_program`): code the model
    wrote after its answer (a ``main()``, prints, a cut-off extra function) is dropped.
    """
    return sanitize_program(assemble_program(prompt, entry_point, completion), entry_point)
