"""Rule filters of IterPref's pairs (docs/methods.md §3.1 step 5): a pair whose difference is not
a real logic change, whose D- is empty, too long, or whose programs are too long is dropped."""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Callable, Iterable, Sequence

from faulttune.codeflow.columns import MAX_CHANGED_LINES
from faulttune.mask_table import normalise_code
from faulttune.masks import rejected_line_char_marks, split_lines


def filter_reason(
    chosen: str,
    rejected: str,
    *,
    max_length: int,
    count_tokens: Callable[[str], int],
    max_changed_lines: int = MAX_CHANGED_LINES,
) -> str | None:
    """Why a (chosen, rejected) pair is dropped, or None to keep it.

    Checked in this order, the first hit names the reason: only comments or whitespace differ; the
    same AST; the same AST once local names are renamed consistently (a rule-based stand-in for
    the paper's LLM judge, which drops renames); an empty D-; a D- of only comments or blank
    lines; more than ``max_changed_lines`` D- lines; a side longer than ``max_length`` tokens.
    """
    if only_comments_or_whitespace_differ(chosen, rejected):
        return "only comments or whitespace differ"
    if same_ast(chosen, rejected):
        return "same AST as the chosen"
    if same_ast_after_renaming(chosen, rejected):
        return "rename only (same AST after renaming local names)"
    error_lines = rejected_error_lines(chosen, rejected)
    if not error_lines:
        return "D- is empty (the rejected program has no line of its own)"
    if not _holds_code(rejected, [number for number, _ in error_lines]):
        return "D- holds only comments or whitespace"
    if len(error_lines) > max_changed_lines:
        return f"more than {max_changed_lines} changed lines ({len(error_lines)})"
    n_chosen, n_rejected = count_tokens(chosen), count_tokens(rejected)
    if max(n_chosen, n_rejected) > max_length:
        return f"longer than {max_length} tokens (chosen {n_chosen}, rejected {n_rejected})"
    return None


_NOISE_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_LAYOUT_TOKENS = {tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE}


def _python_tokens(code: str) -> list[tokenize.TokenInfo] | None:
    try:
        return list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return None


def code_tokens(code: str) -> list[tuple[int, str]] | None:
    """Python tokens without comments and layout noise; None if ``code`` does not tokenize.

    INDENT/DEDENT/NEWLINE stay as bare types: indentation width does not matter, but moving a line
    into or out of a block changes the program and must not count as "whitespace only".
    """
    tokens = _python_tokens(code)
    if tokens is None:
        return None
    return [
        (t.type, "" if t.type in _LAYOUT_TOKENS else t.string)
        for t in tokens
        if t.type not in _NOISE_TOKENS
    ]


def only_comments_or_whitespace_differ(a: str, b: str) -> bool:
    """True when the two programs have the same token stream once comments and layout are removed."""
    tokens_a, tokens_b = code_tokens(a), code_tokens(b)
    if tokens_a is None or tokens_b is None:
        return a.split() == b.split()
    return tokens_a == tokens_b


def same_ast(a: str, b: str) -> bool:
    """True when both parse to the same AST (False if either does not parse)."""
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except (SyntaxError, ValueError):
        return False


def rejected_error_lines(chosen: str, rejected: str) -> list[tuple[int, str]]:
    """IterPref's D-: ``(line number from 0, line)`` of the rejected program's own lines.

    The same computation as the masks stage's Target-DPO rejected mask (``mask_table``): both
    programs normalised by ``normalise_code``, then ``masks.rejected_line_char_marks`` (ndiff
    '+' lines). Line numbers count lines of the normalised rejected program.
    """
    chosen, rejected = normalise_code(chosen), normalise_code(rejected)
    marks = rejected_line_char_marks(chosen, rejected)
    out, start = [], 0
    for number, line in enumerate(split_lines(rejected)):
        if marks[start]:
            out.append((number, line))
        start += len(line)
    return out


def count_rejected_diff_lines(chosen: str, rejected: str) -> int:
    """|D-|: the number of :func:`rejected_error_lines`."""
    return len(rejected_error_lines(chosen, rejected))


def _holds_code(code: str, line_numbers: Sequence[int]) -> bool:
    """Whether any of these lines (from 0, of ``normalise_code(code)``) holds a code token.

    A line inside a multi-line string holds code; a program that does not tokenize falls back to
    "not blank and not starting with #".
    """
    code = normalise_code(code)
    tokens = _python_tokens(code)
    if tokens is None:
        lines = split_lines(code)
        return any(lines[n].strip() and not lines[n].lstrip().startswith("#") for n in line_numbers)
    code_lines: set[int] = set()
    for t in tokens:
        if t.type not in _NOISE_TOKENS | _LAYOUT_TOKENS:
            code_lines.update(range(t.start[0] - 1, t.end[0]))
    return any(n in code_lines for n in line_numbers)


# --------------------------------------------------------------------------------------------
# Rename-only pairs: the same AST once the names local to functions are renamed consistently

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def same_ast_after_renaming(a: str, b: str) -> bool:
    """True when the two programs differ at most by a consistent renaming of local names.

    Local names are the parameters and the names bound inside a function or lambda (assignment,
    loop, ``with``/``except`` targets, nested definitions), minus ``global``/``nonlocal`` ones.
    Module-level names (the entry point, imports, helpers the tests may call), attributes and
    keyword names stay as they are. Parameters count as local: swapping two parameter names is a
    rename (only a keyword call could tell). False if either program does not parse.
    """
    try:
        tree_a, tree_b = ast.parse(a), ast.parse(b)
    except (SyntaxError, ValueError):
        return False
    return ast.dump(_LocalRenamer().visit(tree_a)) == ast.dump(_LocalRenamer().visit(tree_b))


def _parameters(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


def _own_nodes(body: Sequence[ast.AST]) -> Iterable[ast.AST]:
    """The nodes of a scope's body in source order, without the bodies of nested functions and
    lambdas (their names, decorators and defaults belong to this scope)."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _FUNCTIONS):
            children: list[ast.AST] = [*node.decorator_list, *node.args.defaults,
                                       *(d for d in node.args.kw_defaults if d is not None)]
        elif isinstance(node, ast.Lambda):
            children = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
        else:
            children = list(ast.iter_child_nodes(node))
        stack.extend(reversed(children))


def _local_names(params: Sequence[ast.arg], body: Sequence[ast.AST]) -> list[str]:
    """Names local to a scope, in the order they are first bound."""
    bound = [p.arg for p in params]
    declared: set[str] = set()
    for node in _own_nodes(body):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.append(node.id)
        elif isinstance(node, (*_FUNCTIONS, ast.ClassDef, ast.ExceptHandler)) and node.name:
            bound.append(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            declared.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return [name for name in dict.fromkeys(bound) if name not in declared]


class _LocalRenamer(ast.NodeTransformer):
    """Renames local names to ``<k>`` (k counts scopes' names in traversal order): not valid
    identifiers, so they never collide with a name left as it is."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}
        self.count = 0

    def _enter(self, params: Sequence[ast.arg], body: Sequence[ast.AST]) -> dict[str, str]:
        outer = self.env
        names = _local_names(params, body)
        self.env = {**outer, **{n: f"<{self.count + k}>" for k, n in enumerate(names)}}
        self.count += len(names)
        for param in params:
            param.arg = self.env[param.arg]
        return outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.name = self.env.get(node.name, node.name)
        for part in (*node.decorator_list, *node.args.defaults, *node.args.kw_defaults):
            if part is not None:
                self.visit(part)
        outer = self._enter(_parameters(node.args), node.body)
        node.body = [self.visit(statement) for statement in node.body]
        self.env = outer
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        for part in (*node.args.defaults, *node.args.kw_defaults):
            if part is not None:
                self.visit(part)
        outer = self._enter(_parameters(node.args), [node.body])
        node.body = self.visit(node.body)
        self.env = outer
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = self.env.get(node.name, node.name)
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self.env.get(node.id, node.id)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name:
            node.name = self.env.get(node.name, node.name)
        return self.generic_visit(node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        node.names = [self.env.get(name, name) for name in node.names]
        return node


