"""The papers' setups at scale (config/paper.yaml: FGit and IterPref; config/paper-cct.yaml: CCT):
`snakemake -n all` plans them with the job count of every rule following from the experiments;
no training source overlaps an evaluated benchmark; every method meets its baseline at the same
data and budget.

Dry runs run in a copy of the workflow files (they write .snakemake/ there, never results/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, copy_workflow, job_stats, snakemake

from faulttune.config import load_config
from faulttune.contamination import task_key
from faulttune.data.bench_table import PROMPT_SET
from faulttune.settings import Plan

PAPER_CONFIGS = ("config/paper.yaml", "config/paper-cct.yaml")


def dry_run_job_counts(config: str, tmp_path: Path) -> dict[str, int]:
    """rule -> count from the 'Job stats' table of a config's dry run."""
    done = snakemake(copy_workflow(tmp_path), "-n", "--configfile", config, "--", "all",
                     timeout=300, data_dir=False)
    assert not (tmp_path / "results").exists()
    return job_stats(done.stdout)


@pytest.fixture(scope="module", params=PAPER_CONFIGS)
def paper(request, tmp_path_factory) -> tuple[Plan, dict[str, int]]:
    plan = Plan(load_config(REPO / request.param), environ={})
    return plan, dry_run_job_counts(request.param, tmp_path_factory.mktemp("paper-dag"))


def test_every_experiment_is_trained_generated_scored_and_probed(paper):
    plan, planned = paper
    experiments = plan.experiments
    prompt_sets = {PROMPT_SET[b] for b in plan.benchmarks}
    assert planned["train"] == len(plan.trained) == len(experiments) - 1  # base is not trained
    assert planned["generate"] == len(experiments) * len(prompt_sets)
    assert planned["score"] == len(experiments) * len(plan.benchmarks)
    assert planned["sensitivity"] == len(experiments)
    assert planned["prepare_benchmark"] == len(prompt_sets)
    seeds = plan.config["seeds"]
    replicas = [e for e in experiments.values() if e.replica_of]
    assert len(replicas) == (len(seeds) - 1) * len(plan.trained) // len(seeds)


def test_the_masks_and_pairs_are_planned_once_per_kind_and_source(paper):
    plan, planned = paper
    masks = {m for name in plan.trained for m in plan.mask_inputs(name)}
    assert planned["masks"] == len(masks)
    sources = {source for _, source in masks} - {"train"}
    assert planned.get("mutate", 0) == len(sources & {"mutation", "cct"})
    assert planned.get("codeflow_pairs", 0) == len({s for s in sources if s.startswith("codeflow-")})
    for rule in ("prepare_train", "report", "all"):
        assert planned[rule] == 1, rule


def test_each_method_meets_its_baseline_at_the_same_data_and_budget(paper):
    plan, _ = paper
    assert plan.budget_mismatches() == []
    for name in plan.trained:
        exp = plan.experiments[name]
        assert exp.baseline is not None, f"{name} has nothing to be compared with"
        base = plan.experiments[exp.baseline]
        if base.trained:  # a DPO-family run is compared with the untrained student
            assert exp.seed == base.seed, name


def test_the_paper_settings_are_each_papers_own():
    fgit = Plan(load_config(REPO / "config/paper.yaml"), environ={})
    for name in ("sft", "fgit", "fgit-mut", "dpo-teacher"):  # FGit §2.4
        train = fgit.train(name)
        assert (train.lr, train.epochs, train.max_length) == (5.0e-6, 1, 1024), name
    for name in ("dpo", "rpo", "iterpref", "iterpref-rpo", "focused-dpo"):  # IterPref §3.4
        train = fgit.train(name)
        assert (train.lr, train.epochs, train.max_length, train.global_batch) == (1e-5, 2, 2048, 128)
    cct = Plan(load_config(REPO / "config/paper-cct.yaml"), environ={})
    for name in ("it", "cct"):  # CCT §1.4, from a base model
        train = cct.train(name)
        assert (train.lr, train.epochs, train.max_length, train.model) == (
            2e-5, 3, 2048, "Qwen/Qwen2.5-Coder-7B")


def test_codeflow_tasks_of_the_paper_config_do_not_overlap_any_benchmark(data_dir, tmp_path):
    """MBPP's train split (ids 601-974) holds 108 of the 378 MBPP+ tasks that mbpp and mbpp_plus
    score; the planned codeflow_train table must hold none of them."""
    from faulttune.io import read_parquet, rejected_path
    from faulttune.stages.data import load_benchmark_tasks, prepare_train

    plan = Plan(load_config(REPO / "config/paper.yaml"), environ={"FAULTTUNE_DATA_DIR": str(data_dir)})
    settings = plan.train_table("codeflow_train")
    assert {s.name for s in settings.decontaminate} >= {"mbpp", "humaneval", "humanevalfix"}
    out = tmp_path / "codeflow_train.parquet"
    prepare_train(settings, str(out), stage="prepare_codeflow_train")
    kept, dropped = read_parquet(out), read_parquet(rejected_path(out))
    benchmark_tasks = {task_key(t.task_id) for tasks in load_benchmark_tasks(settings.decontaminate).values()
                       for t in tasks}
    assert not {task_key(r["task_id"]) for r in kept} & benchmark_tasks
    same_task = [r for r in dropped if r["reason"].startswith("same task as mbpp Mbpp/")]
    assert len(same_task) == 108
    assert len(kept) + len(dropped) == 374  # MBPP's train split: ids 601-974
