"""The SLURM profile: the bare `--profile slurm` name, memory retries, and a real SLURM cluster.

The `slurm`-marked test brings up a single-node cluster (ci/slurm/*.sh: Debian slurm-wlm + munge,
partitions `cpu` and `gpu`, a node shaped like a 4-GPU machine) and runs the smoke DAG
(.test/config.yaml) through `--profile profiles/slurm` in a copy of the checkout, so that its
results/ and .snakemake/ never meet those of other tests. It needs root, or a machine where
slurm-wlm is installed and the cluster can be started; otherwise it is skipped with the reason.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from faulttune.config import expand_experiments, validate_config
from faulttune.resume import STOP_ENV

pytestmark = pytest.mark.minutes(10)

REPO = Path(__file__).resolve().parents[1]
SLURM_CI = REPO / "ci" / "slurm"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SMOKE_CONFIG = ".test/config.yaml"
# Never part of the copy: build outputs, caches and other runs' results.
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "results",
    ".snakemake",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    "*.egg-info",
    "build",
)
# Outer bound for one snakemake call; SIGINT, because SIGTERM leaves the plugin waiting.
SNAKEMAKE_TIMEOUT_S = 420


def run_snakemake(
    args: list[str], cwd: Path, timeout_s: int = SNAKEMAKE_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`snakemake ARGS` in ``cwd`` under `timeout -s INT`, stdout and stderr together."""
    command = ["timeout", "-s", "INT", "-k", "30", str(timeout_s), SNAKEMAKE, *args]
    return subprocess.run(
        command,
        check=False,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout[-6000:]}"


def job_resources(dry_run_output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, its `resources:` line as name -> value) for every job of a dry run."""
    found = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        match = re.search(
            r"^(?:local)?rule (\w+):.*?^\s+resources: ([^\n]+)$", block, re.DOTALL | re.MULTILINE
        )
        if match:
            found.append(
                (match.group(1), dict(i.split("=", 1) for i in match.group(2).split(", ")))
            )
    return found


# --- a real single-node SLURM cluster -----------------------------------------------------------

SLURM_CONF = Path("/etc/slurm/slurm.conf")
TEST_CLUSTER_NAME = "ClusterName=faulttune-test"  # written by ci/slurm/start_cluster.sh


def _test_cluster_running() -> bool:
    """Whether the slurmctld of start_cluster.sh runs (by its PID file; sinfo would wait 9 s)."""
    try:
        os.kill(int(Path("/run/slurmctld.pid").read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    """The test cluster of ci/slurm, started here and stopped after unless it already ran."""
    root = os.geteuid() == 0
    if shutil.which("sinfo") is None:
        if not root:
            pytest.skip(
                "slurm-wlm is not installed and installing it (ci/slurm/install.sh) needs root"
            )
        subprocess.run(["bash", str(SLURM_CI / "install.sh")], check=True, timeout=900)
    if SLURM_CONF.exists() and TEST_CLUSTER_NAME not in SLURM_CONF.read_text():
        pytest.skip(f"{SLURM_CONF} belongs to another SLURM cluster; the test leaves it alone")
    already_running = _test_cluster_running()
    if not already_running:
        if not root:
            pytest.skip(
                "the test cluster is not running and starting it (ci/slurm/start_cluster.sh) needs root"
            )
        subprocess.run(["bash", str(SLURM_CI / "start_cluster.sh")], check=True, timeout=120)
    yield
    if not already_running:
        subprocess.run(["bash", str(SLURM_CI / "stop_cluster.sh")], check=False, timeout=60)


@pytest.fixture(scope="module")
def checkout_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree without results, caches or the venv (the `slurm` link stays a link)."""
    copy = tmp_path_factory.mktemp("slurm") / "repo"
    shutil.copytree(REPO, copy, symlinks=True, ignore=COPY_IGNORE)
    return copy


SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/")


def slurm_jobs(snakemake_output: str, rule: str) -> list[dict[str, str]]:
    """`scontrol show job` of every SLURM job that snakemake reports it submitted for ``rule``.

    The test cluster's slurmctld keeps finished jobs for MinJobAge (1800 s, longer than a test).
    """
    jobs = []
    for job_id, job_rule in SUBMITTED.findall(snakemake_output):
        if job_rule == rule:
            shown = subprocess.run(
                ["scontrol", "show", "job", "-o", job_id],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            jobs.append(dict(field.split("=", 1) for field in shown.split() if "=" in field))
    return jobs


def merged(base: dict, override: dict) -> dict:
    """``override`` laid over ``base`` key by key, as snakemake lays --configfile over configfile:."""
    out = dict(base)
    for key, value in override.items():
        both_dicts = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both_dicts else value
    return out


def slurm_smoke_config(default: dict, smoke: dict) -> tuple[dict, str]:
    """The smoke config cut to `base` and one trained experiment, and that experiment's name.

    The whole smoke DAG (every method and sweep) takes far longer than a test should through
    SLURM on 2 cores, since every job starts its own snakemake; one trained experiment still sends
    every kind of rule (pairs, masks, training, generation, scoring, probes, report) through the
    cluster. The experiment kept is the first that trains on generated pairs (has `bugs`), else
    the first trained one. It replaces config/config.yaml of the copy: a --configfile could only
    add experiments to those of config/config.yaml, never remove them.
    """
    config = merged(default, smoke)
    experiments = config["experiments"]
    trained = [name for name, exp in experiments.items() if exp["method"] != "base"]
    with_bugs = [name for name in trained if "bugs" in experiments[name]]
    chosen = (with_bugs or trained or ["base"])[0]
    kept = {name: experiments[name] for name in ("base", chosen)}
    if experiments[chosen]["method"] != "fgit":
        return {**config, "experiments": kept, "sweeps": {}}, chosen
    # an ablation, as users rerun one: FGit with the line mask only
    return {**config, "experiments": kept, "sweeps": {chosen: {"granularity": ["line"]}}}, (
        f"{chosen}~granularity=line")


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_smoke_dag_runs_through_the_slurm_profile(slurm_cluster: None, checkout_copy: Path) -> None:
    """One ablation target alone, then `all`: both through `--profile profiles/slurm`."""
    default_path = checkout_copy / "config" / "config.yaml"
    smoke = yaml.safe_load((checkout_copy / SMOKE_CONFIG).read_text())
    config, experiment = slurm_smoke_config(yaml.safe_load(default_path.read_text()), smoke)
    default_path.write_text(yaml.safe_dump(config))
    run_dir = checkout_copy / "results" / config["run"]
    target = f"results/{config['run']}/eval/{experiment}/{config['data']['benchmarks'][0]}.json"
    profile = ["--profile", "profiles/slurm"]

    single = run_snakemake([target, *profile], cwd=checkout_copy)
    assert_ok(single)
    assert (checkout_copy / target).is_file()
    assert not (run_dir / "eval" / "base").exists() or experiment == "base", (
        "built more than the target"
    )
    assert not (run_dir / "report" / "summary.csv").exists(), "built more than the target"

    whole = run_snakemake(["all", *profile], cwd=checkout_copy)
    assert_ok(whole)
    with open(run_dir / "report" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = set(expand_experiments(validate_config(config)))
    assert experiment in names and {row["experiment"] for row in rows} == names, rows
    assert all(0.0 <= float(row["pass_at_1_base"]) <= 1.0 for row in rows)

    # On a cluster with accounting, `TRES` would list gres/gpu too; here only the request shows.
    submitted = single.stdout + whole.stdout
    generate, score = slurm_jobs(submitted, "generate"), slurm_jobs(submitted, "score")
    assert len(generate) == len(score) == len(names), submitted[-3000:]
    assert {(job["Partition"], job["JobState"]) for job in generate} == {("gpu", "COMPLETED")}
    assert {job["TresPerJob"] for job in generate} == {"gres:gpu:1"}
    assert {job["CpusPerTres"] for job in generate} == {"gres:gpu:8"}
    assert {(job["Partition"], job["JobState"]) for job in score} == {("cpu", "COMPLETED")}
    assert all("TresPerJob" not in job for job in score), score
    if experiment != "base":
        train = slurm_jobs(submitted, "train")
        assert {(job["Partition"], job["TresPerJob"]) for job in train} == {("gpu", "gres:gpu:1")}

    dry = run_snakemake(["all", "-n", *profile], cwd=checkout_copy, timeout_s=120)
    assert_ok(dry)
    assert "Nothing to be done" in dry.stdout


# --- a SLURM time limit, for real ----------------------------------------------------------------

# The teacher's variants of MBPP's train split (374 tasks) in two shards, each 12 chunks of 16
# tasks at ~10 s a chunk (the scripted teacher takes 5 s an answer, 8 at a time): the first
# attempt (2 minutes) must stop, the retry (4 minutes) finishes.
TEACHER_DELAY_S = 5.0
STOP_BEFORE_LIMIT_S = 30  # the job's own watch; the signal comes at 60 s (--signal=TERM@60)


def time_limit_profile(copy: Path) -> str:
    """profiles/slurm with the teacher's jobs at 2 minutes x attempt, SIGTERM 60 s before."""
    profile = yaml.safe_load((copy / "profiles" / "slurm" / "config.yaml").read_text())
    profile["set-resources"]["teacher_variants"].update(
        runtime="2 * attempt", slurm_extra="'--signal=TERM@60'", mem_mb=2000)
    folder = copy / "profiles" / "slurm-time-limit"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return str(folder.relative_to(copy))


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_shard_at_its_time_limit_saves_its_state_and_the_retry_resumes(
        slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> None:
    """Two shards of the teacher's variants go to SLURM as one array job with a 2-minute limit.
    Each stops before the limit and saves the chunks it has (SIGTERM from --signal reaches the
    array task that runs in a job step; the first array task runs in the batch step, which the
    signal never reaches, and stops by watching its own end time); Snakemake's retry (twice the
    time) continues from that state: no prompt is asked twice."""
    from fake_teacher import FakeTeacher, serve

    import faulttune.io as ftio

    copy = tmp_path_factory.mktemp("slurm-time-limit") / "repo"
    shutil.copytree(REPO, copy, symlinks=True, ignore=COPY_IGNORE)
    profile = time_limit_profile(copy)
    teacher = FakeTeacher([], delay_s=TEACHER_DELAY_S, fallback="```python\npass\n```")
    with serve(teacher, host="127.0.0.1") as served:
        config = merged(yaml.safe_load((copy / "config" / "config.yaml").read_text()),
                        yaml.safe_load((copy / SMOKE_CONFIG).read_text()))
        config.update(run="timelimit", shards={"teacher_variants": 2},
                      teacher={"backend": "openai", "model": "fake-teacher", "n_variants": 1,
                               "base_url": served.base_url, "max_new_tokens": 32})
        config["data"] = {**config["data"], "train": {"source": "mbpp-train"},
                          "data_dir": str(data_dir)}
        (copy / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        target = "results/timelimit/bugs/teacher.parquet"
        result = run_snakemake([target, "--profile", profile], cwd=copy, timeout_s=900,
                               env={STOP_ENV: str(STOP_BEFORE_LIMIT_S)})
    assert_ok(result)
    tasks = ftio.read_parquet(copy / "results/timelimit/data/train.parquet")
    assert len(ftio.read_parquet(copy / target)) == len(tasks)
    assert len(teacher.requests) == len(set(teacher.requests)) == len(tasks)  # none asked twice
    assert result.stdout.count("Error in rule teacher_variants") == 2, result.stdout[-5000:]
    stopped = [log.read_text() for log in (copy / ".snakemake/slurm_logs/rule_teacher_variants")
               .rglob("*.log") if "Preempted" in log.read_text()]
    reasons = {why for text in stopped
               for why in re.findall(r"\((received SIGTERM|SLURM job \d+ reaches its time limit)",
                                     text)}
    assert len(stopped) == 2, stopped
    assert {why.split(" job")[0] for why in reasons} == {"received SIGTERM", "SLURM"}, reasons


# --- no cluster needed (last: a make test worker takes its next file when two tests of this
# one are left, so the cluster tests above run first and no file waits behind them) ------


@pytest.mark.parametrize(
    "config_args", [[], ["--configfile", SMOKE_CONFIG]], ids=["default", "smoke"]
)
def test_bare_profile_name_resolves_from_repo_root(config_args: list[str]) -> None:
    """The users' command `snakemake --profile slurm all` (dry run) loads profiles/slurm.

    Every job that asks for a GPU goes to the gpu partition with cores per GPU; every other job
    goes to the cpu partition (the smoke config has every kind of rule).
    """
    result = run_snakemake(
        # --forceall: plan every job whatever results/ already holds in this checkout
        ["all", "-n", "--forceall", "--profile", "slurm", *config_args], cwd=REPO, timeout_s=120
    )
    assert_ok(result)
    jobs = job_resources(result.stdout)
    assert {rule for rule, _ in jobs} >= {"generate", "score"}, result.stdout[-3000:]
    for rule, resources in jobs:
        if rule == "all":
            continue
        if "gpu" in resources:
            assert (resources["slurm_partition"], resources["cpus_per_gpu"]) == ("gpu", "8"), rule
        else:
            assert resources["slurm_partition"] == "cpu", rule
    assert {r["gpu"] for rule, r in jobs if rule == "generate"} == {"1"}


RETRY_SNAKEFILE = """
rule all:
    input: "mem.txt"

rule generate:
    output: "mem.txt"
    resources: gpu=1
    shell: "if [ ! -e attempted ]; then touch attempted; exit 1; fi; echo {resources.mem_mb} {resources.runtime} > {output}"
"""


def test_profile_retries_a_failed_job_with_more_memory_and_time(tmp_path: Path) -> None:
    """The profile's `retries: 1` and "32000 * attempt": attempt 2 gets twice the memory and time.

    The local executor stands in for SLURM: the resource expressions are evaluated by snakemake
    itself, before any executor sees them.
    """
    (tmp_path / "Snakefile").write_text(RETRY_SNAKEFILE)
    result = run_snakemake(
        [
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--executor",
            "local",
            "--cores",
            "1",
            "--resources",
            "gpu=1",
        ],
        cwd=tmp_path,
        timeout_s=120,
    )
    assert_ok(result)
    assert (tmp_path / "mem.txt").read_text() == "64000 480\n"
