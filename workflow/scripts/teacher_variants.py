"""Rule teacher_variants: FGit's teacher writes wrong-but-similar variants (one shard of them)."""
from faulttune.settings import TeacherSettings
from faulttune.stages import log_to
from faulttune.stages.bugs import teacher_variants

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        teacher_variants(TeacherSettings.from_params(snakemake.params.settings),
                         snakemake.input.train, snakemake.output[0],
                         threads=snakemake.threads, shard=snakemake.wildcards.get("shard"))
