"""Rule heldout_twins: verified CCT twins of held-out HumanEval tasks."""
from faulttune.stages import heldout_twins, log_to

with log_to(snakemake.log[0]):
    heldout_twins(snakemake.config, snakemake.output.pairs, workers=snakemake.threads)
