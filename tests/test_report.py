"""The report: summary.csv, report.md (against the baseline, seeds, budgets, the probe, timings,
the papers' numbers), plots, timings.csv, masks.html, manifest.json.

A fake run folder is written by hand (scores, probe results, pairs + rejected, trajectories,
train logs, budgets, masks, Snakemake benchmark files) with ``seeds: [0, 1, 2]``, and every
expected value below is worked out from those files:

pass@1 on humaneval (10 tasks; a score passes tasks 0 .. k-1 unless listed):

    base 0.1 | sft 0.2, sft@seed=1 0.5, sft@seed=2 0.2 -> 0.3 ± 0.173 (sd of 0.2, 0.5, 0.2)
             | fgit 0.8, fgit@seed=1 0.6, fgit@seed=2 0.7 -> 0.7 ± 0.1 | fgit~lambda=3.0 0.3

fgit - sft on humaneval, pooled over the three seeds (seed s against sft's seed s): seed 0 gains
tasks 2..7 (+0.6), seed 1 task 5 (+0.1), seed 2 tasks 2..6 (+0.5): +0.4, and the seed sd of the
per-seed differences is sd(0.6, 0.1, 0.5) = sqrt(0.07) = 0.265 < 0.4 (exceeds the seed spread).
On humaneval_plus only seed 0 is scored: sft passes {0, 1} and fgit {1, 2, 3}: -1, +1, +1, 0 x 7
= +0.1, 2 tasks up and 1 down: the exact sign test gives p = 1 (not significant).
The probe (10 pairs, one per task; p0..p3 HumanEvalFix): only seed 0 of sft is probed, so fgit's
other seeds are left out of the probe comparisons (their baseline has no probe).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from faulttune import report, sensitivity, stats
from faulttune.config import config_digest, validate_config
from faulttune.generate.prompts import template_hash
from faulttune.io import DataError, write_jsonl, write_parquet, write_rejected
from faulttune.manifest import build_manifest
from faulttune.report import comparisons, plots, readers, summary
from faulttune.settings import Plan, ReportSettings

CONFIG = {
    "run": "t",
    "seed": 7,
    "seeds": [0, 1, 2],
    "student": {"model": "tiny-random"},
    "data": {"train": {"source": "humaneval-split"}, "benchmarks": ["humaneval-split-heldout"]},
    "experiments": {
        "base": {"method": "base"},
        "sft": {"method": "sft"},
        "fgit": {"method": "fgit"},
        "cct": {"method": "cct"},
    },
    "sweeps": {"fgit": {"lambda": [3.0]}},
}
HE = 10  # humaneval tasks in the fake scores
REPLICAS = ("", "@seed=1", "@seed=2")  # an experiment's name suffix for seeds 0, 1, 2
# experiment -> benchmark -> (passed task indices, tasks)
SCORES: dict[str, dict[str, tuple[set[int], int]]] = {
    "base": {"humaneval-split-heldout": ({0}, 4), "humaneval": ({0}, HE)},
    "sft": {"humaneval": ({0, 1}, HE), "humaneval_plus": ({0, 1}, HE)},
    "sft@seed=1": {"humaneval": (set(range(5)), HE)},
    "sft@seed=2": {"humaneval": ({0, 1}, HE)},
    "fgit": {"humaneval": (set(range(8)), HE), "humaneval_plus": ({1, 2, 3}, HE),
             "mbpp": ({0}, 2)},
    "fgit@seed=1": {"humaneval": (set(range(6)), HE)},
    "fgit@seed=2": {"humaneval": (set(range(7)), HE)},
    "fgit~lambda=3.0": {"humaneval": (set(range(3)), HE)},
}
# probe: 10 pairs p0..p9 (p0..p3 HumanEvalFix, bug types alternating); experiment -> (how many of
# the first pairs have margin +0.5, the rest -0.5; the held-out NLL of pair i's correct program is
# that number + 0.01 * i)
PROBED = {"base": (5, 1.0), "sft": (3, 1.0), "fgit": (9, 0.8), "fgit@seed=1": (7, 0.7),
          "fgit@seed=2": (8, 0.9)}
BUG_TYPES = ("missing logic", "operator misuse")
# budget.json: (train_tasks, train_examples, train_steps, train_tokens[, plain_twin_too_long]);
# units 8, batch 4
BUDGETS = {
    "sft": (8, 96, 24, 4800),
    "fgit": (8, 96, 24, 5000, 3),  # 3 tasks trained plain: their twin exceeds max_length
    "cct": (8, 288, 24, 9000),
    "fgit~lambda=3.0": (8, 48, 12, 2500),
}
NO_BUDGET = "sft@seed=1"  # a model folder without budget.json
# Snakemake benchmark files: path below benchmarks/ -> (seconds, max_rss MB)
TIMINGS = {
    "train/sft.tsv": (120.0, 800.0),
    "train/fgit.tsv": (180.0, 900.0),
    "score/base/humaneval.tsv": (30.0, 300.0),
    "prepare_train.tsv": (6.0, 100.0),
}
# task_id, iteration, passed: t1 passes at its first fix, t2 never passes.
TRAJECTORIES = [("t1", 0, False), ("t1", 1, True), ("t2", 0, False), ("t2", 1, False),
                ("t2", 2, False)]
VOCAB = ["[UNK]", "def", "f", "return", "1", "2", "user", "assistant"]


def score_json(benchmark: str, passed: set[int], tasks: int) -> dict[str, Any]:
    results = [
        {"task_id": f"T/{i}", "status": "pass" if i in passed else "fail", "detail": ""}
        for i in range(tasks)
    ]
    return {
        "benchmark": benchmark,
        "pass_at_1": len(passed) / tasks,
        "pass_at_k": {},
        "n_samples": tasks,  # no "n_tasks": the report counts the task ids
        "results": results,
    }


def probe_json(n_positive: int, nll: float) -> dict[str, Any]:
    """A probe result as faulttune.sensitivity writes it, from hand-made per-pair rows."""
    rows = []
    for i in range(10):
        margin = 0.5 if i < n_positive else -0.5
        fix = i < 4
        rows.append({
            "task_id": f"T/{i}", "pair_id": f"p{i}", "family": "humanevalfix" if fix else "mutation",
            "bug_type": BUG_TYPES[i % 2] if fix else "", "margin_diff": margin,
            "margin_diff_sum": 2 * margin, "margin_region": margin, "margin_mean": margin,
            "margin_sum": -margin,  # the sum disagrees: shorter buggy side
            "nll_correct": nll + 0.01 * i, "n_tokens_correct": 20, "n_tokens_buggy": 19,
        })
    return {"n_pairs": 10, **sensitivity.report(rows), "per_task": rows}


def budget_json(tasks: int, examples: int, steps: int, tokens: int, plain: int = 0
                ) -> dict[str, Any]:
    return {"method": "x", "train_tasks": tasks, "train_examples": examples, "train_steps": steps,
            "train_tokens": tokens, "train_tokens_by_kind": {"x": tokens}, "units": 8,
            "steps_per_epoch": 2, "batch_size": 4, "few_steps": steps < 20,
            "left_out_too_long": 1, "plain_twin_too_long": plain}


def write_tokenizer(folder: Path) -> str:
    """A word-level tokenizer folder that AutoTokenizer loads (one token per word of VOCAB)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[UNK]"
    ).save_pretrained(folder)
    return str(folder)


def write_masks_file(path: Path, tokenizer_dir: str) -> None:
    from faulttune.mask_table import write_masks

    # user | def f return 1  vs  user | def f return 2: "1" weighted 2 on the chosen side
    row = {
        "id": "p0", "task_id": "T/0", "kind": "fgit",
        "chosen_ids": [6, 1, 2, 3, 4], "chosen_start": 1, "chosen_mask": [0, 1, 1, 1, 2],
        "rejected_ids": [6, 1, 2, 3, 5], "rejected_start": 1, "rejected_mask": [0, 0, 0, 0, 2],
        "first_diff": 4,
    }
    write_masks([row], path, tokenizer_dir)


def write_json(path: Path, data: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return validate_config(json.loads(json.dumps(CONFIG)))


@pytest.fixture(scope="module")
def settings(config: dict[str, Any]) -> ReportSettings:
    return Plan(config, environ={}).report()


def write_pairs(root: Path) -> list[str]:
    teacher = root / "bugs" / "pairs_teacher.parquet"
    write_parquet([{"id": f"p{i}", "task_id": f"T/{i}"} for i in range(3)], teacher)
    reasons = ["identical after extraction", "identical after extraction", "does not parse"]
    write_rejected([{"id": f"r{i}", "reason": r} for i, r in enumerate(reasons)], teacher,
                   stage="teacher")
    codeflow_pairs = root / "codeflow" / "pairs.parquet"
    write_parquet([{"id": "c0", "task_id": "t1"}], codeflow_pairs)
    write_rejected([{"task_id": "t2", "reason": "never passed"}], codeflow_pairs, stage="codeflow")
    return [str(teacher), str(codeflow_pairs)]


def write_models(root: Path) -> tuple[list[str], list[str]]:
    """budget.json files (one model folder without) and two train logs."""
    budgets = [write_json(root / "models" / e / "budget.json", budget_json(*b))
               for e, b in BUDGETS.items()]
    budgets.append(str(root / "models" / NO_BUDGET / "budget.json"))
    logs = []
    for exp, weight in (("fgit", 1.5), ("fgit~lambda=3.0", 2.5)):
        log = root / "models" / exp / "train_log.jsonl"
        write_jsonl([{"step": s, "epoch": s / 3, "loss": 2.0 / s, "fgit_weight": weight,
                      "note": "x"} for s in (1, 2, 3)], log)
        logs.append(str(log))
    return budgets, logs


def write_timings(root: Path) -> None:
    for rel, (seconds, rss) in TIMINGS.items():
        path = root / "benchmarks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\tmax_vms\n{seconds}\t0:00:00\t{rss}\t1.0\n")
    (root / "benchmarks" / "generate" / "broken.tsv").parent.mkdir(parents=True)
    (root / "benchmarks" / "generate" / "broken.tsv").write_text("")  # a killed job's file


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("run") / "results" / "t"
    inputs: dict[str, list[str]] = {"scores": [], "sensitivity": [], "trajectories": [],
                                    "masks": []}
    for exp, benches in SCORES.items():
        for bench, (passed, tasks) in benches.items():
            path = root / "eval" / exp / f"{bench}.json"
            inputs["scores"].append(write_json(path, score_json(bench, passed, tasks)))
    for exp, (n_positive, nll) in PROBED.items():
        path = root / "eval" / exp / "bug_sensitivity.json"
        inputs["sensitivity"].append(write_json(path, probe_json(n_positive, nll)))
    inputs["pairs"] = write_pairs(root)
    trajectories = root / "codeflow" / "trajectories.parquet"
    write_parquet(
        [{"task_id": t, "iteration": i, "passed": p, "code": ""} for t, i, p in TRAJECTORIES],
        trajectories,
    )
    inputs["trajectories"].append(str(trajectories))
    inputs["budgets"], inputs["train_logs"] = write_models(root)
    masks = root / "masks" / "fgit_teacher.parquet"
    write_masks_file(masks, write_tokenizer(root.parent / "tok"))
    inputs["masks"].append(str(masks))
    write_timings(root)
    return inputs


@pytest.fixture(scope="module")
def report_dir(settings: ReportSettings, run_dir: dict[str, list[str]]) -> Path:
    out = Path(run_dir["scores"][0]).parents[2] / "report"
    report.write_report(settings, str(out), **run_dir)
    return out


@pytest.fixture(scope="module")
def text(report_dir: Path) -> str:
    return (report_dir / "report.md").read_text()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summary_by_key(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["benchmark"], r["experiment"]): r for r in read_csv(folder / "summary.csv")}


def section(text: str, title: str) -> str:
    """One ``## title`` section of report.md."""
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


# --------------------------------------------------------------------------------------------
# summary.csv


def test_summary_has_one_row_per_experiment_and_family_in_order(report_dir: Path) -> None:
    rows = read_csv(report_dir / "summary.csv")
    assert list(rows[0]) == list(report.SUMMARY_COLUMNS)
    assert list(rows[0])[:5] == ["experiment", "method", "sweep_of", "swept_param", "benchmark"]
    he = ["base", "fgit", "fgit@seed=1", "fgit@seed=2", "fgit~lambda=3.0", "sft", "sft@seed=1",
          "sft@seed=2"]
    assert [(r["benchmark"], r["experiment"]) for r in rows] == [
        *(("humaneval", e) for e in he),
        ("humaneval-split-heldout", "base"),
        ("mbpp", "fgit"),
    ]


def test_summary_merges_base_and_plus_and_flags_the_demo_split(report_dir: Path) -> None:
    rows = summary_by_key(report_dir)
    fgit = rows[("humaneval", "fgit")]
    assert (fgit["pass_at_1_base"], fgit["pass_at_1_plus"]) == ("0.8", "0.3")
    assert (fgit["n_tasks_base"], fgit["n_tasks_plus"], fgit["n_samples"]) == ("10", "10", "10")
    assert rows[("mbpp", "fgit")]["pass_at_1_plus"] == ""  # no mbpp_plus score
    assert rows[("humaneval-split-heldout", "base")]["demo_split"] == "True"
    assert rows[("humaneval", "base")]["demo_split"] == "False"


def _passes(passed: set[int], tasks: int = HE) -> dict[str, float]:
    return {f"T/{i}": float(i in passed) for i in range(tasks)}


def test_summary_gives_the_pooled_difference_to_the_baseline(report_dir: Path) -> None:
    rows = summary_by_key(report_dir)
    fgit = rows[("humaneval", "fgit")]
    assert fgit["baseline"] == "sft"
    # the same comparison, computed here from the fixture's passes, seed by seed
    expected = stats.pooled_difference(
        {s: _passes(SCORES[f"fgit{r}"]["humaneval"][0]) for s, r in enumerate(REPLICAS)},
        {s: _passes(SCORES[f"sft{r}"]["humaneval"][0]) for s, r in enumerate(REPLICAS)})
    assert expected.estimate == pytest.approx(0.4) and expected.n_seeds == 3
    assert expected.seed_spread == pytest.approx(math.sqrt(0.07))
    assert float(fgit["delta_vs_baseline"]) == pytest.approx(0.4)
    assert float(fgit["delta_low"]) == pytest.approx(expected.low, abs=1e-4)
    assert float(fgit["delta_high"]) == pytest.approx(expected.high, abs=1e-4)
    assert float(fgit["p_value"]) == pytest.approx(expected.p_value, abs=1e-4)
    assert float(fgit["p_value"]) <= float(fgit["p_holm"])  # Holm only raises a p-value
    assert fgit["significant"] == str(float(fgit["p_holm"]) < 0.05)
    assert fgit["exceeds_seed_spread"] == "True"  # 0.4 > 0.265
    # every replica row repeats its family's pooled numbers
    replica = rows[("humaneval", "fgit@seed=2")]
    assert replica["baseline"] == "sft@seed=2"
    assert replica["delta_vs_baseline"] == fgit["delta_vs_baseline"]
    # plus tests, one seed: +0.1, 2 tasks up and 1 down: the exact sign test's p is 1
    assert float(fgit["delta_plus_vs_baseline"]) == pytest.approx(0.1)
    assert float(fgit["p_plus"]) == 1.0 and fgit["significant_plus"] == "False"
    sweep = rows[("humaneval", "fgit~lambda=3.0")]  # one seed scored: no seed spread
    assert (sweep["baseline"], sweep["significant"], sweep["exceeds_seed_spread"]) == (
        "sft", "False", "")
    assert rows[("mbpp", "fgit")]["delta_vs_baseline"] == ""  # sft has no mbpp score
    base = rows[("humaneval", "base")]
    assert (base["baseline"], base["delta_vs_baseline"], base["significant"]) == ("", "", "")


def test_summary_carries_budget_parameters_sweeps_pairs_and_the_probe(report_dir: Path) -> None:
    rows = summary_by_key(report_dir)
    fgit, swept, base = (rows[("humaneval", e)] for e in ("fgit", "fgit~lambda=3.0", "base"))
    assert [fgit[k] for k in ("train_tasks", "train_examples", "train_steps", "train_tokens")] == [
        "8", "96", "24", "5000"]
    assert swept["train_steps"] == "12" and base["train_steps"] == ""
    assert rows[("humaneval", NO_BUDGET)]["train_steps"] == ""
    assert (fgit["method"], fgit["lambda"], fgit["granularity"], fgit["seed"]) == (
        "fgit", "2.0", "hybrid", "0")
    assert (swept["sweep_of"], swept["swept_param"], swept["lambda"]) == ("fgit", "lambda", "3.0")
    replica = rows[("humaneval", "fgit@seed=1")]
    assert (replica["replica_of"], replica["seed"], replica["sweep_of"]) == ("fgit", "1", "")
    assert fgit["alpha"] == "" and base["lambda"] == "" and base["bugs"] == ""
    assert base["seed"] == ""  # base is not trained: no training seed
    # fgit trains on the teacher pairs: 3 pairs, 3 rejected rows; base trains on nothing
    assert (fgit["bugs"], fgit["n_pairs"], fgit["n_rejected"]) == ("teacher", "3", "3")
    assert (base["n_pairs"], base["n_rejected"]) == ("", "")
    # the probe's headline with its interval; the summed statistic disagrees (secondary)
    assert float(fgit["sens_prefer_correct"]) == pytest.approx(0.9)
    assert float(fgit["sens_prefer_correct_low"]) <= 0.9 <= float(fgit["sens_prefer_correct_high"])
    assert float(fgit["sens_mean_margin"]) == pytest.approx(0.4)
    assert float(fgit["sens_prefer_correct_sum"]) == pytest.approx(0.1)
    assert float(fgit["sens_mean_margin_sum"]) == pytest.approx(-0.4)
    assert float(fgit["sens_nll"]) == pytest.approx(0.8 + 0.045)  # 0.8 + 0.01 * mean(0..9)
    assert float(fgit["sens_nll_low"]) < 0.845 < float(fgit["sens_nll_high"])
    assert swept["sens_prefer_correct"] == ""


def test_experiment_columns_come_from_the_resolved_experiments(settings: ReportSettings) -> None:
    cct = summary.experiment_columns("cct", settings.experiments["cct"])
    assert (cct["alpha"], cct["beta"], cct["seed"], cct["bugs"], cct["baseline"]) == (
        2.0, 0.5, 0, "cct", "sft")
    replica = summary.experiment_columns("cct@seed=2", settings.experiments["cct@seed=2"])
    assert (replica["seed"], replica["replica_of"], replica["baseline"]) == (2, "cct", "sft@seed=2")
    assert summary.experiment_columns("gone", None) == {"experiment": "gone", "method": "unknown"}


# --------------------------------------------------------------------------------------------
# report.md: against the baseline, seeds, budget, probe, timings


def comparison_rows(text: str) -> dict[tuple[str, str, str], dict[str, str]]:
    """(experiment, baseline, measure) -> the cells of the comparisons table, by header."""
    lines = section(text, "Against the baseline").splitlines()
    header = next(line for line in lines if line.startswith("| experiment | baseline | measure"))
    names = [c.strip() for c in header.split("|")[1:-1]]
    rows = {}
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(names, (c.strip() for c in line.split("|")[1:-1])))
        rows[(cells["experiment"], cells["baseline"], cells["measure"])] = cells
    return rows


def test_report_compares_every_experiment_family_with_its_baseline_pooled(text: str) -> None:
    part = section(text, "Against the baseline")
    assert "pooled over its training seeds" in part and "Holm-adjusted" in part
    rows = comparison_rows(text)
    fgit = rows[("fgit", "sft", "pass@1 humaneval")]
    assert fgit["Δ pooled [95 % CI]"].startswith("+0.400 [")
    assert (fgit["seeds × tasks"], fgit["seed sd of Δ"]) == ("3 × 10", "0.265")
    plus = rows[("fgit", "sft", "pass@1 humaneval_plus")]
    assert plus["Δ pooled [95 % CI]"].startswith("+0.100 [")
    assert (plus["p"], plus["significant (Holm)"], plus["seeds × tasks"], plus["seed sd of Δ"]) == (
        "1.0000", "no", "1 × 10", "-")
    assert rows[("fgit", "sft", "pass@1 mbpp")]["note"] == "baseline not evaluated (sft)"
    # sft against the untrained base, which is the baseline of every seed: 0.1, 0.4, 0.1
    assert rows[("sft", "base", "pass@1 humaneval")]["Δ pooled [95 % CI]"].startswith("+0.200 [")
    assert not any(e == "base" or "@seed=" in e for e, _, _ in rows)  # families only
    tested = [r for r in rows.values() if r["p (Holm)"]]
    assert f"{len(tested)} comparisons in the Holm family." in part
    for r in tested:
        holm, raw = (1e-5 if r[k].startswith("<") else float(r[k]) for k in ("p (Holm)", "p"))
        assert holm >= raw and (r["significant (Holm)"] == "**yes**") == (holm < 0.05)


def test_report_compares_the_probe_with_the_baseline_per_part(text: str) -> None:
    rows = comparison_rows(text)
    # twins p4..p9: fgit seed 0 prefers the correct program on 5 of 6, sft on none
    twins = rows[("fgit", "sft", "probe twins: prefer_correct")]
    assert twins["Δ pooled [95 % CI]"].startswith("+0.833 [") and twins["seeds × tasks"] == "1 × 6"
    # sft's other seeds are not probed: fgit's are left out, and the note says so
    assert twins["note"] == "seeds without a baseline value left out: sft@seed=1, sft@seed=2"
    fix = rows[("fgit", "sft", "probe humanevalfix: mean_margin")]  # 4 of 4 vs 3 of 4
    assert fix["Δ pooled [95 % CI]"].startswith("+0.250 [") and fix["seeds × tasks"] == "1 × 4"
    nll = rows[("fgit", "sft", "probe twins: nll")]  # 0.8 vs 1.0 on every task: lower is better
    assert nll["Δ pooled [95 % CI]"].startswith("-0.200")
    # base prefers p0..p4 (twins: p4, 1 of 6), sft p0..p2 (twins: none)
    assert rows[("sft", "base", "probe twins: prefer_correct")]["Δ pooled [95 % CI]"].startswith(
        "-0.167 [")


def test_report_gives_mean_and_sd_over_seeds(text: str) -> None:
    part = section(text, "Spread over training seeds")
    assert "| fgit | 3 | humaneval | 0.700 ± 0.100 |" in part
    assert "| sft | 3 | humaneval | 0.300 ± 0.173 |" in part
    assert "| fgit~lambda=3.0 |" not in part  # one seed scored: no spread
    # the probe's headline over fgit's seeds: 0.9, 0.7, 0.8 and margins 0.4, 0.2, 0.3
    assert "| fgit | 3 | prefer_correct | 0.800 ± 0.100 |" in part
    assert "| fgit | 3 | mean_margin | 0.300 ± 0.100 |" in part
    assert "| fgit | 3 | nll | 0.845 ± 0.100 |" in part  # 0.8, 0.7, 0.9 + 0.045


def test_seed_spreads_are_mean_and_sample_sd(settings: ReportSettings) -> None:
    values = {("sft", "he"): 0.2, ("sft@seed=1", "he"): 0.5, ("sft@seed=2", "he"): 0.2,
              ("cct", "he"): 0.4}
    spreads = comparisons.seed_spreads(settings.experiments, values)
    assert list(spreads) == [("sft", "he")]  # cct: one seed
    assert spreads[("sft", "he")].mean == pytest.approx(0.3)
    assert spreads[("sft", "he")].std == pytest.approx(math.sqrt(0.03))


def test_report_lists_every_budget_names_each_difference_and_warns_below_twenty_steps(
    text: str,
) -> None:
    part = section(text, "Training budget")
    assert "| fgit | fgit | sft | 8 | 96 | 24 | 5000 | 8 | 2 | 4 | 1 | 3 | yes | loss tokens 1.04x " \
           "(5000 vs 4800) |" in part
    assert "| cct | cct | sft | 8 | 288 | 24 | 9000 | 8 | 2 | 4 | 1 | 0 | yes | examples 3.00x " \
           "(288 vs 96); loss tokens 1.88x (9000 vs 4800) |" in part
    assert "| fgit~lambda=3.0 | fgit | sft | 8 | 48 | 12 | 2500 | 8 | 2 | 4 | 1 | 0 | **no** | " \
           "examples 0.50x (48 vs 96); optimiser steps 0.50x (12 vs 24); loss tokens 0.52x " \
           "(2500 vs 4800) |" in part
    assert "| sft | sft | base | 8 | 96 | 24 | 4800 | 8 | 2 | 4 | 1 | 0 | - | baseline base is " \
           "untrained |" in part
    assert f"| {NO_BUDGET} | sft | base | no budget.json |" in part
    warnings = [line for line in part.splitlines() if "**Warning:**" in line]
    expected = ("- **Warning:** `fgit~lambda=3.0` trains for 12 optimiser steps, under 20: it "
                "hardly trains, so its differences say little.")
    assert warnings == [expected]


def test_report_shows_the_probe_headline_with_intervals_per_part_and_bug_type(text: str) -> None:
    part = section(text, "Fault sensitivity")
    # fgit: 9 of 10 pairs; HumanEvalFix pairs p0..p3 all prefer the correct program
    assert "| fgit | overall | 10 | 0.900 [" in part
    assert "| fgit | humanevalfix | 4 | 1.000 [1.000, 1.000] | 0.500 [0.500, 0.500] | 0.815 [" in part
    assert "| 0 | -0.5 | 1 |" in part.split("| fgit | humanevalfix |")[1].splitlines()[0]
    assert "| fgit | twins | 6 | 0.833 [" in part
    # sft: p0, p1, p2 positive: missing logic (p0, p2) 1.0, operator misuse (p1, p3) 0.5
    header = next(line for line in part.splitlines() if line.startswith("| bug type |"))
    columns = [c.strip() for c in header.split("|")[1:-1]]
    row = next(line for line in part.splitlines() if line.startswith("| operator misuse |"))
    cells = dict(zip(columns, (c.strip() for c in row.split("|")[1:-1])))
    assert cells["sft"] == "0.500 [0.000, 1.000]" and cells["fgit"] == "1.000 [1.000, 1.000]"


def test_report_and_timings_csv_show_where_the_time_goes(report_dir: Path, text: str) -> None:
    rows = read_csv(report_dir / "timings.csv")
    assert [(r["rule"], r["jobs"], r["seconds"], r["slowest_job"], r["max_rss_mb"])
            for r in rows] == [("train", "2", "300.0", "fgit", "900.0"),
                               ("score", "1", "30.0", "base/humaneval", "300.0"),
                               ("prepare_train", "1", "6.0", "", "100.0")]
    part = section(text, "Where the time goes")
    assert "| train | 2 | 5.0 | fgit | 3.0 | 900 |" in part
    assert "| **all jobs** | 4 | 5.6 |" in part
    assert "`generate/broken.tsv`" in part  # unreadable, left out, not fatal


# --------------------------------------------------------------------------------------------
# report.md: the rest


def test_report_names_every_experiment_and_marks_missing_results(text: str) -> None:
    part = section(text, "Experiments")
    for name in ("base", "sft", "fgit", "cct", "fgit~lambda=3.0", "cct@seed=2",
                 "fgit~lambda=3.0@seed=1"):
        assert f"| {name} |" in part
    assert "| sft | sft |  | 0 | base | yes |" in part  # sft trains on the table: no bugs source
    assert "| cct@seed=1 | cct | bugs=cct, alpha=2.0, beta=0.5, margin=1.0 | 1 | sft@seed=1 | " \
           "none yet |" in part


def test_report_puts_the_papers_numbers_beside_ours_labelled(text: str) -> None:
    # columns: HE-split (demo), HE, HE+, MBPP, MBPP+; ours in percent, one row per experiment:
    # fgit's humaneval is the mean ± sd of its three seeds (80, 60, 70), the rest one seed
    ours = "| **ours** (run `t`) | tiny-random |"
    assert f"{ours} fgit (mean ± sd of 3 seeds) |  | 70.0 ± 10.0 | 30.0 | 50.0 |  |" in text
    assert f"{ours} fgit~lambda=3.0 |  | 30.0 |  |  |  |" in text
    assert "fgit@seed=1 |  |" not in text
    assert (
        "| paper: FGit (arXiv 2503.16913), docs/methods.md §2.7 (FGit Table I) | MagiCoder-CL | FGit |"
        "  | 73.2 | 68.9 | 71.7 | 59.5 |"
    ) in text
    assert "| Qwen2.5-Coder-7B (base) | Target-RPO |  | 89.6 | 84.8 | 83.3 | 69.6 |" in text
    assert "| Qwen2.5-Coder-7B-Instruct | Focused-DPO |  | 92.7 | 87.8 | 84.7 | 76.2 |" in text
    assert "the papers **published**" in text


def test_report_counts_pairs_rejections_and_codeflow_iterations(text: str) -> None:
    assert "| codeflow | 1 | 1 |" in text and "| teacher | 3 | 3 |" in text
    assert "| teacher | identical after extraction | 2 |" in text
    assert "| codeflow | never passed | 1 |" in text
    # t1 passes at iteration 1, t2 never: 0 %, 50 %, 50 %
    for iteration, rate in ((0, "0.0 %"), (1, "50.0 %"), (2, "50.0 %")):
        assert f"| t | {iteration} | {rate} |" in text
    assert "**36.7 %**" in text and "**67.5 %**" in text


# --------------------------------------------------------------------------------------------
# plots, masks.html, manifest.json


def test_every_plot_is_a_real_png_with_data(report_dir: Path) -> None:
    from PIL import Image

    made = json.loads((report_dir / "plots" / "made.json").read_text())
    assert made == {kind: True for kind in report.PLOT_FILES}
    for rel in report.PLOT_FILES.values():
        with Image.open(report_dir / rel) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100


def test_probe_bars_carry_the_interval(report_dir: Path, run_dir: dict[str, list[str]]) -> None:
    probes = readers.read_sensitivity(run_dir["sensitivity"])
    bars = plots.probe_bars(probes, "prefer_correct")
    value, low, high = bars[("fgit", "overall")]
    overall = probes["fgit"]["overall"]
    assert (value, low, high) == (overall["prefer_correct"], overall["prefer_correct_low"],
                                  overall["prefer_correct_high"])
    assert bars[("sft", "missing logic")][0] == 1.0


def test_sweep_points_average_the_seeds_and_include_the_base_value(
    settings: ReportSettings, report_dir: Path
) -> None:
    rows = [
        {**r, **{k: float(r[k]) for k in ("pass_at_1_base", "pass_at_1_plus") if r[k]}}
        for r in read_csv(report_dir / "summary.csv")
    ]
    points = plots.sweep_points(rows, settings.experiments)
    assert list(points) == [("fgit", "lambda")]
    series = points[("fgit", "lambda")]
    assert series["humaneval"] == [(2.0, pytest.approx(0.7)), (3.0, 0.3)]  # fgit: 0.8, 0.6, 0.7
    assert series["humaneval+"] == [(2.0, 0.3)] and series["mbpp"] == [(2.0, 0.5)]


def test_masks_html_shades_the_weighted_tokens(report_dir: Path) -> None:
    html = (report_dir / "masks.html").read_text()
    assert "1 examples, kind fgit" in html
    assert '<span class="ft-m2">1</span>' in html and '<span class="ft-m2">2</span>' in html
    assert '<span class="ft-m1">def</span>' in html


def test_manifest_hashes_every_input_and_the_templates(
    config: dict[str, Any], report_dir: Path, run_dir: dict[str, list[str]]
) -> None:
    manifest = json.loads((report_dir / "manifest.json").read_text())
    files = [p for paths in run_dir.values() for p in paths if Path(p).is_file()]
    files += [str(Path(p).with_name(Path(p).stem + ".rejected.parquet")) for p in run_dir["pairs"]]
    assert set(manifest["inputs"]) == set(files)
    assert not any(p.endswith(f"{NO_BUDGET}/budget.json") for p in manifest["inputs"])
    for path in files:
        assert manifest["inputs"][path] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert manifest["template_hash"] == template_hash()
    assert manifest["config_digest"] == config_digest(config)
    seeds = manifest["seeds"]
    assert seeds["global"] == 7 and seeds["experiments"]["cct"] == 0
    assert seeds["experiments"]["cct@seed=2"] == 2
    assert seeds["experiments"]["fgit~lambda=3.0@seed=1"] == 1
    assert manifest["models"]["student"]["id"] == "tiny-random"
    assert manifest["packages"]["pyarrow"] and "snakemake" in manifest["packages"]
    assert set(manifest["git"]) == {"commit", "dirty", "error"}


def test_manifest_hashes_a_local_model_config(config: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"a": 1}')
    manifest = build_manifest({**config, "student": {"model": str(tmp_path)}}, [])
    assert manifest["models"]["student"]["config_sha256"] == hashlib.sha256(b'{"a": 1}').hexdigest()
    assert manifest["models"]["teacher"]["id"] == "tiny-random"  # filled by validate_config
    assert manifest["seeds"]["experiments"]["sft@seed=1"] == 1  # expanded when not given


# --------------------------------------------------------------------------------------------
# degrading gracefully, bad input, the papers' data


def test_an_empty_run_still_writes_every_declared_output(
    settings: ReportSettings, tmp_path: Path
) -> None:
    report.write_report(settings, str(tmp_path / "report"), scores=[])
    out = tmp_path / "report"
    for rel in report.ALWAYS_WRITTEN:
        assert (out / rel).is_file(), rel
    assert read_csv(out / "summary.csv") == [] and read_csv(out / "timings.csv") == []
    assert json.loads((out / "plots" / "made.json").read_text()) == {
        k: False for k in report.PLOT_FILES
    }
    text = (out / "report.md").read_text()
    assert "No score files in this run." in text and "| fgit~lambda=3.0 |" in text
    assert "No benchmark files in this run yet." in text
    assert "One training seed per experiment" in text
    assert "No trained models in this run." in text
    assert "No masks files" in (out / "masks.html").read_text()


def test_the_rule_declares_every_file_the_report_writes() -> None:
    rule = (Path(__file__).parents[1] / "workflow" / "rules" / "report.smk").read_text()
    for rel in report.ALWAYS_WRITTEN:
        assert f'f"{{R}}/report/{rel}"' in rule, rel


def test_items_measured_on_different_tasks_are_not_compared(settings: ReportSettings) -> None:
    score = readers.Score
    a = score("fgit", "humaneval", 1.0, 2, 2, {"T/0": 1.0, "T/1": 1.0})
    b = score("sft", "humaneval", 0.0, 2, 2, {"T/0": 0.0, "T/9": 0.0})
    pooled = comparisons.pooled_comparisons(settings.experiments, [a, b], {})
    (row,) = [p for p in pooled if p.experiment == "fgit"]
    assert row.comparison is None and row.note.startswith("not compared: ")
    assert "T/1" in row.note and "T/9" in row.note and row.p_holm is None


def test_a_probe_without_per_pair_rows_is_not_compared(settings: ReportSettings) -> None:
    probes = {e: {"overall": {"prefer_correct": 0.5}} for e in ("fgit", "sft")}
    assert comparisons.pooled_comparisons(settings.experiments, [], probes) == []


def test_a_measure_at_its_floor_is_labelled(settings: ReportSettings) -> None:
    zero = {"T/0": 0.0, "T/1": 0.0}
    scores = [readers.Score(e, "humaneval", 0.0, 2, 2, zero) for e in ("fgit", "sft")]
    (row,) = [p for p in comparisons.pooled_comparisons(settings.experiments, scores, {})
              if p.experiment == "fgit"]
    assert row.note == "at floor: 0 on every task, both sides"
    assert row.comparison is not None and row.comparison.estimate == 0.0
    assert row.comparison.p_value == 1.0 and row.significant is False


def test_a_budget_without_a_key_names_the_file(tmp_path: Path) -> None:
    bad = write_json(tmp_path / "models" / "sft" / "budget.json", {"train_tasks": 3})
    with pytest.raises(DataError, match=r"budget\.json: missing or non-integer \['train_examples'"):
        readers.read_budgets([bad])


def test_a_score_file_without_pass_at_1_names_the_file(
    settings: ReportSettings, tmp_path: Path
) -> None:
    bad = tmp_path / "eval" / "base" / "humaneval.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"n_samples": 1, "results": []}))
    with pytest.raises(DataError, match=r"humaneval\.json: missing 'pass_at_1'"):
        report.write_report(settings, str(tmp_path / "report"), scores=[str(bad)])


def test_rejected_rows_without_a_reason_column_are_an_error(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs_mutation.parquet"
    write_parquet([{"id": "a"}], pairs)
    write_parquet([{"id": "b"}], tmp_path / "pairs_mutation.rejected.parquet")
    with pytest.raises(DataError, match="without a 'reason' column"):
        readers.count_pairs([str(pairs)])


def test_pairs_without_a_rejected_file_count_none(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs_cct.parquet"
    write_parquet([{"id": "a"}, {"id": "b"}], pairs)
    count = readers.count_pairs([str(pairs)])["cct"]
    assert (count.n_pairs, count.n_rejected) == (2, None)


def test_papers_data_holds_each_papers_headline_numbers() -> None:
    papers = readers.load_papers()
    index = {
        (p["paper"].split(" (")[0], p["model"], p["variant"], p["benchmark"]): p["pass_at_1"]
        for p in papers
    }
    assert index[("FGit", "SemCoder-S", "FGit", "humaneval")] == 83.5
    assert index[("FGit", "CodeLlama-7B-Instruct (Evol-Instruct data)", "FGit", "mbpp_plus")] == 51.3
    key = ("IterPref / Target-DPO", "DS-Coder-7B-Ins-v1.5", "Target-RPO", "bigcodebench-hard-complete")
    assert index[key] == 20.9
    assert index[("Focused-DPO", "Magicoder-S-DS-6.7B", "original", "mbpp")] == 76.7
    assert len(index) == len(papers)  # no duplicate rows
    assert all(
        0 < p["pass_at_1"] < 100 and p["source_section"].startswith("docs/methods.md §") for p in papers
    )


def test_empty_trajectories_give_no_curve_and_bad_ones_name_the_file(tmp_path: Path) -> None:
    empty, bad = tmp_path / "a" / "codeflow" / "trajectories.parquet", tmp_path / "b.parquet"
    write_parquet([], empty)
    write_parquet([{"task_id": "t", "iteration": 0}], bad)
    assert readers.codeflow_curves([str(empty)]) == {"a": []}
    with pytest.raises(DataError, match=r"b\.parquet: missing column\(s\) \['passed'\]"):
        readers.codeflow_curves([str(bad)])


def test_report_shows_the_spread_over_seeds_per_benchmark(text: str) -> None:
    part = section(text, "Spread over training seeds")
    assert "| experiment | seeds | benchmark | pass@1 mean ± sd |" in part
    assert "| fgit | 3 | humaneval | 0.700 ± 0.100 |" in part  # seeds score 0.8, 0.6, 0.7
    assert "| experiment | seeds | probe statistic | mean ± sd |" in part
    assert "| fgit | 3 | prefer_correct | 0.800 ± 0.100 |" in part
