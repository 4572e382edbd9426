"""Rules of ``report.smk``: the contamination check and the report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from faulttune import io
from faulttune.settings import ContaminationSettings, ReportSettings
from faulttune.stages.data import load_benchmark_tasks

log = logging.getLogger("faulttune")


def contamination(settings: ContaminationSettings, tables: Sequence[str], out: str) -> None:
    """Overlap of the training tables and the generated pairs with every evaluated benchmark."""
    from faulttune.contamination import contamination_report, write_report

    rows = [{**row, "id": row.get("id") or row["task_id"]} for t in tables for row in io.read_parquet(t)]
    report = contamination_report(rows, load_benchmark_tasks(settings.benchmarks))
    write_report(report, out)
    for name, part in report["benchmarks"].items():
        log.info("contamination vs %s: %d of %d rows flagged", name, part["n_rows_flagged"],
                 part["n_rows_checked"])


def report(settings: ReportSettings, out_dir: str, **inputs: Sequence[str]) -> None:
    """Tables, plots and the manifest; ``inputs``: scores, sensitivity, pairs, trajectories,
    masks (lists of files, any may be empty) and ``models`` (trained model folders, whose
    ``train_log.jsonl`` and ``budget.json`` are read)."""
    from faulttune import methods

    methods.load_plugins(settings.config.get("plugins"))  # before the report reads the registry
    from faulttune.report import write_report
    from faulttune.training import BUDGET_FILE

    models = inputs.pop("models", [])
    logs = [str(Path(m) / "train_log.jsonl") for m in models if (Path(m) / "train_log.jsonl").is_file()]
    budgets = [str(Path(m) / BUDGET_FILE) for m in models]
    write_report(settings, out_dir, train_logs=logs, budgets=budgets, **inputs)
