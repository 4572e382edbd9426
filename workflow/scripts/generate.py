"""Rule generate: samples of one experiment's model on one benchmark (resumable)."""
from faulttune.stages import generate, log_to

with log_to(snakemake.log[0]):
    generate(snakemake.config, snakemake.input.bench, snakemake.params.model,
             snakemake.output[0], threads=snakemake.threads)
