"""Rule prepare_train: the training task table."""
from faulttune.settings import TrainTableSettings
from faulttune.stages import log_to
from faulttune.stages.data import prepare_train

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        prepare_train(TrainTableSettings.from_params(snakemake.params.settings),
                      snakemake.output[0])
