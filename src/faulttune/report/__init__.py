"""The run's report in ``results/{run}/report/``: tables, comparisons with error bars, plots, the
papers' numbers beside ours, a mask viewer and the run manifest. Entry point: :func:`write_report`.

Inputs (every list may be empty; each part of the report degrades to a note or a "no data" plot):

- score files ``.../eval/{experiment}/{benchmark}.json``: ``{"pass_at_1", "n_samples", "results":
  [{"task_id", "status", ...}]}`` (pass@1 a fraction in [0, 1]; ``results`` give each task's
  pass rate for the paired bootstrap);
- probe results ``.../eval/{experiment}/bug_sensitivity.json`` (:mod:`faulttune.sensitivity`);
- pairs files ``.../bugs/pairs_{source}.parquet`` and ``.../codeflow/pairs.parquet`` (source
  ``codeflow``), each with ``*.rejected.parquet`` beside it (column ``reason``);
- CodeFlow ``trajectories.parquet`` (``task_id, iteration, passed``);
- train logs ``.../models/{experiment}/train_log.jsonl`` and budgets
  ``.../models/{experiment}/budget.json`` (:mod:`faulttune.training.budget`);
- masks parquet files (:mod:`faulttune.mask_table`), shown in ``masks.html``;
- not an input: the Snakemake benchmark files in ``<out_dir>/../benchmarks`` (the time table).

The experiments (method, parameters, seed, baseline, sweep, replica) are the settings' resolved
``experiments``; nothing re-expands the config. Modules, one job each: :mod:`.readers` (the input
files), :mod:`.comparisons` (seeds, baselines, budgets: the statistics), :mod:`.summary`
(``summary.csv`` and ``timings.csv``; column meanings there), :mod:`.data` (everything read once),
:mod:`.plots`, :mod:`.masks` (``masks.html``), :mod:`.markdown` and :mod:`.markdown_compare`
(``report.md``), :mod:`.tables` (markdown tables and number formats).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faulttune.io import rejected_path
from faulttune.report.data import ReportData, load_data
from faulttune.report.markdown import render_markdown
from faulttune.report.masks import write_masks_html
from faulttune.report.plots import (
    PLOT_FILES,
    placeholder_plot,
    plot_codeflow,
    plot_comparisons,
    plot_pass_at_1,
    plot_sensitivity,
    plot_sweeps,
    plot_training,
    sweep_points,
)
from faulttune.report.summary import SUMMARY_COLUMNS, write_summary, write_timings

__all__ = ["ALWAYS_WRITTEN", "PLOT_FILES", "SUMMARY_COLUMNS", "write_report"]

# Every file write_report always writes, relative to out_dir (for the rule's outputs).
ALWAYS_WRITTEN = (
    "summary.csv",
    "report.md",
    "timings.csv",
    "masks.html",
    "manifest.json",
    "plots/made.json",
    *PLOT_FILES.values(),
)


def write_plots(data: ReportData, plots_dir: Path) -> dict[str, bool]:
    """Every plot of :data:`PLOT_FILES`; kind -> whether it holds data (else a placeholder)."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    out = plots_dir.parent
    makers: dict[str, Callable[[Path], bool]] = {
        "pass_at_1": lambda p: plot_pass_at_1(data.experiments, data.scores, p),
        "sweeps": lambda p: plot_sweeps(sweep_points(data.rows, data.experiments), p),
        "codeflow": lambda p: plot_codeflow(data.curves, p),
        "training": lambda p: plot_training(data.logs, p),
        "sensitivity": lambda p: plot_sensitivity(data.sensitivity, p),
        "comparisons": lambda p: plot_comparisons(data.comparisons, p),
    }
    made = {}
    for kind, make in makers.items():
        path = out / PLOT_FILES[kind]
        made[kind] = make(path)
        if not made[kind]:
            placeholder_plot(path, kind)
    (plots_dir / "made.json").write_text(json.dumps(made, indent=2) + "\n", encoding="utf-8")
    return made


def write_report(
    settings: Any,
    out_dir: str,
    *,
    scores: Sequence[str],
    sensitivity: Sequence[str] = (),
    pairs: Sequence[str] = (),
    trajectories: Sequence[str] = (),
    train_logs: Sequence[str] = (),
    masks: Sequence[str] = (),
    budgets: Sequence[str] = (),
) -> None:
    """Write every file of :data:`ALWAYS_WRITTEN` into ``out_dir``. ``settings``: the report's
    :class:`faulttune.settings.ReportSettings`; ``budgets``: each trained model's ``budget.json``
    (a missing one is reported as such)."""
    from faulttune.manifest import write_manifest

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(
        settings.experiments, scores=scores, sensitivity=sensitivity, pairs=pairs,
        trajectories=trajectories, train_logs=train_logs, budgets=budgets,
        benchmarks_dir=out.parent / "benchmarks",
    )
    write_summary(data.rows, out / "summary.csv")
    write_timings(data.timings.rules, out / "timings.csv")
    made = write_plots(data, out / "plots")
    write_masks_html(masks, out / "masks.html")
    rejected = [str(rejected_path(p)) for p in pairs if rejected_path(p).is_file()]
    present_budgets = [b for b in budgets if Path(b).is_file()]
    inputs = [*scores, *sensitivity, *pairs, *rejected, *trajectories, *train_logs, *masks,
              *present_budgets]
    manifest = write_manifest(settings.config, inputs, out / "manifest.json",
                              experiments=settings.experiments)
    (out / "report.md").write_text(render_markdown(settings, data, made, manifest),
                                   encoding="utf-8")
