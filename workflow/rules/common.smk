# Config validation (before any job runs), experiment expansion, paths and input functions.
import os
import re

from snakemake.utils import validate

from faulttune.config import expand_experiments, validate_config
from faulttune.data.bench_table import PROMPT_SET
from faulttune.stages import active_benchmarks

config.update(validate_config(dict(config), source="config"))
validate(config, "../../config/schema.yaml")
# Conda envs install this checkout with pip (envs/*.yaml read ${FAULTTUNE_ROOT}).
os.environ.setdefault("FAULTTUNE_ROOT", workflow.basedir)

R = f"results/{config['run']}"
EXPERIMENTS = expand_experiments(config)
BENCHMARKS = active_benchmarks(config)
TRAINED = [name for name, exp in EXPERIMENTS.items() if exp["method"] != "base"]


def one_of(names):
    """A wildcard constraint that matches exactly one of ``names``."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    experiment=one_of(EXPERIMENTS),
    benchmark=one_of(PROMPT_SET),
    prompt_set=one_of(set(PROMPT_SET.values())),


def model_for(wildcards):
    """The student for `base`, the trained folder for every other experiment."""
    if EXPERIMENTS[wildcards.experiment]["method"] == "base":
        return config["student"]["model"]
    return f"{R}/models/{wildcards.experiment}"


def trained_model_input(wildcards):
    if EXPERIMENTS[wildcards.experiment]["method"] == "base":
        return []
    return [f"{R}/models/{wildcards.experiment}"]


def samples_for(wildcards):
    return f"{R}/eval/{wildcards.experiment}/{PROMPT_SET[wildcards.benchmark]}.samples.jsonl"


def score_files():
    return [f"{R}/eval/{e}/{b}.json" for e in EXPERIMENTS for b in BENCHMARKS]


def final_outputs():
    return [f"{R}/report/summary.csv", f"{R}/report/report.md"]
