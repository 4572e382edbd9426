"""Rule codeflow_pairs: IterPref pairs under another rejected-version rule."""
from faulttune.stages import codeflow_pairs, log_to

with log_to(snakemake.log[0]):
    codeflow_pairs(snakemake.config, snakemake.input.train, snakemake.input.trajectories,
                   snakemake.wildcards.rejected_rule, snakemake.output.pairs)
