# Wrong-but-similar twins: universalmutator, CCT's AST bug types, FGit's teacher LLM.


rule mutate:
    input:
        train=f"{R}/data/train.parquet",
    output:
        pairs=f"{R}/bugs/pairs_{{mut_source}}.parquet",
        rejected=f"{R}/bugs/pairs_{{mut_source}}.rejected.parquet",
    log:
        f"{R}/logs/mutate/{{mut_source}}.log",
    benchmark:
        f"{R}/benchmarks/mutate/{{mut_source}}.tsv",
    params:
        settings=lambda w: PLAN.mutate(w.mut_source).to_params(),
    threads: 2
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/mutate.py"


rule teacher_variants:
    input:
        train=f"{R}/data/train.parquet",
    output:
        shard_file(f"{R}/bugs/teacher.parquet", "teacher_variants"),
    log:
        per_shard(f"{R}/logs/teacher_variants", ".log", "teacher_variants"),
    benchmark:
        per_shard(f"{R}/benchmarks/teacher_variants", ".tsv", "teacher_variants"),
    params:
        settings=PLAN.teacher().to_params(),
    threads: 2
    resources:
        gpu=model_gpus(PLAN.teacher_backend()),
    conda:
        model_env(PLAN.teacher_backend())
    script:
        "../scripts/teacher_variants.py"


if sharded("teacher_variants"):

    rule gather_teacher_variants:
        input:
            parts=shard_files(f"{R}/bugs/teacher.parquet", "teacher_variants"),
        output:
            f"{R}/bugs/teacher.parquet",
        log:
            f"{R}/logs/gather/teacher_variants.log",
        params:
            settings=PLAN.gather("teacher_variants").to_params(),
        localrule: True
        conda:
            "../../envs/cpu.yaml"
        script:
            "../scripts/gather.py"


rule select_pairs:
    input:
        train=f"{R}/data/train.parquet",
        candidates=f"{R}/bugs/teacher.parquet",
    output:
        pairs=f"{R}/bugs/pairs_teacher.parquet",
        rejected=f"{R}/bugs/pairs_teacher.rejected.parquet",
    log:
        f"{R}/logs/select_pairs.log",
    benchmark:
        f"{R}/benchmarks/select_pairs.tsv",
    params:
        settings=PLAN.select_pairs().to_params(),
    threads: 2
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/select_pairs.py"
