"""Rule contamination: overlap of training data and pairs with the evaluated benchmarks."""
from faulttune.stages import contamination, log_to

with log_to(snakemake.log[0]):
    contamination(snakemake.config, list(snakemake.input.tables), snakemake.output[0])
