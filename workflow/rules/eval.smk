# Generation (a model job) and scoring in the sandbox (a CPU job).


rule generate:
    input:
        bench=f"{R}/data/bench/{{prompt_set}}.parquet",
        model=trained_model_input,
    output:
        shard_file(f"{R}/eval/{{experiment}}/{{prompt_set}}.samples.jsonl"),
    log:
        per_shard(f"{R}/logs/generate/{{experiment}}/{{prompt_set}}", ".log"),
    benchmark:
        per_shard(f"{R}/benchmarks/generate/{{experiment}}/{{prompt_set}}", ".tsv"),
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
        shard_file(f"{R}/eval/{{experiment}}/{{benchmark}}.json"),
    log:
        per_shard(f"{R}/logs/score/{{experiment}}/{{benchmark}}", ".log"),
    benchmark:
        per_shard(f"{R}/benchmarks/score/{{experiment}}/{{benchmark}}", ".tsv"),
    params:
        settings=lambda w: PLAN.score(w.benchmark).to_params(),
    threads: 2
    conda:
        score_env
    script:
        "../scripts/score.py"


if SHARDED:

    rule gather_generate:
        input:
            parts=shard_files(f"{R}/eval/{{experiment}}/{{prompt_set}}.samples.jsonl"),
        output:
            f"{R}/eval/{{experiment}}/{{prompt_set}}.samples.jsonl",
        log:
            f"{R}/logs/gather/generate/{{experiment}}/{{prompt_set}}.log",
        params:
            settings=PLAN.gather("generate").to_params(),
        localrule: True
        script:
            "../scripts/gather.py"

    rule gather_score:
        input:
            parts=shard_files(f"{R}/eval/{{experiment}}/{{benchmark}}.json"),
            bench=lambda w: f"{R}/data/bench/{PROMPT_SET[w.benchmark]}.parquet",
        output:
            f"{R}/eval/{{experiment}}/{{benchmark}}.json",
        log:
            f"{R}/logs/gather/score/{{experiment}}/{{benchmark}}.log",
        params:
            settings=lambda w: PLAN.gather("score", w.benchmark).to_params(),
        localrule: True
        script:
            "../scripts/gather.py"
