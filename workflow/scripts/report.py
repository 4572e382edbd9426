"""Rule report: tables, plots, the papers' numbers, masks page and manifest."""
from pathlib import Path

from faulttune.settings import ReportSettings
from faulttune.stages import log_to
from faulttune.stages.report import report

INPUTS = ("scores", "sensitivity", "pairs", "trajectories", "models", "masks")

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        report(ReportSettings.from_params(snakemake.params.settings),
               str(Path(snakemake.output.summary).parent),
               **{key: list(snakemake.input.get(key, [])) for key in INPUTS})
