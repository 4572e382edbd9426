"""Rule codeflow: iterative debugging trajectories and IterPref pairs (resumable)."""
from pathlib import Path

from faulttune.stages import codeflow, log_to

with log_to(snakemake.log[0]):
    codeflow(snakemake.config, snakemake.input.train, snakemake.input.mutants or None,
             str(Path(snakemake.output.trajectories).parent), threads=snakemake.threads)
