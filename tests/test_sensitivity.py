"""Fault-sensitivity probe: pairs, exact per-token accounting, and a controlled output bias."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from faulttune.io import DataError, write_parquet
from faulttune.models import TINY_RANDOM, load_model, load_tokenizer
from faulttune.sensitivity import (
    Bootstrap,
    encode_response,
    humanevalfix_pairs,
    pair_row,
    paired_difference,
    probe_loaded,
    region_start,
    summarise,
    twin_pairs,
    write_sensitivity,
)

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
        encoded = {}
        for program, key in ((pair["correct"], "correct"), (pair["incorrect"], "buggy")):
            ids, start = encoded[key] = encode_response(tokenizer, pair["instruction"], program)
            manual = _manual_response_logps(model, ids, start)
            assert row[f"n_tokens_{key}"] == len(ids) - start == len(manual)
            assert row[f"logp_{key}"] == pytest.approx(sum(manual), abs=1e-3)
            region = row["region_start"]
            assert row[f"n_region_{key}"] == len(manual) - region
            assert row[f"logp_region_{key}"] == pytest.approx(sum(manual[region:]), abs=1e-3)
        (a, sa), (b, sb) = encoded["correct"], encoded["buggy"]
        # the region starts at the first differing response token; before it, both sides agree
        assert a[sa:sa + region] == b[sb:sb + region] and a[sa + region] != b[sb + region]
        assert region == region_start(encoded["correct"], encoded["buggy"])
        assert row["margin_sum"] == pytest.approx(row["logp_correct"] - row["logp_buggy"])
        assert row["margin_mean"] == pytest.approx(
            row["logp_correct"] / row["n_tokens_correct"] - row["logp_buggy"] / row["n_tokens_buggy"])
        assert row["margin_region"] == pytest.approx(
            row["logp_region_correct"] / row["n_region_correct"]
            - row["logp_region_buggy"] / row["n_region_buggy"])
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
    assert set(toward_correct["by_family"]) == {"operator", "compare"}
    assert toward_correct["by_family"]["operator"]["n"] == 2
    assert toward_correct["humanevalfix"] is None and toward_correct["twins"]["n"] == 3


# A deletion bug ("missing logic"): the buggy program lacks the correct program's 2-token guard.
# Both responses share 3 tokens (log-probs -0.1 each); then the correct program spends 2 tokens on
# the guard (-1.0 each) and predicts the common end well (-0.2 x 3), while after the deletion the
# buggy program's end is less likely (-0.6 x 3).
DELETION = {"task_id": "t/del", "family": "cct", "bug_type": "missing logic"}
DELETION_CORRECT = [-0.1] * 3 + [-1.0] * 2 + [-0.2] * 3
DELETION_BUGGY = [-0.1] * 3 + [-0.6] * 3


def test_a_deletion_bug_fools_the_summed_statistic_but_not_the_headline():
    row = pair_row(DELETION, DELETION_CORRECT, DELETION_BUGGY, region=3)
    # summed: correct -0.3 - 2.0 - 0.6 = -2.9 < buggy -0.3 - 1.8 = -2.1: the sum "prefers" the
    # bug only because it has two tokens fewer
    assert row["margin_sum"] == pytest.approx(-0.8)
    # region means: correct (-2.0 - 0.6) / 5 = -0.52 > buggy -1.8 / 3 = -0.6: the correct one wins
    assert (row["n_region_correct"], row["n_region_buggy"]) == (5, 3)
    assert row["margin_region"] == pytest.approx(0.08)
    # the whole-response mean is diluted by the shared start: -2.9 / 8 < -2.1 / 6
    assert row["margin_mean"] == pytest.approx(-2.9 / 8 + 2.1 / 6)
    summary = summarise([row])
    assert summary["prefer_correct"] == 1.0 and summary["prefer_correct_sum"] == 0.0
    assert summary["mean_margin"] == pytest.approx(0.08)
    assert summary["buggy_shorter"] == 1.0


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
    assert result["overall"]["prefer_correct_sum"] == 0.0
    assert result["overall"]["prefer_correct"] == 0.0  # a tie is not a preference


def test_summarise_by_hand():
    rows = [{"margin_sum": 2.0, "margin_mean": -0.5, "margin_region": 0.5,
             "n_tokens_correct": 10, "n_tokens_buggy": 9},
            {"margin_sum": -1.0, "margin_mean": 0.25, "margin_region": -0.25,
             "n_tokens_correct": 10, "n_tokens_buggy": 10},
            {"margin_sum": 0.0, "margin_mean": 1.0, "margin_region": 1.0,
             "n_tokens_correct": 10, "n_tokens_buggy": 12}]
    summary = summarise(rows)
    expected = {"n": 3, "prefer_correct": 2 / 3, "mean_margin": 1.25 / 3,
                "prefer_correct_sum": 1 / 3, "mean_margin_sum": 1 / 3,
                "prefer_correct_mean": 2 / 3, "mean_margin_mean": 0.25, "buggy_shorter": 1 / 3}
    assert {k: summary[k] for k in expected} == pytest.approx(expected)
    # intervals: resampled fractions of three 0/1 values range over {0, 1/3, 2/3, 1}
    assert summary["prefer_correct_low"] == 0.0 and summary["prefer_correct_high"] == 1.0
    assert summary["mean_margin_low"] == pytest.approx(-0.25)
    assert summary["mean_margin_high"] == pytest.approx(1.0)
    assert summary == summarise(rows)  # seeded
    assert summarise([]) is None


def _result(margins: dict[str, float], fix_margin: float) -> dict:
    rows = [{"pair_id": k, "family": "cct", "margin_region": v, "margin_sum": v}
            for k, v in margins.items()]
    return {"per_task": [*rows, {"pair_id": "Python/0", "family": "humanevalfix",
                                 "margin_region": fix_margin, "margin_sum": fix_margin}]}


def test_paired_difference_between_two_probes_on_the_same_pairs():
    base = _result({f"p{i}": -0.1 for i in range(30)}, fix_margin=1.0)
    better = _result({f"p{i}": 0.2 for i in range(30)}, fix_margin=-1.0)
    same = paired_difference(base, base)
    assert (same.difference, same.significant) == (0.0, False)
    gain = paired_difference(better, base, families={"cct"})
    assert (gain.difference, gain.low, gain.high, gain.significant, gain.n) == (1.0, 1.0, 1.0,
                                                                                True, 30)
    assert paired_difference(better, base).difference == pytest.approx(29 / 31)
    margin = paired_difference(better, base, "mean_margin", families={"cct"},
                               bootstrap=Bootstrap(n_resamples=100))
    assert margin.difference == pytest.approx(0.3)
    with pytest.raises(ValueError, match="item sets differ"):
        paired_difference(base, _result({"p0": 1.0}, fix_margin=0.0))
    with pytest.raises(ValueError, match="key must be one of"):
        paired_difference(base, base, "margin")


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
        "n_tokens_correct", "n_tokens_buggy", "margin_sum", "margin_mean", "region_start",
        "logp_region_correct", "logp_region_buggy", "n_region_correct", "n_region_buggy",
        "margin_region"}
    assert loaded["headline"] == "margin_region"
    assert loaded["bootstrap"] == {"confidence": 0.95, "n_resamples": 10000, "seed": 0}
    assert {"prefer_correct", "prefer_correct_low", "prefer_correct_high", "mean_margin",
            "mean_margin_low", "mean_margin_high"} <= set(loaded["overall"])
    with pytest.raises(ValueError, match="missing"):
        write_sensitivity({"overall": {}}, tmp_path / "x.json")




def _candidate(task: str, k: int) -> dict:
    return {"task_id": task, "pair_id": f"cct:{task}:{k}", "instruction": "i", "correct": "c",
            "incorrect": f"b{k}", "family": "cct", "bug_type": ""}


def _base(margins: dict[str, float]) -> dict:
    return {"per_task": [{"pair_id": k, "margin_region": v} for k, v in margins.items()]}


def test_selection_keeps_the_pairs_the_base_model_is_weakest_on_one_per_task():
    from faulttune.sensitivity import select_probe_pairs

    candidates = [_candidate(t, k) for t in ("A", "B", "C") for k in range(2)]
    margins = {"cct:A:0": 0.3, "cct:A:1": -0.2, "cct:B:0": 0.1, "cct:B:1": 0.4,
               "cct:C:0": -0.5, "cct:C:1": -0.3}
    picked = select_probe_pairs(candidates, _base(margins), limit=2)
    # C's second pair (-0.3) is lower than A's best (-0.2) but C already has its weakest pair
    assert [(p["id"], p["base_margin"]) for p in picked] == [("cct:C:0", -0.5), ("cct:A:1", -0.2)]
    assert set(picked[0]) == {"id", "task_id", "instruction", "correct", "incorrect", "family",
                              "bug_type", "base_margin"}
    assert select_probe_pairs(candidates[::-1], _base(margins), limit=2) == picked
    assert len(select_probe_pairs(candidates, _base(margins), limit=10)) == 3
    with pytest.raises(DataError, match="cct:A:0.*no base-model score"):
        select_probe_pairs(candidates, _base({}), limit=2)
    with pytest.raises(ValueError, match="limit must be >= 1"):
        select_probe_pairs(candidates, _base(margins), limit=0)


def test_selected_probe_pairs_round_trip_through_twin_pairs(tmp_path):
    from faulttune.sensitivity import select_probe_pairs, write_probe_pairs

    candidates = [{**_candidate(t, k), "family": "humanevalfix", "bug_type": "missing logic"}
                  for t in ("A", "B") for k in range(2)]
    margins = {c["pair_id"]: 0.1 * i for i, c in enumerate(candidates)}
    rows = select_probe_pairs(candidates, _base(margins), limit=2)
    path = write_probe_pairs(rows, tmp_path / "bugs" / "probe_pairs.parquet")
    pairs = twin_pairs(path)
    assert [p["pair_id"] for p in pairs] == ["cct:A:0", "cct:B:0"]
    assert pairs[0]["bug_type"] == "missing logic" and pairs[0]["family"] == "humanevalfix"
    assert pairs[0]["incorrect"] == "b0"
