# Config validation (before any job runs), experiment expansion, paths and input functions.
import os
import re

from snakemake.utils import validate

from faulttune.config import expand_experiments, validate_config
from faulttune.data.bench_table import PROMPT_SET
from faulttune.stages import active_benchmarks, data_dir

config.update(validate_config(dict(config), source="config"))
validate(config, "../../config/schema.yaml")
# Conda envs install this checkout with pip (envs/*.yaml read ${FAULTTUNE_ROOT}).
os.environ.setdefault("FAULTTUNE_ROOT", workflow.basedir)

R = f"results/{config['run']}"
DATA_DIR = data_dir(config)
EXPERIMENTS = expand_experiments(config)
BENCHMARKS = active_benchmarks(config)
TRAINED = [name for name, exp in EXPERIMENTS.items() if exp["method"] != "base"]
CODEFLOW_MUTANTS = f"{R}/bugs/pairs_mutation.parquet"
CODEFLOW_TASKS = (
    f"{R}/data/codeflow_train.parquet" if config["data"].get("codeflow_train") else f"{R}/data/train.parquet"
)
MASK_KINDS = ["sft", "cct", "dpo", "target_dpo", "focused_dpo"] + [
    f"fgit-{g}" for g in ("line", "token", "hybrid")
]
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
    kind=one_of(MASK_KINDS),
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


def experiment_sources(exp):
    """The pairs source of an experiment; IterPref's rejected rule picks the codeflow pair set."""
    source = exp.get("bugs", "teacher")
    if source == "codeflow" and exp.get("rejected", config["codeflow"]["rejected"]) != config["codeflow"]["rejected"]:
        source = f"codeflow-{exp['rejected']}"
    return source


def experiment_masks(wildcards):
    """The training-example files of an experiment (CCT also learns L_lm on the plain solutions)."""
    exp = EXPERIMENTS[wildcards.experiment]
    method, source = exp["method"], experiment_sources(exp)
    kind = {
        "sft": "sft", "cct": "cct", "dpo": "dpo", "rpo": "dpo", "target_dpo": "target_dpo",
        "target_rpo": "target_dpo", "focused_dpo": "focused_dpo",
        "fgit": f"fgit-{exp.get('granularity', 'hybrid')}",
    }[method]
    files = [f"{R}/masks/{kind}_{'train' if kind == 'sft' else source}.parquet"]
    if method == "cct":
        files.insert(0, f"{R}/masks/sft_train.parquet")
    return files


class Wildcards:
    """Stand-in for Snakemake's wildcards object when an input function is called directly."""

    def __init__(self, experiment):
        self.experiment = experiment


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


def score_env(wildcards):
    """BigCodeBench's official scorer runs in its own environment."""
    if wildcards.benchmark.startswith("bigcodebench-") and config["data"]["bigcodebench"]["scorer"] == "official":
        return "../../envs/bigcodebench.yaml"
    return "../../envs/cpu.yaml"


def score_files():
    return [f"{R}/eval/{e}/{b}.json" for e in EXPERIMENTS for b in BENCHMARKS]


def training_masks():
    """Every masks file some trained experiment needs."""
    return sorted({f for name in TRAINED for f in experiment_masks(Wildcards(name))})


def training_pairs():
    """Every pairs file behind some trained experiment (sft trains on the table itself)."""
    sources = {s for f in training_masks() for s in [f.rsplit("_", 1)[1].removesuffix(".parquet")]}
    return sorted(pairs_file(s) for s in sources if s != "train")


def report_inputs():
    return {
        "scores": score_files(),
        "pairs": training_pairs(),
        "trajectories": [f"{R}/codeflow/trajectories.parquet"],
        "masks": training_masks(),
        "models": [f"{R}/models/{e}" for e in TRAINED],
        "sensitivity": [f"{R}/eval/{e}/bug_sensitivity.json" for e in EXPERIMENTS]
        if config["sensitivity"]["enabled"]
        else [],
    }


def final_outputs():
    return [f"{R}/report/summary.csv", f"{R}/report/report.md", f"{R}/report/contamination.json"]
