# Tables and plots of every experiment x benchmark.


rule report:
    input:
        scores=score_files(),
    output:
        summary=report(f"{R}/report/summary.csv", category="Summary", caption="../report/summary.rst"),
        markdown=f"{R}/report/report.md",
    log:
        f"{R}/logs/report.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/report.py"
