# CodeFlow: tasks with tests (a table's, or synthesized by the teacher), iterative debugging until
# the tests pass; IterPref pairs.


rule synthesize_tasks:
    input:
        instructions=CODEFLOW_SOURCE,
    output:
        tasks=shard_file(f"{R}/codeflow/tasks.parquet", "synthesize_tasks"),
        rejected=shard_file(f"{R}/codeflow/tasks.rejected.parquet", "synthesize_tasks"),
    log:
        per_shard(f"{R}/logs/synthesize_tasks", ".log", "synthesize_tasks"),
    benchmark:
        per_shard(f"{R}/benchmarks/synthesize_tasks", ".tsv", "synthesize_tasks"),
    params:
        settings=PLAN.synthesis().to_params(),
    threads: 2
    resources:
        gpu=model_gpus(PLAN.teacher_backend()),
    conda:
        model_env(PLAN.teacher_backend())
    script:
        "../scripts/synthesize_tasks.py"


rule codeflow:
    input:
        train=CODEFLOW_TASKS,
        mutants=CODEFLOW_MUTANTS if config["codeflow"]["start"] == "mutant" else [],
    output:
        trajectories=shard_file(f"{R}/codeflow/trajectories.parquet", "codeflow"),
        pairs=shard_file(f"{R}/codeflow/pairs.parquet", "codeflow"),
        rejected=shard_file(f"{R}/codeflow/pairs.rejected.parquet", "codeflow"),
    log:
        per_shard(f"{R}/logs/codeflow", ".log", "codeflow"),
    benchmark:
        per_shard(f"{R}/benchmarks/codeflow", ".tsv", "codeflow"),
    params:
        settings=PLAN.codeflow().to_params(),
    threads: 2
    resources:
        gpu=model_gpus(PLAN.codeflow().backend),
    conda:
        model_env(PLAN.codeflow().backend)
    script:
        "../scripts/codeflow.py"


if sharded("synthesize_tasks"):

    rule gather_synthesize_tasks:
        input:
            parts=shard_files(f"{R}/codeflow/tasks.parquet", "synthesize_tasks"),
            rejected=shard_files(f"{R}/codeflow/tasks.rejected.parquet", "synthesize_tasks"),
        output:
            tasks=f"{R}/codeflow/tasks.parquet",
            rejected=f"{R}/codeflow/tasks.rejected.parquet",
        log:
            f"{R}/logs/gather/synthesize_tasks.log",
        params:
            settings=PLAN.gather("synthesize_tasks").to_params(),
        localrule: True
        conda:
            "../../envs/cpu.yaml"
        script:
            "../scripts/gather.py"


if sharded("codeflow"):

    rule gather_codeflow:
        input:
            trajectories=shard_files(f"{R}/codeflow/trajectories.parquet", "codeflow"),
            parts=shard_files(f"{R}/codeflow/pairs.parquet", "codeflow"),
            rejected=shard_files(f"{R}/codeflow/pairs.rejected.parquet", "codeflow"),
        output:
            trajectories=f"{R}/codeflow/trajectories.parquet",
            pairs=f"{R}/codeflow/pairs.parquet",
            rejected=f"{R}/codeflow/pairs.rejected.parquet",
        log:
            f"{R}/logs/gather/codeflow.log",
        params:
            settings=PLAN.gather("codeflow").to_params(),
        localrule: True
        conda:
            "../../envs/cpu.yaml"
        script:
            "../scripts/gather.py"


rule codeflow_pairs:
    input:
        train=CODEFLOW_TASKS,
        trajectories=f"{R}/codeflow/trajectories.parquet",
    output:
        pairs=f"{R}/codeflow/pairs-{{rejected_rule}}.parquet",
        rejected=f"{R}/codeflow/pairs-{{rejected_rule}}.rejected.parquet",
    log:
        f"{R}/logs/codeflow_pairs/{{rejected_rule}}.log",
    benchmark:
        f"{R}/benchmarks/codeflow_pairs/{{rejected_rule}}.tsv",
    params:
        settings=lambda w: PLAN.codeflow_pairs(w.rejected_rule).to_params(),
    resources:
        # the judge is the teacher: a model job when it is on
        **({"gpu": model_gpus(PLAN.teacher_backend())} if config["codeflow"]["judge"] else {}),
    conda:
        model_env(PLAN.teacher_backend()) if config["codeflow"]["judge"] else "../../envs/cpu.yaml"
    script:
        "../scripts/codeflow_pairs.py"
