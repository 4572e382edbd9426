"""Wrong-but-similar twins of correct code: mutation, CCT's rule-injected bugs, teacher variants.

Submodules: :mod:`~faulttune.bugs.mutation` (universalmutator), :mod:`~faulttune.bugs.cct`
(one AST-located edit per twin), :mod:`~faulttune.bugs.teacher` (FGit's teacher LLM),
:mod:`~faulttune.bugs.similarity` (candidate selection) and :mod:`~faulttune.bugs.pairs` (the
pairs / rejected tables and their verification in the sandbox).

The two checks every source shares live here: a twin must compile and must differ from the
correct code in its AST (docstrings ignored, so a mutated docstring is no bug).
"""

from __future__ import annotations

import ast
import warnings


def compile_error(source: str) -> str | None:
    """``None`` when ``source`` compiles, else ``"SyntaxError: <msg> (line N)"``.

    ``compile`` (not only ``ast.parse``) so that ``return`` outside a function or ``break`` outside
    a loop count as errors; nothing is written to disk.
    """
    try:
        with warnings.catch_warnings():  # e.g. "'float' object is not callable" SyntaxWarnings
            warnings.simplefilter("ignore")
            compile(source, "<twin>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:  # ValueError: null bytes in the source
        line = getattr(e, "lineno", None)
        where = f" (line {line})" if line else ""
        return f"{type(e).__name__}: {getattr(e, 'msg', str(e))}{where}"
    return None


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:]
    return tree


def ast_key(source: str) -> str | None:
    """A canonical dump of the AST without docstrings; ``None`` when ``source`` does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    return ast.dump(_without_docstrings(tree))
