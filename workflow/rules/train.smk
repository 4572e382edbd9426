# Fine-tuning: one trainer, the loss chosen by the experiment's method.


rule train:
    input:
        examples=experiment_masks,
    output:
        model=directory(f"{R}/models/{{experiment}}"),
    log:
        f"{R}/logs/train/{{experiment}}.log",
    params:
        settings=lambda w: {"experiment": EXPERIMENTS[w.experiment], "train": config["train"], "seed": config["seed"]},
    threads: 2
    resources:
        gpu=config["train"]["num_processes"],
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train.py"
