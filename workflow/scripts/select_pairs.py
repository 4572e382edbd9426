"""Rule select_pairs: the most similar teacher variant per task, verified by the tests."""
from faulttune.settings import SelectSettings
from faulttune.stages import log_to
from faulttune.stages.bugs import select_pairs

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        select_pairs(SelectSettings.from_params(snakemake.params.settings), snakemake.input.train,
                     snakemake.input.candidates, snakemake.output.pairs, workers=snakemake.threads)
