"""The rerun promise, checked by Snakemake itself: for every leaf key of the demo config, a changed
value reruns exactly the jobs whose stage reads that key, plus the jobs that depend on their
outputs, and nothing else.

A copy of the workflow gets every output of the demo DAG as an empty file and `snakemake --touch`
records the current settings as if the whole DAG had run. Then, per key:

- actual: `snakemake -n --rerun-triggers params input code` on the changed config;
- expected: `snakemake -n --rerun-triggers mtime --forcerun <the readers>` on the changed config,
  where the readers come from :data:`READERS`, a table written by hand from what each stage does.

Both plan on the changed config, so jobs it adds (a new benchmark, a new sweep value) appear in both
and jobs it removes in neither. A key missing from :data:`READERS` fails the test: whoever adds a
config key says which stages read it.

The two dry runs of every key run through Snakemake's command-line entry in two long-lived worker
processes (tests/inprocess_snakemake.py): the same planning, without starting Python and importing
Snakemake 164 times. For the runs of :data:`COMMAND_LINE_RUNS` the real `snakemake -n` command
plans the same jobs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, copy_workflow, job_stats
from conftest import snakemake as run_snakemake
from inprocess_snakemake import Outcome, snakemake_workers
from inprocess_snakemake import run as run_in_process

from faulttune import methods
from faulttune.config import load_config, load_schema
from faulttune.dag import Plan

pytestmark = [pytest.mark.slow, pytest.mark.minutes(3)]

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
R = "results/demo"
ALL_TRAIN = ("train",)
GENERATION = ("generate", "codeflow")

# key -> the rules (or output paths) whose stage reads it. "report" reads the whole config (its
# manifest records it), so every key reruns it; it is added below.
READERS: dict[str, tuple[str, ...]] = {
    "run": ("*",),
    "seed": ("prepare_train", "prepare_benchmark", "mutate", "teacher_variants", "codeflow",
             "masks", "train", "heldout_twins", "probe_pairs", "contamination"),
    "seeds": (),
    "student.model": ("masks", "train", "codeflow",
                      f"{R}/eval/base/humaneval-split-heldout.samples.jsonl",
                      f"{R}/eval/base/bug_sensitivity.json"),
    "student.precision": GENERATION,
    "teacher.backend": ("teacher_variants",),
    "teacher.model": ("teacher_variants",),
    "teacher.n_variants": ("teacher_variants",),
    "teacher.temperature": ("teacher_variants",),
    "teacher.max_new_tokens": ("teacher_variants",),
    "teacher.batch_size": ("teacher_variants",),
    "teacher.precision": ("teacher_variants",),
    "teacher.similarity": ("select_pairs",),
    "teacher.tensor_parallel_size": (),  # the hf backend does not read it
    "data.train.source": ("prepare_train", "heldout_twins"),
    "data.train.limit": ("prepare_train", "prepare_benchmark", "heldout_twins", "contamination"),
    "data.train.split": ("prepare_train",),
    "data.benchmarks": ("prepare_train", "contamination"),
    "data.optional_benchmarks": (),  # read only when a benchmark folder is set
    "data.data_dir": ("prepare_train", "prepare_benchmark", "score", "heldout_twins", "sensitivity",
                      "contamination"),
    "data.benchmark_limit": ("prepare_benchmark",),
    "data.codeflow_train": ("codeflow",),
    "data.decontaminate": ("prepare_train",),
    "data.bigcodebench.source": (),  # no BigCodeBench benchmark in the demo
    "generation.backend": GENERATION,
    "generation.max_new_tokens": GENERATION,
    "generation.batch_size": GENERATION,
    "generation.tensor_parallel_size": (),  # the hf backend does not read it
    "bugs.max_per_task": ("mutate",),
    "bugs.verify": ("mutate", "select_pairs"),
    "codeflow.enabled": (),  # no experiment of the demo trains on CodeFlow's pairs: report only
    "codeflow.tasks": ("codeflow",),  # synthesize (set_key starts from the solution): new jobs
    # the demo's teacher is the student with the same backend settings and token budget, and the
    # debugger decodes greedily either way: the same debugger, so nothing reruns
    "codeflow.debugger": (),
    "codeflow.judge": ("codeflow",),
    "shards": ("teacher_variants", "codeflow", "generate", "score"),  # shard jobs and gathers
    "codeflow.max_iters": ("codeflow",),
    "codeflow.start": ("codeflow",),
    "codeflow.rejected": ("codeflow",),
    "codeflow.max_length": ("codeflow",),
    "sensitivity.enabled": (),
    "sensitivity.limit": ("heldout_twins", "probe_pairs", "sensitivity"),
    "sensitivity.batch_size": ("sensitivity",),
    "sensitivity.humanevalfix": (),  # read only when a benchmark folder is set
    "train.max_length": ("masks", "train"),
    **{f"train.{key}": ALL_TRAIN for key in (
        "lr", "max_steps", "micro_batch_size", "grad_accum", "precision", "epochs", "lora",
        "gradient_checkpointing", "warmup_ratio", "num_processes", "accelerate_config",
        "save_every")},
}
# A value for each key that is not derived from its type (see changed_value).
NEW_VALUES: dict[str, Any] = {
    "run": "demo2",
    "seeds": [0, 1],
    "student.model": "tiny-random",
    "teacher.model": "tiny-random",
    "data.train.source": "mbpp-train",
    "data.train.split": "test",
    "data.benchmarks": ["humaneval-split-heldout", "mbpp"],
    "data.optional_benchmarks": ["mbpp"],
    "data.data_dir": "/nonexistent/benchmarks",
    "data.codeflow_train": {"source": "mbpp-train"},
    "data.bigcodebench.source": "bcb.jsonl",
    "train.lora": {"r": 4},
    "train.save_every": 5,
    "train.num_processes": 2,
}


def leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf; a list or a sweep's value list is one leaf."""
    if isinstance(value, dict) and value and not (len(path) == 3 and path[0] == "sweeps"):
        for key, item in value.items():
            yield from leaves(item, (*path, str(key)))
    else:
        yield ".".join(path), value


def schema_of(key: str) -> dict[str, Any]:
    parts = key.split(".")
    if parts[0] == "experiments":
        exp = DEMO["experiments"][parts[1]]
        return methods.get(exp["method"]).param(parts[2]).schema if parts[2] != "method" else {}
    node = load_schema()
    for part in parts:
        node = node.get("properties", {}).get(part, {})
    return node


def changed_value(key: str, value: Any) -> Any:
    if key in NEW_VALUES:
        return NEW_VALUES[key]
    if key.startswith("sweeps."):
        _, name, param = key.split(".")
        options = methods.get(DEMO["experiments"][name]["method"]).param(param).schema.get("enum")
        return [*value, next(o for o in options if o not in value) if options else 4.0]
    if key.endswith(".method"):
        # a method that takes the experiment's keys and leaves every baseline unambiguous
        return {"base": "focused_dpo", "sft": "focused_dpo", "cct": "target_rpo", "fgit": "focused_dpo",
                "dpo": "focused_dpo", "rpo": "target_rpo", "target_dpo": "target_rpo",
                "target_rpo": "rpo", "tis_dpo": "focused_dpo"}[value]
    options = schema_of(key).get("enum")
    if isinstance(value, bool):
        return not value
    if options:
        return next(o for o in options if o != value)
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return round(value * 1.25, 6)
    raise AssertionError(f"no new value for {key}={value!r}: add one to NEW_VALUES")


def readers(key: str) -> tuple[str, ...]:
    """Experiment keys: the train jobs of the experiment and of its sweeps that keep the key."""
    if not key.startswith(("experiments.", "sweeps.")):
        return READERS[key]
    _, name, *rest = key.split(".")
    if key.startswith("sweeps."):
        return ()  # a new value is a new experiment; nothing old reruns
    swept = DEMO.get("sweeps", {}).get(name, {}) if rest != ["method"] else {}
    family = [name] + [f"{name}~{k}={v}" for k, values in swept.items() if k != rest[0]
                       for v in values]
    # the models an experiment trains from (TIS-DPO's contrastive pair) that inherit the key; a
    # changed method drops them
    plan = Plan(load_config(REPO / "config" / "config.yaml"), environ={})
    family += [required for n in family for required in plan.required_models(n)
               if rest != ["method"] and rest[0] in plan.experiments[required].values()]
    return tuple(f"{R}/models/{n}" for n in family)


def trained_pair_tables(config: dict[str, Any]) -> set[str]:
    """The pair sources trained on: with the training table, contamination's inputs."""
    plan = Plan(config, environ={})
    return {source for name in plan.trained for _, source in plan.mask_inputs(name)} - {"train"}


def set_key(config: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    config = copy.deepcopy(config)
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    if key == "codeflow.tasks":  # synthesized tasks have no mutants: start from their solution
        node["start"] = "solution"
    if key.endswith(".method") and value == "focused_dpo":  # keep only the keys it takes
        for param in list(node):
            if param not in ("method", "bugs"):
                del node[param]
        config.get("sweeps", {}).pop(parents[-1], None)
    return config


DRY_RUN = ("--cores", "1", "--nolock")


def snakemake(workdir: Path, *args: str) -> str:
    return run_snakemake(workdir, *DRY_RUN, *args, timeout=600, data_dir=False).stdout


def planned_jobs(dry_run: str) -> set[str]:
    """'rule[wildcards]' of every job a dry run lists: a `rule NAME:` line and the indented lines
    under it (the next line that is not indented, a blank or a timestamp, ends the block). As many
    as the run's 'Job stats' table counts, so a change of Snakemake's output cannot empty the
    plans unnoticed (both plans of a key would then agree whatever they hold)."""
    jobs, rule, wildcards = set(), None, ""
    for line in dry_run.splitlines() + [""]:
        if rule and not line.startswith(" "):
            jobs.add(f"{rule}[{wildcards}]")
            rule = None
        start = re.match(r"^(?:local)?rule (\w+):$", line)
        if start:
            rule, wildcards = start[1], ""
        elif rule and line.strip().startswith("wildcards:"):
            wildcards = line.split(":", 1)[1].strip()
    listed = job_stats(dry_run)["total"] if "Job stats:" in dry_run else 0
    assert len(jobs) == listed, f"{len(jobs)} jobs read from a dry run that lists {listed}"
    return jobs


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workflow copy where the whole demo DAG counts as done with the current settings."""
    root = copy_workflow(tmp_path_factory.mktemp("rerun"))
    summary = snakemake(root, "--summary", "all")
    for line in summary.splitlines()[1:]:
        path, _, rule = line.split("\t")[:3]
        target = root / path
        if rule == "train":
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    snakemake(root, "--touch", "--forceall", "all")  # every job records its settings
    plan = snakemake(root, "-n", "--rerun-triggers", "params", "input", "code", "--", "all")
    assert "Nothing to be done" in plan and "missing provenance" not in plan, plan[-2000:]
    return root


@pytest.fixture(scope="module")
def workers(workspace: Path):
    """Two worker processes that run Snakemake's command line in the workspace."""
    with snakemake_workers(workspace, workers=2, hide_data_dir=True) as pool:
        yield pool


def dry_runs(workspace: Path, key: str, value: Any) -> tuple[list[str], list[str]]:
    """The arguments of the key's two dry runs: (actual, expected)."""
    config_file = workspace / f"changed-{re.sub(r'[^A-Za-z0-9]', '_', key)}.yaml"
    changed = set_key(DEMO, key, changed_value(key, value))
    config_file.write_text(yaml.safe_dump(changed, sort_keys=False))  # an edit keeps the order
    valid = load_config(config_file)  # a valid change
    base = ("-n", "--configfile", str(config_file))
    actual = [*DRY_RUN, *base, "--rerun-triggers", "params", "input", "code", "--", "all"]
    targets = [*readers(key), "report"]
    if trained_pair_tables(valid) != trained_pair_tables(load_config(REPO / "config" / "config.yaml")):
        targets.append("contamination")  # it checks the tables trained on: other tables, again
    force = ("--forceall",) if "*" in targets else ("--forcerun", *targets)
    expected = [*DRY_RUN, *base, "--rerun-triggers", "mtime", *force, "--", "all"]
    return actual, expected


def planned(outcome: Outcome) -> set[str]:
    assert outcome.ok, outcome.output[-3000:]
    return planned_jobs(outcome.output)


def test_every_demo_key_reruns_exactly_its_readers(workspace, workers):
    keys = demo_keys()
    missing = [k for k in keys if not k.startswith(("experiments.", "sweeps.")) and k not in READERS]
    assert not missing, f"say which stages read {missing} in READERS"
    runs = [dry_runs(workspace, key, value) for key, value in keys.items()]
    plans = iter(workers.map(run_in_process, [args for pair in runs for args in pair]))
    problems = []
    for key, value in keys.items():
        actual, expected = planned(next(plans)), planned(next(plans))
        if actual != expected:
            problems.append(f"{key} -> {changed_value(key, value)!r}: reruns "
                            f"{sorted(actual - expected)} that do not read it, misses "
                            f"{sorted(expected - actual)}")
    assert not problems, "\n".join(problems)


def demo_keys() -> dict[str, Any]:
    keys = dict(leaves(load_config(REPO / "config" / "config.yaml")))
    return {k: v for k, v in keys.items() if k in dict(leaves(DEMO)) or k in READERS}


# The real command for one dry run of a few keys, one of each way an edit reaches the plan: a
# stage's own setting, an input that moves (codeflow's tasks), an experiment's method (other
# training examples); and the forced runs of the expected plan for a new sweep value (a new
# experiment) and a new benchmark (new jobs).
COMMAND_LINE_RUNS = [("train.lr", "actual"), ("data.codeflow_train", "actual"),
                     ("experiments.cct.method", "actual"), ("sweeps.fgit.lambda", "expected"),
                     ("data.benchmarks", "expected")]


@pytest.mark.parametrize(("key", "plan"), COMMAND_LINE_RUNS)
def test_the_command_plans_what_the_in_process_run_plans(workspace, workers, key, plan):
    """`snakemake -n` plans the same jobs as the worker's run of the same arguments."""
    actual, expected = dry_runs(workspace, key, demo_keys()[key])
    args = actual if plan == "actual" else expected
    command = planned_jobs(run_snakemake(workspace, *args, timeout=600, data_dir=False).stdout)
    assert command, args
    assert command == planned(workers.submit(run_in_process, args).result()), args


def test_scripts_read_only_their_settings():
    """What a script reads is what triggers its rerun: its params, never the whole config."""
    for script in (REPO / "workflow" / "scripts").glob("*.py"):
        text = script.read_text()
        assert "snakemake.config" not in text, script.name
        assert "snakemake.params.settings" in text, script.name
