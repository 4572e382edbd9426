"""Shared pytest fixtures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# the hostile programs are data for tests/test_sandbox.py, never to be imported
collect_ignore_glob = ["hostile/*"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark folder (``../shared/data`` beside the repo, or ``$FAULTTUNE_DATA_DIR``)."""
    override = os.environ.get("FAULTTUNE_DATA_DIR")
    folder = Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"benchmark data folder {folder} is absent")
    return folder


# ---------------------------------------------------------------------------------------------
# the workflow as a user runs it: a copy of its files and Snakemake in a subprocess

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "envs", "profiles")


def copy_workflow(dest: Path) -> Path:
    """The workflow's files in ``dest``, so a test's results never mix with another's."""
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900, data_dir: bool = True,
              check: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m snakemake ARGS`` in ``workdir`` with one torch thread; ``data_dir=False``
    hides $FAULTTUNE_DATA_DIR (the plan must not depend on the machine's benchmark folder)."""
    env = {k: v for k, v in os.environ.items() if data_dir or k != "FAULTTUNE_DATA_DIR"}
    done = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir,
                          env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def job_stats(dry_run_stdout: str) -> dict[str, int]:
    """rule -> count from the 'Job stats' table of a dry run."""
    table = dry_run_stdout.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path)


@pytest.fixture(scope="session")
def tiny():
    """tiny-random with large seeded weights: its greedy output varies token by token.

    The stock tiny-random (init std 0.02) repeats one token forever, which would let a broken
    decode loop pass the equivalence tests. Tests must not change the weights.
    """
    import torch

    from faulttune.models import load_model, load_tokenizer

    tokenizer = load_tokenizer("tiny-random")
    model = load_model("tiny-random", precision="fp32", device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, 1.0 if "embed" in name else 0.5)
    return model, tokenizer


def _fingerprint(model):
    import torch

    with torch.no_grad():
        return torch.stack([p.detach().double().sum() for p in model.parameters()])


@pytest.fixture(scope="session")
def embedded_default():
    """``get(precision)``: the embedded default model (135M) and its tokenizer, loaded once per
    dtype for the whole run and shared. Tests must not change it: checked at the end of the run."""
    import torch

    from faulttune.models import EMBEDDED_DEFAULT, auto_dtype, load_model, load_tokenizer

    loaded = {}

    def get(precision: str = "fp32"):
        dtype = auto_dtype(precision, "cpu")
        if dtype not in loaded:
            model = load_model(EMBEDDED_DEFAULT, precision=precision, device="cpu")
            loaded[dtype] = (model, load_tokenizer(EMBEDDED_DEFAULT), _fingerprint(model))
        return loaded[dtype][:2]

    yield get
    for model, _, before in loaded.values():
        assert torch.equal(_fingerprint(model), before), "a test changed the shared 135M model"


# ---------------------------------------------------------------------------------------------
# decoding references


def generate_batch1(model, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Naive reference decode: batch-1 greedy ``model.generate`` without padding."""
    import torch

    out = model.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=2,
    )
    return out[0, len(prompt) :].tolist()


def _minutes(item: pytest.Item) -> float:
    """The wall time its file declares (``pytest.mark.minutes``); 0 for a short file."""
    marker = item.get_closest_marker("minutes")
    return float(marker.args[0]) if marker else 0.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first (a stable sort by the minutes a file declares): `make test`'s
    workers take whole files in this order (``--dist loadfile --no-loadscope-reorder``), so the
    long ones start at once, side by side, and the short ones fill the end. Left to itself,
    pytest-xdist orders files by their number of tests, which started the SLURM file (5 tests,
    10 minutes) last, with the IterPref chain queued behind it on the same worker."""
    longest: dict[Path, float] = {}
    for item in items:
        longest[item.path] = max(longest.get(item.path, 0.0), _minutes(item))
    items.sort(key=lambda item: -longest[item.path])
