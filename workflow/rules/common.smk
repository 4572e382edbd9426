# Config validation (before any job runs), the plan of experiments and each job's settings.
# Every rule's `params: settings=` is the settings object its script reads (faulttune.settings),
# so a config edit reruns exactly the jobs whose stage reads the edited key.
import os
import re

from faulttune import methods
from faulttune.config import read_yaml, validate_config
from faulttune.data.bench_table import PROMPT_SET
from faulttune.settings import Plan

for _path in workflow.configfiles:
    read_yaml(_path)  # a key written twice is an error (Snakemake's loader keeps the last)
config.update(validate_config(dict(config), source="config"))
# Conda envs install this checkout with pip (envs/*.yaml read ${FAULTTUNE_ROOT}).
os.environ.setdefault("FAULTTUNE_ROOT", workflow.basedir)

PLAN = Plan(config)
for _mismatch in PLAN.budget_mismatches():
    logger.warning(f"faulttune: not an equal-budget comparison: {_mismatch}")
R = f"results/{config['run']}"
EXPERIMENTS = PLAN.experiments
BENCHMARKS = PLAN.benchmarks
TRAINED = PLAN.trained
CODEFLOW_MUTANTS = f"{R}/bugs/pairs_mutation.parquet"
CODEFLOW_TASKS = (
    f"{R}/data/codeflow_train.parquet" if config["data"]["codeflow_train"] else f"{R}/data/train.parquet"
)
PAIR_SOURCES = ["train", "mutation", "cct", "teacher", "codeflow"] + [
    f"codeflow-{r}" for r in ("random", "first", "last")
]


def one_of(names):
    """A wildcard constraint that matches exactly one of ``names``."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    experiment=one_of(EXPERIMENTS),
    benchmark=one_of(PROMPT_SET),
    prompt_set=one_of(set(PROMPT_SET.values())),
    kind=one_of(methods.MASK_KINDS),
    source=one_of(PAIR_SOURCES),
    mut_source="mutation|cct",
    rejected_rule="random|first|last",


def pairs_file(source):
    """Where the pairs of a source live (``train``: the training table itself)."""
    if source == "train":
        return f"{R}/data/train.parquet"
    if source == "codeflow":
        return f"{R}/codeflow/pairs.parquet"
    if source.startswith("codeflow-"):
        return f"{R}/codeflow/pairs-{source.removeprefix('codeflow-')}.parquet"
    return f"{R}/bugs/pairs_{source}.parquet"


def masks_files(experiment):
    """The training-example files of an experiment (the registry says which)."""
    return [f"{R}/masks/{kind}_{source}.parquet" for kind, source in PLAN.mask_inputs(experiment)]


def model_for(experiment):
    """The student for an untrained experiment, the trained folder for every other one."""
    return PLAN.model_of(experiment) or f"{R}/models/{experiment}"


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
    return [f"{R}/eval/{e}/{b}.json" for e in EXPERIMENTS for b in BENCHMARKS]


def training_masks():
    """Every masks file some trained experiment needs."""
    return sorted({f for name in TRAINED for f in masks_files(name)})


def training_pairs():
    """Every pairs file behind some trained experiment (sft trains on the table itself)."""
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
        "models": [f"{R}/models/{e}" for e in TRAINED],
        "sensitivity": [f"{R}/eval/{e}/bug_sensitivity.json" for e in EXPERIMENTS]
        if config["sensitivity"]["enabled"]
        else [],
    }


def final_outputs():
    return [f"{R}/report/summary.csv", f"{R}/report/report.md", f"{R}/report/contamination.json"]
