"""Rule masks: tokenised training examples with their masks (faulttune.mask_table schema)."""
from faulttune.stages import log_to, masks

with log_to(snakemake.log[0]):
    masks(snakemake.config, snakemake.input.pairs, snakemake.wildcards.kind, snakemake.output.masks)
