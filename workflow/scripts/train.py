"""Rule train: fine-tune the student for one experiment (model folder + train_log.jsonl)."""
from faulttune.stages import log_to, train

with log_to(snakemake.log[0]):
    train(snakemake.config, snakemake.wildcards.experiment, list(snakemake.input.examples),
          snakemake.output.model, threads=snakemake.threads)
