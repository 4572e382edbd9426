# Tables, plots, mask examples, the contamination check and the run manifest; every output goes
# into `snakemake --report`.


rule contamination:
    input:
        tables=[f"{R}/data/train.parquet", *training_pairs()],
    output:
        report(f"{R}/report/contamination.json", caption="../report/contamination.rst", category="Provenance"),
    log:
        f"{R}/logs/contamination.log",
    benchmark:
        f"{R}/benchmarks/contamination.tsv",
    params:
        settings=PLAN.contamination().to_params(),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/contamination.py"


rule report:
    input:
        **report_inputs(),
    output:
        summary=report(f"{R}/report/summary.csv", caption="../report/summary.rst", category="Summary"),
        markdown=report(f"{R}/report/report.md", caption="../report/report_md.rst", category="Summary"),
        timings=report(f"{R}/report/timings.csv", caption="../report/timings.rst", category="Provenance"),
        pass_at_1=report(f"{R}/report/plots/pass_at_1.png", caption="../report/plots.rst", category="pass@1"),
        sweeps=report(f"{R}/report/plots/sweeps.png", caption="../report/sweeps.rst", category="pass@1"),
        codeflow=report(f"{R}/report/plots/codeflow.png", caption="../report/codeflow.rst", category="CodeFlow"),
        training=report(f"{R}/report/plots/training.png", caption="../report/training.rst", category="Training"),
        sensitivity=report(
            f"{R}/report/plots/sensitivity.png", caption="../report/sensitivity.rst", category="Fault sensitivity"
        ),
        comparisons=report(
            f"{R}/report/plots/comparisons.png", caption="../report/comparisons.rst", category="Summary"
        ),
        masks=report(f"{R}/report/masks.html", caption="../report/masks.rst", category="Training"),
        manifest=report(f"{R}/report/manifest.json", caption="../report/manifest.rst", category="Provenance"),
        made=f"{R}/report/plots/made.json",
    log:
        f"{R}/logs/report.log",
    benchmark:
        f"{R}/benchmarks/report.tsv",
    params:
        settings=PLAN.report().to_params(),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/report.py"
