"""The papers' setups at scale (config/paper.yaml: FGit and IterPref; config/paper-cct.yaml: CCT):
`snakemake -n all` plans them with the job count of every rule following from the experiments;
no decontaminated training table overlaps an evaluated benchmark; every method meets its baseline at the same
data and budget.

Dry runs run in a copy of the workflow files (they write .snakemake/ there, never results/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, job_stats, snakemake

from faulttune.config import load_config
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


def test_the_teachers_stages_are_planned_as_shard_jobs_and_gathered(paper):
    """paper.yaml splits the teacher's variants, the task synthesis and CodeFlow into one job per
    shard, each gathered by one local job into the files one job would write."""
    plan, planned = paper
    for stage in ("teacher_variants", "synthesize_tasks", "codeflow"):
        shards = plan.shards_of(stage)
        if not planned.get(stage):
            continue  # paper-cct.yaml runs neither
        assert planned[stage] == shards, stage
        assert planned.get(f"gather_{stage}", 0) == (shards > 1), stage
    if plan.config["run"] == "paper":
        assert planned["synthesize_tasks"] == 32 and planned["codeflow"] == 32


def test_iterprefs_experiments_plan_enough_optimiser_steps(tmp_path):
    """Before any GPU is used: every experiment of the DPO family trains on the synthesized
    CodeFlow pairs of 110k Evol-Instruct instructions, at most one pair per task, and even at
    IterPref's reported yields well over the trainer's threshold. MBPP's train split (the old
    setting, 374 tasks) gave at most 6 steps: flagged."""
    import math

    from faulttune.plan import PAIR_YIELD, few_step_warning, plan_training
    from faulttune.training import MIN_STEPS

    plan = Plan(load_config(REPO / "config/paper.yaml"), environ={})
    runs = {r.experiment: r for r in plan_training(plan, tmp_path)}
    family = [r for r in runs.values() if r.source.startswith("codeflow")]
    assert {r.experiment for r in family} >= {"dpo", "rpo", "iterpref", "iterpref-rpo", "focused-dpo"}
    expected = round(110_000 * PAIR_YIELD)
    for run in family:
        assert (run.units.value, run.units.exact, run.expected_units) == (110_000, False, expected)
        assert run.steps(run.units.value) == 2 * math.ceil(110_000 / 128) == 1720
        assert run.planned_steps == 2 * math.ceil(expected / 128) >= MIN_STEPS
    assert few_step_warning(list(runs.values())) is None

    config = load_config(REPO / "config/paper.yaml")
    config["data"]["codeflow_train"] = {"source": "mbpp-train"}
    config["codeflow"]["tasks"] = "table"
    old = plan_training(Plan(config, environ={}), tmp_path)
    iterpref = next(r for r in old if r.experiment == "iterpref")
    assert (iterpref.units.value, iterpref.steps(374)) == (374, 6)
    assert "iterpref (2 steps)" in few_step_warning(old)


def test_the_plan_counts_the_runs_own_files_once_they_exist(tmp_path):
    """Once CodeFlow's pairs exist, the plan counts them (exact), and flags a run they leave
    under the threshold."""
    from faulttune import io
    from faulttune.plan import format_plan, plan_training

    plan = Plan(load_config(REPO / "config/paper.yaml"), environ={})
    pairs = tmp_path / "codeflow" / "pairs.parquet"
    io.write_parquet([{"task_id": f"t/{i}"} for i in range(300)], pairs)
    iterpref = next(r for r in plan_training(plan, tmp_path) if r.experiment == "iterpref")
    assert (iterpref.units.value, iterpref.units.exact, iterpref.planned_steps) == (300, True, 6)
    assert iterpref.few_steps
    table = format_plan([iterpref])
    assert "iterpref" in table and "FEWER THAN 20 STEPS" in table and str(pairs) in table
    pairs.write_bytes(b"")  # a placeholder or a file being written: the plan falls back
    iterpref = next(r for r in plan_training(plan, tmp_path) if r.experiment == "iterpref")
    assert (iterpref.units.value, iterpref.units.exact) == (None, False)


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


def bigcodebench_copy_of(row: dict, path: Path) -> str:
    """A BigCodeBench-format file with one task whose reference program is ``row``'s solution."""
    from faulttune.bigcodebench import write_tasks_jsonl

    test = "import unittest\n\nclass TestCases(unittest.TestCase):\n    def test(self):\n        pass\n"
    task = {"task_id": "BigCodeBench/900", "complete_prompt": "import math\n",
            "instruct_prompt": "Write the function.", "canonical_solution": row["solution"],
            "code_prompt": "import math\n", "test": test, "entry_point": "task_func", "libs": "[]"}
    return str(write_tasks_jsonl([task], path))


@pytest.mark.parametrize(("config_file", "section"), [("config/paper.yaml", "codeflow_train"),
                                                      ("config/config.yaml", "train")])
def test_decontaminated_training_tables_share_nothing_with_any_evaluated_benchmark(
        data_dir, tmp_path, config_file, section):
    """After decontamination the training table has no content overlap, by the contamination
    check's own measure, and no task in common with EVERY benchmark the config evaluates, each
    loaded as it is scored (BigCodeBench from a local file in its format, standing in for the hub:
    one of its tasks is a copy of an MBPP training task, which only it can catch)."""
    from faulttune.contamination import contamination_report, same_task_ids
    from faulttune.data.sources import load_training_rows
    from faulttune.io import read_parquet, rejected_path
    from faulttune.stages.data import load_benchmark_tasks, prepare_train

    config = load_config(REPO / config_file)
    if section == "codeflow_train":  # paper.yaml's IterPref instructions come from the hub:
        config["data"]["codeflow_train"] = {"source": "mbpp-train"}  # its MBPP alternative
        config["codeflow"]["tasks"] = "table"
    plan = Plan(config, environ={"FAULTTUNE_DATA_DIR": str(data_dir)})
    settings = plan.train_table(section)
    rows, _ = load_training_rows(settings.source, settings.seed, settings.data_dir)
    if any(b.startswith("bigcodebench-") for b in plan.benchmarks):
        copied = next(r for r in rows if r["task_id"] == "mbpp/609")  # not an MBPP+ task
        config["data"]["bigcodebench"]["source"] = bigcodebench_copy_of(copied, tmp_path / "bcb.jsonl")
        plan = Plan(config, environ={"FAULTTUNE_DATA_DIR": str(data_dir)})
        settings = plan.train_table(section)
    out = tmp_path / f"{section}.parquet"
    prepare_train(settings, str(out))
    kept, dropped = read_parquet(out), read_parquet(rejected_path(out))
    assert len(kept) + len(dropped) == len(rows) and kept

    evaluated = load_benchmark_tasks([plan.benchmark_source(b) for b in plan.benchmarks])
    report = contamination_report(kept, evaluated)["benchmarks"]
    assert sorted(report) == sorted(plan.benchmarks)
    assert {name: part["n_rows_flagged"] for name, part in report.items()} == dict.fromkeys(report, 0)
    assert same_task_ids(kept, evaluated) == {}
    if config_file == "config/paper.yaml":
        reasons = {r["task_id"]: r["reason"] for r in dropped}
        assert reasons["mbpp/609"].startswith("contamination: bigcodebench-full BigCodeBench/900 ")
        # MBPP's train split (ids 601-974) holds 108 of MBPP+'s tasks: dropped by their ids
        assert sum(r.startswith("same task as mbpp Mbpp/") for r in reasons.values()) == 108


def test_faulttune_plan_exits_1_when_an_experiment_would_hardly_train(tmp_path, capsys):
    from faulttune.cli import main

    assert main(["plan", "--configfile", str(REPO / "config/paper.yaml"),
                 "--results", str(tmp_path)]) == 0
    assert "iterpref" in capsys.readouterr().out
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    config["data"]["codeflow_train"] = {"source": "mbpp-train"}
    config["codeflow"]["tasks"] = "table"
    (tmp_path / "mbpp.yaml").write_text(yaml.safe_dump(config))
    assert main(["plan", "--configfile", str(tmp_path / "mbpp.yaml"),
                 "--results", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FEWER THAN 20 STEPS" in out and "would train fewer than 20 optimiser steps" in out
