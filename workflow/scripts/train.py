"""Rule train: fine-tune the student for one experiment (model folder + train_log.jsonl)."""
from faulttune.settings import TrainSettings
from faulttune.stages import log_to
from faulttune.stages.train import train

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        settings = TrainSettings.from_params(snakemake.params.settings)
        # the models the method requires arrive in the order of settings.requires' roles
        models = dict(zip(settings.requires, snakemake.input.models))
        train(settings, list(snakemake.input.examples), snakemake.output.model,
              threads=snakemake.threads, models=models)
