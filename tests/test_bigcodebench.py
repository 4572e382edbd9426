"""BigCodeBench: tasks in its format written here, rows, samples, the official command and result
parsing (the official package is the only scorer)."""

from __future__ import annotations

import json

import pytest

from faulttune.bigcodebench import (
    OFFICIAL_SCORER,
    bench_rows,
    benchmark_name,
    evaluate_command,
    official_env,
    official_result_path,
    parse_benchmark_name,
    parse_official_results,
    read_tasks_jsonl,
    write_samples,
    write_tasks_jsonl,
)
from faulttune.io import DataError, read_jsonl

ADD_TEST = '''import unittest

class TestCases(unittest.TestCase):
    def test_small(self):
        self.assertEqual(task_func(1, 2), 3)

    def test_negative(self):
        self.assertEqual(task_func(-4, 1), -3)
'''
WORDS_TEST = '''import unittest

class TestCases(unittest.TestCase):
    def test_counts(self):
        self.assertEqual(task_func("a b a"), {"a": 2, "b": 1})

    def test_empty(self):
        self.assertEqual(task_func(""), {})
'''
TASKS = [
    {"task_id": "BigCodeBench/0",
     "complete_prompt": 'def task_func(a, b):\n    """Add a and b.\n\n    Requirements:\n    - none\n    """\n',
     "instruct_prompt": "Add two numbers.\nYou should write self-contained code starting with:\n"
                        "```\ndef task_func(a, b):\n```",
     "canonical_solution": "    return a + b\n", "code_prompt": "def task_func(a, b):\n",
     "test": ADD_TEST, "entry_point": "task_func", "libs": "[]"},
    {"task_id": "BigCodeBench/1",
     "complete_prompt": 'from collections import Counter\n\ndef task_func(text):\n    """Count words."""\n',
     "instruct_prompt": "Count the words of a text.\nYou should write self-contained code starting "
                        "with:\n```\nfrom collections import Counter\ndef task_func(text):\n```",
     "canonical_solution": "    return dict(Counter(text.split()))\n",
     "code_prompt": "from collections import Counter\ndef task_func(text):\n",
     "test": WORDS_TEST, "entry_point": "task_func", "libs": "['collections']"},
]


@pytest.fixture()
def task_file(tmp_path):
    return write_tasks_jsonl(TASKS, tmp_path / "bcb.jsonl")


def test_names_round_trip_and_reject_unknown_values():
    assert benchmark_name("hard", "instruct") == "bigcodebench-hard-instruct"
    assert parse_benchmark_name("bigcodebench-full-complete") == ("full", "complete")
    with pytest.raises(ValueError, match="subset"):
        benchmark_name("tiny", "complete")
    with pytest.raises(ValueError, match="not a BigCodeBench"):
        parse_benchmark_name("humaneval")


def test_local_jsonl_is_read_and_checked(task_file, tmp_path):
    assert read_tasks_jsonl(task_file) == TASKS
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(TASKS[0]) + "\n" + json.dumps({**TASKS[1], "test": "pass"}) + "\n")
    with pytest.raises(DataError, match=r"broken.jsonl line 2: 'test' defines no unittest"):
        read_tasks_jsonl(broken)
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({k: v for k, v in TASKS[0].items() if k != "code_prompt"}) + "\n")
    with pytest.raises(DataError, match="missing.jsonl line 1: missing 'code_prompt'"):
        read_tasks_jsonl(missing)


def test_bench_rows_for_both_splits():
    complete = bench_rows(TASKS, "full", "complete")
    assert complete[0] == {"task_id": "BigCodeBench/0", "benchmark": "bigcodebench-full-complete",
                           "scored_as": "bigcodebench-full-complete",
                           "prompt": TASKS[0]["complete_prompt"], "entry_point": "task_func",
                           "demo_split": False}
    instruct = bench_rows(TASKS, "hard", "instruct", limit=1)
    assert len(instruct) == 1 and instruct[0]["prompt"] == TASKS[0]["instruct_prompt"]
    assert instruct[0]["benchmark"] == "bigcodebench-hard-instruct"


def test_samples_are_written_in_bigcodebench_format(tmp_path):
    samples = [{"task_id": "BigCodeBench/0", "solution": "def task_func(a, b):\n    return a + b\n",
                "raw": "ignored"}]
    path = write_samples(samples, tmp_path / "samples.jsonl", TASKS)
    assert read_jsonl(path) == [{"task_id": "BigCodeBench/0",
                                 "solution": "def task_func(a, b):\n    return a + b\n"}]
    with pytest.raises(DataError, match="sample 0: unknown task_id 'BigCodeBench/9'"):
        write_samples([{"task_id": "BigCodeBench/9", "solution": ""}], tmp_path / "x.jsonl", TASKS)


def test_official_command_uses_local_execution(tmp_path, task_file):
    samples = tmp_path / "model--bigcodebench-hard-instruct.jsonl"
    argv = evaluate_command(samples, "hard", "instruct", task_ids=["BigCodeBench/0", "BigCodeBench/1"],
                            parallel=2)
    assert argv == ["bigcodebench.evaluate", "--execution", "local", "--split", "instruct",
                    "--subset", "hard", "--samples", str(samples), "--pass_k", "1",
                    "--calibrated", "True", "--save_pass_rate", "True", "--parallel", "2",
                    "--selective_evaluate", "BigCodeBench/0,BigCodeBench/1"]
    assert "gradio" not in " ".join(argv) and "e2b" not in " ".join(argv)
    assert official_result_path(samples).name == "model--bigcodebench-hard-instruct_eval_results.json"
    assert official_env(task_file, base={})["BIGCODEBENCH_OVERRIDE_PATH"] == str(task_file.resolve())
    official_result_path(samples).write_text("{}")
    with pytest.raises(FileExistsError, match="would reuse it"):
        evaluate_command(samples, "hard", "instruct")


def test_official_results_are_parsed_into_our_shape(tmp_path):
    samples = tmp_path / "s.jsonl"
    write_samples([{"task_id": "BigCodeBench/1", "solution": "x"},
                   {"task_id": "BigCodeBench/0", "solution": "y"},
                   {"task_id": "BigCodeBench/0", "solution": "z"}], samples)
    # the layout bigcodebench.evaluate writes: eval -> task -> entries in completion order
    official = {"date": "2026-01-01 00:00", "eval": {
        "BigCodeBench/0": [
            {"task_id": "BigCodeBench/0", "solution": "y", "status": "pass", "details": {}},
            {"task_id": "BigCodeBench/0", "solution": "z", "status": "fail", "details": {
                "test_small": "Traceback (most recent call last):\n  ...\nAssertionError: 4 != 3\n"}}],
        "BigCodeBench/1": [
            {"task_id": "BigCodeBench/1", "solution": "x", "status": "fail",
             "details": {"ALL": "name 'Countr' is not defined"}}]}}
    result_file = official_result_path(samples)
    result_file.write_text(json.dumps(official))
    parsed = parse_official_results(result_file, "bigcodebench-full-complete", samples)
    assert parsed["scorer"] == OFFICIAL_SCORER and parsed["benchmark"] == "bigcodebench-full-complete"
    assert parsed["results"] == [
        {"task_id": "BigCodeBench/1", "status": "error", "detail": "ALL: name 'Countr' is not defined"},
        {"task_id": "BigCodeBench/0", "status": "pass", "detail": ""},
        {"task_id": "BigCodeBench/0", "status": "fail", "detail": "test_small: AssertionError: 4 != 3"},
    ]
    # pass@1 averaged over tasks: task 0 passes 1 of 2, task 1 none -> (0.5 + 0) / 2
    assert parsed["pass_at_1"] == pytest.approx(0.25)
    assert parsed["n_samples"] == 3 and parsed["n_tasks"] == 2
