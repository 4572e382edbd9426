"""The run's report in ``results/{run}/report/``: tables, plots, the papers' numbers beside ours,
a mask viewer and the run manifest. Entry point: :func:`write_report`.

Inputs (every list may be empty; each part of the report degrades to a note or a "no data" plot):

- score files ``.../eval/{experiment}/{benchmark}.json``: ``{"pass_at_1", "n_samples", "results":
  [{"task_id", ...}]}`` (pass@1 a fraction in [0, 1]);
- sensitivity files ``.../eval/{experiment}/bug_sensitivity.json``: ``{"overall": {...},
  "by_bug_type": {bug_type: {...}}}`` with the keys ``fraction_canonical_preferred`` and
  ``mean_margin`` (other numeric keys are shown in report.md as they are);
- pairs files ``.../bugs/pairs_{source}.parquet`` and ``.../codeflow/pairs.parquet`` (source
  ``codeflow``), each with ``*.rejected.parquet`` beside it (column ``reason``);
- CodeFlow ``trajectories.parquet`` (``task_id, iteration, passed``);
- train logs ``.../models/{experiment}/train_log.jsonl`` (one JSON object per log step; every
  numeric key except ``step`` and ``epoch`` is plotted against ``step``);
- masks parquet files (:mod:`faulttune.mask_table`), shown in ``masks.html``.

The experiment of a score, sensitivity or train-log file is the name of its parent folder.

``summary.csv``: one row per experiment x benchmark family, sorted by family then experiment:

- ``experiment``: the experiment's name (a sweep: ``{base}~{param}={value}``).
- ``method``: its method; ``unknown`` when the name is not in the config.
- ``sweep_of``, ``swept_param``: the base experiment and the changed parameter of a sweep; blank
  for a declared experiment.
- ``benchmark``: the family. ``humaneval`` holds humaneval + humaneval_plus, ``mbpp`` holds mbpp +
  mbpp_plus; every other benchmark (humanevalfix, bigcodebench-*, ...) is its own family.
- ``demo_split``: True for ``humaneval-split-heldout``, the demo's held-out HumanEval tasks (not
  comparable with the papers' numbers).
- ``pass_at_1_base``, ``pass_at_1_plus``: pass@1 as a fraction (4 decimals) on the base tests and
  on the EvalPlus plus tests; plus is blank for a family without one.
- ``n_tasks_base``, ``n_tasks_plus``: tasks scored (the score file's ``n_tasks``, else the distinct
  task ids of its results); ``n_samples``: samples scored, all tasks together (of the base
  benchmark, else of the plus one).
- ``sens_prefer_correct_sum``, ``sens_prefer_correct_mean``, ``sens_mean_margin_sum``,
  ``sens_mean_margin_mean``: the experiment's fault-sensitivity probe (:mod:`faulttune.sensitivity`)
  over all its pairs (``overall``): the fraction of pairs whose correct program has the higher
  summed / per-token-mean log-likelihood, and the mean margin (correct - buggy). Repeated on each
  row of the experiment; blank without a probe. An experiment with a probe and no scores gets one
  row with an empty ``benchmark``.
- ``bugs``: the pair source that trains the experiment (teacher, mutation, cct, codeflow); blank
  for base.
- ``n_pairs``, ``n_rejected``: rows of that source's pairs file and of its rejected file; blank
  when the file is not an input.
- :data:`PARAM_COLUMNS` (alpha ... seed): the experiment's parameters with its method's defaults
  filled in; blank for a parameter its method does not use (``seed``, ``lr``, ``epochs``,
  ``max_steps``: only when the experiment sets them).

Plots (``plots/``): the files in :data:`PLOT_FILES` are always written; a plot without data is a
placeholder image that says "no data", so the rule's declared outputs always exist.
``plots/made.json`` records which plots hold data.
"""

from __future__ import annotations

import csv
import functools
import html
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from faulttune import methods
from faulttune.config import SWEEP_SEPARATOR
from faulttune.io import DataError, read_jsonl, rejected_path

DEMO_BENCHMARK = "humaneval-split-heldout"
PLUS_SUFFIX = "_plus"
# Keys of a SUMMARY of faulttune.sensitivity; the plot and the per-bug-type table use the first.
SENSITIVITY_KEYS = (
    "prefer_correct_sum",
    "prefer_correct_mean",
    "mean_margin_sum",
    "mean_margin_mean",
)
SENSITIVITY_PARTS = ("overall", "humanevalfix", "twins")  # top-level SUMMARY keys (may be null)
PARAM_COLUMNS = tuple(sorted({p.name for m in methods.METHODS.values() for p in m.params} - {"bugs"}))
PARAM_COLUMNS += tuple(p.name for p in methods.TRAIN_OVERRIDES) + ("seed",)
SUMMARY_COLUMNS = (
    "experiment",
    "method",
    "sweep_of",
    "swept_param",
    "benchmark",
    "demo_split",
    "pass_at_1_base",
    "pass_at_1_plus",
    "n_tasks_base",
    "n_tasks_plus",
    "n_samples",
    *(f"sens_{k}" for k in SENSITIVITY_KEYS),
    "bugs",
    "n_pairs",
    "n_rejected",
    *PARAM_COLUMNS,
)
PLOT_FILES = {
    "pass_at_1": "plots/pass_at_1.png",
    "sweeps": "plots/sweeps.png",
    "codeflow": "plots/codeflow.png",
    "training": "plots/training.png",
    "sensitivity": "plots/sensitivity.png",
}
# Every file write_report always writes, relative to out_dir (for the rule's outputs).
ALWAYS_WRITTEN = (
    "summary.csv",
    "report.md",
    "masks.html",
    "manifest.json",
    "plots/made.json",
    *PLOT_FILES.values(),
)
# IterPref §3.1: CodeFlow's pass rate before and after the debugging loop (5 fix rounds).
PAPER_CODEFLOW = ((0, 0.367), (5, 0.675))
PAPER_MAIN_BENCHMARKS = ("humaneval", "humaneval_plus", "mbpp", "mbpp_plus")
MASK_EXAMPLES_PER_FILE = 3

Row = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Reading the inputs


@dataclass(frozen=True)
class Score:
    experiment: str
    benchmark: str
    pass_at_1: float
    n_samples: int
    n_tasks: int


@dataclass
class PairCount:
    source: str
    n_pairs: int
    n_rejected: int | None  # None: no rejected file beside the pairs
    by_reason: Counter[str] = field(default_factory=Counter)


def _read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from e


def read_score(path: str | Path) -> Score:
    """One score file; the experiment is its folder, the benchmark its stem."""
    p = Path(path)
    data = _read_json(p)
    for key in ("pass_at_1", "n_samples", "results"):
        if key not in data:
            raise DataError(f"{p}: missing '{key}'")
    n_tasks = data.get("n_tasks", len({r["task_id"] for r in data["results"]}))
    return Score(
        p.parent.name, p.stem, float(data["pass_at_1"]), int(data["n_samples"]), int(n_tasks)
    )


def family_of(benchmark: str) -> tuple[str, str]:
    """``humaneval_plus`` -> (``humaneval``, ``plus``); anything else -> (itself, ``base``)."""
    if benchmark.endswith(PLUS_SUFFIX):
        return benchmark.removesuffix(PLUS_SUFFIX), "plus"
    return benchmark, "base"


def read_sensitivity(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """experiment -> the probe's JSON (must hold ``overall``; ``by_bug_type`` optional)."""
    out = {}
    for path in paths:
        data = _read_json(path)
        if not isinstance(data.get("overall"), dict):
            raise DataError(f"{path}: missing 'overall' (an object)")
        out[Path(path).parent.name] = data
    return out


def pairs_source(path: str | Path) -> str:
    """``pairs_teacher.parquet`` -> ``teacher``; ``codeflow/pairs.parquet`` -> ``codeflow``."""
    p = Path(path)
    if p.name == "pairs.parquet":
        return p.parent.name
    return p.name.removesuffix(".parquet").removeprefix("pairs_")


def rejection_reasons(path: Path) -> Counter[str]:
    table = pq.read_table(path)
    if table.num_rows and "reason" not in table.column_names:
        raise DataError(
            f"{path}: rejected rows without a 'reason' column; has {table.column_names}"
        )
    return Counter(table.column("reason").to_pylist()) if table.num_rows else Counter()


def count_pairs(paths: Sequence[str]) -> dict[str, PairCount]:
    """source -> pair and rejection counts (two files of one source are an error)."""
    out: dict[str, PairCount] = {}
    for path in paths:
        source = pairs_source(path)
        if source in out:
            raise DataError(f"{path}: a second pairs file for source {source!r}")
        rejected = rejected_path(path)
        reasons = rejection_reasons(rejected) if rejected.is_file() else None
        out[source] = PairCount(
            source,
            pq.read_metadata(path).num_rows,
            sum(reasons.values()) if reasons is not None else None,
            reasons or Counter(),
        )
    return out


def codeflow_curves(paths: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """label (the run folder) -> cumulative pass rate after each iteration."""
    from faulttune.codeflow import pass_rate_by_iteration

    curves = {}
    for path in paths:
        table = pq.read_table(path)
        missing = {"task_id", "iteration", "passed"} - set(table.column_names)
        if table.num_rows and missing:
            raise DataError(f"{path}: missing column(s) {sorted(missing)}")
        rows = (
            table.select(["task_id", "iteration", "passed"]).to_pylist() if table.num_rows else []
        )
        label = Path(path).parent.parent.name or str(path)
        curves[label] = pass_rate_by_iteration(rows)
    return curves


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_train_logs(paths: Sequence[str]) -> dict[str, list[Row]]:
    """experiment -> its log rows, numeric values only; ``step`` is the line index if absent."""
    logs = {}
    for path in paths:
        rows = []
        for index, row in enumerate(read_jsonl(path)):
            numeric = {k: float(v) for k, v in row.items() if _is_number(v)}
            numeric.setdefault("step", float(index))
            rows.append(numeric)
        logs[Path(path).parent.name] = rows
    return logs


def load_papers() -> list[Row]:
    """The papers' published pass@1 (percent), as transcribed in ``resources/papers.csv``."""
    text = resources.files("faulttune").joinpath("resources/papers.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    for row in rows:
        row["pass_at_1"] = float(row["pass_at_1"])
    return rows


# --------------------------------------------------------------------------------------------
# summary.csv


def sweep_origin(name: str) -> tuple[str, str]:
    """``fgit~lambda=3.0`` -> (``fgit``, ``lambda``); a declared experiment -> ("", "")."""
    if SWEEP_SEPARATOR not in name:
        return "", ""
    base, change = name.split(SWEEP_SEPARATOR, 1)
    return base, change.split("=", 1)[0]


def experiment_columns(name: str, params: Mapping[str, Any] | None) -> Row:
    """method, sweep and parameter columns of one experiment."""
    sweep_of, swept = sweep_origin(name)
    row: Row = {"experiment": name, "sweep_of": sweep_of, "swept_param": swept}
    if params is None:
        return {**row, "method": "unknown"}
    used = set(methods.get(params["method"]).accepted_keys()) | {"seed"}
    row.update({k: params[k] for k in PARAM_COLUMNS if k in used and params.get(k) is not None})
    return {**row, "method": params["method"], "bugs": params.get("bugs", "")}


def _family_rows(scores: Sequence[Score]) -> dict[tuple[str, str], Row]:
    rows: dict[tuple[str, str], Row] = {}
    for s in scores:
        family, variant = family_of(s.benchmark)
        row = rows.setdefault(
            (s.experiment, family), {"benchmark": family, "demo_split": family == DEMO_BENCHMARK}
        )
        if f"pass_at_1_{variant}" in row:
            raise DataError(f"two score files for {s.experiment}/{s.benchmark}")
        row[f"pass_at_1_{variant}"] = round(s.pass_at_1, 4)
        row[f"n_tasks_{variant}"] = s.n_tasks
        if variant == "base" or "n_samples" not in row:
            row["n_samples"] = s.n_samples
    return rows


def summary_rows(
    experiments: Mapping[str, Mapping[str, Any]],
    scores: Sequence[Score],
    sensitivity: Mapping[str, Mapping[str, Any]],
    pairs: Mapping[str, PairCount],
) -> list[Row]:
    """The rows of summary.csv (columns in the module docstring)."""
    keyed = _family_rows(scores)
    for name in sensitivity:  # a probed experiment without scores still gets a row
        if not any(e == name for e, _ in keyed):
            keyed[(name, "")] = {"benchmark": "", "demo_split": False}
    rows = []
    for (name, _), bench in keyed.items():
        row = {**experiment_columns(name, experiments.get(name)), **bench}
        overall = sensitivity.get(name, {}).get("overall", {})
        row.update({f"sens_{k}": overall.get(k, "") for k in SENSITIVITY_KEYS})
        count = pairs.get(row.get("bugs", ""))
        if count is not None:
            row["n_pairs"] = count.n_pairs
            row["n_rejected"] = "" if count.n_rejected is None else count.n_rejected
        rows.append(row)
    return sorted(rows, key=lambda r: (r["benchmark"], r["experiment"]))


def write_summary(rows: Sequence[Row], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------------------------
# Plots (matplotlib's object API with the Agg canvas: no pyplot, no global backend)


def _figure(
    n_panels: int = 1, panel_size: tuple[float, float] = (6.0, 4.0)
) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    cols = min(3, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    return fig, axes[:n_panels]


def placeholder_plot(path: Path, title: str) -> None:
    fig, (ax,) = _figure(panel_size=(5.0, 2.5))
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{title}\n\nno data in this run", ha="center", va="center", fontsize=12)
    fig.savefig(path, dpi=80)


def _series_label(benchmark: str, variant: str) -> str:
    """``humaneval`` + plus -> ``humaneval+``; the demo split is labelled as such."""
    name = f"{benchmark} (demo split)" if benchmark == DEMO_BENCHMARK else benchmark
    return name + ("+" if variant == "plus" else "")


def plot_pass_at_1(rows: Sequence[Row], path: Path) -> bool:
    """Grouped bars: one group per benchmark (plus tests separate), one bar per experiment."""
    bars = {
        (r["experiment"], _series_label(r["benchmark"], v)): r[f"pass_at_1_{v}"]
        for r in rows
        for v in ("base", "plus")
        if r.get(f"pass_at_1_{v}", "") != ""
    }
    if not bars:
        return False
    experiments = sorted({e for e, _ in bars})
    groups = sorted({b for _, b in bars})
    fig, (ax,) = _figure(panel_size=(max(6.0, 0.25 * len(experiments) * len(groups) + 2), 4.5))
    width = 0.8 / len(experiments)
    for i, exp in enumerate(experiments):
        xs = [g + i * width for g, bench in enumerate(groups) if (exp, bench) in bars]
        ys = [bars[(exp, bench)] for bench in groups if (exp, bench) in bars]
        ax.bar(xs, ys, width, label=exp)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups)
    ax.set_ylabel("pass@1")
    ax.set_ylim(0, 1)
    ax.set_title("pass@1 per experiment and benchmark (ours)")
    ax.legend(fontsize=7, ncols=max(1, len(experiments) // 12))
    fig.savefig(path, dpi=100)
    return True


def sweep_points(
    rows: Sequence[Row], experiments: Mapping[str, Mapping[str, Any]]
) -> dict[tuple[str, str], dict[str, list[tuple[Any, float]]]]:
    """(base experiment, parameter) -> series label -> [(value, pass@1)], the base's own value
    included; only sweeps that have at least one scored swept experiment."""
    out: dict[tuple[str, str], dict[str, list[tuple[Any, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    swept = {(r["sweep_of"], r["swept_param"]) for r in rows if r.get("swept_param")}
    for base, param in sorted(swept):
        for r in rows:
            if r["experiment"] != base and (r["sweep_of"], r["swept_param"]) != (base, param):
                continue
            value = experiments.get(r["experiment"], {}).get(param)
            for v in ("base", "plus"):
                if value is not None and r.get(f"pass_at_1_{v}", "") != "":
                    out[(base, param)][_series_label(r["benchmark"], v)].append(
                        (value, r[f"pass_at_1_{v}"])
                    )
    return {
        k: {s: sorted(p, key=lambda t: (str(type(t[0])), t[0])) for s, p in v.items()}
        for k, v in out.items()
    }


def plot_sweeps(
    points: Mapping[tuple[str, str], Mapping[str, list[tuple[Any, float]]]], path: Path
) -> bool:
    """One panel per swept parameter: pass@1 against the value, one line per benchmark."""
    if not points:
        return False
    fig, axes = _figure(len(points))
    for ax, ((base, param), series) in zip(axes, points.items()):
        numeric = all(_is_number(x) for pts in series.values() for x, _ in pts)
        ticks = sorted({str(x) for pts in series.values() for x, _ in pts})
        for label, pts in series.items():
            xs = [x if numeric else ticks.index(str(x)) for x, _ in pts]
            ax.plot(xs, [y for _, y in pts], marker="o", label=label)
        if not numeric:
            ax.set_xticks(range(len(ticks)), ticks)
        ax.set_xlabel(param)
        ax.set_ylabel("pass@1")
        ax.set_title(f"sweep of {base} over {param}")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    return True


def plot_codeflow(curves: Mapping[str, list[tuple[int, float]]], path: Path) -> bool:
    if not any(curves.values()):
        return False
    fig, (ax,) = _figure()
    for label, curve in curves.items():
        ax.plot([i for i, _ in curve], [r for _, r in curve], marker="o", label=f"ours ({label})")
    ax.plot(
        *zip(*PAPER_CODEFLOW),
        linestyle="--",
        marker="s",
        color="grey",
        label="IterPref paper: 36.7 % -> 67.5 %",
    )
    ax.set_xlabel("iteration (0 = first version)")
    ax.set_ylabel("cumulative pass rate")
    ax.set_ylim(0, 1)
    ax.set_title("CodeFlow: tasks passing after each iteration")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    return True


def plot_training(logs: Mapping[str, Sequence[Row]], path: Path) -> bool:
    """One panel per logged key (loss first), one line per experiment, against the step."""
    keys = sorted(
        {k for rows in logs.values() for row in rows for k in row} - {"step", "epoch"},
        key=lambda k: (k != "loss", k),
    )
    if not keys:
        return False
    fig, axes = _figure(len(keys), panel_size=(5.0, 3.2))
    for ax, key in zip(axes, keys):
        for exp, rows in sorted(logs.items()):
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), label=exp)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    fig.savefig(path, dpi=90)
    return True


def plot_sensitivity(sensitivity: Mapping[str, Mapping[str, Any]], path: Path) -> bool:
    """Grouped bars per part (overall, humanevalfix, twins, each bug type), one bar per experiment;
    panels: preference by summed and by per-token-mean log-likelihood."""
    keys = SENSITIVITY_KEYS[:2]
    tables = {k: sensitivity_by_type(sensitivity, k) for k in keys}
    if not any(tables.values()):
        return False
    n_groups = len({t for per in tables[keys[0]].values() for t in per})
    fig, axes = _figure(
        len(keys), panel_size=(max(6.0, 0.3 * n_groups * len(sensitivity) + 2), 4.5)
    )
    for ax, key in zip(axes, keys):
        table = tables[key]
        types = sorted({t for per in table.values() for t in per}, key=_part_order)
        width = 0.8 / max(1, len(table))
        for i, exp in enumerate(sorted(table)):
            present = [(g, table[exp][t]) for g, t in enumerate(types) if t in table[exp]]
            ax.bar([g + i * width for g, _ in present], [v for _, v in present], width, label=exp)
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(
            [g + 0.4 - width / 2 for g in range(len(types))], types, rotation=30, ha="right"
        )
        ax.set_ylabel(f"fraction correct preferred ({key})")
        ax.set_ylim(0, 1)
        ax.set_title(f"Fault sensitivity per bug type: {key}")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    return True


def _part_order(part: str) -> tuple[int, str]:
    return (
        SENSITIVITY_PARTS.index(part) if part in SENSITIVITY_PARTS else len(SENSITIVITY_PARTS),
        part,
    )


def sensitivity_by_type(
    sensitivity: Mapping[str, Mapping[str, Any]], key: str = SENSITIVITY_KEYS[0]
) -> dict[str, dict[str, float]]:
    """experiment -> {overall | humanevalfix | twins | bug type: SUMMARY[key]} (parts that are null
    or lack the key are left out)."""
    out: dict[str, dict[str, float]] = {}
    for exp, data in sensitivity.items():
        parts = {**{p: data.get(p) for p in SENSITIVITY_PARTS}, **(data.get("by_bug_type") or {})}
        values = {
            t: v[key] for t, v in parts.items() if isinstance(v, dict) and _is_number(v.get(key))
        }
        if values:
            out[exp] = values
    return out


# --------------------------------------------------------------------------------------------
# masks.html


def masks_section(
    path: str, tokenizer_for: Callable[[str], Any], limit: int = MASK_EXAMPLES_PER_FILE
) -> str:
    """HTML for the first ``limit`` rows of one masks file, or a note saying why it is not shown."""
    from faulttune.mask_table import read_masks
    from faulttune.mask_view import mask_html

    title = f"<h2>{html.escape(str(path))}</h2>"
    try:
        table, model_name = read_masks(path)
        if model_name is None:
            raise DataError(f"{path}: no 'faulttune.model' metadata, cannot decode the ids")
        tokenizer = tokenizer_for(model_name)
    except (DataError, OSError, ValueError) as e:
        return title + f"<p><i>not shown: {html.escape(str(e))}</i></p>"
    kinds = sorted(set(table.column("kind").to_pylist()))
    rows = table.slice(0, limit).to_pylist()
    head = (
        f"<p>{table.num_rows} examples, kind {', '.join(kinds) or '-'}; the first {len(rows)}:</p>"
    )
    return title + head + "".join(mask_html(row, tokenizer) for row in rows)


def write_masks_html(
    paths: Sequence[str], out: Path, tokenizer_for: Callable[[str], Any] | None = None
) -> None:
    if tokenizer_for is None:
        from faulttune.models import load_tokenizer

        tokenizer_for = functools.lru_cache(maxsize=None)(load_tokenizer)
    body = [masks_section(p, tokenizer_for) for p in paths] or [
        "<p>No masks files in this run.</p>"
    ]
    legend = (
        "<p>Shaded tokens are training targets of the mask: yellow = 1, red = 2 (FGit's "
        "edited tokens). The prompt is left out.</p>"
    )
    out.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>faulttune masks</title>"
        "</head><body><h1>Training masks</h1>" + legend + "".join(body) + "</body></html>\n",
        encoding="utf-8",
    )


# --------------------------------------------------------------------------------------------
# report.md

BENCHMARK_ORDER = (
    DEMO_BENCHMARK,
    "humaneval",
    "humaneval_plus",
    "mbpp",
    "mbpp_plus",
    "humanevalfix",
)
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
    "pass@1 in **percent**. Rows marked **ours** are this run; rows marked *paper* are the numbers "
    "the papers **published** (7B-class models, full benchmarks), transcribed from docs/methods.md into "
    "`faulttune/resources/papers.csv`; this run does not reproduce them. The CCT paper reports no "
    "table we could recover (up to ~4 points over instruction tuning on HumanEvalFix)."
)
CODEFLOW_NOTE = (
    "Share of tasks whose trajectory has passed by each iteration (iteration 0 is the first "
    "version: with `codeflow.start: mutant` it is a failing twin, so 0 % by construction). The "
    "IterPref "
    "paper's CodeFlow went from **36.7 %** at iteration 0 to **67.5 %** after five fix rounds "
    "(the paper's number: GPT-4o on its own tasks)."
)
SENSITIVITY_NOTE = (
    "Log-likelihood of the correct vs the buggy program as the answer to the same prompt "
    "(`faulttune.sensitivity`): `prefer_correct_*` is the fraction of pairs whose correct program "
    "scores higher (summed / per-token mean), `mean_margin_*` the mean margin. `overall` is every "
    "pair, `humanevalfix` the HumanEvalFix pairs, `twins` the held-out mutation/CCT twins."
)


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, read once from the input files."""

    rows: list[Row]
    experiments: dict[str, dict[str, Any]]
    sensitivity: dict[str, dict[str, Any]]
    pairs: dict[str, PairCount]
    curves: dict[str, list[tuple[int, float]]]
    logs: dict[str, list[Row]]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None
) -> str:
    lines = ["| " + " | ".join(headers or columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _benchmark_key(name: str) -> tuple[int, str]:
    return (BENCHMARK_ORDER.index(name) if name in BENCHMARK_ORDER else len(BENCHMARK_ORDER), name)


def params_text(row: Mapping[str, Any]) -> str:
    parts = [f"{k}={row[k]}" for k in ("bugs", *PARAM_COLUMNS) if row.get(k, "") not in ("", None)]
    return ", ".join(parts)


def ours_by_benchmark(rows: Sequence[Row]) -> dict[str, dict[str, float]]:
    """experiment -> full benchmark name -> pass@1 in percent."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        for v in ("base", "plus"):
            if r.get(f"pass_at_1_{v}", "") != "":
                name = r["benchmark"] + (PLUS_SUFFIX if v == "plus" else "")
                out[r["experiment"]][name] = 100 * r[f"pass_at_1_{v}"]
    return out


def results_section(data: ReportData) -> str:
    if not data.rows:
        return "## pass@1 (ours)\n\nNo score files in this run."
    columns = (
        "experiment",
        "method",
        "params",
        "benchmark",
        "pass_at_1_base",
        "pass_at_1_plus",
        "n_tasks_base",
    )
    table_rows = [{**r, "params": params_text(r)} for r in data.rows]
    headers = (
        "experiment",
        "method",
        "parameters",
        "benchmark",
        "pass@1",
        "pass@1 (plus tests)",
        "tasks",
    )
    parts = ["## pass@1 (ours)", RESULTS_NOTE, markdown_table(table_rows, columns, headers)]
    if any(r["demo_split"] for r in data.rows):
        parts.append(
            f"`{DEMO_BENCHMARK}` is the **demo split**: the HumanEval tasks held out from the "
            "demo's training split. Its numbers only compare experiments of this run."
        )
    return "\n\n".join(parts)


def comparison_section(settings: Any, data: ReportData, papers: Sequence[Row]) -> str:
    """Our rows and the papers' rows in one table, each row labelled with where it comes from."""
    ours = ours_by_benchmark(data.rows)
    ours_benchmarks = {b for per in ours.values() for b in per}
    paper_benchmarks = {p["benchmark"] for p in papers}
    benchmarks = sorted(
        ours_benchmarks | (set(PAPER_MAIN_BENCHMARKS) | ours_benchmarks) & paper_benchmarks,
        key=_benchmark_key,
    )
    table: list[Row] = [
        {"source": f"**ours** (run `{settings.run}`)", "model": settings.student, "variant": exp, **per}
        for exp, per in sorted(ours.items())
    ]
    grouped: dict[tuple[str, str, str, str], Row] = {}
    for p in papers:
        if p["benchmark"] in benchmarks:
            key = (p["paper"], p["source_section"], p["model"], p["variant"])
            grouped.setdefault(
                key,
                {
                    "source": f"paper: {p['paper']}, {p['source_section']}",
                    "model": p["model"],
                    "variant": p["variant"],
                },
            )[p["benchmark"]] = p["pass_at_1"]
    table += list(grouped.values())
    table = [{k: f"{v:.1f}" if k in benchmarks else v for k, v in row.items()} for row in table]
    headers = [
        "source",
        "model",
        "experiment / variant",
        *[SHORT_NAMES.get(b, b) for b in benchmarks],
    ]
    return "\n\n".join(
        [
            "## Beside the papers' published numbers",
            PAPERS_NOTE,
            markdown_table(table, ["source", "model", "variant", *benchmarks], headers),
        ]
    )


def pairs_section(pairs: Mapping[str, PairCount]) -> str:
    if not pairs:
        return "## Training pairs\n\nNo pairs files in this run."
    counts = [
        {
            "source": c.source,
            "n_pairs": c.n_pairs,
            "n_rejected": "no rejected file" if c.n_rejected is None else c.n_rejected,
        }
        for c in sorted(pairs.values(), key=lambda c: c.source)
    ]
    reasons = [
        {"source": c.source, "reason": reason, "rows": n}
        for c in sorted(pairs.values(), key=lambda c: c.source)
        for reason, n in sorted(c.by_reason.items(), key=lambda t: (-t[1], t[0]))
    ]
    parts = [
        "## Training pairs",
        markdown_table(
            counts, ("source", "n_pairs", "n_rejected"), ("source", "pairs", "rejected rows")
        ),
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
    return "\n\n".join(
        [
            "## CodeFlow: pass rate per iteration",
            CODEFLOW_NOTE,
            markdown_table(
                rows, ("run", "iteration", "pass_rate"), ("run", "iteration", "pass rate")
            ),
            f"![CodeFlow]({PLOT_FILES['codeflow']})",
        ]
    )


def sensitivity_section(sensitivity: Mapping[str, Mapping[str, Any]]) -> str:
    if not sensitivity:
        return "## Fault sensitivity\n\nNo sensitivity probes in this run."
    parts_rows = [
        {"experiment": exp, "pairs": part, **data[part]}
        for exp, data in sorted(sensitivity.items())
        for part in SENSITIVITY_PARTS
        if isinstance(data.get(part), dict)
    ]
    by_type = sensitivity_by_type(sensitivity)
    types = sorted({t for per in by_type.values() for t in per} - set(SENSITIVITY_PARTS))
    type_rows = [
        {"bug_type": t, **{exp: per.get(t, "") for exp, per in by_type.items()}} for t in types
    ]
    parts = [
        "## Fault sensitivity",
        SENSITIVITY_NOTE,
        markdown_table(parts_rows, ["experiment", "pairs", "n", *SENSITIVITY_KEYS]),
    ]
    if type_rows:
        parts += [
            f"`{SENSITIVITY_KEYS[0]}` per HumanEvalFix bug type:",
            markdown_table(type_rows, ["bug_type", *sorted(by_type)]),
        ]
    parts.append(f"![sensitivity]({PLOT_FILES['sensitivity']})")
    return "\n\n".join(parts)


def training_section(logs: Mapping[str, Sequence[Row]]) -> str:
    if not logs:
        return "## Training\n\nNo train logs in this run."
    rows = [
        {
            "experiment": exp,
            "steps": len(rows),
            "last": ", ".join(f"{k}={v:.4g}" for k, v in sorted(rows[-1].items()) if k != "step")
            if rows
            else "",
        }
        for exp, rows in sorted(logs.items())
    ]
    return "\n\n".join(
        [
            "## Training",
            "Last logged values per experiment:",
            markdown_table(
                rows,
                ("experiment", "steps", "last"),
                ("experiment", "log lines", "last logged values"),
            ),
            f"![training]({PLOT_FILES['training']})",
        ]
    )


def experiments_section(data: ReportData) -> str:
    scored = {r["experiment"] for r in data.rows}
    rows = [
        {
            "experiment": name,
            "method": exp["method"],
            "params": params_text(experiment_columns(name, exp)),
            "results": "yes" if name in scored else "none yet",
        }
        for name, exp in data.experiments.items()
    ]
    return "## Experiments\n\n" + markdown_table(
        rows,
        ("experiment", "method", "params", "results"),
        ("experiment", "method", "parameters", "results"),
    )


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
        f"template hash `{manifest['template_hash']}`; "
        f"{len(manifest['inputs'])} input files hashed. "
        "Details in [manifest.json](manifest.json)."
    )


def render_markdown(
    settings: Any,
    data: ReportData,
    made: Mapping[str, bool],
    manifest: Mapping[str, Any],
) -> str:
    header = (
        f"# faulttune report: run `{settings.run}`\n\nStudent `{settings.student}`, "
        f"training source `{settings.train_source}`, greedy decoding."
    )
    sections = [
        header,
        experiments_section(data),
        results_section(data),
        comparison_section(settings, data, load_papers()),
        f"![pass@1]({PLOT_FILES['pass_at_1']})",
        f"![sweeps]({PLOT_FILES['sweeps']})",
        pairs_section(data.pairs),
        codeflow_section(data.curves),
        sensitivity_section(data.sensitivity),
        training_section(data.logs),
        plots_section(made),
        manifest_section(manifest),
    ]
    return "\n\n".join(sections) + "\n"


# --------------------------------------------------------------------------------------------
# Entry point


def write_plots(data: ReportData, plots_dir: Path) -> dict[str, bool]:
    """Every plot of :data:`PLOT_FILES`; kind -> whether it holds data (else a placeholder)."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    out = plots_dir.parent
    makers: dict[str, Callable[[Path], bool]] = {
        "pass_at_1": lambda p: plot_pass_at_1(data.rows, p),
        "sweeps": lambda p: plot_sweeps(sweep_points(data.rows, data.experiments), p),
        "codeflow": lambda p: plot_codeflow(data.curves, p),
        "training": lambda p: plot_training(data.logs, p),
        "sensitivity": lambda p: plot_sensitivity(data.sensitivity, p),
    }
    made = {}
    for kind, make in makers.items():
        path = out / PLOT_FILES[kind]
        made[kind] = make(path)
        if not made[kind]:
            placeholder_plot(path, kind)
    (plots_dir / "made.json").write_text(json.dumps(made, indent=2) + "\n", encoding="utf-8")
    return made


def load_data(
    experiments: Mapping[str, Mapping[str, Any]],
    scores: Sequence[str],
    sensitivity: Sequence[str],
    pairs: Sequence[str],
    trajectories: Sequence[str],
    train_logs: Sequence[str],
) -> ReportData:
    probes = read_sensitivity(sensitivity)
    counts = count_pairs(pairs)
    rows = summary_rows(experiments, [read_score(p) for p in scores], probes, counts)
    return ReportData(
        rows,
        dict(experiments),
        probes,
        counts,
        codeflow_curves(trajectories),
        read_train_logs(train_logs),
    )


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
) -> None:
    """Write every file of :data:`ALWAYS_WRITTEN` into ``out_dir`` (see the module docstring)."""
    from faulttune.manifest import write_manifest

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(settings.experiments, scores, sensitivity, pairs, trajectories, train_logs)
    write_summary(data.rows, out / "summary.csv")
    made = write_plots(data, out / "plots")
    write_masks_html(masks, out / "masks.html")
    rejected = [str(rejected_path(p)) for p in pairs if rejected_path(p).is_file()]
    inputs = [*scores, *sensitivity, *pairs, *rejected, *trajectories, *train_logs, *masks]
    manifest = write_manifest(settings.config, inputs, out / "manifest.json")
    (out / "report.md").write_text(render_markdown(settings, data, made, manifest), encoding="utf-8")
