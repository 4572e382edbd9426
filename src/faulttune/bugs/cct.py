"""CCT's rule-injected bugs (docs/methods.md §1.1): exactly one edit per twin, located on the Python AST.

Families (``Edit.family``) and the edit kinds (``Edit.kind``) each one makes:

- ``variable_misuse`` / ``rename_variable``: one loaded variable (a ``Name`` bound in an enclosing
  scope of the snippet: arguments, assignment / loop / ``with`` / comprehension targets) is
  replaced by another variable bound in the same scope chain.
- ``operator_misuse`` / ``swap_operator``: one operator swapped within its class: arithmetic
  ``+ - * / // % **``, comparison ``< <= > >= == !=``, identity ``is``/``is not``, membership
  ``in``/``not in``, boolean ``and``/``or``, augmented assignment ``+= -= *= /= //= %= **=``.
- ``function_missing``: ``drop_call`` (``f(x)`` -> ``x``, ``s.strip()`` -> ``s``),
  ``remove_call_statement`` (a bare call statement deleted, or replaced by ``pass`` when it is
  alone in its block) or ``replace_callee`` (``max(...)`` -> ``min(...)`` where ``min`` is called
  elsewhere in the snippet; likewise a method name).

Edits are made on the SOURCE TEXT at the node's position (``ast`` gives line and UTF-8 byte
columns; operator positions come from ``tokenize``), so everything outside the edited span stays
byte-identical: formatting and comments survive and the first differing token is well defined.
A candidate edit is used only if the twin compiles and its AST differs from the original.
"""

from __future__ import annotations

import ast
import bisect
import io
import itertools
import random
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from faulttune.bugs import ast_key, compile_error

FAMILIES = ("variable_misuse", "operator_misuse", "function_missing")

_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
               ast.Mod: "%", ast.Pow: "**"}
_OPERATOR_CLASSES = (
    ("+", "-", "*", "/", "//", "%", "**"),
    ("<", "<=", ">", ">=", "==", "!="),
    ("is", "is not"),
    ("in", "not in"),
    ("and", "or"),
    ("+=", "-=", "*=", "/=", "//=", "%=", "**="),
)
# Expressions whose text can stand in for a call without parentheses.
_ATOMIC = (ast.Name, ast.Constant, ast.Attribute, ast.Subscript, ast.Call, ast.List, ast.Dict,
           ast.Set, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp, ast.JoinedStr)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp,
           ast.DictComp, ast.GeneratorExp)


@dataclass(frozen=True)
class Edit:
    """One edit of the source text: ``source[start:end]`` (``before``) becomes ``replacement``.

    ``line`` is 1-based and ``col`` 0-based, both in characters, at the start of the span.
    """

    family: str
    kind: str
    start: int
    end: int
    before: str
    replacement: str
    line: int
    col: int

    def apply(self, source: str) -> str:
        if source[self.start:self.end] != self.before:
            raise ValueError(f"edit {self} does not match the source text at {self.start}")
        return source[:self.start] + self.replacement + source[self.end:]


class _Text:
    """Maps AST positions (line, UTF-8 byte column) and token positions to string offsets."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = source.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, lineno: int, byte_col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:byte_col].decode("utf-8", "replace"))

    def char_offset(self, row: int, col: int) -> int:
        return self.starts[row - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (self.offset(node.lineno, node.col_offset),
                self.offset(node.end_lineno, node.end_col_offset))

    def line_col(self, offset: int) -> tuple[int, int]:
        row = bisect.bisect_right(self.starts, offset)
        return row, offset - self.starts[row - 1]

    def edit(self, family: str, kind: str, start: int, end: int, replacement: str) -> Edit:
        line, col = self.line_col(start)
        return Edit(family, kind, start, end, self.source[start:end], replacement, line, col)


# ---------------------------------------------------------------------------------------------
# variable misuse


def _target_names(target: ast.AST) -> Iterator[str]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            yield node.id


def _bound_in_scope(scope: ast.AST) -> set[str]:
    """Variables bound directly in ``scope`` (not in nested functions or comprehensions)."""
    names: set[str] = set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = scope.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                names.add(arg.arg)
    if isinstance(scope, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        for gen in scope.generators:
            names.update(_target_names(gen.target))
        return names
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        if isinstance(node, (ast.arg, ast.ClassDef, *_SCOPES)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return names


def _callee_names(tree: ast.AST) -> set[int]:
    """ids of the Name nodes that are called (``f`` in ``f(x)``): functions, not variables."""
    return {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}


def _variable_sites(tree: ast.Module) -> Iterator[tuple[ast.Name, list[str]]]:
    """Each loaded variable with the other variables in its scope chain (sorted)."""
    callees = _callee_names(tree)

    def visit(node: ast.AST, chain: tuple[set[str], ...]) -> Iterator[tuple[ast.Name, list[str]]]:
        if isinstance(node, _SCOPES):
            chain = (*chain, _bound_in_scope(node))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) \
                    and id(child) not in callees:
                in_scope = set().union(*chain)
                if child.id in in_scope:
                    yield child, sorted(in_scope - {child.id})
            yield from visit(child, chain)

    yield from visit(tree, (_bound_in_scope(tree),))


def variable_misuse_edits(source: str, tree: ast.Module) -> list[Edit]:
    text = _Text(source)
    edits = []
    for name, others in _variable_sites(tree):
        start, end = text.span(name)
        if source[start:end] != name.id:  # positions inside f-strings are unreliable before 3.12
            continue
        edits += [text.edit("variable_misuse", "rename_variable", start, end, o) for o in others]
    return edits


# ---------------------------------------------------------------------------------------------
# operator misuse


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    string: str


def _operator_tokens(text: _Text) -> list[_Token]:
    """OP and NAME tokens (operators, keywords) with string offsets, in source order."""
    tokens = tokenize.generate_tokens(io.StringIO(text.source).readline)
    return [_Token(text.char_offset(*t.start), text.char_offset(*t.end), t.string)
            for t in tokens if t.type in (tokenize.OP, tokenize.NAME)]


def _between(tokens: list[_Token], starts: list[int], lo: int, hi: int) -> list[_Token]:
    """Tokens inside ``[lo, hi)`` other than brackets."""
    i = bisect.bisect_left(starts, lo)
    found = []
    while i < len(tokens) and tokens[i].end <= hi:
        if tokens[i].string not in "()":
            found.append(tokens[i])
        i += 1
    return found


def _operator_gaps(tree: ast.Module) -> Iterator[tuple[ast.AST, ast.AST]]:
    """(left operand, right operand) pairs around each operator we know how to swap."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            yield node.left, node.right
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            yield from itertools.pairwise(operands)
        elif isinstance(node, ast.BoolOp):
            yield from itertools.pairwise(node.values)
        elif isinstance(node, ast.AugAssign) and type(node.op) in _ARITHMETIC:
            yield node.target, node.value


def operator_misuse_edits(source: str, tree: ast.Module) -> list[Edit]:
    text = _Text(source)
    tokens = _operator_tokens(text)
    starts = [t.start for t in tokens]
    classes = {op: ops for ops in _OPERATOR_CLASSES for op in ops}
    edits = []
    for left, right in _operator_gaps(tree):
        gap = _between(tokens, starts, text.span(left)[1], text.span(right)[0])
        op = " ".join(t.string for t in gap)
        if not gap or op not in classes:
            continue
        start, end = gap[0].start, gap[-1].end
        edits += [text.edit("operator_misuse", "swap_operator", start, end, other)
                  for other in classes[op] if other != op]
    return sorted(edits, key=lambda e: (e.start, e.replacement))


# ---------------------------------------------------------------------------------------------
# function missing


def _standalone_text(node: ast.expr, text: _Text) -> str:
    start, end = text.span(node)
    inner = text.source[start:end]
    return inner if isinstance(node, _ATOMIC) else f"({inner})"


def _drop_call_edits(tree: ast.Module, text: _Text) -> list[Edit]:
    edits = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or call.keywords:
            continue
        if len(call.args) == 1 and not isinstance(call.args[0], ast.Starred):
            kept = _standalone_text(call.args[0], text)
        elif not call.args and isinstance(call.func, ast.Attribute):
            kept = _standalone_text(call.func.value, text)
        else:
            continue
        start, end = text.span(call)
        edits.append(text.edit("function_missing", "drop_call", start, end, kept))
    return edits


def _statement_blocks(tree: ast.Module) -> Iterator[list[ast.stmt]]:
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield block


def _alone_on_its_lines(stmt: ast.stmt, text: _Text) -> bool:
    start, end = text.span(stmt)
    line_start = text.starts[stmt.lineno - 1]
    rest_of_line = text.lines[stmt.end_lineno - 1][end - text.starts[stmt.end_lineno - 1]:]
    before_ok = text.source[line_start:start].strip() == ""
    after_ok = rest_of_line.strip() == "" or rest_of_line.strip().startswith("#")
    return before_ok and after_ok


def _remove_statement_edits(tree: ast.Module, text: _Text) -> list[Edit]:
    edits = []
    for block in _statement_blocks(tree):
        for stmt in block:
            if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
                continue
            if not _alone_on_its_lines(stmt, text):
                continue
            start, end = text.span(stmt)
            if len(block) == 1:
                edits.append(text.edit("function_missing", "remove_call_statement", start, end,
                                       "pass"))
                continue
            line_start = text.starts[stmt.lineno - 1]
            last = stmt.end_lineno
            line_end = text.starts[last] if last < len(text.lines) else len(text.source)
            edits.append(text.edit("function_missing", "remove_call_statement", line_start,
                                   line_end, ""))
    return edits


def _callee_spans(tree: ast.Module, text: _Text) -> Iterator[tuple[str, int, int, bool]]:
    """(callee name, start, end, is_method) for each call of a plain or attribute name."""
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        if isinstance(call.func, ast.Name):
            yield (call.func.id, *text.span(call.func), False)
        elif isinstance(call.func, ast.Attribute):
            end = text.span(call.func)[1]
            yield call.func.attr, end - len(call.func.attr), end, True


def _replace_callee_edits(tree: ast.Module, text: _Text) -> list[Edit]:
    spans = [s for s in _callee_spans(tree, text) if text.source[s[1]:s[2]] == s[0]]
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef,
                                                                 ast.AsyncFunctionDef))}
    functions = sorted({name for name, _, _, method in spans if not method} | defined)
    methods = sorted({name for name, _, _, method in spans if method})
    edits = []
    for name, start, end, method in spans:
        pool = methods if method else functions
        edits += [text.edit("function_missing", "replace_callee", start, end, other)
                  for other in pool if other != name]
    return edits


def function_missing_edits(source: str, tree: ast.Module) -> list[Edit]:
    text = _Text(source)
    edits = (_drop_call_edits(tree, text) + _remove_statement_edits(tree, text)
             + _replace_callee_edits(tree, text))
    return sorted(edits, key=lambda e: (e.start, e.kind, e.replacement))


# ---------------------------------------------------------------------------------------------
# public entry points

_GENERATORS = {
    "variable_misuse": variable_misuse_edits,
    "operator_misuse": operator_misuse_edits,
    "function_missing": function_missing_edits,
}


def candidate_edits(source: str, family: str, start: int = 0) -> list[Edit]:
    """Every single-edit candidate of ``family`` in ``source`` (source order, deterministic)
    whose edited span starts at or after character ``start`` (the code the model writes:
    :func:`faulttune.bugs.completion_start`; the text before it stays byte-identical).

    Raises ``ValueError`` for an unknown family or a source that does not parse.
    """
    if family not in _GENERATORS:
        raise ValueError(f"unknown CCT family {family!r}; choose one of {', '.join(FAMILIES)}")
    tree = ast.parse(source)
    return [edit for edit in _GENERATORS[family](source, tree) if edit.start >= start]


def is_valid_twin(original: str, twin: str) -> bool:
    """The twin compiles and its AST (docstrings ignored) differs from the original's."""
    return compile_error(twin) is None and ast_key(twin) != ast_key(original)


def inject(source: str, family: str, rng: random.Random, k: int = 1, start: int = 0
           ) -> list[tuple[Edit, str]]:
    """Up to ``k`` distinct twins of ``source``, one edit each at or after ``start``, drawn in
    ``rng`` order.

    Returns ``(edit, twin_source)`` pairs; twins with the same AST are counted once.
    """
    candidates = candidate_edits(source, family, start)
    rng.shuffle(candidates)
    chosen: list[tuple[Edit, str]] = []
    seen: set[str | None] = set()
    for edit in candidates:
        twin = edit.apply(source)
        key = ast_key(twin)
        if key in seen or not is_valid_twin(source, twin):
            continue
        seen.add(key)
        chosen.append((edit, twin))
        if len(chosen) == k:
            break
    return chosen


def twins(source: str, seed: int | str, per_family: int,
          families: Sequence[str] = FAMILIES, start: int = 0) -> list[tuple[Edit, str]]:
    """``per_family`` twins per family, seeded by ``seed`` (pass e.g. ``f"{seed}:{task_id}"``),
    each edit at or after character ``start``."""
    out = []
    for family in families:
        out += family_twins(source, seed, family, per_family, start)
    return out


def family_twins(source: str, seed: int | str, family: str, k: int, start: int = 0
                 ) -> list[tuple[Edit, str]]:
    """Up to ``k`` twins of one family; the same draw as :func:`twins` makes for that family."""
    return inject(source, family, random.Random(f"{seed}:{family}"), k, start)


def family_order(seed: int | str, families: Sequence[str] = FAMILIES) -> list[str]:
    """The families in a seeded order: its first is the family drawn uniformly for a snippet
    (docs/methods.md §1.1, one bug per sample); the others stand in, in turn, when it yields no twin."""
    order = list(families)
    random.Random(f"{seed}:family-order").shuffle(order)
    return order
