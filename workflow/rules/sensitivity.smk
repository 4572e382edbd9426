# The fault-sensitivity probe: does the model prefer the correct code over its buggy twin?


rule heldout_twins:
    output:
        pairs=f"{R}/bugs/heldout_twins.parquet",
        rejected=f"{R}/bugs/heldout_twins.rejected.parquet",
    log:
        f"{R}/logs/heldout_twins.log",
    benchmark:
        f"{R}/benchmarks/heldout_twins.tsv",
    params:
        settings=PLAN.heldout_twins().to_params(),
    threads: 2
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/heldout_twins.py"


rule probe_pairs:
    input:
        twins=f"{R}/bugs/heldout_twins.parquet",
    output:
        pairs=f"{R}/bugs/probe_pairs.parquet",
    log:
        f"{R}/logs/probe_pairs.log",
    benchmark:
        f"{R}/benchmarks/probe_pairs.tsv",
    params:
        settings=PLAN.probe_pairs().to_params(),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/probe_pairs.py"


rule sensitivity:
    input:
        model=trained_model_input,
        pairs=f"{R}/bugs/probe_pairs.parquet",
    output:
        f"{R}/eval/{{experiment}}/bug_sensitivity.json",
    log:
        f"{R}/logs/sensitivity/{{experiment}}.log",
    benchmark:
        f"{R}/benchmarks/sensitivity/{{experiment}}.tsv",
    params:
        settings=lambda w: PLAN.sensitivity(model_for(w.experiment)).to_params(),
    threads: 2
    resources:
        gpu=1,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/sensitivity.py"
