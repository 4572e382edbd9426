"""report.md: the run's sections (experiments, pass@1, the papers' numbers, pairs, CodeFlow,
training, plots, provenance) and :func:`render_markdown`, which puts them together with the
comparison sections of :mod:`faulttune.report.markdown_compare`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from faulttune.report import markdown_compare as compare
from faulttune.report.comparisons import pass_at_1_values, seed_spreads
from faulttune.report.data import ReportData
from faulttune.report.plots import PLOT_FILES
from faulttune.report.readers import PairCount, Row, load_papers
from faulttune.report.summary import DEMO_BENCHMARK, PARAM_COLUMNS, experiment_columns
from faulttune.report.tables import markdown_table

PAPER_MAIN_BENCHMARKS = ("humaneval", "humaneval_plus", "mbpp", "mbpp_plus")
BENCHMARK_ORDER = (DEMO_BENCHMARK, *PAPER_MAIN_BENCHMARKS, "humanevalfix")
SHORT_NAMES = {
    DEMO_BENCHMARK: "HE-split (demo)",
    "humaneval": "HE",
    "humaneval_plus": "HE+",
    "mbpp": "MBPP",
    "mbpp_plus": "MBPP+",
    "humanevalfix": "HEFix",
}
RESULTS_NOTE = (
    "Fractions in [0, 1], greedy, one sample per task. The same numbers are in `summary.csv`."
)
PAPERS_NOTE = (
    "pass@1 in **percent**. Rows marked **ours** are this run (an experiment trained under several "
    "seeds: the mean ± sd over its seeds); rows marked *paper* are the numbers "
    "the papers **published** (7B-class models, full benchmarks), transcribed from docs/methods.md "
    "into `faulttune/resources/papers.csv`; this run does not reproduce them. The CCT paper reports "
    "no table we could recover (up to ~4 points over instruction tuning on HumanEvalFix)."
)
CODEFLOW_NOTE = (
    "Share of tasks whose trajectory has passed by each iteration (iteration 0 is the first "
    "version: with `codeflow.start: mutant` it is a failing twin, so 0 % by construction). The "
    "IterPref paper's CodeFlow went from **36.7 %** at iteration 0 to **67.5 %** after five fix "
    "rounds (the paper's number: GPT-4o on its own tasks)."
)


def benchmark_key(name: str) -> tuple[int, str]:
    return (BENCHMARK_ORDER.index(name) if name in BENCHMARK_ORDER else len(BENCHMARK_ORDER), name)


def params_text(row: Mapping[str, Any]) -> str:
    keys = ("bugs", *(k for k in PARAM_COLUMNS if k != "seed"))
    return ", ".join(f"{k}={row[k]}" for k in keys if row.get(k, "") not in ("", None))


def ours_by_benchmark(data: ReportData) -> dict[str, dict[str, str]]:
    """label -> full benchmark name -> pass@1 in percent; an experiment with seed replicas is one
    row, the mean ± sd over its seeds."""
    spreads = seed_spreads(data.experiments, pass_at_1_values(data.scores), min_seeds=1)
    seeds: dict[str, int] = defaultdict(int)
    for (family, _), s in spreads.items():
        seeds[family] = max(seeds[family], s.n)
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for (family, bench), s in spreads.items():
        label = family if seeds[family] == 1 else f"{family} (mean ± sd of {seeds[family]} seeds)"
        sd = "" if s.std is None else f" ± {100 * s.std:.1f}"
        out[label][bench] = f"{100 * s.mean:.1f}{sd}"
    return out


def experiments_section(data: ReportData) -> str:
    scored = {r["experiment"] for r in data.rows}
    rows = []
    for name, exp in data.experiments.items():
        columns = experiment_columns(name, exp)
        rows.append({
            **columns,
            "params": params_text(columns),
            "results": "yes" if name in scored else "none yet",
        })
    return "## Experiments\n\n" + markdown_table(
        rows,
        ("experiment", "method", "params", "seed", "baseline", "results"),
        ("experiment", "method", "parameters", "training seed", "baseline", "results"),
    )


def results_section(data: ReportData) -> str:
    if not data.rows:
        return "## pass@1 (ours)\n\nNo score files in this run."
    columns = ("experiment", "method", "params", "benchmark", "pass_at_1_base", "pass_at_1_plus",
               "n_tasks_base")
    headers = ("experiment", "method", "parameters", "benchmark", "pass@1", "pass@1 (plus tests)",
               "tasks")
    table_rows = [{**r, "params": params_text(r)} for r in data.rows if r["benchmark"]]
    parts = ["## pass@1 (ours)", RESULTS_NOTE, markdown_table(table_rows, columns, headers)]
    if any(r["demo_split"] for r in data.rows):
        parts.append(
            f"`{DEMO_BENCHMARK}` is the **demo split**: the HumanEval tasks held out from the "
            "demo's training split. Its numbers only compare experiments of this run."
        )
    return "\n\n".join(parts)


def _paper_rows(papers: Sequence[Row], benchmarks: Sequence[str]) -> list[Row]:
    grouped: dict[tuple[str, str, str, str], Row] = {}
    for p in papers:
        if p["benchmark"] in benchmarks:
            key = (p["paper"], p["source_section"], p["model"], p["variant"])
            grouped.setdefault(key, {
                "source": f"paper: {p['paper']}, {p['source_section']}",
                "model": p["model"],
                "variant": p["variant"],
            })[p["benchmark"]] = p["pass_at_1"]
    return list(grouped.values())


def papers_section(settings: Any, data: ReportData, papers: Sequence[Row]) -> str:
    """Our rows and the papers' rows in one table, each row labelled with where it comes from."""
    ours = ours_by_benchmark(data)
    ours_benchmarks = {b for per in ours.values() for b in per}
    paper_benchmarks = {p["benchmark"] for p in papers}
    benchmarks = sorted(
        ours_benchmarks | (set(PAPER_MAIN_BENCHMARKS) | ours_benchmarks) & paper_benchmarks,
        key=benchmark_key,
    )
    source = f"**ours** (run `{settings.run}`)"
    table: list[Row] = [
        {"source": source, "model": settings.student, "variant": exp, **per}
        for exp, per in sorted(ours.items())
    ]
    table += [{k: f"{v:.1f}" if k in benchmarks else v for k, v in row.items()}
              for row in _paper_rows(papers, benchmarks)]
    headers = ["source", "model", "experiment / variant", *[SHORT_NAMES.get(b, b) for b in benchmarks]]
    return "\n\n".join([
        "## Beside the papers' published numbers",
        PAPERS_NOTE,
        markdown_table(table, ["source", "model", "variant", *benchmarks], headers),
    ])


def pairs_section(pairs: Mapping[str, PairCount]) -> str:
    if not pairs:
        return "## Training pairs\n\nNo pairs files in this run."
    ordered = sorted(pairs.values(), key=lambda c: c.source)
    counts = [
        {"source": c.source, "n_pairs": c.n_pairs,
         "n_rejected": "no rejected file" if c.n_rejected is None else c.n_rejected}
        for c in ordered
    ]
    reasons = [
        {"source": c.source, "reason": reason, "rows": n}
        for c in ordered
        for reason, n in sorted(c.by_reason.items(), key=lambda t: (-t[1], t[0]))
    ]
    parts = [
        "## Training pairs",
        markdown_table(counts, ("source", "n_pairs", "n_rejected"),
                       ("source", "pairs", "rejected rows")),
    ]
    if reasons:
        parts += ["Rejections by reason:", markdown_table(reasons, ("source", "reason", "rows"))]
    return "\n\n".join(parts)


def codeflow_section(curves: Mapping[str, list[tuple[int, float]]]) -> str:
    if not any(curves.values()):
        return "## CodeFlow\n\nNo CodeFlow trajectories in this run."
    rows = [
        {"run": label, "iteration": i, "pass_rate": f"{100 * rate:.1f} %"}
        for label, curve in curves.items()
        for i, rate in curve
    ]
    return "\n\n".join([
        "## CodeFlow: pass rate per iteration",
        CODEFLOW_NOTE,
        markdown_table(rows, ("run", "iteration", "pass_rate"), ("run", "iteration", "pass rate")),
        f"![CodeFlow]({PLOT_FILES['codeflow']})",
    ])


def training_section(logs: Mapping[str, Sequence[Row]]) -> str:
    if not logs:
        return "## Training\n\nNo train logs in this run."
    rows = [
        {
            "experiment": exp,
            "steps": len(rows),
            "last": ", ".join(f"{k}={v:.4g}" for k, v in sorted(rows[-1].items()) if k != "step")
            if rows else "",
        }
        for exp, rows in sorted(logs.items())
    ]
    return "\n\n".join([
        "## Training curves",
        "Last logged values per experiment:",
        markdown_table(rows, ("experiment", "steps", "last"),
                       ("experiment", "log lines", "last logged values")),
        f"![training]({PLOT_FILES['training']})",
    ])


def plots_section(made: Mapping[str, bool]) -> str:
    lines = [
        f"- [{kind}]({PLOT_FILES[kind]})" + ("" if ok else " (no data: placeholder)")
        for kind, ok in made.items()
    ]
    return "## Plots\n\n" + "\n".join(lines) + "\n\nMask examples: [masks.html](masks.html)."


def manifest_section(manifest: Mapping[str, Any]) -> str:
    git = manifest["git"]
    commit = (
        f"`{git['commit']}`" + (" (dirty)" if git["dirty"] else "") if git["commit"] else "unknown"
    )
    return (
        f"## Provenance\n\nCommit {commit}; config digest `{manifest['config_digest']}`; prompt "
        f"template hash `{manifest['template_hash']}`; {len(manifest['inputs'])} input files "
        "hashed. Details in [manifest.json](manifest.json)."
    )


def render_markdown(
    settings: Any, data: ReportData, made: Mapping[str, bool], manifest: Mapping[str, Any]
) -> str:
    header = (
        f"# faulttune report: run `{settings.run}`\n\nStudent `{settings.student}`, "
        f"training source `{settings.train_source}`, greedy decoding."
    )
    sections = [
        header,
        experiments_section(data),
        results_section(data),
        compare.baseline_section(data),
        compare.seeds_section(data),
        compare.budget_section(data),
        papers_section(settings, data, load_papers()),
        f"![pass@1]({PLOT_FILES['pass_at_1']})",
        f"![sweeps]({PLOT_FILES['sweeps']})",
        pairs_section(data.pairs),
        codeflow_section(data.curves),
        compare.sensitivity_section(data.sensitivity),
        training_section(data.logs),
        compare.timings_section(data.timings),
        plots_section(made),
        manifest_section(manifest),
    ]
    return "\n\n".join(sections) + "\n"
