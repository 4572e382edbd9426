"""Rule contamination: overlap of the training data with every evaluated benchmark."""
from faulttune.settings import ContaminationSettings
from faulttune.stages import log_to
from faulttune.stages.report import contamination

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        contamination(ContaminationSettings.from_params(snakemake.params.settings),
                      list(snakemake.input.tables), snakemake.output[0])
