"""Fault-sensitivity probe: pairs, exact per-token accounting, and a controlled output bias."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from faulttune.io import DataError, write_parquet
from faulttune.models import TINY_RANDOM, load_model, load_tokenizer
from faulttune.sensitivity import (
    encode_response,
    humanevalfix_pairs,
    pair_row,
    probe_loaded,
    sample_probe_pairs,
    summarise,
    task_values,
    twin_pairs,
    write_probe_pairs,
    write_sensitivity,
)
from faulttune.sensitivity.regions import Region, differing_region, region_start

# Hand-made pairs: each buggy twin differs from the correct program by one operator.
PAIRS = [
    {"task_id": "t/add", "instruction": "Add two numbers.", "family": "operator",
     "correct": "def add(a, b):\n    return a + b\n", "incorrect": "def add(a, b):\n    return a - b\n"},
    {"task_id": "t/mul", "instruction": "Multiply two numbers.", "family": "operator",
     "correct": "def mul(a, b):\n    return a * b\n", "incorrect": "def mul(a, b):\n    return a / b\n"},
    {"task_id": "t/lt", "instruction": "Is a smaller than b?", "family": "compare",
     "correct": "def lt(a, b):\n    return a < b\n", "incorrect": "def lt(a, b):\n    return a > b\n"},
]


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY_RANDOM, precision="fp32", device="cpu"), load_tokenizer(TINY_RANDOM)


def test_humanevalfix_pairs_differ_only_in_the_body(data_dir):
    pairs = humanevalfix_pairs(data_dir)
    assert len(pairs) == 164
    first = pairs[0]
    assert first["task_id"] == "Python/0" and first["family"] == "humanevalfix"
    assert first["bug_type"] == "missing logic"
    assert first["correct"].startswith("from typing import List\n\n\ndef has_close_elements(")
    assert '"""' not in first["correct"]  # the declaration, not the docstring prompt
    assert "distance = abs(elem - elem2)" in first["correct"]
    assert "distance = elem - elem2" in first["incorrect"]
    assert all(p["correct"] != p["incorrect"] for p in pairs)
    counts = Counter(p["bug_type"] for p in pairs)
    assert counts == {"value misuse": 44, "missing logic": 33, "excess logic": 31,
                      "operator misuse": 25, "variable misuse": 23, "function misuse": 8}


def _manual_response_logps(model, ids: list[int], start: int) -> list[float]:
    """Unpadded forward of one sequence; log p(token t) for t >= start."""
    with torch.inference_mode():
        logps = model(torch.tensor([ids])).logits[0].double().log_softmax(-1)
    return [logps[t - 1, ids[t]].item() for t in range(start, len(ids))]


@pytest.mark.parametrize("shared_prompt", [True, False])
def test_per_token_accounting_matches_a_manual_forward(tiny, shared_prompt):
    model, tokenizer = tiny
    # batch 3 over 8 sequences of different lengths: padding, sorting and re-ordering all happen;
    # with a shared prompt the two responses of a pair differ in length (right padding)
    pairs = PAIRS + [{**PAIRS[0], "task_id": "t/long", "instruction": "Add. " * 40,
                      "incorrect": "def add(a, b):\n    # wrong\n    return a - b\n"}]
    result = probe_loaded(model, tokenizer, pairs, batch_size=3, shared_prompt=shared_prompt)
    for pair, row in zip(pairs, result["per_task"]):
        encoded, manual_logps = {}, {}
        for program, key in ((pair["correct"], "correct"), (pair["incorrect"], "buggy")):
            ids, start = encoded[key] = encode_response(tokenizer, pair["instruction"], program)
            manual = _manual_response_logps(model, ids, start)
            assert row[f"n_tokens_{key}"] == len(ids) - start == len(manual)
            assert row[f"logp_{key}"] == pytest.approx(sum(manual), abs=1e-3)
            start, end = row["diff_start"], row["diff_start"] + row[f"n_diff_{key}"]
            assert row[f"logp_diff_{key}"] == pytest.approx(sum(manual[start:end]), abs=1e-3)
            manual_logps[key] = manual
        (a, sa), (b, sb) = encoded["correct"], encoded["buggy"]
        diff = differing_region(a[sa:], b[sb:])
        assert (row["diff_start"], row["n_diff_correct"], row["n_diff_buggy"]) == (
            diff.start, diff.n_correct, diff.n_buggy)
        # the region: tokens before and after it are the same on both sides
        assert a[sa:sa + diff.start] == b[sb:sb + diff.start]
        assert a[sa + diff.end_correct:] == b[sb + diff.end_buggy:]
        assert row["margin_diff"] == pytest.approx(
            row["logp_diff_correct"] / row["n_diff_correct"]
            - row["logp_diff_buggy"] / row["n_diff_buggy"])
        assert row["margin_diff_sum"] == pytest.approx(
            row["logp_diff_correct"] - row["logp_diff_buggy"])
        assert row["nll_correct"] == pytest.approx(-sum(manual_logps["correct"])
                                                   / len(manual_logps["correct"]), abs=1e-4)
        region = region_start(a[sa:], b[sb:])
        assert row["region_start"] == region
        assert row["margin_region"] == pytest.approx(
            sum(manual_logps["correct"][region:]) / (len(a) - sa - region)
            - sum(manual_logps["buggy"][region:]) / (len(b) - sb - region), abs=1e-4)
        assert row["margin_sum"] == pytest.approx(row["logp_correct"] - row["logp_buggy"])
        assert row["margin_mean"] == pytest.approx(
            row["logp_correct"] / row["n_tokens_correct"] - row["logp_buggy"] / row["n_tokens_buggy"])
    # the prompt is excluded: the long instruction changes the context, not the token count
    assert result["per_task"][3]["n_tokens_correct"] == result["per_task"][0]["n_tokens_correct"]
    assert result["per_task"][3]["logp_correct"] != pytest.approx(result["per_task"][0]["logp_correct"])


def _only_in(tokenizer, pairs, keep: str, drop: str) -> list[int]:
    """Token ids of the ``keep`` responses that appear in no ``drop`` response."""
    kept, dropped = set(), set()
    for p in pairs:
        ids, start = encode_response(tokenizer, p["instruction"], p[keep])
        kept |= set(ids[start:])
        ids, start = encode_response(tokenizer, p["instruction"], p[drop])
        dropped |= set(ids[start:])
    return sorted(kept - dropped)


def _probe_with_bias(model, tokenizer, token_ids: list[int], bias: float) -> dict:
    shift = torch.zeros(model.config.vocab_size)
    shift[token_ids] = bias
    handle = model.lm_head.register_forward_hook(lambda _m, _i, out: out + shift)
    try:
        return probe_loaded(model, tokenizer, PAIRS, batch_size=4)
    finally:
        handle.remove()


def test_probe_follows_a_controlled_output_bias(tiny):
    model, tokenizer = tiny
    correct_only = _only_in(tokenizer, PAIRS, "correct", "incorrect")
    buggy_only = _only_in(tokenizer, PAIRS, "incorrect", "correct")
    assert correct_only and buggy_only
    base = probe_loaded(model, tokenizer, PAIRS, batch_size=4)
    toward_correct = _probe_with_bias(model, tokenizer, correct_only, 12.0)
    toward_buggy = _probe_with_bias(model, tokenizer, buggy_only, 12.0)
    for key in ("prefer_correct", "prefer_correct_sum", "prefer_correct_mean"):
        assert toward_correct["overall"][key] == 1.0
        assert toward_buggy["overall"][key] == 0.0
    for b, up, down in zip(base["per_task"], toward_correct["per_task"], toward_buggy["per_task"]):
        assert up["margin_sum"] > b["margin_sum"] + 5 > down["margin_sum"] + 10
        assert up["margin_mean"] > b["margin_mean"] > down["margin_mean"]
        assert up["margin_region"] > b["margin_region"] > down["margin_region"]
        assert up["margin_diff"] > b["margin_diff"] > down["margin_diff"]
    assert set(toward_correct["by_family"]) == {"operator", "compare"}
    assert toward_correct["by_family"]["operator"]["n"] == 2
    assert toward_correct["humanevalfix"] is None and toward_correct["twins"]["n"] == 3


# Token ids of hand-made responses: 1-3 the shared start, 7/8 the operator, 4-6 the shared end.
SUBSTITUTION = ([1, 2, 3, 7, 4, 5, 6], [1, 2, 3, 8, 4, 5, 6])


@pytest.mark.parametrize(("correct", "buggy", "expected"), [
    # substitution: each side keeps its own token, the shared start and end are dropped
    (*SUBSTITUTION, Region(3, 4, 4)),
    # a multi-token substitution of different lengths
    ([1, 2, 7, 7, 4, 5], [1, 2, 8, 4, 5], Region(2, 4, 3)),
    # deletion (the buggy side lacks 7, 8): the correct side keeps 7, 8 and both take back the
    # first shared-suffix token 4, the one the buggy side meets right after the edit point
    ([1, 2, 3, 7, 8, 4, 5], [1, 2, 3, 4, 5], Region(3, 6, 4)),
    # insertion (the buggy side has an extra 9): the mirror image
    ([1, 2, 4, 5], [1, 2, 9, 4, 5], Region(2, 3, 4)),
    # no common suffix and one side a prefix of the other: the last shared token is taken back
    ([1, 2, 3], [1, 2, 3, 4], Region(2, 3, 4)),
    # the whole sequence differs
    ([7], [8], Region(0, 1, 1)),
    # identical: nothing differs
    ([1, 2], [1, 2], Region(2, 2, 2)),
])
def test_differing_region_by_hand(correct, buggy, expected):
    region = differing_region(correct, buggy)
    assert region == expected
    if correct != buggy:
        assert region.n_correct > 0 and region.n_buggy > 0
        assert correct[:region.start] == buggy[:region.start]
        assert correct[region.end_correct:] == buggy[region.end_buggy:]


def test_the_shared_suffix_does_not_count_even_when_its_log_probs_differ():
    """After a substitution the shared end has a different context on each side: the old region
    statistic counts it, the headline does not."""
    correct_logps = [-0.1, -0.1, -0.1, -2.0, -0.1, -0.1, -0.1]
    buggy_logps = [-0.1, -0.1, -0.1, -1.0, -0.9, -0.9, -0.9]
    row = pair_row(PAIR, correct_logps, buggy_logps, *SUBSTITUTION)
    # differing tokens only: correct -2.0 vs buggy -1.0: the model prefers the bug
    assert (row["diff_start"], row["n_diff_correct"], row["n_diff_buggy"]) == (3, 1, 1)
    assert row["margin_diff"] == pytest.approx(-1.0)
    assert row["margin_diff_sum"] == pytest.approx(-1.0)
    # the old region (first difference to the end) is swayed by the shared end:
    # (-2.0 - 0.3) / 4 - (-1.0 - 2.7) / 4 = -0.575 + 0.925 = 0.35
    assert row["margin_region"] == pytest.approx(0.35)
    assert row["nll_correct"] == pytest.approx(2.6 / 7)
    assert summarise([row])["prefer_correct"] == 0.0


PAIR = {"task_id": "t/x", "pair_id": "t/x#0", "family": "cct"}


def test_a_deletion_bug_by_hand():
    """The buggy program lacks the correct program's 2-token guard (7, 8). Both share 1-3 (log-prob
    -0.1 each) and 4, 5. Correct: the guard costs -0.5 each, then 4 -0.2, 5 -0.2; buggy: 4 right
    after 3 is a surprise (-1.5), then 5 -0.2."""
    correct_ids, buggy_ids = [1, 2, 3, 7, 8, 4, 5], [1, 2, 3, 4, 5]
    correct = [-0.1] * 3 + [-0.5, -0.5, -0.2, -0.2]
    buggy = [-0.1] * 3 + [-1.5, -0.2]
    row = pair_row(PAIR, correct, buggy, correct_ids, buggy_ids)
    # region: correct 7, 8, 4 (-1.2 over 3 tokens) vs buggy 4 (-1.5 over 1)
    assert (row["n_diff_correct"], row["n_diff_buggy"]) == (3, 1)
    assert row["margin_diff"] == pytest.approx(-0.4 + 1.5)
    assert row["margin_diff_sum"] == pytest.approx(-1.2 + 1.5)
    # summed over the whole responses: -1.7 vs -2.0
    assert row["margin_sum"] == pytest.approx(0.3)
    assert row["margin_mean"] == pytest.approx(-1.7 / 7 + 2.0 / 5)
    summary = summarise([row])
    assert summary["prefer_correct"] == 1.0 and summary["buggy_shorter"] == 1.0
    assert summary["mean_margin"] == pytest.approx(1.1)


def test_pair_row_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        pair_row(PAIR, [-0.1], [-0.1, -0.2], [1, 2], [1, 2])


def test_a_model_that_knows_nothing_is_neutral_on_the_headline_but_not_on_the_sum(tiny):
    """A uniform next-token distribution: every token costs log(vocab). The summed statistic then
    prefers whichever program is shorter; the region mean is exactly neutral (a tie)."""
    model, tokenizer = tiny
    deletion = {"task_id": "t/abs", "instruction": "Absolute value.", "family": "cct",
                "correct": "def f(x):\n    if x < 0:\n        x = -x\n    return x\n",
                "incorrect": "def f(x):\n    return x\n"}
    handle = model.lm_head.register_forward_hook(lambda _m, _i, out: out * 0)
    try:
        result = probe_loaded(model, tokenizer, [deletion], batch_size=2)
    finally:
        handle.remove()
    row = result["per_task"][0]
    assert row["n_tokens_buggy"] < row["n_tokens_correct"]
    assert row["margin_sum"] < -10  # "prefers the bug": it only has fewer tokens
    assert row["margin_region"] == pytest.approx(0.0, abs=1e-5)
    assert row["margin_diff"] == pytest.approx(0.0, abs=1e-5)
    assert result["overall"]["prefer_correct_sum"] == 0.0
    assert result["overall"]["prefer_correct"] == 0.0  # a tie is not a preference


def _row(task: str, pair: str, margin: float, nll: float, n_correct: int = 10,
         n_buggy: int = 10) -> dict:
    return {"task_id": task, "pair_id": pair, "family": "cct", "margin_diff": margin,
            "nll_correct": nll, "margin_diff_sum": 2 * margin, "margin_sum": margin,
            "margin_region": margin, "margin_mean": margin, "n_tokens_correct": n_correct,
            "n_tokens_buggy": n_buggy}


def test_summarise_averages_the_pairs_of_a_task_first():
    # task A has two pairs (margins 0.5 and -0.25: A's preference 1/2, margin 0.125), B and C one
    rows = [_row("A", "A#0", 0.5, 1.0, n_buggy=9), _row("A", "A#1", -0.25, 1.0),
            _row("B", "B#0", 1.0, 2.0, n_buggy=12), _row("C", "C#0", -1.0, 3.0)]
    summary = summarise(rows)
    expected = {"n": 4, "n_tasks": 3, "prefer_correct": (0.5 + 1 + 0) / 3,
                "mean_margin": (0.125 + 1.0 - 1.0) / 3, "nll": 2.0,
                "mean_margin_diff_sum": 2 * 0.125 / 3, "buggy_shorter": (0.5 + 0 + 0) / 3}
    assert {k: summary[k] for k in expected} == pytest.approx(expected)
    # intervals resample the three tasks: nll ranges over means of {1, 2, 3}
    assert summary["nll_low"] == pytest.approx(1.0) and summary["nll_high"] == pytest.approx(3.0)
    assert summary["prefer_correct_low"] == 0.0 and summary["prefer_correct_high"] == 1.0
    assert summary == summarise(rows)  # seeded
    assert summarise([]) is None
    assert task_values(rows, "prefer_correct") == {"A": 0.5, "B": 1.0, "C": 0.0}
    assert task_values(rows, "nll", families={"other"}) == {}
    with pytest.raises(DataError, match="pair_id 'A#0' appears twice"):
        task_values([*rows, rows[0]], "nll")
    with pytest.raises(ValueError, match="key must be one of"):
        task_values(rows, "margin")


def test_twin_pairs_filter_and_errors(tmp_path):
    rows = [{"id": f"mutation:{p['task_id']}:0", "source": "mutation", **p} for p in PAIRS]
    path = tmp_path / "pairs_mutation.parquet"
    write_parquet(rows, path)
    pairs = twin_pairs(path, task_ids=["t/add", "t/lt"])
    assert [p["pair_id"] for p in pairs] == ["mutation:t/add:0", "mutation:t/lt:0"]
    assert pairs[0]["bug_type"] == "" and pairs[0]["incorrect"] == PAIRS[0]["incorrect"]
    write_parquet([{k: v for k, v in r.items() if k != "family"} for r in rows], path)
    with pytest.raises(DataError, match="missing column.*family"):
        twin_pairs(path)


def test_write_sensitivity_round_trip(tiny, tmp_path):
    model, tokenizer = tiny
    result = probe_loaded(model, tokenizer, PAIRS[:1], batch_size=2)
    out = write_sensitivity(result, tmp_path / "eval" / "exp" / "bug_sensitivity.json")
    loaded = json.loads(out.read_text())
    assert loaded["per_task"][0]["task_id"] == "t/add"
    assert set(loaded["per_task"][0]) == {
        "task_id", "pair_id", "family", "bug_type", "logp_correct", "logp_buggy",
        "n_tokens_correct", "n_tokens_buggy", "diff_start", "n_diff_correct", "n_diff_buggy",
        "logp_diff_correct", "logp_diff_buggy", "margin_diff", "margin_diff_sum", "nll_correct",
        "margin_sum", "margin_mean", "region_start", "margin_region"}
    assert loaded["headline"] == "margin_diff"
    assert loaded["bootstrap"] == {"confidence": 0.95, "n_resamples": 10000, "seed": 0}
    assert {"prefer_correct", "prefer_correct_low", "prefer_correct_high", "mean_margin",
            "mean_margin_low", "mean_margin_high", "nll", "nll_low", "nll_high",
            "n_tasks"} <= set(loaded["overall"])
    with pytest.raises(ValueError, match="missing"):
        write_sensitivity({"overall": {}}, tmp_path / "x.json")


def _candidate(task: str, k: int) -> dict:
    return {"task_id": task, "pair_id": f"cct:{task}:{k}", "instruction": "i", "correct": "c",
            "incorrect": f"b{k}", "family": "cct", "bug_type": ""}


def test_probe_sample_is_seeded_spread_over_tasks_and_chosen_by_no_model():
    candidates = [_candidate(t, k) for t in "ABCDEFGH" for k in range(3)]
    picked = sample_probe_pairs(candidates, limit=5, seed=0)
    assert len(picked) == 5 and len({p["task_id"] for p in picked}) == 5  # one per task
    assert set(picked[0]) == {"id", "task_id", "instruction", "correct", "incorrect", "family",
                              "bug_type"}
    assert sample_probe_pairs(candidates[::-1], limit=5, seed=0) == picked  # order-free
    assert sample_probe_pairs(candidates, limit=5, seed=1) != picked
    # more pairs than tasks: every task gives one, some a second, none a third
    per_task = Counter(p["task_id"] for p in sample_probe_pairs(candidates, limit=12, seed=0))
    assert set(per_task) == set("ABCDEFGH") and sorted(per_task.values()) == [1] * 4 + [2] * 4
    assert len(sample_probe_pairs(candidates, limit=100, seed=0)) == 24
    # every pair of a task is as likely: over seeds, each of A's three pairs is drawn
    drawn = {sample_probe_pairs(candidates, limit=8, seed=s)[0]["id"] for s in range(30)}
    assert drawn == {"cct:A:0", "cct:A:1", "cct:A:2"}
    with pytest.raises(DataError, match="pair_id 'cct:A:0' appears twice"):
        sample_probe_pairs([*candidates, candidates[0]], limit=2, seed=0)
    with pytest.raises(ValueError, match="limit must be >= 1"):
        sample_probe_pairs(candidates, limit=0, seed=0)


def test_probe_pairs_round_trip_through_twin_pairs(tmp_path):
    candidates = [{**_candidate(t, k), "family": "humanevalfix", "bug_type": "missing logic"}
                  for t in ("A", "B") for k in range(2)]
    rows = sample_probe_pairs(candidates, limit=2, seed=0)
    path = write_probe_pairs(rows, tmp_path / "bugs" / "probe_pairs.parquet")
    pairs = twin_pairs(path)
    assert [p["pair_id"] for p in pairs] == [r["id"] for r in rows]
    assert [p["task_id"] for p in pairs] == ["A", "B"]
    assert pairs[0]["bug_type"] == "missing logic" and pairs[0]["family"] == "humanevalfix"


def test_heldout_tasks_are_the_split_s_held_out_half_sampled_down_to_the_limit():
    from faulttune.data.sources import humaneval_split
    from faulttune.settings import HeldoutSettings
    from faulttune.stages.sensitivity import heldout_tasks

    _, heldout = humaneval_split(0, 32)
    every = heldout_tasks(HeldoutSettings(seed=0, split=(0, 32), data_dir=None))
    assert [t["task_id"] for t in every] == heldout  # no limit: all, in HumanEval's order
    some = heldout_tasks(HeldoutSettings(seed=0, split=(0, 32), data_dir=None, limit=24))
    ids = [t["task_id"] for t in some]
    assert len(ids) == 24 and set(ids) <= set(heldout)
    assert ids == sorted(ids, key=lambda t: int(t.split("/")[1]))
    assert ids == [t["task_id"] for t in heldout_tasks(
        HeldoutSettings(seed=0, split=(0, 32), data_dir=None, limit=24))]  # seeded
    assert ids != [t["task_id"] for t in heldout_tasks(
        HeldoutSettings(seed=1, split=(0, 32), data_dir=None, limit=24))]
    assert len(heldout_tasks(HeldoutSettings(seed=0, split=None, data_dir=None, limit=500))) == 164


def test_humanevalfix_pairs_are_those_of_the_probe_s_tasks(data_dir):
    from faulttune.settings import SensitivitySettings
    from faulttune.stages.sensitivity import humanevalfix_probe_pairs

    twins = [{**_candidate(f"HumanEval/{i}", k), "task_id": f"HumanEval/{i}"}
             for i in (5, 0, 5) for k in range(1)]
    settings = SensitivitySettings(model="tiny-random", batch_size=2, data_dir=str(data_dir))
    fix = humanevalfix_probe_pairs(settings, twins)
    assert [p["task_id"] for p in fix] == ["Python/0", "Python/5"]
    assert {p["family"] for p in fix} == {"humanevalfix"}
