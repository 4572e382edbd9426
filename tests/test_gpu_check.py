"""bench/gpu_check.sh on a CPU: the miniature runs every code path of the GPU check (random model
built from a config, HF generation on HumanEval prompts, every loss through the trainer) and
writes a JSON that says the goals were not checked."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faulttune import methods

REPO = Path(__file__).resolve().parents[1]
LOSSES = set(methods.trained_methods())
# models.TINY_CONFIG with SmolLM2's 49,152-token vocabulary, worked by hand: tied embeddings
# 49152*64; per layer q,o 64*64 each + k,v 64*32 each (2 kv heads x 16) + MLP 3*64*128 + 2 norms
# of 64; 2 layers; final norm 64.
TINY_PARAMS = 49152 * 64 + 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64) + 64


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = ["bash", str(REPO / "bench" / "gpu_check.sh"), str(out), "--dry-run", "--steps", "1",
               "--prompts", "2", "--max-new-tokens", "4", "--peak-tflops", "1"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_the_cpu_miniature_says_its_goals_were_not_checked(report):
    assert report["device"] == "cpu"
    assert report["goals_checked"] is False
    assert report["goals"] is None
    assert report["plan"]["backends"] == ["hf"]
    assert report["random_model_shape"]["num_hidden_layers"] == 2


@pytest.mark.slow
def test_hf_generation_is_measured_on_the_humaneval_prompts(report):
    generation = report["generation"]
    assert generation["prompts"] == 2 and generation["max_new_tokens"] == 4
    hf = generation["models"]["random"]["hf"]
    assert hf["prompts"] == 2
    assert 1 <= hf["tokens"] <= 2 * 4
    assert hf["tokens_per_s"] == pytest.approx(hf["tokens"] / hf["seconds"])
    assert generation["models"]["random"]["vllm_over_hf"] is None


@pytest.mark.slow
def test_every_loss_trains_and_reports_throughput_and_mfu(report):
    training = report["training"]
    assert set(training["losses"]) == LOSSES
    assert training["rows"]["cct"] == 2 * training["rows"]["sft"]  # a cct and a cct_seq row per pair
    for name, loss in training["losses"].items():
        assert "error" not in loss, (name, loss)
        assert loss["steps"] == 1 and loss["measured_steps"] == 1
        assert loss["n_params"] == TINY_PARAMS
        assert loss["tokens_per_s"] > 0
        assert math.isfinite(loss["loss_first"])
        # --peak-tflops 1: MFU = 6 N tokens/s / 1e12
        assert loss["mfu"] == pytest.approx(6 * TINY_PARAMS * loss["tokens_per_s"] / 1e12)
        assert loss["peak_memory_gib"] is None  # no CUDA memory on a CPU
    assert report["peak_flops_source"] == "--peak-tflops"
