# Fine-tuning: one trainer, the loss chosen by the experiment's method.


rule train:
    input:
        examples=lambda w: masks_files(w.experiment),
        # the models its method needs first (its registry entry's requires), trained by this rule too
        models=required_models,
    output:
        model=directory(f"{R}/models/{{experiment}}"),
    log:
        f"{R}/logs/train/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{experiment}}.tsv",
    params:
        settings=lambda w: PLAN.train(w.experiment).to_params(),
    threads: 2
    # the longest jobs start first, so that evaluations fill in beside them, not after them; the
    # models another experiment's training needs first of all
    priority: training_priority
    resources:
        gpu=config["train"]["num_processes"],
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train.py"
