"""The run's report: ``summary.csv`` (one row per experiment x benchmark) and ``report.md``.

summary.csv columns: experiment, method, benchmark, demo_split, pass_at_1, n_samples, n_tasks.
``demo_split`` marks the embedded demo benchmark (HumanEval tasks held out from the demo's training
split), whose numbers are not comparable with the papers'.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faulttune.config import expand_experiments

SUMMARY_COLUMNS = ("experiment", "method", "benchmark", "demo_split", "pass_at_1", "n_samples", "n_tasks")


def summary_rows(config: Mapping[str, Any], score_files: Sequence[str]) -> list[dict[str, Any]]:
    """One row per score file ``.../eval/<experiment>/<benchmark>.json``."""
    experiments = expand_experiments(config)
    rows = []
    for path in score_files:
        p = Path(path)
        result = json.loads(p.read_text())
        experiment, benchmark = p.parent.name, p.stem
        rows.append({
            "experiment": experiment,
            "method": experiments.get(experiment, {}).get("method", "?"),
            "benchmark": benchmark,
            "demo_split": benchmark == "humaneval-split-heldout",
            "pass_at_1": round(float(result["pass_at_1"]), 4),
            "n_samples": int(result["n_samples"]),
            "n_tasks": len({r["task_id"] for r in result["results"]}),
        })
    return sorted(rows, key=lambda r: (r["benchmark"], r["experiment"]))


def write_summary(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_markdown(config: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    parts = [
        f"# faulttune report: run `{config['run']}`",
        f"Student: `{config['student']['model']}`. Training source: "
        f"`{config['data']['train']['source']}`. Greedy decoding, one sample per task.",
        "## pass@1",
        markdown_table(rows, SUMMARY_COLUMNS),
    ]
    if any(r["demo_split"] for r in rows):
        parts.append(
            "`humaneval-split-heldout` is the **demo split**: the HumanEval tasks held out from the "
            "demo's training split. Its numbers only compare experiments of this run."
        )
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def write_report(config: Mapping[str, Any], score_files: Sequence[str], out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(config, score_files)
    write_summary(rows, out / "summary.csv")
    write_markdown(config, rows, out / "report.md")
