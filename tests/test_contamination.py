"""Contamination check: normalisation, a planted duplicate, the demo split, the prefilter."""

from __future__ import annotations

import random

import pytest

from faulttune import contamination
from faulttune.contamination import (
    CheckParams,
    build_index,
    code_tokens,
    contamination_report,
    decontaminate,
    find_matches,
    load_benchmarks,
    ngrams,
    self_overlaps,
)
from faulttune.data.sources import humaneval_split

# HumanEval/0's canonical solution with the function renamed, the docstring replaced, comments
# added and the layout changed (2-space indents, operator spacing, a one-line `if`).
PLANTED = """from typing import List
def close_pairs_exist(numbers: List[float], threshold: float) -> bool:
  \"\"\"True if two numbers are closer than threshold.\"\"\"
  # compare every pair
  for idx, elem in enumerate( numbers ):
      for idx2, elem2 in enumerate( numbers ):
          if idx != idx2:
              distance = abs(elem-elem2)
              if distance < threshold: return True
  return False
"""
UNRELATED = [
    {"id": "u0", "instruction": "Reverse a string.", "solution": "def rev(s):\n    return s[::-1]\n"},
    {"id": "u1", "instruction": "Sum the squares of a list.",
     "solution": "def sq(xs):\n    total = 0\n    for x in xs:\n        total += x * x\n    return total\n"},
    {"id": "u2", "instruction": "Parse 'key=value' pairs, don't fail on blanks.",
     "solution": "def parse(text):\n    return dict(p.split('=', 1) for p in text.split() if p)\n"},
]


@pytest.fixture(scope="module")
def humaneval(data_dir):
    return load_benchmarks(["humaneval"], data_dir)["humaneval"]


def test_code_tokens_ignore_layout_and_comments_and_split_strings():
    a = code_tokens("def f(x):\n    # add one\n    return x+1  # inline\n")
    b = code_tokens("def f( x ) :\n  return x + 1\n")
    assert a == b == ["def", "f", "(", "x", ")", ":", "return", "x", "+", "1"]
    assert code_tokens('"""Return the sum."""\n') == ["Return", "the", "sum", "."]
    # natural language that tokenize rejects (an unterminated quote) falls back to words
    assert code_tokens("it's (easy") == ["it", "'", "s", "(", "easy"]


def test_ngrams_by_hand():
    assert ngrams(["a", "b", "c", "d"], 3) == {("a", "b", "c"), ("b", "c", "d")}
    assert ngrams(["a", "b"], 3) == {("a", "b")}
    assert ngrams([], 3) == set()


def test_planted_duplicate_is_found_and_rejected_with_its_reason(humaneval):
    rows = [*UNRELATED[:2], {"id": "planted", "instruction": "Check close numbers.",
                             "solution": PLANTED}, UNRELATED[2]]
    kept, rejected = decontaminate(rows, {"humaneval": humaneval})
    assert [r["id"] for r in kept] == ["u0", "u1", "u2"]
    assert [r["id"] for r in rejected] == ["planted"]
    reason = rejected[0]["reason"]
    assert reason.startswith("contamination: humaneval HumanEval/0 ")
    assert "field 'solution'" in reason and ("13-grams" in reason or "near-duplicate" in reason)
    report = contamination_report(rows, {"humaneval": humaneval})["benchmarks"]["humaneval"]
    assert report["n_rows_flagged"] == 1 and report["overlapping_task_ids"] == ["HumanEval/0"]
    assert report["by_kind"]["ngram"] == 1  # the renamed body keeps most of its 13-grams
    top = report["top_matches"][0]
    assert top["row_id"] == "planted" and top["flagged"] and top["containment"] > 0.5


def test_pairs_columns_are_checked_too(humaneval):
    body = humaneval[12].canonical_solution
    pair = {"id": "p", "task_id": "x", "correct": "def g():\n    return 1\n", "incorrect": body}
    kept, rejected = decontaminate([pair], {"humaneval": humaneval})
    assert not kept and "HumanEval/12" in rejected[0]["reason"]
    assert "field 'incorrect'" in rejected[0]["reason"]
    assert "near-duplicate (token edit similarity 1.00)" in rejected[0]["reason"]


def test_humaneval_siblings_are_the_only_self_overlap(humaneval):
    # /108 count_nums and /145 order_by_points share the same digits_sum helper, verbatim
    assert self_overlaps("humaneval", humaneval) == [("HumanEval/108", "HumanEval/145"),
                                                     ("HumanEval/145", "HumanEval/108")]


def _split_report(humaneval, train: list[str], heldout: list[str]) -> dict:
    by_id = {t.task_id: t for t in humaneval}
    assert not set(train) & set(heldout)
    rows = [{"id": t, "instruction": by_id[t].prompt, "solution": by_id[t].canonical_solution}
            for t in train]
    return contamination_report(rows, {"heldout": [by_id[t] for t in heldout]})["benchmarks"]["heldout"]


@pytest.mark.parametrize("seed", [0, 1])
def test_demo_split_halves_do_not_overlap(humaneval, seed):
    # the split keeps the siblings /108 and /145 on one side; nothing crosses the halves
    result = _split_report(humaneval, *humaneval_split(seed, 64))
    assert result["n_tasks"] == 100 and result["n_rows_checked"] == 64
    assert result["n_rows_flagged"] == 0 and result["overlapping_task_ids"] == []
    assert result["n_rows_any_shared_ngram"] > 0  # shared phrasing still shows, unflagged


def test_a_split_with_siblings_apart_reports_exactly_them(humaneval):
    # a naive seeded shuffle (no sibling groups) puts /108 in train and /145 in the held-out half
    ids = [f"HumanEval/{i}" for i in range(164)]
    random.Random(0).shuffle(ids)
    train, heldout = ids[:64], ids[64:]
    assert "HumanEval/108" in train and "HumanEval/145" in heldout
    result = _split_report(humaneval, train, heldout)
    assert result["n_rows_flagged"] == 1 and result["overlapping_task_ids"] == ["HumanEval/145"]
    top = result["top_matches"][0]
    assert (top["row_id"], top["part"], top["kinds"]) == ("HumanEval/108", "code", ["ngram"])
    # the closest docstrings (/43 vs /40 prompts, 0.899 similar) stay below the threshold
    near = [m for m in result["top_matches"] if m["task_id"] == "HumanEval/40"]
    assert near and not any(m["flagged"] for m in near)
    assert max(m["similarity"] for m in near) == pytest.approx(0.899, abs=1e-3)


def test_prefilter_limits_edit_distances(humaneval, monkeypatch):
    calls = []
    real = contamination.Levenshtein.normalized_similarity

    def counting(a, b, **kwargs):
        calls.append(1)
        return real(a, b, **kwargs)

    monkeypatch.setattr(contamination.Levenshtein, "normalized_similarity", counting)
    index = build_index({"humaneval": humaneval})
    matches = find_matches(UNRELATED * 20, index)
    # 60 rows x 2 fields x 328 items would be 39,360 distances without the prefilter
    assert len(calls) < 200
    assert not any(m.flagged for m in matches)


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="near_threshold"):
        CheckParams(near_threshold=1.5)
    with pytest.raises(ValueError, match="report_floor"):
        CheckParams(near_threshold=0.6, report_floor=0.7)


def test_decontaminate_table_writes_kept_and_rejected(humaneval, tmp_path):
    from faulttune.contamination import decontaminate_table
    from faulttune.io import read_parquet, rejected_path, write_parquet

    rows = [{**UNRELATED[0], "task_id": "a"},
            {"id": "planted", "task_id": "b", "instruction": "x", "solution": PLANTED}]
    write_parquet(rows, tmp_path / "train.parquet")
    out = tmp_path / "clean" / "train.parquet"
    assert decontaminate_table(tmp_path / "train.parquet", out, {"humaneval": humaneval}) == (1, 1)
    assert [r["id"] for r in read_parquet(out)] == ["u0"]
    rejected = read_parquet(rejected_path(out))
    assert rejected[0]["id"] == "planted" and rejected[0]["stage"] == "decontaminate"
    assert "HumanEval/0" in rejected[0]["reason"]


def test_a_training_row_that_is_a_benchmark_task_by_id_is_rejected_whatever_its_text():
    from types import SimpleNamespace

    from faulttune.contamination import decontaminate, task_key

    assert task_key("mbpp/601") == task_key("Mbpp/601") == ("mbpp", "601")
    assert task_key("Python/3") == task_key("HumanEval/3") == ("humaneval", "3")
    assert task_key("evol/12") is None and task_key("Mbpp/x") is None
    bench = {"mbpp": [SimpleNamespace(task_id="Mbpp/601", prompt="add two numbers",
                                      canonical_solution="def add(a, b):\n    return a + b\n")]}
    rows = [{"task_id": "mbpp/601", "instruction": "unrelated words", "solution": "x = 1\n"},
            {"task_id": "mbpp/602", "instruction": "unrelated words", "solution": "y = 2\n"}]
    kept, rejected = decontaminate(rows, bench)
    assert [r["task_id"] for r in kept] == ["mbpp/602"]
    assert rejected[0]["reason"] == "same task as mbpp Mbpp/601"


# ---------------------------------------------------------------------------------------------
# BigCodeBench: decontaminated against like every evaluated benchmark, from where it is scored

BCB_AREA = {
    "task_id": "BigCodeBench/7",
    "complete_prompt": ('import math\n\ndef task_func(radius):\n    """\n    Compute the area of a '
                        'circle of the given radius, rounded to five decimals.\n\n    Parameters:\n'
                        '    radius (float): the radius, not negative.\n\n    Returns:\n    float: '
                        'the area.\n\n    Requirements:\n    - math\n\n    Example:\n    >>> '
                        'task_func(1.0)\n    3.14159\n    """\n'),
    "instruct_prompt": ("Compute the area of a circle of the given radius, rounded to five decimals, "
                        "and raise a ValueError for a negative radius.\nThe function should output "
                        "with:\n    float: the area.\nYou should write self-contained code starting "
                        "with:\n```\nimport math\ndef task_func(radius):\n```"),
    "canonical_solution": ("    if radius < 0:\n        raise ValueError('negative radius')\n"
                           "    area = math.pi * radius ** 2\n    return round(area, 5)\n"),
    "code_prompt": "import math\ndef task_func(radius):\n",
    "test": ("import unittest\n\nclass TestCases(unittest.TestCase):\n    def test_one(self):\n"
             "        self.assertEqual(task_func(1.0), 3.14159)\n"),
    "entry_point": "task_func", "libs": "['math']",
}


def fenced(code: str) -> str:
    return f"```python\n{code}```"


@pytest.mark.parametrize("where", ["local file", "hub"])
def test_training_rows_overlapping_bigcodebench_are_dropped(tmp_path, monkeypatch, where):
    """BigCodeBench is decontaminated against from where its generation reads it: a local file
    in its format, else the hub dataset (``datasets.load_dataset`` stands in for the network)."""
    import copy
    import json
    from pathlib import Path

    import yaml

    from faulttune.bigcodebench import HUB_DATASETS, HUB_VERSION, write_tasks_jsonl
    from faulttune.config import validate_config
    from faulttune.io import read_parquet, rejected_path
    from faulttune.settings import Plan
    from faulttune.stages.data import prepare_train

    bcb_file = write_tasks_jsonl([BCB_AREA], tmp_path / "bcb.jsonl")
    asked = []

    def hub(path, split):
        asked.append((path, split))
        return [BCB_AREA]

    monkeypatch.setattr("datasets.load_dataset", hub)
    program = BCB_AREA["complete_prompt"] + BCB_AREA["canonical_solution"]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in (
        {"q": "Area of a circle.", "a": fenced(program)},                  # the reference program
        {"q": BCB_AREA["instruct_prompt"], "a": fenced("def f():\n    return 1\n")},  # its task
        {"q": "Add.", "a": fenced("def add(a, b):\n    return a + b\n")})))
    repo = Path(__file__).resolve().parents[1]
    config = copy.deepcopy(yaml.safe_load((repo / "config" / "config.yaml").read_text()))
    config["sweeps"] = {}
    config["data"].update({
        "train": {"source": str(train), "columns": {"instruction": "q", "solution": "a"}},
        "benchmarks": ["humaneval-split-heldout", "bigcodebench-hard-instruct",
                       "bigcodebench-full-complete"],
        "bigcodebench": {"source": str(bcb_file) if where == "local file" else None}})
    settings = Plan(validate_config(config), environ={}).train_table()
    # one BigCodeBench source: both splits are the same tasks, the hard ones are tasks of the full
    # set; HumanEval because the probe (on in config.yaml) draws its twins from it
    assert [s.name for s in settings.decontaminate] == ["bigcodebench-full", "humaneval",
                                                        "humaneval-split-heldout"]
    out = tmp_path / "train.parquet"
    prepare_train(settings, str(out))
    assert asked == ([] if where == "local file" else [(HUB_DATASETS["full"], HUB_VERSION)])
    assert [r["instruction"] for r in read_parquet(out)] == ["Add."]
    reasons = [r["reason"] for r in read_parquet(rejected_path(out))]
    assert len(reasons) == 2
    assert all(r.startswith("contamination: bigcodebench-full BigCodeBench/7 ") for r in reasons)
    assert "instruct_prompt in field 'instruction'" in reasons[1]


@pytest.mark.parametrize(("source", "probe", "checked"), [
    ("mbpp", True, ["humaneval"]),  # the probe's HumanEval twins are evaluated data
    ("mbpp", False, []),
    ("humaneval-split", True, ["humaneval-split-heldout"]),  # held out by the split itself
])
def test_training_is_decontaminated_against_the_probe_s_tasks(source, probe, checked):
    from faulttune.config import validate_config
    from faulttune.settings import Plan

    benchmarks = ["humaneval-split-heldout"] if source == "humaneval-split" else []
    config = validate_config({
        "run": "t", "student": {"model": "tiny-random"},
        "data": {"train": {"source": source}, "benchmarks": benchmarks},
        "sensitivity": {"enabled": probe}, "experiments": {"sft": {"method": "sft"}}})
    plan = Plan(config, environ={})
    assert [b.name for b in plan.contamination_sources()] == checked
    assert [b.name for b in plan.train_table().decontaminate] == checked
