"""Rule mutate: verified twins from universalmutator or CCT's AST injection."""
from faulttune.stages import log_to, mutate

with log_to(snakemake.log[0]):
    mutate(snakemake.config, snakemake.input.train, snakemake.wildcards.mut_source,
           snakemake.output.pairs, workers=snakemake.threads)
