"""Rule prepare_train: the training table (see faulttune.data.sources for its columns)."""
from faulttune.stages import log_to, prepare_train

with log_to(snakemake.log[0]):
    prepare_train(snakemake.config, snakemake.output[0])
