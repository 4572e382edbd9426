"""Training sources and benchmark tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faulttune.data.bench_table import benchmark_rows
from faulttune.data.sources import humaneval_split, load_training_rows


def test_demo_split_is_seeded_disjoint_and_complete():
    train, heldout = humaneval_split(seed=0, n_train=64)
    assert len(train) == 64 and len(heldout) == 100
    assert not set(train) & set(heldout)
    assert set(train) | set(heldout) == {f"HumanEval/{i}" for i in range(164)}
    assert humaneval_split(0, 64) == (train, heldout)
    assert humaneval_split(1, 64)[0] != train
    with pytest.raises(ValueError, match="data.train.limit"):
        humaneval_split(0, 164)


def test_demo_training_rows_carry_tests_that_the_solution_passes():
    from faulttune.sandbox import run_many

    rows, rejected = load_training_rows({"source": "humaneval-split", "limit": 8}, seed=0)
    assert rejected == [] and len(rows) == 8
    assert [r["task_id"] for r in rows] == humaneval_split(0, 8)[0]
    results = run_many([(r["solution"], r["test"]) for r in rows], progress=False)
    assert [r.status for r in results] == ["pass"] * 8


def test_heldout_benchmark_is_the_rest_of_humaneval():
    rows = benchmark_rows("humaneval-split-heldout", split=(0, 64))
    assert [r["task_id"] for r in rows] == humaneval_split(0, 64)[1]
    assert all(r["scored_as"] == "humaneval" and r["demo_split"] for r in rows)
    assert benchmark_rows("humaneval-split-heldout", split=(0, 64), limit=5) == rows[:5]


def test_humanevalfix_prompt_shows_the_buggy_code_and_tests(data_dir):
    rows = benchmark_rows("humanevalfix", data_dir=str(data_dir), limit=3)
    assert rows[0]["task_id"] == "Python/0"
    assert "Fix the bug in the function `has_close_elements`" in rows[0]["prompt"]
    assert "check(has_close_elements)" in rows[0]["prompt"]


def test_mbpp_train_source_uses_the_train_split(data_dir):
    rows, _ = load_training_rows({"source": "mbpp-train", "limit": 3}, seed=0, data_dir=str(data_dir))
    assert [r["task_id"] for r in rows] == ["mbpp/601", "mbpp/602", "mbpp/603"]
    assert "assert" in rows[0]["test"]


def test_mbpp_source_joins_splits_and_names_an_unknown_one(data_dir):
    rows, _ = load_training_rows({"source": "mbpp", "split": "train+validation+prompt"}, seed=0,
                                 data_dir=str(data_dir))
    ids = [int(r["task_id"].split("/")[1]) for r in rows]
    assert len(ids) == 10 + 90 + 374 and ids == sorted(ids)
    assert set(ids) == set(range(1, 11)) | set(range(511, 975))  # no test-split task
    assert {r["source"] for r in rows} == {"mbpp"}
    with pytest.raises(ValueError, match="unknown MBPP split \\['valid'\\]"):
        load_training_rows({"source": "mbpp", "split": "train+valid"}, seed=0, data_dir=str(data_dir))


def test_local_jsonl_source_maps_columns_and_keeps_bad_rows_with_a_reason(tmp_path):
    path = tmp_path / "evol.jsonl"
    lines = [
        {"q": "Add two numbers.", "a": "Sure:\n```python\ndef add(a, b):\n    return a + b\n```\n"},
        {"q": "Say hi.", "a": "Hi! There is no code here."},
        {"q": "", "a": "```python\nx = 1\n```"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rows, rejected = load_training_rows(
        {"source": str(path), "columns": {"instruction": "q", "solution": "a"}}, seed=0)
    assert [r["solution"] for r in rows] == ["def add(a, b):\n    return a + b\n"]
    assert rows[0]["task_id"] == "evol/0" and rows[0]["test"] == ""
    assert [r["reason"] for r in rejected] == ["row 1: no code block in 'a'", "row 2: empty or missing 'q'"]


def test_decontaminate_drops_a_planted_benchmark_solution_with_its_reason(tmp_path):
    import copy

    import yaml

    from faulttune.config import validate_config
    from faulttune.data.benchmarks import load_benchmark
    from faulttune.data.sources import humaneval_split
    from faulttune.io import read_parquet, rejected_path
    from faulttune.settings import Plan
    from faulttune.stages.data import prepare_train

    heldout = humaneval_split(0, 32)[1][0]
    planted = next(t for t in load_benchmark("humaneval") if t.task_id == heldout)
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"q": "Solve it.", "a": f"```python\n{planted.canonical_solution}```"}) + "\n"
                    + json.dumps({"q": "Add.", "a": "```python\ndef add(a, b):\n    return a + b\n```"}) + "\n")
    repo = Path(__file__).resolve().parents[1]
    config = copy.deepcopy(yaml.safe_load((repo / "config" / "config.yaml").read_text()))
    config["sweeps"] = {}
    config["data"].update({"train": {"source": str(path), "columns": {"instruction": "q", "solution": "a"},
                                     "limit": 32}, "decontaminate": True})
    settings = Plan(validate_config(config), environ={}).train_table()
    # the held-out half of the demo split (seed 0, 32 training tasks) is guarded, and all of
    # HumanEval too: the probe (on in config.yaml) draws its twins from HumanEval tasks
    assert [s.name for s in settings.decontaminate] == ["humaneval", "humaneval-split-heldout"]
    out = tmp_path / "train.parquet"
    prepare_train(settings, str(out))
    assert [r["task_id"] for r in read_parquet(out)] == ["train/1"]
    (rejected,) = read_parquet(rejected_path(out))
    assert rejected["task_id"] == "train/0" and heldout in rejected["reason"]
