"""The report: summary.csv, report.md beside the papers' numbers, plots, masks.html, manifest.json.

A fake run folder is written by hand (scores, sensitivity, pairs + rejected, trajectories, train
logs, masks) and every expected value below is worked out from those files.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from faulttune import report
from faulttune.config import config_digest, validate_config
from faulttune.generate.prompts import template_hash
from faulttune.io import DataError, write_jsonl, write_parquet, write_rejected
from faulttune.manifest import build_manifest

CONFIG = {
    "run": "t",
    "seed": 7,
    "student": {"model": "tiny-random"},
    "data": {"train": {"source": "humaneval-split"}, "benchmarks": ["humaneval-split-heldout"]},
    "experiments": {
        "base": {"method": "base"},
        "sft": {"method": "sft"},
        "fgit": {"method": "fgit"},
        "cct": {"method": "cct", "seed": 3},
    },
    "sweeps": {"fgit": {"lambda": [3.0]}},
}

# experiment -> benchmark -> (passed, tasks)
SCORES = {
    "base": {"humaneval-split-heldout": (1, 4), "humaneval": (2, 4), "humaneval_plus": (1, 4)},
    "fgit": {"humaneval": (3, 4), "humaneval_plus": (2, 4), "mbpp": (1, 2)},
    "fgit~lambda=3.0": {"humaneval": (4, 4), "humaneval_plus": (3, 4)},
}
SENSITIVITY = {
    "n_pairs": 3,
    "overall": {
        "n": 3,
        "prefer_correct_sum": 2 / 3,
        "prefer_correct_mean": 1 / 3,
        "mean_margin_sum": 0.5,
        "mean_margin_mean": 0.01,
    },
    "humanevalfix": {
        "n": 2,
        "prefer_correct_sum": 0.5,
        "prefer_correct_mean": 0.5,
        "mean_margin_sum": 0.25,
        "mean_margin_mean": 0.005,
    },
    "twins": None,
    "by_bug_type": {
        "operator misuse": {
            "n": 1,
            "prefer_correct_sum": 1.0,
            "prefer_correct_mean": 1.0,
            "mean_margin_sum": 1.0,
            "mean_margin_mean": 0.02,
        },
        "missing logic": {
            "n": 1,
            "prefer_correct_sum": 0.0,
            "prefer_correct_mean": 0.0,
            "mean_margin_sum": -0.5,
            "mean_margin_mean": -0.01,
        },
    },
}
# task_id, iteration, passed: t1 passes at its first fix, t2 never passes.
TRAJECTORIES = [
    ("t1", 0, False),
    ("t1", 1, True),
    ("t2", 0, False),
    ("t2", 1, False),
    ("t2", 2, False),
]
VOCAB = ["[UNK]", "def", "f", "return", "1", "2", "user", "assistant"]


def score_json(benchmark: str, passed: int, tasks: int) -> dict[str, Any]:
    results = [
        {"task_id": f"T/{i}", "status": "pass" if i < passed else "fail", "detail": ""}
        for i in range(tasks)
    ]
    return {
        "benchmark": benchmark,
        "pass_at_1": passed / tasks,
        "pass_at_k": {},
        "n_samples": tasks,  # no "n_tasks": the report counts the task ids
        "results": results,
    }


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
        "id": "p0",
        "task_id": "T/0",
        "kind": "fgit",
        "chosen_ids": [6, 1, 2, 3, 4],
        "chosen_start": 1,
        "chosen_mask": [0, 1, 1, 1, 2],
        "rejected_ids": [6, 1, 2, 3, 5],
        "rejected_start": 1,
        "rejected_mask": [0, 0, 0, 0, 2],
        "first_diff": 4,
    }
    write_masks([row], path, tokenizer_dir)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return validate_config(json.loads(json.dumps(CONFIG)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("run") / "results" / "t"
    inputs: dict[str, list[str]] = {
        k: [] for k in ("scores", "sensitivity", "pairs", "trajectories", "train_logs", "masks")
    }
    for exp, benches in SCORES.items():
        for bench, (passed, tasks) in benches.items():
            path = root / "eval" / exp / f"{bench}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(score_json(bench, passed, tasks)))
            inputs["scores"].append(str(path))
    probe = root / "eval" / "fgit" / "bug_sensitivity.json"
    probe.write_text(json.dumps(SENSITIVITY))
    inputs["sensitivity"].append(str(probe))

    teacher = root / "bugs" / "pairs_teacher.parquet"
    write_parquet([{"id": f"p{i}", "task_id": f"T/{i}"} for i in range(3)], teacher)
    write_rejected(
        [
            {"id": "r0", "reason": "identical after extraction"},
            {"id": "r1", "reason": "identical after extraction"},
            {"id": "r2", "reason": "does not parse"},
        ],
        teacher,
        stage="teacher",
    )
    codeflow_pairs = root / "codeflow" / "pairs.parquet"
    write_parquet([{"id": "c0", "task_id": "t1"}], codeflow_pairs)
    write_rejected([{"task_id": "t2", "reason": "never passed"}], codeflow_pairs, stage="codeflow")
    inputs["pairs"] += [str(teacher), str(codeflow_pairs)]

    trajectories = root / "codeflow" / "trajectories.parquet"
    write_parquet(
        [{"task_id": t, "iteration": i, "passed": p, "code": ""} for t, i, p in TRAJECTORIES],
        trajectories,
    )
    inputs["trajectories"].append(str(trajectories))

    for exp, weight in (("fgit", 1.5), ("fgit~lambda=3.0", 2.5)):
        log = root / "models" / exp / "train_log.jsonl"
        write_jsonl(
            [
                {"step": s, "epoch": s / 3, "loss": 2.0 / s, "fgit_weight": weight, "note": "x"}
                for s in (1, 2, 3)
            ],
            log,
        )
        inputs["train_logs"].append(str(log))

    masks = root / "masks" / "fgit_teacher.parquet"
    write_masks_file(masks, write_tokenizer(root.parent / "tok"))
    inputs["masks"].append(str(masks))
    return inputs


@pytest.fixture(scope="module")
def report_dir(
    config: dict[str, Any], run_dir: dict[str, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = Path(run_dir["scores"][0]).parents[2] / "report"
    report.write_report(config, str(out), **run_dir)
    return out


def read_summary(folder: Path) -> list[dict[str, str]]:
    with open(folder / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------
# summary.csv


def test_summary_has_one_row_per_experiment_and_family_in_order(report_dir: Path) -> None:
    rows = read_summary(report_dir)
    assert list(rows[0]) == list(report.SUMMARY_COLUMNS)
    assert [(r["benchmark"], r["experiment"]) for r in rows] == [
        ("humaneval", "base"),
        ("humaneval", "fgit"),
        ("humaneval", "fgit~lambda=3.0"),
        ("humaneval-split-heldout", "base"),
        ("mbpp", "fgit"),
    ]


def test_summary_merges_base_and_plus_and_flags_the_demo_split(report_dir: Path) -> None:
    rows = {(r["benchmark"], r["experiment"]): r for r in read_summary(report_dir)}
    fgit = rows[("humaneval", "fgit")]
    assert (fgit["pass_at_1_base"], fgit["pass_at_1_plus"]) == ("0.75", "0.5")
    assert (fgit["n_tasks_base"], fgit["n_tasks_plus"], fgit["n_samples"]) == ("4", "4", "4")
    assert rows[("mbpp", "fgit")]["pass_at_1_plus"] == ""  # no mbpp_plus score
    assert rows[("humaneval-split-heldout", "base")]["demo_split"] == "True"
    assert rows[("humaneval", "base")]["demo_split"] == "False"


def test_summary_carries_parameters_sweeps_pairs_and_sensitivity(report_dir: Path) -> None:
    rows = {(r["benchmark"], r["experiment"]): r for r in read_summary(report_dir)}
    fgit, swept, base = (
        rows[("humaneval", "fgit")],
        rows[("humaneval", "fgit~lambda=3.0")],
        rows[("humaneval", "base")],
    )
    assert (fgit["method"], fgit["lambda"], fgit["granularity"], fgit["seed"]) == (
        "fgit",
        "2.0",
        "hybrid",
        "",
    )
    assert (swept["sweep_of"], swept["swept_param"], swept["lambda"]) == ("fgit", "lambda", "3.0")
    assert fgit["alpha"] == "" and base["lambda"] == "" and base["bugs"] == ""
    # fgit trains on the teacher pairs: 3 pairs, 3 rejected rows; base trains on nothing
    assert (fgit["bugs"], fgit["n_pairs"], fgit["n_rejected"]) == ("teacher", "3", "3")
    assert (base["n_pairs"], base["n_rejected"]) == ("", "")
    assert float(rows[("mbpp", "fgit")]["sens_prefer_correct_sum"]) == pytest.approx(2 / 3)
    assert fgit["sens_mean_margin_sum"] == "0.5" and swept["sens_mean_margin_sum"] == ""


def test_summary_keeps_an_experiment_seed(config: dict[str, Any]) -> None:
    row = report.experiment_columns("cct", report.expand_experiments(config)["cct"])
    assert (row["alpha"], row["beta"], row["seed"], row["bugs"]) == (2.0, 0.5, 3, "cct")


# --------------------------------------------------------------------------------------------
# report.md


def test_report_names_every_experiment_and_marks_missing_results(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text()
    for name in ("base", "sft", "fgit", "cct", "fgit~lambda=3.0"):
        assert f"| {name} |" in text
    assert "| sft | sft |  | none yet |" in text  # sft trains on the training table: no bugs source


def test_report_puts_the_papers_numbers_beside_ours_labelled(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text()
    # columns: HE-split (demo), HE, HE+, MBPP, MBPP+; ours in percent
    assert "| **ours** (run `t`) | tiny-random | fgit |  | 75.0 | 50.0 | 50.0 |  |" in text
    assert (
        "| paper: FGit (arXiv 2503.16913), METHODS.md §2.7 (FGit Table I) | MagiCoder-CL | FGit |"
        "  | 73.2 | 68.9 | 71.7 | 59.5 |"
    ) in text
    assert "| Qwen2.5-Coder-7B (base) | Target-RPO |  | 89.6 | 84.8 | 83.3 | 69.6 |" in text
    assert "| Qwen2.5-Coder-7B-Instruct | Focused-DPO |  | 92.7 | 87.8 | 84.7 | 76.2 |" in text
    assert "the papers **published**" in text


def test_report_counts_pairs_rejections_and_codeflow_iterations(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text()
    assert "| codeflow | 1 | 1 |" in text and "| teacher | 3 | 3 |" in text
    assert "| teacher | identical after extraction | 2 |" in text
    assert "| codeflow | never passed | 1 |" in text
    # t1 passes at iteration 1, t2 never: 0 %, 50 %, 50 %
    for iteration, rate in ((0, "0.0 %"), (1, "50.0 %"), (2, "50.0 %")):
        assert f"| t | {iteration} | {rate} |" in text
    assert "**36.7 %**" in text and "**67.5 %**" in text


def test_report_shows_sensitivity_per_part_and_bug_type(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text()
    assert "| fgit | humanevalfix | 2 | 0.5 | 0.5 | 0.25 | 0.005 |" in text
    assert "| fgit | twins |" not in text  # null part left out
    assert "| missing logic | 0 |" in text and "| operator misuse | 1 |" in text


# --------------------------------------------------------------------------------------------
# plots, masks.html, manifest.json


def test_every_plot_is_a_real_png_with_data(report_dir: Path) -> None:
    from PIL import Image

    made = json.loads((report_dir / "plots" / "made.json").read_text())
    assert made == {kind: True for kind in report.PLOT_FILES}
    for rel in report.PLOT_FILES.values():
        with Image.open(report_dir / rel) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100


def test_sweep_points_include_the_base_value(config: dict[str, Any], report_dir: Path) -> None:
    rows = [
        {**r, **{k: float(r[k]) for k in ("pass_at_1_base", "pass_at_1_plus") if r[k]}}
        for r in read_summary(report_dir)
    ]
    points = report.sweep_points(rows, report.expand_experiments(config))
    assert points == {
        ("fgit", "lambda"): {
            "humaneval": [(2.0, 0.75), (3.0, 1.0)],
            "humaneval+": [(2.0, 0.5), (3.0, 0.75)],
            "mbpp": [(2.0, 0.5)],
        }
    }


def test_masks_html_shades_the_weighted_tokens(report_dir: Path) -> None:
    text = (report_dir / "masks.html").read_text()
    assert "1 examples, kind fgit" in text
    assert '<span class="ft-m2">1</span>' in text and '<span class="ft-m2">2</span>' in text
    assert '<span class="ft-m1">def</span>' in text


def test_manifest_hashes_every_input_and_the_templates(
    config: dict[str, Any], report_dir: Path, run_dir: dict[str, list[str]]
) -> None:
    manifest = json.loads((report_dir / "manifest.json").read_text())
    files = [p for paths in run_dir.values() for p in paths]
    files += [str(Path(p).with_name(Path(p).stem + ".rejected.parquet")) for p in run_dir["pairs"]]
    assert set(manifest["inputs"]) == set(files)
    for path in files:
        assert manifest["inputs"][path] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert manifest["template_hash"] == template_hash()
    assert manifest["config_digest"] == config_digest(config)
    assert manifest["seeds"]["global"] == 7 and manifest["seeds"]["experiments"]["cct"] == 3
    assert manifest["seeds"]["experiments"]["fgit~lambda=3.0"] == 7
    assert manifest["models"]["student"]["id"] == "tiny-random"
    assert manifest["packages"]["pyarrow"] and "snakemake" in manifest["packages"]
    assert set(manifest["git"]) == {"commit", "dirty", "error"}


def test_manifest_hashes_a_local_model_config(config: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"a": 1}')
    manifest = build_manifest({**config, "student": {"model": str(tmp_path)}}, [])
    assert manifest["models"]["student"]["config_sha256"] == hashlib.sha256(b'{"a": 1}').hexdigest()
    assert manifest["models"]["teacher"]["id"] == "tiny-random"  # filled by validate_config


# --------------------------------------------------------------------------------------------
# degrading gracefully, bad input, the papers' data


def test_an_empty_run_still_writes_every_declared_output(
    config: dict[str, Any], tmp_path: Path
) -> None:
    report.write_report(config, str(tmp_path), scores=[])
    for rel in report.ALWAYS_WRITTEN:
        assert (tmp_path / rel).is_file(), rel
    assert read_summary(tmp_path) == []
    assert json.loads((tmp_path / "plots" / "made.json").read_text()) == {
        k: False for k in report.PLOT_FILES
    }
    text = (tmp_path / "report.md").read_text()
    assert "No score files in this run." in text and "| fgit~lambda=3.0 |" in text
    assert "No masks files" in (tmp_path / "masks.html").read_text()


def test_a_score_file_without_pass_at_1_names_the_file(
    config: dict[str, Any], tmp_path: Path
) -> None:
    bad = tmp_path / "eval" / "base" / "humaneval.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"n_samples": 1, "results": []}))
    with pytest.raises(DataError, match=r"humaneval\.json: missing 'pass_at_1'"):
        report.write_report(config, str(tmp_path / "report"), scores=[str(bad)])


def test_rejected_rows_without_a_reason_column_are_an_error(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs_mutation.parquet"
    write_parquet([{"id": "a"}], pairs)
    write_parquet([{"id": "b"}], tmp_path / "pairs_mutation.rejected.parquet")
    with pytest.raises(DataError, match="without a 'reason' column"):
        report.count_pairs([str(pairs)])


def test_pairs_without_a_rejected_file_count_none(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs_cct.parquet"
    write_parquet([{"id": "a"}, {"id": "b"}], pairs)
    count = report.count_pairs([str(pairs)])["cct"]
    assert (count.n_pairs, count.n_rejected) == (2, None)


def test_papers_data_holds_each_papers_headline_numbers() -> None:
    papers = report.load_papers()
    index = {
        (p["paper"].split(" (")[0], p["model"], p["variant"], p["benchmark"]): p["pass_at_1"]
        for p in papers
    }
    assert index[("FGit", "SemCoder-S", "FGit", "humaneval")] == 83.5
    assert (
        index[("FGit", "CodeLlama-7B-Instruct (Evol-Instruct data)", "FGit", "mbpp_plus")] == 51.3
    )
    assert (
        index[
            (
                "IterPref / Target-DPO",
                "DS-Coder-7B-Ins-v1.5",
                "Target-RPO",
                "bigcodebench-hard-complete",
            )
        ]
        == 20.9
    )
    assert index[("Focused-DPO", "Magicoder-S-DS-6.7B", "original", "mbpp")] == 76.7
    assert len(index) == len(papers)  # no duplicate rows
    assert all(
        0 < p["pass_at_1"] < 100 and p["source_section"].startswith("METHODS.md §") for p in papers
    )


def test_empty_trajectories_give_no_curve_and_bad_ones_name_the_file(tmp_path: Path) -> None:
    empty, bad = tmp_path / "a" / "codeflow" / "trajectories.parquet", tmp_path / "b.parquet"
    write_parquet([], empty)
    write_parquet([{"task_id": "t", "iteration": 0}], bad)
    assert report.codeflow_curves([str(empty)]) == {"a": []}
    with pytest.raises(DataError, match=r"b\.parquet: missing column\(s\) \['passed'\]"):
        report.codeflow_curves([str(bad)])
