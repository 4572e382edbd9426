"""Mutants of correct solutions with universalmutator, many sources in one process.

We call universalmutator's own rule engine (``universalmutator.mutator.mutants_regexp``, the
function its ``mutate`` CLI uses for Python with the rule files ``universal.rules`` +
``python.rules`` and the CLI's defaults: string literals are not mutated) on each source's lines,
then check every mutant in memory: it must compile (``compile``, no ``.pyc`` written) and its AST
(docstrings ignored) must differ from the original's and from every mutant kept before it. The CLI
instead writes each mutant and a ``.pyc`` to disk and starts one process per file;
``bench/mutation_throughput.py`` compares the two.

universalmutator's helpers write ``.pyc`` files beside their sources and ``.tmp_mutant.<pid>.pyc``
into the working directory; the rule engine we call writes nothing, but the whole batch still runs
with a temporary working directory so that no version of it can litter the repository.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import tempfile
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from faulttune.bugs import ast_key, compile_error

PYTHON_RULES = ("universal.rules", "python.rules")


@dataclass(frozen=True)
class Mutant:
    """One single-line mutant: ``code`` is the whole mutated program; ``line`` is 1-based."""

    code: str
    line: int
    rule: str  # the universalmutator rule, e.g. "< ==> <="


@dataclass(frozen=True)
class MutationResult:
    """The mutants of one source that compile and change the AST, and the others with a reason."""

    valid: list[Mutant]
    rejected: list[tuple[Mutant, str]]


@contextlib.contextmanager
def scratch_workdir() -> Iterator[str]:
    """Run the enclosed code with a fresh temporary directory as the working directory."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="faulttune-mutate-") as scratch:
        os.chdir(scratch)
        try:
            yield scratch
        finally:
            os.chdir(previous)


def _rule_mutants(lines: list[str]) -> list[tuple[int, str, str]]:
    """(line number, new line text, rule text) for every rule match, as the CLI generates them."""
    from universalmutator import mutator

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per call
        found = mutator.mutants_regexp(lines, ruleFiles=list(PYTHON_RULES), ignorePatterns=[],
                                       ignoreStringOnly=True)
    return [(lineno, new_line, rule[0]) for lineno, new_line, rule, _ in found]


def check_mutants(source: str, raw: Sequence[tuple[int, str, str]]) -> MutationResult:
    """Keep the mutants that compile and whose AST differs from the original and each other."""
    lines = source.splitlines(keepends=True)
    seen = {ast_key(source)}
    valid: list[Mutant] = []
    rejected: list[tuple[Mutant, str]] = []
    for lineno, new_line, rule in raw:
        code = "".join(lines[:lineno - 1]) + new_line + "".join(lines[lineno:])
        mutant = Mutant(code, lineno, rule)
        error = compile_error(code)
        key = None if error else ast_key(code)
        if error:
            rejected.append((mutant, "does not compile"))
        elif key == ast_key(source):
            rejected.append((mutant, "same AST as the correct code"))
        elif key in seen:
            rejected.append((mutant, "same AST as another mutant"))
        else:
            seen.add(key)
            valid.append(mutant)
    return MutationResult(valid, rejected)


def string_only_lines(source: str) -> set[int]:
    """1-based numbers of the lines that hold nothing but (part of) a multi-line string literal.

    Mutating them changes a docstring at most, which is never a bug; the CLI mutates them anyway
    and its bytecode check calls them valid, we skip them before generating.
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return set()
    lines = source.splitlines()
    masked: set[int] = set()
    for tok in tokens:
        (first, col), (last, end_col) = tok.start, tok.end
        if tok.type != tokenize.STRING or first == last:
            continue
        masked.update(range(first + 1, last))
        if not lines[first - 1][:col].strip():
            masked.add(first)
        if not lines[last - 1][end_col:].strip():
            masked.add(last)
    return masked


def _changed_at(old: str, new: str) -> int:
    """Index of the first character where ``new`` differs from ``old``."""
    return next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))


def mutate_source(source: str, start: int = 0) -> MutationResult:
    """All checked mutants of one program whose change starts at or after character ``start``
    (the code the model writes: :func:`faulttune.bugs.completion_start`; the lines before it are
    not offered to the rules). Call inside :func:`scratch_workdir` for batches."""
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # the rules match whole lines ending in a newline, as read from a file
    skipped = string_only_lines("".join(lines))
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    skipped |= {i for i in range(1, len(lines) + 1) if offsets[i] <= start}
    # Blank lines are skipped by the rule engine; line numbers stay those of the real source.
    visible = ["\n" if i in skipped else line for i, line in enumerate(lines, start=1)]
    raw = [(n, new, rule) for n, new, rule in _rule_mutants(visible)
           if offsets[n - 1] + _changed_at(lines[n - 1], new) >= start]
    return check_mutants("".join(lines), raw)


def mutate_many(sources: Sequence[str], starts: Sequence[int] | None = None
                ) -> list[MutationResult]:
    """Checked mutants of every source, in input order, in this process; ``starts[i]``: where
    the code the model writes starts in ``sources[i]`` (default 0, the whole program)."""
    starts = [0] * len(sources) if starts is None else starts
    if len(starts) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(starts)} starts")
    with scratch_workdir():
        return [mutate_source(source, start) for source, start in zip(sources, starts)]


def sample_mutants(valid: Sequence[Mutant], max_per_task: int, seed: int | str) -> list[Mutant]:
    """At most ``max_per_task`` mutants drawn without replacement, seeded, in line order."""
    if max_per_task < 1:
        raise ValueError(f"max_per_task must be >= 1, got {max_per_task}")
    if len(valid) <= max_per_task:
        return list(valid)
    picked = random.Random(str(seed)).sample(range(len(valid)), max_per_task)
    return [valid[i] for i in sorted(picked)]
