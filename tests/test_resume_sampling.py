"""Killed CodeFlow and sampling jobs (generate, teacher_variants) continue where they stopped:
their state lives beside their output (faulttune.resume), and the resumed output equals an
uninterrupted run's. In a file of its own so that the test workers share the resume tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from killing import CONFIG, KILLS, kill_after, run_snakemake, workflow_copy

pytestmark = pytest.mark.minutes(5.5)

CODEFLOW = "results/kill/codeflow/trajectories.parquet"


def codeflow_config() -> dict:
    config = json.loads(json.dumps(CONFIG))
    config["codeflow"] = {"enabled": True, "max_iters": 3, "start": "mutant"}
    config["generation"] = {"max_new_tokens": 24, "batch_size": 4}
    return config


CODEFLOW_COLUMNS = ["task_id", "iteration", "passed", "code"]


def codeflow_rows(root: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(root / CODEFLOW).select(CODEFLOW_COLUMNS).to_pylist()


@pytest.fixture(scope="module")
def codeflow_whole(tmp_path_factory) -> tuple[dict, ...]:
    """The trajectories of an uninterrupted CodeFlow run (one run for both signals)."""
    whole = workflow_copy(tmp_path_factory.mktemp("codeflow-whole"), codeflow_config())
    run_snakemake(whole, CODEFLOW)
    return tuple(codeflow_rows(whole))


@pytest.mark.slow
@KILLS
def test_killed_codeflow_continues_from_its_last_round(tmp_path_factory, codeflow_whole, signum):
    root = workflow_copy(tmp_path_factory.mktemp("codeflow-killed"), codeflow_config())
    kill_after(root, CODEFLOW, "results/kill/codeflow/.resume/trajectories.parquet.*/versions.jsonl",
               signum)
    done_before = len(next(root.glob("results/kill/codeflow/.resume/*/versions.jsonl")).read_text().splitlines())
    assert done_before > 0 and not (root / CODEFLOW).exists()
    run_snakemake(root, CODEFLOW)
    log = (root / "results/kill/logs/codeflow.log").read_text()
    assert "resuming" in log
    assert tuple(codeflow_rows(root)) == codeflow_whole


def sampling_config() -> dict:
    config = json.loads(json.dumps(CONFIG))
    # many chunks (16 tasks each) of long enough rows that the kill lands while some are left
    config["data"]["train"]["limit"] = 40  # three chunks of teacher tasks
    config["data"]["benchmark_limit"] = 96  # six chunks of generated tasks
    config["teacher"] = {"model": "tiny-random", "n_variants": 2, "max_new_tokens": 8,
                         "precision": "fp32", "batch_size": 8}
    config["generation"] = {"max_new_tokens": 48, "batch_size": 8}
    return config


SAMPLES = "results/kill/eval/base/humaneval-split-heldout.samples.jsonl"
TEACHER = "results/kill/bugs/teacher.parquet"


@pytest.fixture(scope="module")
def sampling_whole(tmp_path_factory) -> dict[str, bytes]:
    """The outputs of an uninterrupted run of both sampling jobs (one run for both signals)."""
    whole = workflow_copy(tmp_path_factory.mktemp("whole"), sampling_config())
    run_snakemake(whole, SAMPLES, TEACHER)
    return {target: (whole / target).read_bytes() for target in (SAMPLES, TEACHER)}


@pytest.mark.slow
@pytest.mark.parametrize(("target", "state", "skipped"), [
    (SAMPLES, "results/kill/eval/base/.resume/humaneval-split-heldout.samples.jsonl.*/samples.jsonl",
     r"(\d+) already done"),
    (TEACHER, "results/kill/bugs/.resume/teacher.parquet.*/candidates.jsonl",
     r"(\d+) chunks already asked"),
], ids=["generate", "teacher_variants"])
@KILLS
def test_killed_sampling_jobs_do_not_redo_finished_tasks(tmp_path_factory, sampling_whole, target,
                                                         state, skipped, signum):
    root = workflow_copy(tmp_path_factory.mktemp("killed"), sampling_config())
    kill_after(root, target, state, signum)
    written = len(next(root.glob(state)).read_text().splitlines())
    assert written > 0 and not (root / target).exists()
    run_snakemake(root, target)
    logs = "".join(p.read_text() for p in (root / "results/kill/logs").rglob("*.log"))
    assert "resuming" in logs
    reused = [int(n) for n in re.findall(skipped, logs)]  # Snakemake kept only the rerun's log
    assert len(reused) == 1 and reused[0] > 0
    assert (root / target).read_bytes() == sampling_whole[target]
