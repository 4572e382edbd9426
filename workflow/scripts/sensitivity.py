"""Rule sensitivity: the fault-sensitivity probe of one experiment's model."""
from faulttune.settings import SensitivitySettings
from faulttune.stages import log_to
from faulttune.stages.sensitivity import sensitivity

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        sensitivity(SensitivitySettings.from_params(snakemake.params.settings),
                    snakemake.input.pairs,
                    snakemake.output[0], threads=snakemake.threads)
