"""Rule prepare_benchmark: one benchmark as a table (see faulttune.data.bench_table)."""
from faulttune.stages import log_to, prepare_benchmark

with log_to(snakemake.log[0]):
    prepare_benchmark(snakemake.config, snakemake.wildcards.prompt_set, snakemake.output[0])
