"""Rule probe_pairs: the held-out twins the untouched student tells apart worst."""
from faulttune.settings import ProbePairsSettings
from faulttune.stages import log_to
from faulttune.stages.sensitivity import probe_pairs

with log_to(snakemake.log[0]):
    probe_pairs(ProbePairsSettings.from_params(snakemake.params.settings), snakemake.input.twins,
                snakemake.output.pairs, snakemake.output.base, threads=snakemake.threads)
