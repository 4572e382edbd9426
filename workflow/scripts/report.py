"""Rule report: summary.csv, report.md, plots, mask examples and the manifest."""
from pathlib import Path

from faulttune.stages import log_to, report

INPUTS = ("scores", "sensitivity", "pairs", "trajectories", "models", "masks")

with log_to(snakemake.log[0]):
    report(snakemake.config, str(Path(snakemake.output.summary).parent),
           **{key: list(snakemake.input.get(key, [])) for key in INPUTS})
