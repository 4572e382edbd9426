"""The workflow as users drive it: config errors before any job, sweeps as file targets that
rerun only new jobs, one ablation built alone, BigCodeBench through its rule.

Each test runs Snakemake in a copy of the workflow files, so results of different tests never mix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, job_stats, snakemake

pytestmark = pytest.mark.minutes(7)

SMOKE = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())


def run_snakemake(workdir: Path, config: dict, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    (workdir / "test-config.yaml").write_text(yaml.safe_dump(config))
    return snakemake(workdir, "--configfile", "test-config.yaml", "--cores", "2", *args,
                     timeout=timeout, check=False)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    assert result.returncode == 0, result.stdout + result.stderr
    return job_stats(result.stdout)


SCRIPTS = sorted((REPO / "workflow" / "scripts").glob("*.py"))


def threads_asked() -> dict[str, int]:
    """Rule name -> the `threads:` it asks for, from the rule files."""
    asked, rule = {}, None
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for line in path.read_text().splitlines():
            if match := re.match(r"rule (\w+):", line):
                rule = match.group(1)
            elif rule and (match := re.match(r"\s+threads: (\d+)", line)):
                asked[rule] = int(match.group(1))
    return asked


def test_the_cpu_profile_runs_every_job_on_one_core():
    """On two cores a job that asks for two waits until both model jobs have ended, and the
    trainings behind it then run last, one at a time (the demo's traces job did, before)."""
    threaded = {rule for rule, n in threads_asked().items() if n > 1}
    assert {"train", "traces", "score"} <= threaded
    profile = yaml.safe_load((REPO / "profiles" / "cpu" / "config.yaml").read_text())
    assert sorted(r for r in threaded if profile["set-threads"].get(r) != 1) == []


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_a_spawned_worker_that_imports_a_script_does_not_run_its_rule(script):
    """multiprocessing's spawned workers import the parent's main file again (as __mp_main__): a
    script that ran its rule on import would run it again in each worker (the score rule, building
    the expected outputs on a cold cache, did so recursively until a worker died)."""
    import runpy

    runpy.run_path(str(script), run_name="__mp_main__")  # no `snakemake` here: NameError if run


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"experiments": {"x": {"method": "magic"}}}, "experiments.x.method: 'magic' is not one of"),
        ({"train": {"lr": -1.0}}, "config key train.lr"),
        ({"student": {"model": "not-a-model"}}, "config key student.model: unknown model"),
    ],
)
def test_a_bad_config_fails_before_any_job_runs(workdir, change, message):
    config = {**SMOKE, **change}
    result = run_snakemake(workdir, config, "-n", "all")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_adding_a_sweep_value_plans_only_its_jobs(workdir):
    config = {**SMOKE, "sweeps": {"fgit": {"lambda": [3.0]}}}
    before = planned_jobs(run_snakemake(workdir, config, "-n", "all"))
    config["sweeps"]["fgit"]["lambda"] = [3.0, 1.5]
    after = planned_jobs(run_snakemake(workdir, config, "-n", "all"))
    # one more experiment: its training, generation, score and probe, and the report again
    assert after["train"] == before["train"] + 1
    assert after["generate"] == before["generate"] + 1
    assert after["score"] == before["score"] + 1
    assert after["masks"] == before["masks"]  # lambda does not change the training examples


# ---------------------------------------------------------------------------------------------
# one smoke run shared by the tests below: an ablation target alone, then `all`

ABLATION = "results/smoke/eval/fgit~granularity=line/humaneval-split-heldout.json"
ALL_CONFIG = {**SMOKE, "experiments": {"base": {"method": "base"}, "fgit": SMOKE["experiments"]["fgit"]},
              "sweeps": {"fgit": {"granularity": ["line"]}}, "sensitivity": {"limit": 2, "batch_size": 2}}


@dataclass(frozen=True)
class SmokeRun:
    root: Path  # the workflow copy after `all`: read it, or copy it to change it
    ablation_scores: dict  # what the ablation target alone left behind
    ablation_models: tuple[str, ...]
    ablation_masks: tuple[str, ...]
    all_run: subprocess.CompletedProcess  # `all` after it


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """One ablation target built alone in a fresh copy, then `all` of ALL_CONFIG in the same copy
    (the ablation's jobs have the same settings there, so `all` reuses them)."""
    root = copy_workflow(tmp_path_factory.mktemp("smoke"))
    result = run_snakemake(root, SMOKE, ABLATION)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((root / ABLATION).read_text())
    models = tuple(sorted(p.name for p in (root / "results/smoke/models").iterdir()))
    masks = tuple(sorted(p.name for p in (root / "results/smoke/masks").glob("*.parquet")))
    return SmokeRun(root, scores, models, masks, run_snakemake(root, ALL_CONFIG, "all"))


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and ".snakemake/log" not in str(p)}


@pytest.fixture
def finished(smoke_run: SmokeRun) -> Iterator[Path]:
    """The shared smoke run's folder after `all`, for a test that only reads it: checked unchanged
    after."""
    assert smoke_run.all_run.returncode == 0, smoke_run.all_run.stderr[-3000:]
    before = tree_state(smoke_run.root)
    yield smoke_run.root
    assert tree_state(smoke_run.root) == before, "a test changed the shared smoke run"


def test_one_ablation_target_builds_alone(smoke_run):
    assert smoke_run.ablation_scores["n_samples"] == SMOKE["data"]["benchmark_limit"]
    assert smoke_run.ablation_models == ("fgit~granularity=line",)  # nothing else was trained
    assert "fgit-line_mutation.parquet" in smoke_run.ablation_masks


def test_all_then_the_html_report_names_every_experiment(finished, tmp_path):
    # the config file of the run (ALL_CONFIG); the report goes outside the shared folder
    snakemake(finished, "--configfile", "test-config.yaml", "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text()
    for name in ("base", "fgit", "fgit~granularity=line"):
        assert name in html
    for plot in ("pass_at_1.png", "sweeps.png", "training.png", "sensitivity.png"):
        assert plot in html
    summary = (finished / "results/smoke/report/summary.csv").read_text().splitlines()
    assert {line.split(",")[0] for line in summary[1:]} == {"base", "fgit", "fgit~granularity=line"}


def test_after_a_run_only_the_new_sweep_value_reruns(finished, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(finished, workdir, symlinks=True)  # the copy keeps the files' times
    config = {**ALL_CONFIG, "sweeps": {"fgit": {**ALL_CONFIG["sweeps"]["fgit"], "lambda": [3.0]}}}
    plan = planned_jobs(run_snakemake(workdir, config, "-n", "all"))
    # fgit~lambda=3.0 alone: trained, generated, scored and probed; the report again
    assert plan == {"train": 1, "generate": 1, "score": 1, "sensitivity": 1, "report": 1, "all": 1,
                    "total": 6}


BCB_TASKS = [
    {"task_id": "BigCodeBench/0", "entry_point": "task_func", "libs": "[]",
     "complete_prompt": 'def task_func(a, b):\n    """Return the sum of a and b."""\n',
     "instruct_prompt": "Write a function task_func(a, b) that returns the sum of a and b.",
     "code_prompt": "def task_func(a, b):\n", "canonical_solution": "    return a + b\n",
     "test": "import unittest\nclass TestCases(unittest.TestCase):\n"
             "    def test_add(self):\n        self.assertEqual(task_func(2, 3), 5)\n"},
]


FAKE_OFFICIAL = """#!/usr/bin/env python3
# stands in for bigcodebench.evaluate (its own environment, not installed here): every sample passes
import json, sys
samples = sys.argv[sys.argv.index("--samples") + 1]
rows = [json.loads(line) for line in open(samples) if line.strip()]
results = {}
for row in rows:
    results.setdefault(row["task_id"], []).append({**row, "status": "pass", "details": {}})
out = samples[: -len(".jsonl")] + "_eval_results.json"
json.dump({"date": "", "eval": results, "argv": sys.argv[1:]}, open(out, "w"))
"""


def test_bigcodebench_goes_through_generate_and_the_official_scorer(workdir, monkeypatch):
    source = workdir / "bcb.jsonl"
    source.write_text("".join(json.dumps(t) + "\n" for t in BCB_TASKS))
    fake = workdir / "bin" / "bigcodebench.evaluate"
    fake.parent.mkdir()
    fake.write_text(FAKE_OFFICIAL)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    config = {**SMOKE, "experiments": {"base": {"method": "base"}}, "sweeps": {},
              "sensitivity": {"enabled": False}}
    config["data"] = {**SMOKE["data"], "benchmarks": ["bigcodebench-hard-instruct"],
                      "bigcodebench": {"source": str(source)}}
    target = "results/smoke/eval/base/bigcodebench-hard-instruct.json"
    result = run_snakemake(workdir, config, target)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((workdir / target).read_text())
    assert scores["scorer"] == "bigcodebench.evaluate --execution local"
    assert scores["results"] == [{"task_id": "BigCodeBench/0", "status": "pass", "detail": ""}]
    official = next((workdir / "results").rglob("*_eval_results.json"))
    argv = json.loads(official.read_text())["argv"]
    assert argv[:2] == ["--execution", "local"] and "--selective_evaluate" in argv


def test_a_config_asking_for_the_removed_sandbox_scorer_is_refused(workdir):
    config = {**SMOKE, "data": {**SMOKE["data"], "bigcodebench": {"scorer": "sandbox"}}}
    result = run_snakemake(workdir, config, "-n", "all")
    assert result.returncode != 0
    assert "scorer" in result.stdout + result.stderr and not (workdir / "results").exists()


@pytest.mark.slow
def test_with_a_benchmark_folder_every_benchmark_gets_a_summary_row(workdir, data_dir):
    config = {**SMOKE, "experiments": {"base": {"method": "base"}}, "sweeps": {},
              "sensitivity": {"limit": 2, "batch_size": 2}}
    config["data"] = {**SMOKE["data"], "data_dir": str(data_dir), "benchmark_limit": 2,
                      "optional_benchmarks": ["mbpp", "mbpp_plus"]}
    result = run_snakemake(workdir, config, "results/smoke/report/summary.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (workdir / "results/smoke/report/summary.csv").read_text().splitlines()
    benchmarks = {line.split(",")[4] for line in rows[1:]}
    # mbpp and mbpp_plus share a row (base and plus columns)
    assert benchmarks == {"humaneval-split-heldout", "mbpp"}
    header = rows[0].split(",")
    mbpp = dict(zip(header, next(r.split(",") for r in rows[1:] if r.split(",")[4] == "mbpp")))
    assert mbpp["pass_at_1_plus"] != "" and mbpp["n_tasks_base"] == "2"


def test_the_demo_split_is_never_scored_on_its_own_training_tasks(workdir, data_dir):
    config = {**SMOKE, "data": {**SMOKE["data"], "data_dir": str(data_dir),
                                "optional_benchmarks": ["humaneval_plus"]}}
    result = run_snakemake(workdir, config, "-n", "all")
    assert result.returncode != 0
    assert ("humaneval-split trains on HumanEval tasks: it cannot be scored on humaneval_plus"
            in result.stdout + result.stderr)
    assert not (workdir / "results").exists()
