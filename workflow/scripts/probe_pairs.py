"""Rule probe_pairs: a seeded random sample of the held-out twins (chosen by no model)."""
from faulttune.settings import ProbePairsSettings
from faulttune.stages import log_to
from faulttune.stages.sensitivity import probe_pairs

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        probe_pairs(ProbePairsSettings.from_params(snakemake.params.settings),
                    snakemake.input.twins,
                    snakemake.output.pairs)
