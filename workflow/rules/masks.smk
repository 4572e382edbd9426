# Training examples with their error-sensitive token masks, in the student's tokenisation.


rule masks:
    input:
        pairs=lambda w: pairs_file(w.source),
    output:
        masks=f"{R}/masks/{{kind}}_{{source}}.parquet",
        rejected=f"{R}/masks/{{kind}}_{{source}}.rejected.parquet",
    log:
        f"{R}/logs/masks/{{kind}}_{{source}}.log",
    params:
        settings={"student": config["student"]["model"], "max_length": config["train"]["max_length"], "seed": config["seed"]},
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/masks.py"
