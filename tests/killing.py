"""Killing a Snakemake run in the middle of a job, for the resume tests (test_resume*.py): the
tiny configuration they share, a workflow copy, and a kill of the whole process group once a file
shows that the job has saved some state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, snakemake

CONFIG = {
    "run": "kill", "seed": 0,
    "student": {"model": "tiny-random", "precision": "fp32"},
    "data": {"train": {"source": "humaneval-split", "limit": 4},
             "benchmarks": ["humaneval-split-heldout"], "optional_benchmarks": [],
             "benchmark_limit": 2},
    "experiments": {"base": {"method": "base"}, "sft": {"method": "sft", "max_steps": 14}},
    "train": {"lr": 1.0e-3, "micro_batch_size": 1, "grad_accum": 1, "max_length": 768,
              "precision": "fp32", "save_every": 2},
    "sensitivity": {"enabled": False}, "codeflow": {"enabled": False},
}
MODEL = "results/kill/models/sft"
# SLURM's warning before a time limit, and a kill with none
KILLS = pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])


def workflow_copy(root: Path, config: dict) -> Path:
    copy_workflow(root)
    (root / "kill.yaml").write_text(yaml.safe_dump(config))
    return root


def snakemake_command(*targets: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--cores", "1",
            "--configfile", "kill.yaml", "--", *targets]


def run_snakemake(root: Path, *targets: str) -> None:
    snakemake(root, *snakemake_command(*targets)[3:])


def kill_after(root: Path, target: str, ready: str, signum: int) -> None:
    """Start Snakemake in its own process group, wait until a file matching ``ready`` (a glob)
    holds something, then send ``signum`` to the whole group and wait for all of it to end."""
    proc = subprocess.Popen(snakemake_command(target), cwd=root, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 600
    while not any(p.stat().st_size > 0 for p in root.glob(ready)):
        assert proc.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, f"{ready} never appeared"
        time.sleep(0.1)
    os.killpg(proc.pid, signum)
    proc.wait(timeout=120)
    for _ in range(600):  # the job's own processes may take a moment to save and exit
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    snakemake(root, "--unlock", "--configfile", "kill.yaml", check=False)
