"""Rule traces: each pair's twins traced on their task's test inputs, in the sandbox."""
from faulttune.settings import TraceSettings
from faulttune.stages import log_to
from faulttune.stages.traces import traces

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        traces(TraceSettings.from_params(snakemake.params.settings), snakemake.input.pairs,
               snakemake.input.tasks, snakemake.output[0], threads=snakemake.threads)
