"""config/newer.yaml (TIS-DPO and the trace mask on the demo data, beside DPO, Target-DPO and FGit)
through the whole DAG with the tiny model: the contrastive models TIS-DPO requires train first,
the pairs are traced in the sandbox, every experiment gets its report row."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from conftest import REPO, snakemake

from faulttune.io import read_parquet
from faulttune.mask_table import examples_kind, read_masks
from faulttune.tracing import STATUSES

pytestmark = pytest.mark.minutes(4.5)

TINY = {"student": {"model": "tiny-random", "precision": "fp32"},
        "teacher": {"backend": "hf", "model": "tiny-random", "max_new_tokens": 24},
        "generation": {"backend": "hf", "max_new_tokens": 24, "batch_size": 4},
        "train": {"lr": 1.0e-3, "max_steps": 2, "micro_batch_size": 2, "grad_accum": 2,
                  "max_length": 768, "precision": "fp32"},
        "sensitivity": {"enabled": False}}


def test_the_plan_trains_the_contrastive_models_first_and_evaluates_the_rest():
    from faulttune.config import load_config
    from faulttune.dag import Plan

    plan = Plan(load_config(REPO / "config" / "newer.yaml"), environ={})
    assert plan.budget_mismatches() == []
    assert plan.required_models("tis") == ["tis.negative", "tis.positive"]
    assert plan.mask_inputs("tis.positive") == [("pairs_correct", "mutation")]
    assert {"tis.negative", "tis.positive"} <= set(plan.trained) - set(plan.evaluated)
    # trained ahead of the other trainings (the train rule's priority)
    assert [n for n in plan.trained if plan.required_by_others(n)] == ["tis.negative", "tis.positive"]
    assert plan.experiments["iterpref-trace"].baseline == "iterpref"
    assert plan.masks_reads("target_dpo-trace") == (False, True)  # traced: reads the traces


@pytest.mark.slow
def test_newer_config_runs_to_the_report_with_the_tiny_model(workdir):
    config = {**yaml.safe_load((REPO / "config" / "newer.yaml").read_text()), **TINY}
    config["data"] = {**config["data"], "train": {"source": "humaneval-split", "limit": 6},
                      "optional_benchmarks": [], "benchmark_limit": 4}
    (workdir / "newer-tiny.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, "--configfile", "newer-tiny.yaml", "--cores", "2", "all", timeout=2400)
    run = workdir / "results" / "newer"
    for role in ("positive", "negative"):  # trained before tis, from one side of the pairs
        budget = json.loads((run / "models" / f"tis.{role}" / "budget.json").read_text())
        assert budget["method"] == "pair_sft" and budget["train_steps"] == 2
    assert "tis_dpo token weights" in (run / "logs" / "train" / "tis.log").read_text()
    traces = read_parquet(run / "traces" / "mutation.parquet")
    assert traces and {t["status"] for t in traces} <= set(STATUSES)
    for kind in ("target_dpo-trace", "fgit-trace"):
        table, _ = read_masks(run / "masks" / f"{kind}_mutation.parquet")
        assert examples_kind(table) == kind and table.num_rows > 0
    assert "target_dpo-trace_mutation.parquet" in (run / "report" / "masks.html").read_text()
    with (run / "report" / "summary.csv").open() as f:
        rows = {r["experiment"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"base", "sft", "dpo", "iterpref", "iterpref-trace", "tis", "fgit-mut",
                         "fgit-mut~granularity=trace"}
    assert (rows["tis"]["baseline"], rows["iterpref-trace"]["baseline"]) == ("dpo", "iterpref")
    assert rows["tis"]["train_steps"] == rows["dpo"]["train_steps"] == rows["iterpref"]["train_steps"]
