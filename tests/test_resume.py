"""A killed job resumes inside the workflow: its state lives beside its output, keyed by its
settings, and the output appears only when it completes (faulttune.resume)."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from killing import CONFIG, KILLS, MODEL, kill_after, run_snakemake, workflow_copy

from faulttune.resume import Preempted, Resumable, publish, state_dir

pytestmark = pytest.mark.minutes(4.5)

# ---------------------------------------------------------------------------------------------
# the helper


def test_state_is_keyed_by_the_settings_and_removed_when_the_job_completes(tmp_path):
    out = tmp_path / "models" / "sft"
    a, b = state_dir(out, {"lr": 1e-5}), state_dir(out, {"lr": 2e-5})
    assert a != b and a.parent == b.parent == tmp_path / "models" / ".resume"
    assert state_dir(out, {"lr": 1e-5}) == a
    with pytest.raises(RuntimeError), Resumable(out, {"lr": 1e-5}) as job:
        (job.state / "half").write_text("done so far")
        raise RuntimeError("killed")
    assert (a / "half").read_text() == "done so far"  # a failed job keeps its state
    with Resumable(out, {"lr": 2e-5}) as job:  # other settings: nothing to resume
        assert not (job.state / "half").exists()
        assert not a.exists()  # the stale state of the old settings is gone
        (job.state / "model").mkdir()
        (job.state / "model" / "weights").write_text("w")
        job.publish(job.state / "model")
    assert (out / "weights").read_text() == "w"
    assert not (tmp_path / "models" / ".resume").exists()


def test_publish_replaces_an_old_output_in_one_rename(tmp_path):
    (tmp_path / "new").write_text("new")
    (tmp_path / "out").write_text("old")
    publish(tmp_path / "new", tmp_path / "out")
    assert (tmp_path / "out").read_text() == "new" and not (tmp_path / "new").exists()


def test_sigterm_requests_a_stop_that_keeps_the_state(tmp_path):
    out = tmp_path / "samples.jsonl"
    with pytest.raises(Preempted), Resumable(out, {"k": 1}) as job:
        os.kill(os.getpid(), signal.SIGTERM)
        assert job.stop_requested
        (job.state / "part").write_text("1")
        job.check_stop()
    assert (state_dir(out, {"k": 1}) / "part").is_file()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


def test_the_slurm_deadline_stops_a_job_before_its_time_limit():
    """Half the job's time at least, else the margin (the profile's --signal=TERM@300) before
    its end; the end time is read again until then."""
    from faulttune.resume import SlurmDeadline, stop_time

    assert stop_time(1000.0, 5000.0, 300.0) == 4700.0
    assert stop_time(0.0, 120.0, 300.0) == 60.0  # a short job keeps half its time
    now, reasons, windows = [0.0], [], []

    def window(job_id):
        windows.append(job_id)
        return (0.0, 120.0)

    watcher = SlurmDeadline("7", reasons.append, margin_s=300.0, poll_s=0.01, window=window,
                            clock=lambda: now[0])
    watcher.thread.start()
    time.sleep(0.2)
    assert reasons == [] and len(windows) > 1 and set(windows) == {"7"}
    now[0] = 60.5
    watcher.thread.join(timeout=5)
    end = datetime.fromtimestamp(120.0).isoformat(timespec="seconds")
    assert reasons == [f"SLURM job 7 reaches its time limit at {end}; stopping 60 s before it"]


def test_a_job_in_slurm_stops_before_its_limit_without_a_signal(tmp_path, monkeypatch):
    """Inside a SLURM job (the first task of an array job, which --signal never reaches) the
    job's own end time, by squeue, requests the stop; the Preempted error names why."""
    now = time.time()
    fake = tmp_path / "bin" / "squeue"
    fake.parent.mkdir()
    start, end = (datetime.fromtimestamp(t).isoformat(timespec="seconds") for t in (now - 100, now + 10))
    fake.write_text(f"#!/bin/sh\n[ \"$3\" = 42 ] && echo '{start} {end}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with pytest.raises(Preempted, match=r"SLURM job 42 reaches its time limit"), \
            Resumable(tmp_path / "out", {"k": 1}) as job:
        for _ in range(100):
            if job.stop_requested:
                break
            time.sleep(0.05)
        job.check_stop()


# ---------------------------------------------------------------------------------------------
# through Snakemake: kill the whole process group (a closed terminal, a SLURM time limit); the
# CodeFlow and sampling jobs are in test_resume_sampling.py


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = workflow_copy(tmp_path_factory.mktemp("whole"), CONFIG)
    run_snakemake(root, MODEL)
    return root / MODEL


@pytest.mark.slow
@KILLS
def test_killed_training_resumes_from_its_checkpoint(tmp_path, uninterrupted, signum):
    import torch

    root = workflow_copy(tmp_path, CONFIG)
    kill_after(root, MODEL, "results/kill/models/.resume/sft.*/run/checkpoints/step-*/trainer_state.json",
               signum)
    assert not (root / MODEL).exists()  # no half-written model is ever the output
    run_snakemake(root, MODEL)
    state = json.loads((root / MODEL / "trainer_state.json").read_text())
    assert state["resumed_from_step"] >= 2
    log = (root / "results/kill/logs/train/sft.log").read_text()
    assert f"(step {state['resumed_from_step']})" in log and "resuming" in log
    mine, whole = weights(root / MODEL), weights(uninterrupted)
    for name, tensor in whole.items():  # the tolerance of test_train's exact-resume test
        torch.testing.assert_close(mine[name], tensor, rtol=1e-5, atol=1e-6)
    assert not (root / "results/kill/models/.resume").exists()


@pytest.mark.slow
def test_a_config_edit_does_not_resume_from_the_old_state(tmp_path):
    root = workflow_copy(tmp_path, CONFIG)
    kill_after(root, MODEL, "results/kill/models/.resume/sft.*/run/checkpoints/step-*/trainer_state.json",
               signal.SIGKILL)
    changed = json.loads(json.dumps(CONFIG))
    changed["experiments"]["sft"]["lr"] = 5.0e-4
    (root / "kill.yaml").write_text(yaml.safe_dump(changed))
    run_snakemake(root, MODEL)
    state = json.loads((root / MODEL / "trainer_state.json").read_text())
    assert state["resumed_from_step"] == 0 and state["config"]["lr"] == 5.0e-4
    assert "removing the state of other settings" in (root / "results/kill/logs/train/sft.log").read_text()
