"""IterPref's whole chain through Snakemake on the smoke setup, the teacher a scripted
OpenAI-compatible server (tests/fake_teacher.py) and the student the tiny random model:
synthesized tasks with unittest files, CodeFlow debugged by the teacher, pairs judged by the
teacher, Target-DPO trained on them; the synthesis and CodeFlow in two shards each, one of which
is killed and resumes alone; the gathered files equal an unsharded run's byte for byte.

One DAG run (the fixture) serves the module: killed, then completed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, job_stats, snakemake
from fake_teacher import FakeTeacher, humaneval_scripts, serve

from faulttune import io

pytestmark = [pytest.mark.slow, pytest.mark.minutes(3.5)]

SMOKE = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
RUN = "results/smoke"
CODEFLOW_FILES = ("codeflow/tasks.parquet", "codeflow/tasks.rejected.parquet",
                  "codeflow/trajectories.parquet", "codeflow/pairs.parquet",
                  "codeflow/pairs.rejected.parquet")


def chain_config(base_url: str, shards: dict[str, int]) -> dict:
    return {**SMOKE, "shards": shards,
            "teacher": {"backend": "openai", "model": "fake-teacher", "base_url": base_url,
                        "max_new_tokens": 512},
            "codeflow": {"tasks": "synthesize", "start": "solution", "debugger": "teacher",
                         "judge": True, "max_iters": 2},
            "experiments": {"base": {"method": "base"},
                            "iterpref": {"method": "target_dpo", "bugs": "codeflow",
                                         "max_steps": 2}},
            "sweeps": {}, "sensitivity": {"enabled": False}}


def run(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess[str]:
    (workdir / "chain.yaml").write_text(yaml.safe_dump(config))
    return snakemake(workdir, *args, "--cores", "2", "--configfile", "chain.yaml", timeout=1500,
                     check=False)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Sharded run killed in CodeFlow's second shard (the teacher refuses its second-round fix
    of the hanging task), a dry run of what remains, then the completed run; and an unsharded
    run of the synthesis and CodeFlow."""
    from faulttune.data.sources import load_training_rows

    rows, _ = load_training_rows({"source": "humaneval-split", "limit": 6}, 0, None)
    hanging = f"def {rows[4]['entry_point']}("
    teacher = FakeTeacher(humaneval_scripts(rows))
    seen = {"fixes": 0}

    def second_fix_of_the_hanging_task(prompt: str) -> bool:
        if hanging in prompt and "Running its tests gave this output" in prompt:
            seen["fixes"] += 1
            return seen["fixes"] == 2
        return False

    workdir = copy_workflow(tmp_path_factory.mktemp("chain"))
    whole = copy_workflow(tmp_path_factory.mktemp("chain-unsharded"))
    with serve(teacher) as served:
        config = chain_config(served.base_url, {"synthesize_tasks": 2, "codeflow": 2})
        teacher.fail_when = second_fix_of_the_hanging_task
        killed = run(workdir, config, "all", "--keep-going")
        first_requests = list(served.requests)
        shard_one = workdir / RUN / "codeflow/.shards/trajectories/1-of-2.parquet"
        shard_one_mtime = shard_one.stat().st_mtime_ns if shard_one.exists() else None
        teacher.fail_when = None
        remaining = run(workdir, config, "all", "-n")
        done = run(workdir, config, "all")
        second_requests = served.requests[len(first_requests):]
        unsharded = run(whole, chain_config(served.base_url, {"default": 1}),
                        *(f"{RUN}/{f}" for f in CODEFLOW_FILES if "rejected" not in f))
    return {"rows": rows, "workdir": workdir, "whole": whole, "killed": killed,
            "remaining": remaining, "done": done, "unsharded": unsharded,
            "first_requests": first_requests, "second_requests": second_requests,
            "shard_one_mtime": shard_one_mtime, "shard_one": shard_one}


def test_a_killed_shard_resumes_alone(chain) -> None:
    assert chain["killed"].returncode != 0
    assert "Error in rule codeflow" in chain["killed"].stdout + chain["killed"].stderr
    planned = job_stats(chain["remaining"].stdout)
    assert planned["codeflow"] == 1 and "synthesize_tasks" not in planned
    assert "codeflow/.shards/trajectories/2-of-2.parquet" in chain["remaining"].stdout
    assert chain["done"].returncode == 0, chain["done"].stdout[-3000:] + chain["done"].stderr[-3000:]
    assert chain["shard_one"].stat().st_mtime_ns == chain["shard_one_mtime"]  # never rerun
    hanging = f"def {chain['rows'][4]['entry_point']}("
    asked = chain["second_requests"]
    # the resumed shard asks only its last round (the hanging task's second fix), then its judge
    assert [("fix" if "Running its tests" in p else "judge") for p in asked] == ["fix", "judge"]
    assert hanging in asked[0]
    log = (chain["workdir"] / RUN / "logs/codeflow/2-of-2.log").read_text()
    assert "resuming" in log


def test_the_teacher_synthesizes_tasks_with_tests_and_rejects_with_reasons(chain) -> None:
    root, rows = chain["workdir"] / RUN, chain["rows"]
    tasks = {t["task_id"]: t for t in io.read_parquet(root / "codeflow/tasks.parquet")}
    assert list(tasks) == [rows[i]["task_id"] for i in (0, 1, 4, 5)]
    rejected = {r["task_id"]: r["reason"] for r in
                io.read_parquet(root / "codeflow/tasks.rejected.parquet")}
    assert rejected == {
        rows[2]["task_id"]: "no test file (a <file>test.py</file> block)",
        rows[3]["task_id"]: "the test file does not run: it does not import the solution module "
                            "`solution`"}
    right = tasks[rows[1]["task_id"]]
    assert right["solution_status"] == "pass" and right["coverage"] == 1.0
    assert "class TestTask(unittest.TestCase)" in right["test_file"]
    assert tasks[rows[4]["task_id"]]["coverage_detail"] == (
        "not measured: the solution timed out against its tests")


def test_codeflow_by_the_teacher_and_its_judge(chain) -> None:
    root, rows = chain["workdir"] / RUN, chain["rows"]
    trajectories = io.read_parquet(root / "codeflow/trajectories.parquet")
    by_task = {}
    for row in trajectories:
        by_task.setdefault(row["task_id"], []).append((row["origin"], row["status"]))
    assert by_task[rows[0]["task_id"]] == [("solution", "fail"), ("model", "pass")]
    assert by_task[rows[1]["task_id"]] == [("solution", "pass")]
    assert by_task[rows[4]["task_id"]] == [("solution", "timeout")] + [("model", "timeout")] * 2
    fixes = [p for p in chain["first_requests"] + chain["second_requests"]
             if "Running its tests gave this output" in p]
    assert len(fixes) == 4  # the teacher wrote every fix: tasks 0 and 5 once, the hanging one twice
    pairs = io.read_parquet(root / "codeflow/pairs.parquet")
    assert [p["task_id"] for p in pairs] == [rows[0]["task_id"]]
    assert pairs[0]["rejected"].rstrip().endswith("return None")
    reasons = {r["task_id"]: r["reason"] for r in
               io.read_parquet(root / "codeflow/pairs.rejected.parquet")}
    assert reasons == {rows[1]["task_id"]: "passed at first attempt",
                       rows[4]["task_id"]: "never passed",
                       rows[5]["task_id"]: "judge: neither yes nor no: Hard to say without "
                                           "running them."}


def test_target_dpo_trains_on_the_judged_pairs(chain) -> None:
    root = chain["workdir"] / RUN
    budget = json.loads((root / "models/iterpref/budget.json").read_text())
    assert (budget["method"], budget["train_tasks"], budget["units"], budget["train_steps"]) == (
        "target_dpo", 1, 1, 2)
    assert (root / "report/summary.csv").is_file()


def test_sharded_and_unsharded_runs_gather_the_same_files(chain) -> None:
    assert chain["unsharded"].returncode == 0, chain["unsharded"].stderr[-3000:]
    for name in CODEFLOW_FILES:
        sharded = (chain["workdir"] / RUN / name).read_bytes()
        assert sharded == (chain["whole"] / RUN / name).read_bytes(), name
