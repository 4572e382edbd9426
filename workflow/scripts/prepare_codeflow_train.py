"""Rule prepare_codeflow_train: CodeFlow's own task table (tasks with tests)."""
from faulttune.stages import log_to, prepare_train

with log_to(snakemake.log[0]):
    prepare_train(snakemake.config, snakemake.output[0], section="codeflow_train")
