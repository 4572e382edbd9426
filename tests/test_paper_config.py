"""config/paper.yaml, the papers' setups at scale: `snakemake -n all --configfile config/paper.yaml`
plans it, with the job count of every rule following from its experiments and benchmarks.

The dry run runs in a copy of the workflow files (it writes .snakemake/ there, never results/)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from faulttune.config import expand_experiments, load_config
from faulttune.data.bench_table import PROMPT_SET

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper.yaml"
# method -> masks kind it trains on (CCT also trains on sft_train, see workflow/rules/common.smk)
MASK_KIND = {"sft": "sft", "cct": "cct", "dpo": "dpo", "rpo": "dpo", "target_dpo": "target_dpo",
             "target_rpo": "target_dpo", "focused_dpo": "focused_dpo"}


def expected_masks(experiments: dict, default_rejected: str) -> set[str]:
    """The masks files the trained experiments need: {kind}_{pairs source}."""
    files = set()
    for exp in experiments.values():
        method = exp["method"]
        if method == "base":
            continue
        source = exp.get("bugs", "teacher")
        if source == "codeflow" and exp.get("rejected", default_rejected) != default_rejected:
            source = f"codeflow-{exp['rejected']}"
        kind = f"fgit-{exp.get('granularity', 'hybrid')}" if method == "fgit" else MASK_KIND[method]
        files.add("sft_train" if kind == "sft" else f"{kind}_{source}")
        if method == "cct":
            files.add("sft_train")
    return files


@pytest.fixture(scope="module")
def planned() -> dict[str, int]:
    """rule -> count from the 'Job stats' table of the paper config's dry run."""
    with tempfile.TemporaryDirectory(prefix="paper-dag-") as tmp:
        for name in ("Snakefile", "workflow", "config", "profiles", "envs"):
            src = REPO / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, Path(tmp) / name)
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "all", "--configfile", "config/paper.yaml"],
            cwd=tmp, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
            timeout=300, check=False,
        )
        assert not (Path(tmp) / "results").exists()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config(PAPER)


def test_the_paper_config_has_its_35_experiments(paper):
    experiments = expand_experiments(paper)
    assert len(experiments) == 35  # 12 declared + 23 sweep values (guard against silent changes)
    assert [n for n, e in experiments.items() if e["method"] == "base"] == ["base"]


def test_every_experiment_is_trained_generated_scored_and_probed(planned, paper):
    experiments = expand_experiments(paper)
    benchmarks = paper["data"]["benchmarks"]
    prompt_sets = {PROMPT_SET[b] for b in benchmarks}
    assert planned["train"] == len(experiments) - 1  # base is not trained
    assert planned["generate"] == len(experiments) * len(prompt_sets)
    assert planned["score"] == len(experiments) * len(benchmarks)
    assert planned["sensitivity"] == (len(experiments) if paper["sensitivity"]["enabled"] else 0)
    assert planned["prepare_benchmark"] == len(prompt_sets)


def test_the_shared_stages_run_once(planned, paper):
    for rule in ("teacher_variants", "select_pairs", "codeflow", "prepare_train",
                 "prepare_codeflow_train", "report", "all"):
        assert planned[rule] == 1, rule
    experiments = expand_experiments(paper)
    default = paper["codeflow"]["rejected"]
    other_rules = {e["rejected"] for e in experiments.values() if e.get("rejected", default) != default}
    assert planned["codeflow_pairs"] == len(other_rules) == 2  # first, last
    mutated = {e["bugs"] for e in experiments.values() if e.get("bugs") in ("mutation", "cct")}
    assert planned["mutate"] == len(mutated) == 2


def test_the_masks_are_planned_once_per_kind_and_source(planned, paper):
    masks = expected_masks(expand_experiments(paper), paper["codeflow"]["rejected"])
    assert planned["masks"] == len(masks)
    assert {"sft_train", "cct_cct", "fgit-line_teacher", "target_dpo_codeflow-last"} <= masks
