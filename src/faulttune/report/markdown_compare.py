"""report.md sections that make comparisons honest: against the baseline (paired bootstrap),
the spread over training seeds, the training budgets, the probe with its intervals, and where the
time goes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faulttune.report.comparisons import (
    BUDGET_MATCH,
    Pooled,
    budget_differences,
    few_step_runs,
)
from faulttune.report.data import ReportData
from faulttune.report.plots import PLOT_FILES, part_order
from faulttune.report.readers import PROBE_PARTS, Row, Timings, probe_parts
from faulttune.report.tables import (
    difference_text,
    markdown_table,
    mean_sd_text,
    p_text,
    with_interval,
)
from faulttune.stats import CONFIDENCE

PERCENT = f"{100 * CONFIDENCE:.0f} %"
DIFFERENCE_NOTE = (
    "How to read a difference. Every trained experiment is compared with its baseline (the "
    "registry's, or its `baseline:` key) on the same tasks, **pooled over its training seeds**: "
    "seed *s* of the experiment against seed *s* of its baseline, one estimate per measure with "
    f"its {PERCENT} interval (a two-way seed × task model: tasks and training seeds are both "
    "samples; `faulttune.stats.pooled_difference`). The p-value is a t-test on that model; for a "
    "0/1 measure (pass@1, a pair's preference) it is also an exact sign-flip test over tasks (with "
    "one seed, the exact McNemar test), and the larger p counts: a bootstrap interval is "
    "anti-conservative when few tasks differ. Every comparison below is one family: "
    "**significant** means its **Holm-adjusted** p-value is below "
    f"{1 - CONFIDENCE:.2f}. *Seed sd of Δ* is the standard deviation over seeds of the per-seed "
    "differences (a difference smaller than it is within seed noise). *MDE* is the minimum "
    "detectable effect: the true difference this design finds with 80 % power at α = 0.05, "
    "so a null result says the effect is probably smaller than that. Measures: pass@1 per "
    "benchmark (greedy, 0/1 per task); the probe's margin over the tokens where the correct and "
    "the buggy program differ (`mean_margin`, higher = prefers correct code), the share of pairs "
    "with a positive margin (`prefer_correct`), and the held-out per-token NLL of the correct "
    "program (`nll`, **lower** is better), each per probe part (`twins`: held-out mutation and "
    "CCT twins; `humanevalfix`: HumanEvalFix's human-written bugs)."
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
    "per epoch, batch size, rows left out as longer than `max_length`, and FGit's tasks trained as "
    "plain SFT rows because their wrong twin exceeds `max_length` (the task is kept, unweighted). "
    "*Same units and "
    f"steps* compares {', '.join(BUDGET_MATCH.values())} with the baseline's; *differences from "
    "the baseline* names every figure that differs, with its ratio (by design CCT trains more "
    "examples and loss tokens than SFT in the same steps: its L_seq samples train the correct code "
    "again; `cct~beta=0.0` leaves them out)."
)
SENSITIVITY_NOTE = (
    "Log-likelihood of the correct vs the buggy program as the answer to the same prompt "
    "(`faulttune.sensitivity`), on pairs drawn at random (seeded) from held-out verified twins, "
    "chosen by no model, the same for every experiment. Headline: `mean_margin` is the mean, over "
    "tasks, of the correct minus the buggy program's mean log-prob over the tokens where the two "
    "differ (common prefix and suffix dropped); `prefer_correct` the share of pairs where that "
    "margin is positive; `nll` the per-token NLL of the correct program (held-out code the model "
    f"should still write well; lower is better); each with its {PERCENT} interval over tasks. "
    "`prefer_correct_sum` / `mean_margin_sum` use the summed log-likelihood of the whole response "
    "(secondary: it favours the shorter program; `buggy shorter` is the share of pairs where the "
    "buggy one is shorter). `overall` is every pair, `humanevalfix` the HumanEvalFix pairs, "
    "`twins` the held-out mutation/CCT twins."
)
TIMINGS_NOTE = (
    "Wall time and peak memory of every job so far, per rule, slowest first (Snakemake's "
    "`benchmark:` files in `results/<run>/benchmarks/`; a `report` row is the previous report's). "
    "Informational: a new timing never reruns the report. The same table is in `timings.csv`."
)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def comparison_row(p: Pooled) -> Row:
    row: Row = {"experiment": p.experiment, "baseline": p.baseline, "measure": p.measure.label,
                "note": p.note}
    c = p.comparison
    if c is None:
        return row
    mde = p.minimum_detectable
    return {
        **row,
        "delta": difference_text(c),
        "p": p_text(c.p_value),
        "p_holm": p_text(p.p_holm),
        "significant": "**yes**" if p.significant else _yes_no(p.significant),
        "n": f"{c.n_seeds} × {c.n_tasks}",
        "spread": "-" if c.seed_spread is None else f"{c.seed_spread:.3f}",
        "mde": "-" if mde is None else f"{mde:.3f}",
    }


def baseline_section(data: ReportData) -> str:
    title = "## Against the baseline"
    if not data.comparisons:
        return f"{title}\n\nNo trained experiment has both its results and a baseline in this run."
    columns = ["experiment", "baseline", "measure", "delta", "p", "p_holm", "significant", "n",
               "spread", "mde", "note"]
    headers = ["experiment", "baseline", "measure", f"Δ pooled [{PERCENT} CI]", "p", "p (Holm)",
               "significant (Holm)", "seeds × tasks", "seed sd of Δ", "MDE (80 %)", "note"]
    tested = sum(p.p_holm is not None for p in data.comparisons)
    return "\n\n".join([
        title, DIFFERENCE_NOTE,
        f"{tested} comparisons in the Holm family.",
        markdown_table([comparison_row(p) for p in data.comparisons], columns, headers),
        f"![comparisons]({PLOT_FILES['comparisons']})",
    ])


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
    same, detail = budget_differences(name, data.experiments, data.budgets)
    verdict = {True: "yes", False: "**no**", None: "-"}[same]
    return {**budget, **row, "same": verdict, "differences": detail}


def budget_section(data: ReportData) -> str:
    title = "## Training budget"
    if not data.budgets:
        return f"{title}\n\nNo trained models in this run."
    names = [n for n in data.experiments if n in data.budgets]
    names += sorted(set(data.budgets) - set(names))
    columns = ("experiment", "method", "baseline", "train_tasks", "train_examples", "train_steps",
               "train_tokens", "units", "steps_per_epoch", "batch_size", "left_out_too_long",
               "plain_twin_too_long", "same", "differences")
    headers = ("experiment", "method", "baseline", "tasks", "examples", "optimiser steps",
               "loss tokens", "units per epoch", "steps per epoch", "batch", "left out (too long)",
               "plain rows (twin too long)", "same units and steps", "differences from the baseline")
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
         "nll": _probe_cell(s, "nll"),
         **{k: s.get(k, "") for k in ("prefer_correct_sum", "mean_margin_sum", "buggy_shorter")}}
        for exp, data in sorted(sensitivity.items())
        for part, s in probe_parts(data).items()
        if part in PROBE_PARTS
    ]
    columns = ["experiment", "part", "n", "pc", "mm", "nll", "prefer_correct_sum",
               "mean_margin_sum", "buggy_shorter"]
    headers = ["experiment", "pairs", "n", f"prefer_correct [{PERCENT} CI]",
               f"mean_margin [{PERCENT} CI]", f"nll [{PERCENT} CI]", "prefer_correct_sum",
               "mean_margin_sum", "buggy shorter"]
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
