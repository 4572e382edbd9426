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
functions it calls) is bound, unless that line starts a redefinition of one of them. What follows
is what :func:`sanitize_program` drops.

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
_DEFINITION_HEADER = re.compile(r"(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)")
_PREDEFINED = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__"}


@dataclass(frozen=True)
class AnswerComplete:
    """Ends a benchmark completion before the first top-level statement after a complete answer.

    The answer is the program :func:`assemble_program` makes of the prompt and the completion so
    far: a whole program that defines ``entry_point``, or the prompt's function with the completion
    as its body. It is complete when it parses, defines ``entry_point`` at the top level, and every
    name that ``entry_point`` and the top-level functions it reaches use is bound somewhere (a
    builtin, an import, a definition, an assignment, an argument). Before the completion has begun
    its own ``def entry_point`` or an indented body, nothing is complete (the prompt alone may parse).

    The next statement is read up to the end of its first line (after any decorators) before the
    completion ends: one that rebinds a name the answer uses (a second ``def entry_point``, which
    is the one that would run) belongs to the answer, and the rule waits for the next statement.
    """

    prompt: str
    entry_point: str

    def end(self, text: str) -> int | None:
        if not self.entry_point:
            return None
        for line in _TOP_LEVEL_LINE.finditer(text):
            head = text[: line.start()]
            if not self._answer_begun(head):
                continue
            needs = answer_needs(assemble_program(self.prompt, self.entry_point, head),
                                 self.entry_point)
            if needs is None:
                continue
            header = _statement_header(text, line.start())
            if header is None:  # the statement's first line is still being written
                return None
            if not _header_binds(header) & needs:
                return line.start()
        return None

    def _answer_begun(self, head: str) -> bool:
        return bool(
            defines_entry_point(head, self.entry_point) or _INDENTED_FIRST_LINE.match(head)
        )


def _statement_header(text: str, start: int) -> str | None:
    """The first complete line from ``start`` on that is not a decorator; None until written."""
    while (newline := text.find("\n", start)) >= 0:
        line = text[start:newline]
        if not line.startswith("@"):
            return line
        start = newline + 1
    return None


def _header_binds(header: str) -> set[str]:
    """Names a top-level statement binds, judged from its first line (a compound statement other
    than ``def``/``class`` counts as binding nothing)."""
    definition = _DEFINITION_HEADER.match(header)
    if definition:
        return {definition.group(1)}
    tree = _parse(header)
    return _bound_names(tree) if tree is not None else set()


@dataclass(frozen=True)
class FirstPythonBlock:
    """Ends a markdown answer right after the closing fence of its first Python block."""

    def end(self, text: str) -> int | None:
        return python_block_end(text)


@functools.lru_cache(maxsize=4096)
def answer_needs(program: str, entry_point: str) -> frozenset[str] | None:
    """The names a complete answer is made of: ``entry_point``, the top-level functions it reaches
    and the global names they read. None when the answer is not complete: ``program`` does not
    parse, does not define ``entry_point`` at the top level, or leaves a name it needs unbound."""
    tree = _parse(program)
    if tree is None:
        return None
    definitions = _top_level_definitions(tree)
    if entry_point not in definitions:
        return None
    reached, used = _reached_from(entry_point, definitions)
    if used - _bound_names(tree) - _PREDEFINED:
        return None
    return frozenset(reached | (used - _PREDEFINED))


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _top_level_definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """Top-level functions and classes by name (the parts of a program an answer can reach)."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name: node for node in tree.body if isinstance(node, kinds)}


def _reached_from(entry_point: str, definitions: dict[str, ast.AST]) -> tuple[set[str], set[str]]:
    """The top-level definitions ``entry_point`` reaches, and the global names they read (their
    own arguments and local assignments left out)."""
    reached, used, todo = {entry_point}, set(), [entry_point]
    while todo:
        node = definitions[todo.pop()]
        local = _bound_names(node) - {getattr(node, "name", "")}
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                if child.id not in local:
                    used.add(child.id)
                if child.id in definitions and child.id not in reached:
                    reached.add(child.id)
                    todo.append(child.id)
    return reached, used


def _bound_names(tree: ast.AST) -> set[str]:
    """Names bound anywhere in ``tree`` (one scope for all: a cheap, generous reading)."""
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
