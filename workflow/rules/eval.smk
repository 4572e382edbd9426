# Generation (a model job) and scoring in the sandbox (a CPU job).


rule generate:
    input:
        bench=f"{R}/data/bench/{{prompt_set}}.parquet",
        model=trained_model_input,
    output:
        f"{R}/eval/{{experiment}}/{{prompt_set}}.samples.jsonl",
    log:
        f"{R}/logs/generate/{{experiment}}/{{prompt_set}}.log",
    benchmark:
        f"{R}/benchmarks/generate/{{experiment}}/{{prompt_set}}.tsv",
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
        f"{R}/eval/{{experiment}}/{{benchmark}}.json",
    log:
        f"{R}/logs/score/{{experiment}}/{{benchmark}}.log",
    benchmark:
        f"{R}/benchmarks/score/{{experiment}}/{{benchmark}}.tsv",
    params:
        settings=lambda w: PLAN.score(w.benchmark).to_params(),
    threads: 2
    conda:
        score_env
    script:
        "../scripts/score.py"
