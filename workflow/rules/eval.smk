# Generation (a model job) and scoring in the sandbox (a CPU job).


rule generate:
    input:
        bench=f"{R}/data/bench/{{prompt_set}}.parquet",
        model=trained_model_input,
    output:
        shard_file(f"{R}/eval/{{experiment}}/{{prompt_set}}.samples.jsonl", "generate"),
    log:
        per_shard(f"{R}/logs/generate/{{experiment}}/{{prompt_set}}", ".log", "generate"),
    benchmark:
        per_shard(f"{R}/benchmarks/generate/{{experiment}}/{{prompt_set}}", ".tsv", "generate"),
    params:
        settings=lambda w: PLAN.generate(model_for(w.experiment)).to_params(),
    threads: 2
    resources:
        gpu=1,
    conda:
        "../../envs/vllm.yaml" if config["generation"]["backend"] == "vllm" else "../../envs/train.yaml"
    script:
        "../scripts/generate.py"


rule score:
    input:
        samples=samples_for,
        bench=lambda w: f"{R}/data/bench/{PROMPT_SET[w.benchmark]}.parquet",
    output:
        shard_file(f"{R}/eval/{{experiment}}/{{benchmark}}.json", "score"),
    log:
        per_shard(f"{R}/logs/score/{{experiment}}/{{benchmark}}", ".log", "score"),
    benchmark:
        per_shard(f"{R}/benchmarks/score/{{experiment}}/{{benchmark}}", ".tsv", "score"),
    params:
        settings=lambda w: PLAN.score(w.benchmark).to_params(),
    threads: 2
    conda:
        score_env
    script:
        "../scripts/score.py"


if sharded("generate"):

    rule gather_generate:
        input:
            parts=shard_files(f"{R}/eval/{{experiment}}/{{prompt_set}}.samples.jsonl", "generate"),
        output:
            f"{R}/eval/{{experiment}}/{{prompt_set}}.samples.jsonl",
        log:
            f"{R}/logs/gather/generate/{{experiment}}/{{prompt_set}}.log",
        params:
            settings=PLAN.gather("generate").to_params(),
        localrule: True
        conda:
            "../../envs/cpu.yaml"
        script:
            "../scripts/gather.py"


if sharded("score"):

    rule gather_score:
        input:
            parts=shard_files(f"{R}/eval/{{experiment}}/{{benchmark}}.json", "score"),
            bench=lambda w: f"{R}/data/bench/{PROMPT_SET[w.benchmark]}.parquet",
        output:
            f"{R}/eval/{{experiment}}/{{benchmark}}.json",
        log:
            f"{R}/logs/gather/score/{{experiment}}/{{benchmark}}.log",
        params:
            settings=lambda w: PLAN.gather("score", w.benchmark).to_params(),
        localrule: True
        conda:
            "../../envs/cpu.yaml"
        script:
            "../scripts/gather.py"
