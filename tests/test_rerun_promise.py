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
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, copy_workflow
from conftest import snakemake as run_snakemake

from faulttune import methods
from faulttune.config import load_config, load_schema

pytestmark = pytest.mark.slow

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
    "codeflow.debugger": ("codeflow",),
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
                "target_rpo": "rpo"}[value]
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
    return tuple(f"{R}/models/{n}" for n in family)


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


def snakemake(workdir: Path, *args: str) -> str:
    return run_snakemake(workdir, "--cores", "1", "--nolock", *args, timeout=600,
                         data_dir=False).stdout


def planned_jobs(dry_run: str) -> set[str]:
    """'rule[wildcards]' of every job a dry run lists."""
    jobs, rule = set(), None
    for line in dry_run.splitlines() + [""]:
        start = re.match(r"^(?:local)?rule (\w+):$", line)
        if start:
            rule, wildcards = start[1], ""
        elif rule and line.strip().startswith("wildcards:"):
            wildcards = line.split(":", 1)[1].strip()
        elif rule and not line.strip():
            jobs.add(f"{rule}[{wildcards}]")
            rule = None
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
    snakemake(root, "--touch", "all")
    assert "Nothing to be done" in snakemake(root, "-n", "--rerun-triggers", "params", "input", "code",
                                             "--", "all")
    return root


def rerun_check(workspace: Path, key: str, value: Any) -> str | None:
    """None when Snakemake reruns exactly the readers' jobs and their dependents, else why not."""
    config_file = workspace / f"changed-{re.sub(r'[^A-Za-z0-9]', '_', key)}.yaml"
    changed = set_key(DEMO, key, changed_value(key, value))
    config_file.write_text(yaml.safe_dump(changed))
    load_config(config_file)  # a valid change
    base = ("-n", "--configfile", str(config_file))
    actual = planned_jobs(snakemake(workspace, *base, "--rerun-triggers", "params", "input", "code",
                                    "--", "all"))
    targets = [*readers(key), "report"]
    force = ("--forceall",) if "*" in targets else ("--forcerun", *targets)
    expected = planned_jobs(snakemake(workspace, *base, "--rerun-triggers", "mtime", *force, "--", "all"))
    if actual == expected:
        return None
    return (f"{key} -> {changed_value(key, value)!r}: reruns {sorted(actual - expected)} that do "
            f"not read it, misses {sorted(expected - actual)}")


def test_every_demo_key_reruns_exactly_its_readers(workspace):
    keys = dict(leaves(load_config(REPO / "config" / "config.yaml")))
    keys = {k: v for k, v in keys.items() if k in dict(leaves(DEMO)) or k in READERS}
    missing = [k for k in keys if not k.startswith(("experiments.", "sweeps.")) and k not in READERS]
    assert not missing, f"say which stages read {missing} in READERS"
    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = [p for p in pool.map(lambda kv: rerun_check(workspace, *kv), keys.items()) if p]
    assert not problems, "\n".join(problems)


def test_scripts_read_only_their_settings():
    """What a script reads is what triggers its rerun: its params, never the whole config."""
    for script in (REPO / "workflow" / "scripts").glob("*.py"):
        text = script.read_text()
        assert "snakemake.config" not in text, script.name
        assert "snakemake.params.settings" in text, script.name
