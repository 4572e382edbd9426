"""Gather rules: the shards of a heavy stage as the files one job writes (faulttune.shards)."""
from faulttune.settings import GatherSettings
from faulttune.stages import log_to
from faulttune.stages.gather import gather

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        gather(GatherSettings.from_params(snakemake.params.settings), snakemake.input,
               snakemake.output)
