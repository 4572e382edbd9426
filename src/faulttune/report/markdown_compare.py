"""report.md sections that make comparisons honest: against the baseline (paired bootstrap),
the spread over training seeds, the training budgets, the probe with its intervals, and where the
time goes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faulttune.report.comparisons import BUDGET_MATCH, Delta, budget_check, few_step_runs
from faulttune.report.data import ReportData
from faulttune.report.plots import PLOT_FILES, part_order
from faulttune.report.readers import PROBE_PARTS, Row, Timings, probe_parts
from faulttune.report.tables import difference_text, markdown_table, mean_sd_text, with_interval
from faulttune.stats import CONFIDENCE, N_RESAMPLES

PERCENT = f"{100 * CONFIDENCE:.0f} %"
DIFFERENCE_NOTE = (
    "How to read a difference: a pass@1 gap on 16 tasks is one or two tasks, so look at the "
    "paired test before you believe it. An experiment and its baseline (the registry's, or its "
    "`baseline:` key; a seed replica's is the baseline's replica of the same seed) are scored on "
    f"the same tasks, so the report resamples the tasks (a paired bootstrap, {N_RESAMPLES:,} "
    f"resamples, seed 0) and gives the difference with its {PERCENT} interval: a difference "
    "is **significant only when the interval excludes 0**. With `seeds`, *exceeds seed spread* "
    "says whether the difference is larger than the larger standard deviation over training seeds "
    "of the two experiments (in brackets); a difference smaller than that spread is noise. The "
    "fault-sensitivity probe gets the same treatment over its pairs, on its per-token headline, "
    "which does not favour the shorter program."
)
SEEDS_NOTE = (
    "Mean ± sample standard deviation over each experiment's training seeds (`seeds:`; "
    "`<name>@seed=<s>` are the replicas of `<name>`; the data, bugs and teacher samples are the "
    "same for every seed)."
)
BUDGET_NOTE = (
    "From each model's `budget.json`: distinct source tasks trained on, training examples (masks "
    "rows drawn over the run), optimiser steps, tokens that carried a loss term, units per epoch "
    "(what the batch size counts: a task for SFT, CCT and FGit, a pair for the DPO family), steps "
    "per epoch, batch size, and rows left out as longer than `max_length`. *Same budget* compares "
    f"{', '.join(BUDGET_MATCH.values())} with the baseline's."
)
SENSITIVITY_NOTE = (
    "Log-likelihood of the correct vs the buggy program as the answer to the same prompt "
    "(`faulttune.sensitivity`). Headline: `prefer_correct` is the fraction of pairs whose correct "
    "program has the higher per-token mean log-likelihood over the region where the two differ, "
    f"`mean_margin` the mean of that margin, each with its {PERCENT} bootstrap interval over "
    "pairs. `prefer_correct_sum` / `mean_margin_sum` use the summed log-likelihood (secondary: it "
    "favours the shorter program; `buggy shorter` is the share of pairs where the buggy one is "
    "shorter). `overall` is every pair, `humanevalfix` the HumanEvalFix pairs, `twins` the "
    "held-out mutation/CCT twins."
)
TIMINGS_NOTE = (
    "Wall time and peak memory of every job so far, per rule, slowest first (Snakemake's "
    "`benchmark:` files in `results/<run>/benchmarks/`; a `report` row is the previous report's). "
    "Informational: a new timing never reruns the report. The same table is in `timings.csv`."
)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def delta_row(d: Delta) -> Row:
    row: Row = {"experiment": d.experiment, "baseline": d.baseline, "benchmark": d.benchmark}
    if d.difference is None:
        return {**row, "delta": d.note}
    spread = "" if d.seed_spread is None else f" ({d.seed_spread:.3f})"
    return {
        **row,
        "delta": difference_text(d.difference),
        "significant": _yes_no(d.difference.significant),
        "n": d.difference.n,
        "spread": _yes_no(d.exceeds_spread) + spread,
    }


def baseline_section(data: ReportData) -> str:
    title = "## Against the baseline"
    if not data.score_deltas and not data.probe_deltas:
        return f"{title}\n\nNo trained experiment has both its scores and a baseline in this run."
    columns = ["experiment", "baseline", "benchmark", "delta", "significant", "n"]
    headers = ["experiment", "baseline", "benchmark", f"Δ pass@1 [{PERCENT} CI]", "significant",
               "tasks"]
    if any(d.seed_spread is not None for d in [*data.score_deltas, *data.probe_deltas]):
        columns.append("spread")
        headers.append("exceeds seed spread (sd)")
    parts = [title, DIFFERENCE_NOTE]
    if data.score_deltas:
        parts.append(markdown_table([delta_row(d) for d in data.score_deltas], columns, headers))
    if data.probe_deltas:
        probe_headers = [*headers[:2], "probe statistic", f"Δ [{PERCENT} CI]", "significant",
                         "pairs", *headers[6:]]
        parts += [
            "The fault-sensitivity probe (headline statistics), paired over its pairs:",
            markdown_table([delta_row(d) for d in data.probe_deltas], columns, probe_headers),
        ]
    return "\n\n".join(parts)


def seeds_section(data: ReportData) -> str:
    title = "## Spread over training seeds"
    if not data.score_spreads and not data.probe_spreads:
        return (f"{title}\n\nOne training seed per experiment: no spread to show (set `seeds: "
                "[0, 1, 2]` to train every experiment under three seeds).")
    parts = [title, SEEDS_NOTE]
    for spreads, headers in (
        (data.score_spreads, ("experiment", "seeds", "benchmark", "pass@1 mean ± sd")),
        (data.probe_spreads, ("experiment", "seeds", "probe statistic", "mean ± sd")),
    ):
        if spreads:
            rows = [{"experiment": family, "n": s.n, "key": key, "value": mean_sd_text(s)}
                    for (family, key), s in spreads.items()]
            parts.append(markdown_table(rows, ("experiment", "n", "key", "value"), headers))
    return "\n\n".join(parts)


def budget_row(name: str, data: ReportData) -> Row:
    budget = data.budgets[name]
    row: Row = {
        "experiment": name,
        "method": (data.experiments.get(name) or {}).get("method", "unknown"),
        "baseline": (data.experiments.get(name) or {}).get("baseline") or "",
    }
    if budget is None:
        return {**row, "train_tasks": "no budget.json"}
    same, detail = budget_check(name, data.experiments, data.budgets)
    verdict = {True: "yes", False: f"**no**: {detail}", None: f"- ({detail})"}[same]
    return {**budget, **row, "same": verdict}


def budget_section(data: ReportData) -> str:
    title = "## Training budget"
    if not data.budgets:
        return f"{title}\n\nNo trained models in this run."
    names = [n for n in data.experiments if n in data.budgets]
    names += sorted(set(data.budgets) - set(names))
    columns = ("experiment", "method", "baseline", "train_tasks", "train_examples", "train_steps",
               "train_tokens", "units", "steps_per_epoch", "batch_size", "left_out_too_long",
               "same")
    headers = ("experiment", "method", "baseline", "tasks", "examples", "optimiser steps",
               "loss tokens", "units per epoch", "steps per epoch", "batch", "left out (too long)",
               "same budget as baseline")
    parts = [title, BUDGET_NOTE, markdown_table([budget_row(n, data) for n in names], columns,
                                                headers)]
    minimum, few = few_step_runs(data.budgets)
    if few:
        parts.append("\n".join(
            f"- **Warning:** `{name}` trains for {steps} optimiser steps, under {minimum}: it "
            "hardly trains, so its differences say little."
            for name, steps in few
        ))
    return "\n\n".join(parts)


def _probe_cell(summary: Mapping[str, Any], key: str) -> str:
    value = summary.get(key)
    if not isinstance(value, (int, float)):
        return ""
    return with_interval(value, summary.get(f"{key}_low"), summary.get(f"{key}_high"))


def sensitivity_section(sensitivity: Mapping[str, Mapping[str, Any]]) -> str:
    if not sensitivity:
        return "## Fault sensitivity\n\nNo sensitivity probes in this run."
    rows = [
        {"experiment": exp, "part": part, "n": s.get("n", ""),
         "pc": _probe_cell(s, "prefer_correct"), "mm": _probe_cell(s, "mean_margin"),
         **{k: s.get(k, "") for k in ("prefer_correct_sum", "mean_margin_sum", "buggy_shorter")}}
        for exp, data in sorted(sensitivity.items())
        for part, s in probe_parts(data).items()
        if part in PROBE_PARTS
    ]
    columns = ["experiment", "part", "n", "pc", "mm", "prefer_correct_sum", "mean_margin_sum",
               "buggy_shorter"]
    headers = ["experiment", "pairs", "n", f"prefer_correct [{PERCENT} CI]",
               f"mean_margin [{PERCENT} CI]", "prefer_correct_sum", "mean_margin_sum", "buggy shorter"]
    parts = ["## Fault sensitivity", SENSITIVITY_NOTE, markdown_table(rows, columns, headers)]
    by_type = {exp: probe_parts(data) for exp, data in sorted(sensitivity.items())}
    types = sorted({t for per in by_type.values() for t in per} - set(PROBE_PARTS), key=part_order)
    if types:
        type_rows = [
            {"bug_type": t, **{exp: _probe_cell(per.get(t, {}), "prefer_correct")
                               for exp, per in by_type.items()}}
            for t in types
        ]
        parts += [
            f"`prefer_correct` (headline) [{PERCENT} CI] per HumanEvalFix bug type:",
            markdown_table(type_rows, ["bug_type", *by_type], ["bug type", *by_type]),
        ]
    parts.append(f"![sensitivity]({PLOT_FILES['sensitivity']})")
    return "\n\n".join(parts)


def timings_section(timings: Timings) -> str:
    title = "## Where the time goes"
    if not timings.rules:
        return f"{title}\n\nNo benchmark files in this run yet."
    rows: list[Row] = [
        {"rule": r.rule, "jobs": r.jobs, "minutes": f"{r.seconds / 60:.1f}",
         "slowest": r.slowest_job or "-", "slowest_min": f"{r.slowest_seconds / 60:.1f}",
         "rss": "-" if r.max_rss_mb is None else f"{r.max_rss_mb:.0f}"}
        for r in timings.rules
    ]
    total = sum(r.seconds for r in timings.rules)
    rows.append({"rule": "**all jobs**", "jobs": sum(r.jobs for r in timings.rules),
                 "minutes": f"{total / 60:.1f}"})
    parts = [
        title,
        TIMINGS_NOTE,
        markdown_table(rows, ("rule", "jobs", "minutes", "slowest", "slowest_min", "rss"),
                       ("rule", "jobs", "minutes", "slowest job", "slowest job (min)", "peak MB")),
    ]
    if timings.unreadable:
        parts.append(f"Unreadable benchmark files (left out): {_names(timings.unreadable)}.")
    return "\n\n".join(parts)


def _names(items: Sequence[str]) -> str:
    return ", ".join(f"`{i}`" for i in items)
