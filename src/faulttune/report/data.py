"""Everything the report shows, read once from the input files, with the comparisons computed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faulttune.report import comparisons as cmp
from faulttune.report import readers
from faulttune.report.readers import PairCount, Row, Score, Timings
from faulttune.report.summary import summary_rows
from faulttune.stats import MeanStd


@dataclass(frozen=True)
class ReportData:
    experiments: dict[str, dict[str, Any]]  # the settings' experiments, as resolved
    scores: list[Score]
    rows: list[Row]  # summary.csv
    sensitivity: dict[str, dict[str, Any]]
    pairs: dict[str, PairCount]
    curves: dict[str, list[tuple[int, float]]]
    logs: dict[str, list[Row]]
    budgets: dict[str, Row | None]
    timings: Timings
    comparisons: list[cmp.Pooled]  # pooled over seeds, Holm-adjusted over the list
    score_spreads: dict[tuple[str, str], MeanStd]  # (family, benchmark), >= 2 seeds
    probe_spreads: dict[tuple[str, str], MeanStd]  # (family, headline key), >= 2 seeds


def load_data(
    experiments: Mapping[str, Mapping[str, Any]],
    *,
    scores: Sequence[str],
    sensitivity: Sequence[str],
    pairs: Sequence[str],
    trajectories: Sequence[str],
    train_logs: Sequence[str],
    budgets: Sequence[str],
    benchmarks_dir: Path,
) -> ReportData:
    experiments = {name: dict(exp) for name, exp in experiments.items()}
    read_scores = [readers.read_score(p) for p in scores]
    probes = readers.read_sensitivity(sensitivity)
    counts = readers.count_pairs(pairs)
    read_budgets = readers.read_budgets(budgets)
    score_spreads = cmp.seed_spreads(experiments, cmp.pass_at_1_values(read_scores))
    probe_spreads = cmp.seed_spreads(experiments, cmp.probe_values(probes))
    comparisons = cmp.pooled_comparisons(experiments, read_scores, probes)
    rows = summary_rows(experiments, read_scores, probes, counts, read_budgets, comparisons)
    return ReportData(
        experiments,
        read_scores,
        rows,
        probes,
        counts,
        readers.codeflow_curves(trajectories),
        readers.read_train_logs(train_logs),
        read_budgets,
        readers.read_timings(benchmarks_dir),
        comparisons,
        score_spreads,
        probe_spreads,
    )
