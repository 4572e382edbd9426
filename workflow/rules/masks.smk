# Training examples with their error-sensitive token masks, in the student's tokenisation.


rule masks:
    input:
        pairs=lambda w: pairs_file(w.source),
        # FGit trains every task of the table: a task without a pair is a plain SFT row
        tasks=lambda w: [f"{R}/data/train.parquet"] if w.kind.startswith("fgit-") else [],
    output:
        masks=f"{R}/masks/{{kind}}_{{source}}.parquet",
        rejected=f"{R}/masks/{{kind}}_{{source}}.rejected.parquet",
    log:
        f"{R}/logs/masks/{{kind}}_{{source}}.log",
    benchmark:
        f"{R}/benchmarks/masks/{{kind}}_{{source}}.tsv",
    params:
        settings=lambda w: PLAN.masks(w.kind).to_params(),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/masks.py"
