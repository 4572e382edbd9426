"""Rule score: one samples file, or one shard of it, in the sandbox (or BigCodeBench's scorer)."""
from faulttune.settings import ScoreSettings
from faulttune.stages import log_to
from faulttune.stages.eval import score

# A worker that multiprocessing spawns imports this file again (as __mp_main__): it must not score.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        score(ScoreSettings.from_params(snakemake.params.settings), snakemake.input.bench,
              snakemake.input.samples, snakemake.output[0], workers=snakemake.threads,
              shard=snakemake.wildcards.get("shard"))
