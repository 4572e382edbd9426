"""Rule select_pairs: the most similar verified teacher variant per task."""
from faulttune.stages import log_to, select_pairs

with log_to(snakemake.log[0]):
    select_pairs(snakemake.config, snakemake.input.train, snakemake.input.candidates,
                 snakemake.output.pairs, workers=snakemake.threads)
