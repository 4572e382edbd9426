"""Rule score: run the samples against the benchmark's tests in the sandbox."""
from faulttune.stages import log_to, score

with log_to(snakemake.log[0]):
    score(snakemake.config, snakemake.input.bench, snakemake.input.samples,
          snakemake.output[0], workers=snakemake.threads)
