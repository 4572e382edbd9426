"""Where a completion ends: stop strings and the per-conversation stop rules.

A row ends at EOS, at ``max_new_tokens``, at the first of ``GenerationParams.stop``, or where its
conversation's :class:`StopRule` says the answer is over. The hf backend checks the rules while
decoding, so a finished row leaves the batch at once; the other backends apply them to the text
they get back (:func:`cut_completion`), so every backend returns the same completion for the same
tokens.

:class:`AnswerComplete` is the rule of benchmark generation. EvalPlus stops chat models at
``\\nif __name__``, ``\\ndef main(``, ``\\nprint(`` and the closing fence, and completions of a bare
function also at any new top-level ``def``/``class``/``import``. An unconditional ``\\ndef `` would
cut a helper that a whole-program answer calls but defines after the entry point, so this rule
waits until nothing the entry point needs is missing: it ends the completion at the first
top-level line written once the entry point is defined and every name it uses (through the
functions it calls) is bound. What follows that line is what :func:`sanitize_program` drops.

:class:`FirstPythonBlock` is the rule of markdown answers (FGit's teacher): the reply is over once
its first Python block is closed, because :func:`python_block` reads nothing after it.
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from faulttune.generate.extract import (
    assemble_program,
    cut_at_stop,
    defines_entry_point,
    python_block_end,
)


class StopRule(Protocol):
    def end(self, text: str) -> int | None:
        """Where the completion ``text`` ends (it is ``text[:end]``), or ``None`` while it goes on."""
        ...


def cut_completion(text: str, stop: Sequence[str], rule: StopRule | None = None) -> str:
    """``text`` up to its first stop string or the end its rule finds, whichever comes first."""
    text = cut_at_stop(text, stop)[0]
    end = rule.end(text) if rule is not None else None
    return text if end is None else text[:end]


def is_finished(text: str, stop: Sequence[str], rule: StopRule | None = None) -> bool:
    """A stop string occurs in ``text`` or its rule ends it."""
    return cut_at_stop(text, stop)[1] or (rule is not None and rule.end(text) is not None)


# A line that starts at column 0 with code or a comment (not a blank line).
_TOP_LEVEL_LINE = re.compile(r"(?<=\n)[^\s]")
_INDENTED_FIRST_LINE = re.compile(r"\A(?:[ \t]*\n)*[ \t]+\S")
_PREDEFINED = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__"}


@dataclass(frozen=True)
class AnswerComplete:
    """Ends a benchmark completion before the first top-level line after a complete answer.

    The answer is the program :func:`assemble_program` makes of the prompt and the completion so
    far: a whole program that defines ``entry_point``, or the prompt's function with the completion
    as its body. It is complete when it parses, defines ``entry_point`` at the top level, and every
    name that ``entry_point`` and the top-level functions it reaches use is bound somewhere (a
    builtin, an import, a definition, an assignment, an argument). Before the completion has begun
    its own ``def entry_point`` or an indented body, nothing is complete (the prompt alone may parse).
    """

    prompt: str
    entry_point: str

    def end(self, text: str) -> int | None:
        if not self.entry_point:
            return None
        for line in _TOP_LEVEL_LINE.finditer(text):
            head = text[: line.start()]
            if self._answer_begun(head) and answer_complete(
                assemble_program(self.prompt, self.entry_point, head), self.entry_point
            ):
                return line.start()
        return None

    def _answer_begun(self, head: str) -> bool:
        return bool(
            defines_entry_point(head, self.entry_point) or _INDENTED_FIRST_LINE.match(head)
        )


@dataclass(frozen=True)
class FirstPythonBlock:
    """Ends a markdown answer right after the closing fence of its first Python block."""

    def end(self, text: str) -> int | None:
        return python_block_end(text)


@functools.lru_cache(maxsize=4096)
def answer_complete(program: str, entry_point: str) -> bool:
    """``program`` parses, defines ``entry_point`` at the top level and needs no unbound name."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    definitions = _top_level_definitions(tree)
    if entry_point not in definitions:
        return False
    return not (_names_used_from(entry_point, definitions) - _bound_names(tree) - _PREDEFINED)


def _top_level_definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """Top-level functions and classes by name (the parts of a program an answer can reach)."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name: node for node in tree.body if isinstance(node, kinds)}


def _names_used_from(entry_point: str, definitions: dict[str, ast.AST]) -> set[str]:
    """Every name read by ``entry_point`` and by the top-level definitions it reaches."""
    used: set[str] = set()
    todo, seen = [entry_point], {entry_point}
    while todo:
        for node in ast.walk(definitions[todo.pop()]):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                used.add(node.id)
                if node.id in definitions and node.id not in seen:
                    seen.add(node.id)
                    todo.append(node.id)
    return used


def _bound_names(tree: ast.Module) -> set[str]:
    """Names bound anywhere in the program (one scope for all: a cheap, generous reading)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
    return bound
