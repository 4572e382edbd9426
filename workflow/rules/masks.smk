# Training examples with their error-sensitive token masks, in the student's tokenisation; the
# execution traces of the pairs whose masks a trace mask kind marks.


rule masks:
    input:
        pairs=lambda w: pairs_file(w.source),
        # an examples kind that covers every task reads the training table too (a task without a
        # pair is a plain row); a traced mask kind reads the pairs' traces
        tasks=lambda w: [f"{R}/data/train.parquet"] if PLAN.masks_reads(w.kind)[0] else [],
        traces=lambda w: [f"{R}/traces/{w.source}.parquet"] if PLAN.masks_reads(w.kind)[1] else [],
    output:
        masks=f"{R}/masks/{{kind}}_{{source}}.parquet",
        rejected=f"{R}/masks/{{kind}}_{{source}}.rejected.parquet",
    log:
        f"{R}/logs/masks/{{kind}}_{{source}}.log",
    benchmark:
        f"{R}/benchmarks/masks/{{kind}}_{{source}}.tsv",
    params:
        settings=lambda w: PLAN.masks(w.kind).to_params(),
    # seconds long, and a training waits on it: ahead of every model job
    priority: 3
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/masks.py"


rule traces:
    input:
        pairs=lambda w: pairs_file(w.source),
        tasks=lambda w: tasks_file(w.source),
    output:
        f"{R}/traces/{{source}}.parquet",
    log:
        f"{R}/logs/traces/{{source}}.log",
    benchmark:
        f"{R}/benchmarks/traces/{{source}}.tsv",
    params:
        settings=PLAN.traces().to_params(),
    threads: 2
    # seconds long, and a training waits on it: ahead of every model job
    priority: 3
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/traces.py"
