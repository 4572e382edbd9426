"""Rule generate: samples of one experiment's model on one benchmark, or one shard (resumable)."""
from faulttune.settings import GenerateSettings
from faulttune.stages import log_to
from faulttune.stages.eval import generate

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        generate(GenerateSettings.from_params(snakemake.params.settings), snakemake.input.bench,
                 snakemake.output[0], threads=snakemake.threads,
                 shard=snakemake.wildcards.get("shard"))
