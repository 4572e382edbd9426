# CodeFlow: iterative debugging until the tests pass; IterPref pairs.


rule codeflow:
    input:
        train=CODEFLOW_TASKS,
        mutants=CODEFLOW_MUTANTS if config["codeflow"]["start"] == "mutant" else [],
    output:
        trajectories=f"{R}/codeflow/trajectories.parquet",
        pairs=f"{R}/codeflow/pairs.parquet",
        rejected=f"{R}/codeflow/pairs.rejected.parquet",
    log:
        f"{R}/logs/codeflow.log",
    benchmark:
        f"{R}/benchmarks/codeflow.tsv",
    params:
        settings=PLAN.codeflow().to_params(),
    threads: 2
    resources:
        gpu=1,
    conda:
        "../../envs/vllm.yaml" if config["generation"]["backend"] == "vllm" else "../../envs/train.yaml"
    script:
        "../scripts/codeflow.py"


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
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/codeflow_pairs.py"
