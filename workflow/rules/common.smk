# Config validation (before any job runs), the plan of experiments and each job's settings.
# Every rule's `params: settings=` is the settings object its script reads (faulttune.settings),
# so a config edit reruns exactly the jobs whose stage reads the edited key.
import os
import re

from faulttune import methods
from faulttune.config import read_yaml, validate_config
from faulttune.data.bench_table import PROMPT_SET
from faulttune.dag import Plan
from faulttune.plan import few_step_warning, format_plan, plan_training

for _path in workflow.configfiles:
    read_yaml(_path)  # a key written twice is an error (Snakemake's loader keeps the last)
config.update(validate_config(dict(config), source="config"))
# Conda envs install this checkout with pip (envs/*.yaml read ${FAULTTUNE_ROOT}).
os.environ.setdefault("FAULTTUNE_ROOT", workflow.basedir)

PLAN = Plan(config)
for _mismatch in PLAN.budget_mismatches():
    logger.warning(f"faulttune: not an equal-budget comparison: {_mismatch}")
R = f"results/{config['run']}"
if workflow.is_main_process:
    # Each experiment's examples and optimiser steps, before any job runs (faulttune plan).
    _RUNS = plan_training(PLAN, R)
    logger.info(f"faulttune: planned training (exact once the run's files exist)\n{format_plan(_RUNS)}")
    if few_step_warning(_RUNS):
        _BAR = "!" * 100
        logger.warning(f"\n{_BAR}\n{few_step_warning(_RUNS)}\n{_BAR}")
EXPERIMENTS = PLAN.experiments
EVALUATED = PLAN.evaluated  # every experiment but those only another one's method requires
BENCHMARKS = PLAN.benchmarks
TRAINED = PLAN.trained
CODEFLOW_MUTANTS = f"{R}/bugs/pairs_mutation.parquet"
# The tasks CodeFlow debugs: a task table with its tests, or the tasks the teacher synthesizes from
# that table's instructions (codeflow.tasks: synthesize).
CODEFLOW_SOURCE = (
    f"{R}/data/codeflow_train.parquet" if config["data"]["codeflow_train"] else f"{R}/data/train.parquet"
)
SYNTHESIZE = config["codeflow"]["tasks"] == "synthesize"
CODEFLOW_TASKS = f"{R}/codeflow/tasks.parquet" if SYNTHESIZE else CODEFLOW_SOURCE
# Scatter and gather (faulttune.shards): a stage with shards > 1 runs once per shard "<k>-of-<n>"
# (Snakemake's scatter item names) and a local gather rule writes the file one job would have
# written; with 1, the rule writes that file itself.


def sharded(stage):
    return PLAN.shards_of(stage) > 1


def shard_file(final, stage):
    """What one shard job of ``stage`` writes for ``final`` (``final`` itself when unsharded):
    <folder>/.shards/<stem>/<shard>.<suffix>."""
    if not sharded(stage):
        return final
    folder, name = final.rsplit("/", 1)
    stem, _, suffix = name.partition(".")
    return f"{folder}/.shards/{stem}/{{shard}}.{suffix}"


def shard_files(final, stage):
    """The gather rule's input: every shard's file for ``final`` (its other wildcards kept)."""
    pattern = shard_file(final, stage)
    n = PLAN.shards_of(stage)
    return lambda w: [pattern.format(shard=f"{k}-of-{n}", **w) for k in range(1, n + 1)]


def per_shard(path, suffix, stage):
    """A rule's log or benchmark file: ``<path><suffix>``, or ``<path>/<shard><suffix>`` sharded."""
    return f"{path}/{{shard}}{suffix}" if sharded(stage) else f"{path}{suffix}"


def model_gpus(backend):
    """GPUs a model job holds: vLLM's tensor-parallel size, else one."""
    return backend.options.get("tensor_parallel_size", 1) if backend.backend == "vllm" else 1


def model_env(backend):
    """The conda environment of a model job on ``backend``."""
    return "../../envs/vllm.yaml" if backend.backend == "vllm" else "../../envs/train.yaml"


def one_of(names):
    """A wildcard constraint that matches exactly one of ``names``."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    experiment=one_of(EXPERIMENTS),
    benchmark=one_of(PROMPT_SET),
    prompt_set=one_of(set(PROMPT_SET.values())),
    kind=one_of(methods.EXAMPLES),
    source=one_of(methods.pairs_sources()),
    mut_source=one_of(methods.sources_made_by("mutate")),
    rejected_rule=one_of(methods.REJECTED_RULES),
    shard=r"\d+-of-\d+",


def pairs_file(source):
    """Where the pairs of a source live (``train``: the training table itself)."""
    if source == "train":
        return f"{R}/data/train.parquet"
    if source == "codeflow":
        return f"{R}/codeflow/pairs.parquet"
    if source.startswith("codeflow-"):
        return f"{R}/codeflow/pairs-{source.removeprefix('codeflow-')}.parquet"
    return f"{R}/bugs/pairs_{source}.parquet"


def tasks_file(source):
    """The table holding the tasks (tests, entry points) of a pairs source."""
    return CODEFLOW_TASKS if source.startswith("codeflow") else f"{R}/data/train.parquet"


def masks_files(experiment):
    """The training-example files of an experiment (the registry says which)."""
    return [f"{R}/masks/{kind}_{source}.parquet" for kind, source in PLAN.mask_inputs(experiment)]


def model_for(experiment):
    """The student for an untrained experiment, the trained folder for every other one."""
    return PLAN.model_of(experiment) or f"{R}/models/{experiment}"


def required_models(wildcards):
    """The models an experiment's method needs before it trains (the registry's requires)."""
    return [f"{R}/models/{name}" for name in PLAN.required_models(wildcards.experiment)]


def training_priority(wildcards):
    """Trainings before evaluations (priority 0), and the models another experiment's training
    needs before the rest."""
    return 2 if PLAN.required_by_others(wildcards.experiment) else 1


def trained_model_input(wildcards):
    return [] if PLAN.model_of(wildcards.experiment) else [f"{R}/models/{wildcards.experiment}"]


def samples_for(wildcards):
    return f"{R}/eval/{wildcards.experiment}/{PROMPT_SET[wildcards.benchmark]}.samples.jsonl"


def score_env(wildcards):
    """BigCodeBench's official scorer runs in its own environment."""
    if wildcards.benchmark.startswith("bigcodebench-"):
        return "../../envs/bigcodebench.yaml"
    return "../../envs/cpu.yaml"


def score_files():
    return [f"{R}/eval/{e}/{b}.json" for e in EVALUATED for b in BENCHMARKS]


def training_masks():
    """Every masks file some trained experiment needs."""
    return sorted({f for name in TRAINED for f in masks_files(name)})


def training_pairs():
    """Every pairs file behind some trained experiment (not the training table itself)."""
    sources = {s for name in TRAINED for _, s in PLAN.mask_inputs(name)}
    return sorted(pairs_file(s) for s in sources if s != "train")


def codeflow_runs():
    """CodeFlow runs when an experiment trains on its pairs, or for the report when enabled."""
    return config["codeflow"]["enabled"] or any(s.startswith("codeflow") for s in (
        src for name in TRAINED for _, src in PLAN.mask_inputs(name)))


def report_inputs():
    return {
        "scores": score_files(),
        "pairs": training_pairs(),
        "trajectories": [f"{R}/codeflow/trajectories.parquet"] if codeflow_runs() else [],
        "masks": training_masks(),
        "models": [f"{R}/models/{e}" for e in TRAINED if e in EVALUATED],
        "sensitivity": [f"{R}/eval/{e}/bug_sensitivity.json" for e in EVALUATED]
        if config["sensitivity"]["enabled"]
        else [],
    }


def final_outputs():
    return [f"{R}/report/summary.csv", f"{R}/report/report.md", f"{R}/report/contamination.json"]
