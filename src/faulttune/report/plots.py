"""The report's plots (matplotlib's object API with the Agg canvas: no pyplot, no global backend).

Every file of :data:`PLOT_FILES` is always written; a plot without data is a placeholder image
that says "no data", so the rule's declared outputs always exist.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faulttune.report.comparisons import Pooled, pass_at_1_values, seed_family, seed_spreads
from faulttune.report.readers import PROBE_PARTS, Row, Score, is_number, probe_parts
from faulttune.report.summary import DEMO_BENCHMARK, benchmark_family

PLOT_FILES = {
    "pass_at_1": "plots/pass_at_1.png",
    "sweeps": "plots/sweeps.png",
    "codeflow": "plots/codeflow.png",
    "training": "plots/training.png",
    "sensitivity": "plots/sensitivity.png",
    "comparisons": "plots/comparisons.png",
}
# IterPref §3.1: CodeFlow's pass rate before and after the debugging loop (5 fix rounds).
PAPER_CODEFLOW = ((0, 0.367), (5, 0.675))
Points = dict[tuple[str, str], dict[str, list[tuple[Any, float]]]]


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


def series_label(benchmark: str) -> str:
    """``humaneval_plus`` -> ``humaneval+``; the demo split is labelled as such."""
    family, variant = benchmark_family(benchmark)
    name = f"{family} (demo split)" if family == DEMO_BENCHMARK else family
    return name + ("+" if variant == "plus" else "")


def _grouped_bars(
    ax: Any, bars: Mapping[tuple[str, str], tuple[float, float | None, float | None]],
    groups: Sequence[str],
) -> None:
    """One group per x label, one bar per series: (series, group) -> (value, low, high)."""
    series = sorted({s for s, _ in bars})
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        present = [(g, bars[(name, group)]) for g, group in enumerate(groups) if (name, group) in bars]
        xs = [g + i * width for g, _ in present]
        ys = [v for _, (v, _, _) in present]
        nan = float("nan")  # no error bar (matplotlib draws none for NaN)
        errors = [(v - lo, hi - v) if lo is not None and hi is not None else (nan, nan)
                  for _, (v, lo, hi) in present]
        has_errors = any(not math.isnan(low) for low, _ in errors)
        yerr = list(zip(*errors)) if has_errors else None
        ax.bar(xs, ys, width, yerr=yerr, capsize=2 if has_errors else 0, label=name)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups, rotation=20,
                  ha="right")
    ax.legend(fontsize=7, ncols=max(1, len(series) // 12))


def plot_pass_at_1(experiments: Mapping[str, Mapping[str, Any]], scores: Sequence[Score],
                   path: Path) -> bool:
    """Grouped bars: one group per benchmark (plus tests separate), one bar per experiment
    family: the mean over its seeds, with the standard deviation as error bar."""
    spreads = seed_spreads(experiments, pass_at_1_values(scores), min_seeds=1)
    if not spreads:
        return False
    bars = {
        (family, series_label(bench)): (
            s.mean,
            None if s.std is None else s.mean - s.std,
            None if s.std is None else s.mean + s.std,
        )
        for (family, bench), s in spreads.items()
    }
    groups = sorted({g for _, g in bars})
    n = len({f for f, _ in bars})
    fig, (ax,) = _figure(panel_size=(max(6.0, 0.25 * n * len(groups) + 2), 4.5))
    _grouped_bars(ax, bars, groups)
    ax.set_ylabel("pass@1 (mean over seeds ± sd)")
    ax.set_ylim(0, 1)
    ax.set_title("pass@1 per experiment and benchmark (ours)")
    fig.savefig(path, dpi=100)
    return True


def sweep_points(rows: Sequence[Row], experiments: Mapping[str, Mapping[str, Any]]) -> Points:
    """(base experiment, parameter) -> series label -> [(value, pass@1)], the base's own value
    included, each the mean over seed replicas; only sweeps with a scored swept experiment."""
    values: dict[tuple[str, str], dict[str, dict[Any, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    swept = {(r["sweep_of"], r["swept_param"]) for r in rows if r.get("swept_param")}
    for base, param in sorted(swept):
        for r in rows:
            own = seed_family(r["experiment"], experiments) == base and not r.get("sweep_of")
            if not own and (r.get("sweep_of"), r.get("swept_param")) != (base, param):
                continue
            value = experiments.get(r["experiment"], {}).get(param)
            for v in ("base", "plus"):
                if value is not None and r.get(f"pass_at_1_{v}", "") != "":
                    bench = r["benchmark"] + ("_plus" if v == "plus" else "")
                    values[(base, param)][series_label(bench)][value].append(r[f"pass_at_1_{v}"])
    return {
        key: {
            label: sorted(((x, sum(ys) / len(ys)) for x, ys in by_value.items()),
                          key=lambda t: (str(type(t[0])), t[0]))
            for label, by_value in series.items()
        }
        for key, series in values.items()
    }


def plot_sweeps(points: Points, path: Path) -> bool:
    """One panel per swept parameter: pass@1 against the value, one line per benchmark."""
    if not points:
        return False
    fig, axes = _figure(len(points))
    for ax, ((base, param), series) in zip(axes, points.items()):
        numeric = all(is_number(x) for pts in series.values() for x, _ in pts)
        ticks = sorted({str(x) for pts in series.values() for x, _ in pts})
        for label, pts in series.items():
            xs = [x if numeric else ticks.index(str(x)) for x, _ in pts]
            ax.plot(xs, [y for _, y in pts], marker="o", label=label)
        if not numeric:
            ax.set_xticks(range(len(ticks)), ticks)
        ax.set_xlabel(param)
        ax.set_ylabel("pass@1 (mean over seeds)")
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


def part_order(part: str) -> tuple[int, str]:
    return (PROBE_PARTS.index(part) if part in PROBE_PARTS else len(PROBE_PARTS), part)


def probe_bars(
    sensitivity: Mapping[str, Mapping[str, Any]], key: str
) -> dict[tuple[str, str], tuple[float, float | None, float | None]]:
    """(experiment, part) -> (SUMMARY[key], its _low, its _high) where the part has the key."""
    out = {}
    for exp, data in sensitivity.items():
        for part, summary in probe_parts(data).items():
            if is_number(summary.get(key)):
                low, high = summary.get(f"{key}_low"), summary.get(f"{key}_high")
                out[(exp, part)] = (summary[key], low if is_number(low) else None,
                                    high if is_number(high) else None)
    return out


def plot_sensitivity(sensitivity: Mapping[str, Mapping[str, Any]], path: Path) -> bool:
    """Grouped bars per part (overall, humanevalfix, twins, each bug type), one bar per
    experiment, with the 95 % bootstrap interval: the headline preference and mean margin."""
    panels = {
        "prefer_correct": ("fraction correct preferred", (0.5, (0, 1))),
        "mean_margin": ("mean margin (per token, differing tokens)", (0.0, None)),
        "nll": ("held-out NLL of the correct program (lower is better)", (None, None)),
    }
    bars = {key: probe_bars(sensitivity, key) for key in panels}
    if not any(bars.values()):
        return False
    n_groups = len({p for table in bars.values() for _, p in table})
    fig, axes = _figure(len(panels),
                        panel_size=(max(6.0, 0.3 * n_groups * len(sensitivity) + 2), 4.5))
    for ax, (key, (label, (chance, ylim))) in zip(axes, panels.items()):
        groups = sorted({p for _, p in bars[key]}, key=part_order)
        if groups:
            _grouped_bars(ax, bars[key], groups)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle=":", linewidth=1)
        if ylim:
            ax.set_ylim(*ylim)
        ax.set_ylabel(label)
        ax.set_title(f"Fault sensitivity: {key} (95 % interval)")
    fig.savefig(path, dpi=100)
    return True


def plot_comparisons(comparisons: Sequence[Pooled], path: Path) -> bool:
    """A forest plot: one panel per measure, one row per experiment, its pooled difference to the
    baseline with the interval; filled when significant after Holm, hollow otherwise."""
    rows = [p for p in comparisons if p.comparison is not None]
    if not rows:
        return False
    measures = sorted({p.measure for p in rows}, key=lambda m: (m.source != "score", m.name, m.key))
    height = max(2.5, 0.35 * max(sum(p.measure == m for p in rows) for m in measures) + 1.2)
    fig, axes = _figure(len(measures), panel_size=(5.0, height))
    for ax, measure in zip(axes, measures):
        mine = [p for p in rows if p.measure == measure]
        for y, p in enumerate(mine):
            c = p.comparison
            assert c is not None
            ax.errorbar([c.estimate], [y], xerr=[[c.estimate - c.low], [c.high - c.estimate]],
                        fmt="o", capsize=3, color="C0",
                        markerfacecolor="C0" if p.significant else "white")
        ax.set_yticks(range(len(mine)), [f"{p.experiment} vs {p.baseline}" for p in mine],
                      fontsize=7)
        ax.axvline(0, color="grey", linestyle=":", linewidth=1)
        ax.invert_yaxis()
        better = "lower is better" if measure.lower_is_better else "higher is better"
        ax.set_title(f"Δ {measure.label}\n({better}; filled: significant after Holm)", fontsize=8)
    fig.savefig(path, dpi=100)
    return True
