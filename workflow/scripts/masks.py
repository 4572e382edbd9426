"""Rule masks: training examples of one kind with their error-sensitive masks."""
from faulttune.settings import MaskSettings
from faulttune.stages import log_to
from faulttune.stages.masks import masks

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        masks(MaskSettings.from_params(snakemake.params.settings), snakemake.input.pairs,
              snakemake.output.masks,
              tasks=snakemake.input.tasks[0] if snakemake.input.tasks else None,
              traces=snakemake.input.traces[0] if snakemake.input.traces else None)
