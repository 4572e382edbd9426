"""Rule sensitivity: the fault-sensitivity probe of one experiment's model."""
from faulttune.stages import log_to, sensitivity

with log_to(snakemake.log[0]):
    sensitivity(snakemake.config, snakemake.params.model, snakemake.input.twins,
                snakemake.output[0], threads=snakemake.threads)
