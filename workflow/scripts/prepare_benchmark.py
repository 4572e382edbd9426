"""Rule prepare_benchmark: one benchmark's task table."""
from faulttune.settings import BenchmarkSource
from faulttune.stages import log_to
from faulttune.stages.data import prepare_benchmark

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        prepare_benchmark(BenchmarkSource.from_params(snakemake.params.settings),
                          snakemake.output[0])
