"""Rule teacher_variants: FGit's teacher writes wrong-but-similar variants."""
from faulttune.stages import log_to, teacher_variants

with log_to(snakemake.log[0]):
    teacher_variants(snakemake.config, snakemake.input.train, snakemake.output[0],
                     threads=snakemake.threads)
