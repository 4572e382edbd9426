"""Rule heldout_twins: verified twins of the held-out HumanEval tasks (the probe's pairs)."""
from faulttune.settings import HeldoutSettings
from faulttune.stages import log_to
from faulttune.stages.sensitivity import heldout_twins

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        heldout_twins(HeldoutSettings.from_params(snakemake.params.settings),
                      snakemake.output.pairs, workers=snakemake.threads)
