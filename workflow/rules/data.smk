# Training table and benchmark tables.


rule prepare_train:
    output:
        f"{R}/data/train.parquet",
    log:
        f"{R}/logs/prepare_train.log",
    benchmark:
        f"{R}/benchmarks/prepare_train.tsv",
    params:
        settings=PLAN.train_table("train").to_params(),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/prepare_train.py"


rule prepare_codeflow_train:
    output:
        f"{R}/data/codeflow_train.parquet",
    log:
        f"{R}/logs/prepare_codeflow_train.log",
    benchmark:
        f"{R}/benchmarks/prepare_codeflow_train.tsv",
    params:
        settings=PLAN.train_table("codeflow_train").to_params() if config["data"]["codeflow_train"] else {},
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/prepare_codeflow_train.py"


rule prepare_benchmark:
    output:
        f"{R}/data/bench/{{prompt_set}}.parquet",
    log:
        f"{R}/logs/prepare_benchmark/{{prompt_set}}.log",
    benchmark:
        f"{R}/benchmarks/prepare_benchmark/{{prompt_set}}.tsv",
    params:
        settings=lambda w: PLAN.prepare_benchmark(w.prompt_set).to_params(),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/prepare_benchmark.py"
