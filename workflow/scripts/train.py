"""Rule train: fine-tune the student for one experiment (model folder + train_log.jsonl)."""
from faulttune.settings import TrainSettings
from faulttune.stages import log_to
from faulttune.stages.train import train

with log_to(snakemake.log[0]):
    train(TrainSettings.from_params(snakemake.params.settings), list(snakemake.input.examples),
          snakemake.output.model, threads=snakemake.threads)
