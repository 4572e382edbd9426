"""Rule mutate: verified twins by universalmutator or CCT's AST bug injection."""
from faulttune.settings import BugSettings
from faulttune.stages import log_to
from faulttune.stages.bugs import mutate

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        mutate(BugSettings.from_params(snakemake.params.settings), snakemake.input.train,
               snakemake.output.pairs, workers=snakemake.threads)
