"""Rule codeflow: iterative debugging until the tests pass; IterPref pairs (resumable, sharded)."""
from faulttune.settings import CodeflowSettings
from faulttune.stages import log_to
from faulttune.stages.codeflow import codeflow

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        codeflow(CodeflowSettings.from_params(snakemake.params.settings), snakemake.input.train,
                 snakemake.input.mutants or None, dict(snakemake.output.items()),
                 threads=snakemake.threads, shard=snakemake.wildcards.get("shard"))
