# Training table and benchmark tables.


rule prepare_train:
    output:
        f"{R}/data/train.parquet",
    log:
        f"{R}/logs/prepare_train.log",
    params:
        settings={"train": config["data"]["train"], "seed": config["seed"]},
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/prepare_train.py"


rule prepare_codeflow_train:
    output:
        f"{R}/data/codeflow_train.parquet",
    log:
        f"{R}/logs/prepare_codeflow_train.log",
    params:
        settings={"train": config["data"].get("codeflow_train"), "seed": config["seed"]},
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/prepare_codeflow_train.py"


rule prepare_benchmark:
    output:
        f"{R}/data/bench/{{prompt_set}}.parquet",
    log:
        f"{R}/logs/prepare_benchmark/{{prompt_set}}.log",
    params:
        settings={"seed": config["seed"], "train": config["data"]["train"], "limit": config["data"].get("benchmark_limit")},
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/prepare_benchmark.py"
