"""Pairs tables: candidate checks with reasons, selection, sandbox verification, counts."""

from __future__ import annotations

import pytest

from faulttune.bugs.cct import FAMILIES, family_order
from faulttune.bugs.pairs import (
    PAIRS_SCHEMA,
    REASONS,
    REJECTED_SCHEMA,
    cct_pairs,
    counts,
    index_tasks,
    select_pairs,
    teacher_candidates,
)
from faulttune.generate.base import ScriptedBackend
from faulttune.io import DataError

MEAN = "def mean(xs):\n    return sum(xs) / len(xs)\n"
MEAN_TASK = {"task_id": "T/mean", "instruction": "Average of a list.", "solution": MEAN,
             "test": "assert mean([1, 2, 3]) == 2\nassert mean([2, 5]) == 3.5\n",
             "entry_point": "mean"}


def fenced(code: str) -> str:
    return f"Sure! Here it is:\n```python\n{code}```\n"


def test_garbage_teacher_answers_are_rejected_with_reasons_and_nothing_crashes():
    answers = [
        "I cannot help with that.",                                              # no block
        fenced(MEAN),                                                            # identical
        fenced("def mean(xs)\n    return sum(xs) / len(xs)\n"),                  # syntax error
        fenced("def mean(xs):\n    return sum(xs)/len(xs)  # same\n"),           # same AST
        fenced("def average(xs):\n    return sum(xs) / len(xs) + 1\n"),          # renamed
        fenced(MEAN + "".join(f"UNUSED_{i} = {i}\n" for i in range(20))),        # too long
        fenced("def mean(xs):\n    return sum(xs) / len(list(xs))\n"),          # still right
        fenced("def mean(xs):\n    return sum(xs) // len(xs)\n"),                # wrong: 3 != 3.5
    ]
    backend = ScriptedBackend(list(answers))
    candidates = teacher_candidates([MEAN_TASK], backend, n_variants=8, temperature=0.8)
    pairs, rejected = select_pairs(candidates, [MEAN_TASK], workers=2)
    assert [r["reason"] for r in rejected] == [
        "no code block", "identical to the correct code", "does not compile",
        "same AST as the correct code", "does not define the entry point", "too long",
        "passes the tests"]
    assert [r["id"] for r in rejected] == [f"teacher:T/mean:{k}" for k in range(7)]
    assert rejected[0]["raw"] == answers[0] and rejected[0]["incorrect"] == ""
    (pair,) = pairs
    assert pair["incorrect"] == "def mean(xs):\n    return sum(xs) // len(xs)\n"
    assert (pair["source"], pair["family"], pair["verified"]) == ("teacher", "teacher", "true")
    assert pair["detail"].startswith("fail: ")
    assert set(pair) == set(PAIRS_SCHEMA.names)
    assert all(set(r) == set(REJECTED_SCHEMA.names) for r in rejected)
    assert {r["reason"] for r in rejected} <= set(REASONS)


def test_selection_keeps_the_most_similar_failing_variant():
    variants = ["def mean(xs):\n    return 0\n",                       # fails, far
                "def mean(xs):\n    return sum(xs) // len(xs)\n",      # fails, closest
                "def mean(xs):\n    return sum(xs) * len(xs)\n"]       # fails, close
    candidates = [{"id": f"teacher:T/mean:{k}", "task_id": "T/mean", "variant": k,
                   "raw": fenced(code)} for k, code in enumerate(variants)]
    pairs, rejected = select_pairs(candidates, [MEAN_TASK], workers=2)
    assert [p["id"] for p in pairs] == ["teacher:T/mean:1"]
    assert [(r["id"], r["reason"]) for r in rejected] == [
        ("teacher:T/mean:0", "less similar than the selected variant"),
        ("teacher:T/mean:2", "less similar than the selected variant")]
    assert pairs[0]["similarity"] > max(r["similarity"] for r in rejected)


def test_without_tests_the_closest_valid_variant_is_kept_unverified():
    task = {**MEAN_TASK, "test": ""}
    variants = ["def mean(xs):\n    return sum(xs) / len(xs) + 1\n",
                "def mean(xs):\n    return sum(xs) / len(xs)\n"]        # identical
    candidates = [{"id": f"teacher:T/mean:{k}", "task_id": "T/mean", "variant": k,
                   "raw": fenced(code)} for k, code in enumerate(variants)]
    pairs, rejected = select_pairs(candidates, [task], verify=True)
    assert [(p["id"], p["verified"], p["detail"]) for p in pairs] == [
        ("teacher:T/mean:0", "unknown", "")]
    assert [r["reason"] for r in rejected] == ["identical to the correct code"]


def test_a_twin_that_hangs_is_kept_as_failing_with_the_timeout_detail():
    from faulttune.sandbox import Limits

    hang = "def mean(xs):\n    while True:\n        pass\n"
    candidates = [{"id": "teacher:T/mean:0", "task_id": "T/mean", "variant": 0,
                   "raw": fenced(hang)}]
    pairs, rejected = select_pairs(candidates, [MEAN_TASK], max_length_ratio=10,
                                   limits=Limits(timeout_s=1.0))
    assert rejected == []
    assert pairs[0]["verified"] == "true" and pairs[0]["detail"].startswith("timeout")


def test_twins_of_a_task_whose_solution_fails_its_tests_are_rejected():
    task = {**MEAN_TASK, "test": "assert mean([1, 2]) == 2\n"}  # the "correct" code gives 1.5
    candidates = [{"id": "teacher:T/mean:0", "task_id": "T/mean", "variant": 0,
                   "raw": fenced("def mean(xs):\n    return sum(xs) * len(xs)\n")}]
    pairs, rejected = select_pairs(candidates, [task], workers=1)
    assert pairs == []
    assert rejected[0]["reason"] == "correct code fails its own tests"
    assert rejected[0]["detail"].startswith("fail")


def test_cct_operator_twins_that_still_pass_are_rejected():
    # f(2, 2) == 4 also holds for a * b and a ** b; the other four swaps fail.
    task = {"task_id": "T/add", "instruction": "Add.",
            "solution": "def f(a, b):\n    return a + b\n", "test": "assert f(2, 2) == 4\n",
            "entry_point": "f"}
    pairs, rejected = cct_pairs([task], seed=0, per_family=6, families=["operator_misuse"],
                                workers=2)
    assert sorted(p["incorrect"].split("return ")[1] for p in pairs) == [
        "a % b\n", "a - b\n", "a / b\n", "a // b\n"]
    assert sorted((r["incorrect"].split("return ")[1], r["reason"]) for r in rejected) == [
        ("a * b\n", "passes the tests"), ("a ** b\n", "passes the tests")]
    assert all(p["edit_line"] == 2 and p["edit_col"] == 13 for p in pairs)
    assert all(p["family"] == "operator_misuse" and p["verified"] == "true" for p in pairs)
    assert counts(pairs, rejected) == {"cct": {
        "pairs": 4, "verified": {"true": 4}, "tasks_with_pairs": 1,
        "rejected": {"passes the tests": 2}}}


def test_cct_without_verification_and_without_applicable_edits():
    task = {"task_id": "T/c", "instruction": "Constant.", "solution": "def c():\n    return 1\n",
            "test": "assert c() == 1\n", "entry_point": "c"}
    broken = {**task, "task_id": "T/broken", "solution": "def c(:\n"}
    pairs, rejected = cct_pairs([task, broken], seed=0, per_family=1, verify=False)
    assert pairs == []
    assert sorted((r["task_id"], r["family"], r["reason"]) for r in rejected) == [
        ("T/broken", "cct", "correct code does not compile"),
        ("T/c", "function_missing", "no applicable edit"),
        ("T/c", "operator_misuse", "no applicable edit"),
        ("T/c", "variable_misuse", "no applicable edit")]


# every family applies: variables xs/y/total, the operator +, the calls len and max
ALL_FAMILIES = "def f(xs, y):\n    total = len(xs) + y\n    return max(total, y)\n"


def _task(task_id: str, solution: str, test: str = "") -> dict:
    return {"task_id": task_id, "instruction": "Do it.", "solution": solution, "test": test,
            "entry_point": "f"}


def test_cct_draws_one_family_per_task_by_default():
    tasks = [_task(f"T/{k}", ALL_FAMILIES) for k in range(8)]
    pairs, rejected = cct_pairs(tasks, 0, 1, verify=False)  # as the mutate stage calls it
    assert rejected == []
    assert sorted(p["task_id"] for p in pairs) == sorted(t["task_id"] for t in tasks)  # one each
    assert all(p["family"] == family_order(f"0:{p['task_id']}")[0] for p in pairs)
    assert len({p["family"] for p in pairs}) > 1  # the draw differs between tasks
    two, _ = cct_pairs(tasks[:1], 0, 2, verify=False)
    assert len(two) == 2 and len({p["family"] for p in two}) == 1
    # the per-family option keeps every family: up to per_family * 3 twins per task
    every, _ = cct_pairs(tasks[:1], 0, per_family=1, verify=False)
    assert sorted(p["family"] for p in every) == sorted(FAMILIES)
    with pytest.raises(ValueError, match="per_task 1 when per_family is given"):
        cct_pairs(tasks, 0, 2, per_family=1)


def test_cct_falls_back_to_the_next_family_without_an_applicable_edit():
    add = _task("T/add", "def f(a, b):\n    return a + b\n")  # no call: no function_missing
    assert family_order("2:T/add") == ["function_missing", "variable_misuse", "operator_misuse"]
    pairs, rejected = cct_pairs([add], 2, verify=False)
    assert [p["family"] for p in pairs] == ["variable_misuse"]
    assert [(r["family"], r["reason"]) for r in rejected] == [("function_missing", "no applicable edit")]


def test_cct_falls_back_to_the_next_family_when_the_drawn_twin_passes_the_tests():
    # a - a and b - b still give f(2, 2) == 0; seed 1 draws variable_misuse first, then a / b
    sub = _task("T/sub", "def f(a, b):\n    return a - b\n", "assert f(2, 2) == 0\n")
    families = ["variable_misuse", "operator_misuse"]
    assert family_order("1:T/sub", families) == families
    pairs, rejected = cct_pairs([sub], 1, families=families, workers=2)
    assert [(p["family"], p["incorrect"], p["verified"]) for p in pairs] == [
        ("operator_misuse", "def f(a, b):\n    return a / b\n", "true")]
    assert [(r["family"], r["reason"]) for r in rejected] == [("variable_misuse", "passes the tests")]


def test_bad_task_rows_are_named():
    with pytest.raises(DataError, match="tasks row 1 .*'test'"):
        index_tasks([MEAN_TASK, {k: v for k, v in MEAN_TASK.items() if k != "test"}])
    with pytest.raises(DataError, match="appears twice"):
        index_tasks([MEAN_TASK, MEAN_TASK])
    with pytest.raises(DataError, match="teacher candidates row 0"):
        select_pairs([{"id": "x", "task_id": "nope", "raw": ""}], [MEAN_TASK])


def test_select_pairs_uses_the_given_similarity():
    variants = ["def mean(xs):\n    return sum(xs) // len(xs)\n",
                "def mean(xs):\n    return 0\n"]
    candidates = [{"id": f"teacher:T/mean:{k}", "task_id": "T/mean", "variant": k,
                   "raw": fenced(code)} for k, code in enumerate(variants)]

    def shortest_wins(reference: str, texts: list[str]) -> list[float]:
        return [1.0 / len(t) for t in texts]

    pairs, rejected = select_pairs(candidates, [MEAN_TASK], verify=False, scorer=shortest_wins)
    assert [(p["id"], p["verified"]) for p in pairs] == [("teacher:T/mean:1", "unknown")]
    assert pairs[0]["similarity"] == pytest.approx(1.0 / len(variants[1]))
    assert [r["reason"] for r in rejected] == ["less similar than the selected variant"]


@pytest.fixture(scope="module")
def humaneval_rows():
    from faulttune.bugs.pairs import task_rows
    from faulttune.data.benchmarks import load_benchmark

    return task_rows(load_benchmark("humaneval"))


def assert_in_the_completion(pairs: list[dict], tasks: dict[str, dict]) -> None:
    """Every twin keeps its task's prompt verbatim and differs after it."""
    outside = [p["id"] for p in pairs if not p["incorrect"].startswith(tasks[p["task_id"]]["instruction"])]
    assert outside == []
    for pair in pairs:
        prompt = tasks[pair["task_id"]]["instruction"]
        assert pair["edit_line"] > prompt.count("\n")  # 1-based: the first line after the prompt
        assert pair["incorrect"][len(prompt):] != pair["correct"][len(prompt):]


def test_cct_bugs_go_only_into_the_code_the_model_writes(humaneval_rows):
    """HumanEval's prompt holds imports, helpers, the signature and the docstring: a twin that
    breaks a prompt helper (HumanEval/38's encode_cyclic) leaves the model's code intact."""
    tasks = {t["task_id"]: t for t in humaneval_rows}
    pairs, _ = cct_pairs(humaneval_rows, 0, per_family=4, verify=False)
    assert len({p["task_id"] for p in pairs}) > 150 and len(pairs) > 1000
    assert_in_the_completion(pairs, tasks)
    he38 = [p for p in pairs if p["task_id"] == "HumanEval/38"]
    assert he38 and all(p["incorrect"].startswith(tasks["HumanEval/38"]["instruction"]) for p in he38)
    helper = tasks["HumanEval/38"]["instruction"].split("def decode_cyclic")[0]
    assert all(p["incorrect"].startswith(helper) for p in he38)
    # the default draw (the mutate stage's and the probe's held-out twins) too
    drawn, _ = cct_pairs(humaneval_rows, 0, 1, verify=False)
    assert_in_the_completion(drawn, tasks)


def test_mutation_bugs_go_only_into_the_code_the_model_writes(humaneval_rows):
    from faulttune.bugs.pairs import mutation_pairs

    tasks = {t["task_id"]: t for t in humaneval_rows}
    pairs, _ = mutation_pairs(humaneval_rows, 0, 1000, verify=False)
    assert len({p["task_id"] for p in pairs}) > 150
    assert_in_the_completion(pairs, tasks)
    assert any(p["task_id"] == "HumanEval/38" for p in pairs)
