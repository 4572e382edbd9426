"""Rule report: summary.csv, report.md and plots."""
from pathlib import Path

from faulttune.stages import log_to, report

with log_to(snakemake.log[0]):
    report(snakemake.config, list(snakemake.input.scores), str(Path(snakemake.output.summary).parent))
