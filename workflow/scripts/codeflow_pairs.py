"""Rule codeflow_pairs: IterPref pairs with another rejected-version rule."""
from faulttune.settings import CodeflowPairsSettings
from faulttune.stages import log_to
from faulttune.stages.codeflow import codeflow_pairs

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        codeflow_pairs(CodeflowPairsSettings.from_params(snakemake.params.settings),
                       snakemake.input.train, snakemake.input.trajectories, snakemake.output.pairs)
