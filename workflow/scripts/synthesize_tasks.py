"""Rule synthesize_tasks: the teacher writes a solution and a unittest file per instruction."""
from faulttune.settings import SynthesisSettings
from faulttune.stages import log_to
from faulttune.stages.codeflow import synthesize

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        synthesize(SynthesisSettings.from_params(snakemake.params.settings),
                   snakemake.input.instructions, snakemake.output.tasks, threads=snakemake.threads,
                   shard=snakemake.wildcards.get("shard"))
