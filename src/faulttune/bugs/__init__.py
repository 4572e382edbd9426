"""Wrong-but-similar twins of correct code: mutation, CCT's rule-injected bugs, teacher variants.

Submodules: :mod:`~faulttune.bugs.mutation` (universalmutator), :mod:`~faulttune.bugs.cct`
(one AST-located edit per twin), :mod:`~faulttune.bugs.teacher` (FGit's teacher LLM),
:mod:`~faulttune.bugs.similarity` (candidate selection) and :mod:`~faulttune.bugs.pairs` (the
pairs / rejected tables and their verification in the sandbox).

The two checks every source shares live here: a twin must compile and must differ from the
correct code in its AST (docstrings ignored, so a mutated docstring is no bug). So does the span a
bug may go into (:func:`completion_start`): only code the model writes.
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


def completion_start(instruction: str, solution: str) -> int:
    """Where the code the model writes starts in ``solution``; a bug goes there or after, never
    before.

    HumanEval-style tasks give the model the start of the program as its prompt (imports, helper
    functions, the signature and the docstring) and their solution is prompt + completion: the
    model writes what follows the prompt, the entry point's body. A twin that broke a helper of
    the prompt (HumanEval/38's ``encode_cyclic``) would leave the model's code intact, and the
    benchmark, which runs the prompt's own helper, would pass it. Every other task (a prose
    instruction: MBPP, Evol-Instruct) has the whole program written by the model: 0.
    """
    if instruction.strip() and solution.startswith(instruction):
        return len(instruction)
    return 0
