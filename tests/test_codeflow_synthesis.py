"""IterPref's tasks with tests (the teacher's answer in the paper's format, run in the sandbox) and
its LLM judge: each bad answer a row with its reason, nothing lost."""

from __future__ import annotations

import json

import pytest

from faulttune import sandbox
from faulttune.codeflow import judge_pairs, parse_verdict, run_codeflow
from faulttune.codeflow.synthesis import synthesize_tasks
from faulttune.codeflow.testfiles import (
    TEST_FILE_BROKEN,
    coverage_program,
    judge_tests,
    read_answer,
    read_coverage,
    static_problem,
)
from faulttune.generate.base import ScriptedBackend

SOLUTION = """\
# Adds two numbers; negative inputs give -1.
def add(a, b):
    if a < 0 or b < 0:
        return -1
    return a + b
"""
TESTS = """\
import unittest
from solution import add
import solution as sol


class TestAdd(unittest.TestCase):
    def test_small(self):
        self.assertEqual(add(2, 3), 5)

    def test_module(self):
        self.assertEqual(sol.add(1, 1), 2)


if __name__ == "__main__":
    unittest.main()
"""


def answer(solution: str = SOLUTION, tests: str | None = TESTS, packages: str = "[]") -> str:
    text = f"Sure.\n<file>solution.py</file>\n```python\n{solution}```\n"
    if tests is not None:
        text += f"<file>test.py</file>\n```python\n{tests}```\n"
    return text + f'<json>{{"file_names": ["solution.py", "test.py"], "packages": {packages}}}</json>'


def test_the_paper_format_is_read_into_its_files() -> None:
    files = read_answer(answer(packages='["numpy"]'))
    assert (files.module, files.solution, files.test, files.packages) == (
        "solution", SOLUTION, TESTS, ("numpy",))
    assert files.problem is None and static_problem(files, ("numpy",)) is None


@pytest.mark.parametrize(("text", "reason"), [
    (answer(tests=None), "no test file (a <file>test.py</file> block)"),
    (answer(tests="import unittest\n\nclass T(unittest.TestCase):\n    def test_x(self):\n"
                  "        self.assertTrue(True)\n"),
     f"{TEST_FILE_BROKEN}: it does not import the solution module `solution`"),
    (answer(tests="from solution import add\nassert add(1, 2) == 3\n"),
     f"{TEST_FILE_BROKEN}: it defines no unittest.TestCase class with test_ methods"),
    (answer(tests="from solution import add\nclass T(:\n"),
     "the test file does not parse: SyntaxError: invalid syntax line 2"),
    (answer(packages='["pandas"]'), "needs packages the sandbox does not provide: pandas"),
    (("<file>a.py</file>\n```python\nx = 1\n```\n<file>b.py</file>\n```python\ny = 2\n```\n"
      "<file>test.py</file>\n```python\nimport a\n```\n"), "more than one solution file (a.py, b.py): the sandbox runs one program"),
])
def test_an_answer_that_cannot_make_a_task_says_why(text: str, reason: str) -> None:
    files = read_answer(text)
    assert (files.problem or static_problem(files, ("numpy",))) == reason


def test_the_test_file_runs_in_the_judge_with_the_solution_by_proxy() -> None:
    files = read_answer(answer())
    passed = sandbox.run_program(files.solution, judge_tests(files.test, files.module))
    assert (passed.status, passed.detail) == ("pass", "")
    wrong = sandbox.run_program(SOLUTION.replace("a + b", "a - b"), judge_tests(TESTS, "solution"))
    assert wrong.status == "fail"
    assert "2/2 tests failed: test_module: AssertionError: 0 != 2; test_small: AssertionError: -1 != 5" in wrong.detail
    broken = sandbox.run_program(SOLUTION, judge_tests("import solution\nx = nowhere\n", "solution"))
    assert broken.status == "error"
    assert f"{TEST_FILE_BROKEN}: NameError: name 'nowhere' is not defined (test.py line 2)" in broken.detail


def test_coverage_of_the_tests_is_measured_in_the_jail() -> None:
    files = read_answer(answer())
    run = sandbox.run_program(coverage_program(files), "",
                              limits=sandbox.Limits(timeout_s=30, packages=("numpy", "coverage")))
    # 4 statements (def, if, two returns); the tests never take the negative branch
    assert read_coverage(run.stderr_tail) == {"tests": 2, "failed": 0, "statements": 4, "missing": 1}


BAD_ANSWERS = {
    "ok": answer(),
    "no tests": answer(tests=None),
    "imports nothing": answer(tests="import unittest\n\nclass T(unittest.TestCase):\n"
                                    "    def test_x(self):\n        self.assertTrue(True)\n"),
    "hangs": answer(solution="def add(a, b):\n    while True:\n        pass\n"),
    "wrong": answer(solution="def add(a, b):\n    return a * b\n"),
    "module-level check fails": answer(tests="import unittest\nfrom solution import add\n"
                                             "assert add(1, 1) == 3\n\nclass T(unittest.TestCase):\n"
                                             "    def test_x(self):\n        pass\n"),
    "objects": answer(solution="class Adder:\n    def add(self, a, b):\n        return a + b\n",
                      tests="import unittest\nfrom solution import Adder\n\n"
                            "class T(unittest.TestCase):\n    def test_add(self):\n"
                            "        self.assertEqual(Adder().add(1, 2), 3)\n"),
}


def _instruction(name: str) -> str:
    return f"Task {name!r}: write add(a, b)."


def _by_instruction(conversation, _sample) -> str:
    text = conversation[-1]["content"]
    return next(a for name, a in BAD_ANSWERS.items() if _instruction(name) in text)


@pytest.fixture(scope="module")
def synthesized():
    rows = [{"task_id": f"t/{i}", "source": "evol", "instruction": _instruction(name)}
            for i, name in enumerate(BAD_ANSWERS)]
    backend = ScriptedBackend(_by_instruction)
    limits = sandbox.Limits(timeout_s=10)
    return rows, synthesize_tasks(rows, backend, max_new_tokens=512, limits=limits, workers=2)


def test_every_instruction_ends_as_a_task_or_a_rejected_row_with_its_reason(synthesized) -> None:
    rows, (tasks, rejected) = synthesized
    assert sorted(r["task_id"] for r in tasks + rejected) == sorted(r["task_id"] for r in rows)
    reasons = {r["task_id"]: r["reason"] for r in rejected}
    assert {k: v for k, v in reasons.items() if k != "t/6"} == {
        "t/1": "no test file (a <file>test.py</file> block)",
        "t/2": f"{TEST_FILE_BROKEN}: it does not import the solution module `solution`",
        "t/5": f"{TEST_FILE_BROKEN}: AssertionError:  (test.py line 3)",
    }
    assert reasons["t/6"].startswith("the tests need more than plain values across the sandbox: ")
    assert "cannot cross the sandbox boundary" in reasons["t/6"]
    assert all(r["raw"] == BAD_ANSWERS[list(BAD_ANSWERS)[int(r["task_id"][2:])]] for r in rejected)


def test_kept_tasks_record_their_solution_verdict_and_coverage(synthesized) -> None:
    _, (tasks, _) = synthesized
    by_id = {t["task_id"]: t for t in tasks}
    assert {tid: t["solution_status"] for tid, t in by_id.items()} == {
        "t/0": "pass", "t/3": "timeout", "t/4": "fail"}
    ok = by_id["t/0"]
    assert (ok["coverage"], ok["statements"], ok["covered"], ok["coverage_detail"]) == (0.75, 4, 3, "")
    assert ok["test_file"] == TESTS and ok["module"] == "solution" and ok["entry_point"] == ""
    assert json.loads(ok["packages"]) == []
    hanging = by_id["t/3"]
    assert hanging["coverage"] is None
    assert hanging["coverage_detail"] == "not measured: the solution timed out against its tests"


def test_codeflow_debugs_a_synthesized_task_from_its_solution(synthesized) -> None:
    """start: solution, the teacher as debugger: the wrong solution is iteration 0, the fix
    passes the unittest file; the hanging one never passes and says so."""
    _, (tasks, _) = synthesized
    fixed = "def add(a, b):\n    if a < 0 or b < 0:\n        return -1\n    return a + b\n"
    debugger = ScriptedBackend(lambda conv, _: "def add(a, b):\n    while True:\n        pass\n"
                               if "while True" in conv[-1]["content"] else fixed)
    traj, pairs, dropped = run_codeflow(tasks, debugger, max_iters=1, start="solution",
                                        count_tokens=lambda s: len(s.split()), workers=2,
                                        limits=sandbox.Limits(timeout_s=10))
    assert [(r["task_id"], r["iteration"], r["origin"], r["status"]) for r in traj] == [
        ("t/0", 0, "solution", "pass"), ("t/3", 0, "solution", "timeout"),
        ("t/3", 1, "model", "timeout"), ("t/4", 0, "solution", "fail"), ("t/4", 1, "model", "pass")]
    assert [p["id"] for p in pairs] == ["codeflow/t/4/0-1"]
    assert [(d["task_id"], d["reason"]) for d in dropped] == [
        ("t/0", "passed at first attempt"), ("t/3", "never passed")]


def test_synthesis_resumes_from_its_chunks_without_asking_again(tmp_path, monkeypatch) -> None:
    from faulttune.codeflow import synthesis
    from faulttune.resume import Preempted

    monkeypatch.setattr(synthesis, "CHUNK", 2)
    rows = [{"task_id": f"t/{i}", "instruction": _instruction(name)}
            for i, name in enumerate(["ok", "no tests", "imports nothing", "ok"])]
    state = tmp_path / "chunks.jsonl"
    first = ScriptedBackend(_by_instruction)
    with pytest.raises(Preempted):
        synthesize_tasks(rows, first, max_new_tokens=64, state=state, should_stop=lambda: True)
    with open(state, "a") as f:
        f.write('{"chunk": 1, "rows": [["ta')  # killed while writing the next chunk
    second = ScriptedBackend(_by_instruction)
    resumed = synthesize_tasks(rows, second, max_new_tokens=64, state=state)
    whole = synthesize_tasks(rows, ScriptedBackend(_by_instruction), max_new_tokens=64)
    assert resumed == whole
    assert len(first.seen) == len(second.seen) == 2  # one chunk each, none asked twice


# --------------------------------------------------------------------------------------------
# the judge


@pytest.mark.parametrize(("answer_text", "verdict"), [
    ("They differ: B adds instead of multiplying.\nYES", True),
    ("Only a variable is renamed.\n\n**No.**", False),
    ("Verdict: yes", True),
    ("I cannot tell.", None),
    ("yes or no? YES and NO", None),
    ("", None),
    ("NO\nThe logic is the same, though.", None),  # the verdict belongs on the last line
])
def test_the_judges_verdict_is_the_last_lines_yes_or_no(answer_text: str, verdict) -> None:
    assert parse_verdict(answer_text) is verdict


def _pair(i: int) -> dict:
    return {"id": f"codeflow/t/{i}/0-1", "task_id": f"t/{i}", "instruction": f"task {i}",
            "chosen": f"x = {i}\n", "rejected": f"x = -{i}\n", "rejected_iteration": 0,
            "chosen_iteration": 1, "n_iterations": 2, "source": "codeflow"}


def test_judged_out_pairs_are_kept_with_the_answer_and_nothing_is_asked_twice(tmp_path) -> None:
    answers = {"task 0": "Different logic.\nYES", "task 1": "Same logic, renamed.\nNO",
               "task 2": "It depends."}

    def judge(conversation, _sample):
        return next(a for key, a in answers.items() if f"\n\n{key}\n\n" in conversation[-1]["content"])

    state = tmp_path / "judge.jsonl"
    pairs = [_pair(i) for i in range(3)]
    backend = ScriptedBackend(judge)
    kept, out = judge_pairs(pairs, backend, state=state)
    assert [p["id"] for p in kept] == ["codeflow/t/0/0-1"]
    assert [(r["task_id"], r["reason"]) for r in out] == [
        ("t/1", "judge: no logic difference: Same logic, renamed. NO"),
        ("t/2", "judge: neither yes nor no: It depends.")]
    assert out[0]["chosen"] == "x = 1\n" and out[0]["rejected"] == "x = -1\n"
    again = ScriptedBackend(judge)
    assert judge_pairs(pairs, again, state=state) == (kept, out)
    assert again.seen == []
    prompt = backend.seen[0][-1]["content"]
    assert "x = 0" in prompt and "x = -0" in prompt and "YES or NO" in prompt
