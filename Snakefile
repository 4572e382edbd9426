# faulttune: fault-aware fine-tuning of code LLMs. One rule file per stage; see README.md.
from snakemake.utils import min_version

min_version("8.0")


# The demo config is the default; `--configfile X` replaces it instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/bugs.smk"
include: "workflow/rules/codeflow.smk"
include: "workflow/rules/masks.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
