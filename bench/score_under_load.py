"""Correct programs on a busy machine: how many of a benchmark's canonical solutions our scorer
times out, idle and beside busy processes, with the run-queue wait forgiven and without.

Every canonical solution is correct, so every timeout is a wrong verdict. The tasks are the
benchmark's heaviest (longest canonical reference, where a slowdown reaches a limit first); each
condition scores them once, in this process, with ``--workers`` workers, beside ``--busy``
processes running ``while True: pass`` (none for the idle run). "unforgiven" is the same scorer
with the wait unread (as where /proc cannot be read): the wall clock alone.

    python bench/score_under_load.py [--benchmark mbpp_plus] [--tasks 24] [--busy 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from faulttune.data.benchmarks import dataset_path, load_benchmark
from faulttune.evaluate import expected_outputs, score_samples
from faulttune.evaluate.expected import reference_seconds
from faulttune.sandbox.runner import Session

ROOT = Path(__file__).resolve().parents[1]


def heaviest(benchmark: str, data_dir: Path, count: int) -> list[dict[str, str]]:
    tasks = load_benchmark(benchmark, data_dir)
    index = expected_outputs(benchmark, tasks, dataset_path(benchmark, data_dir))
    chosen = sorted(tasks, key=lambda t: -reference_seconds(index[t.task_id]))[:count]
    return [{"task_id": t.task_id, "solution": t.canonical_solution} for t in chosen]


def score_beside(busy: int, benchmark: str, samples: Path, data_dir: Path,
                 workers: int) -> tuple[Counter[str], list[str], float]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        start = time.monotonic()
        with tempfile.TemporaryDirectory() as folder:
            summary = score_samples(benchmark, samples, Path(folder) / "r.json",
                                    data_dir=data_dir, workers=workers)
        seconds = time.monotonic() - start
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    results = summary["results"]
    wrong = [f"{r['task_id']}: {r['detail']}" for r in results if r["status"] != "pass"]
    return Counter(r["status"] for r in results), wrong, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", default="mbpp_plus")
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--busy", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("FAULTTUNE_DATA_DIR") or ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    rows = heaviest(args.benchmark, args.data_dir, args.tasks)
    with tempfile.TemporaryDirectory() as folder:
        samples = Path(folder) / "samples.jsonl"
        samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{args.benchmark}: the canonical solutions of its {len(rows)} heaviest tasks, "
              f"{args.workers} workers, {os.cpu_count()} CPUs")
        conditions = [("idle", 0, True), (f"beside {args.busy} busy", args.busy, True),
                      (f"beside {args.busy} busy, unforgiven", args.busy, False)]
        reading = Session.contention
        for label, busy, forgive in conditions:
            Session.contention = reading if forgive else (lambda self, name: None)  # type: ignore[method-assign]
            try:
                counts, wrong, seconds = score_beside(busy, args.benchmark, samples,
                                                      args.data_dir, args.workers)
            finally:
                Session.contention = reading  # type: ignore[method-assign]
            print(f"  {label}: {counts.get('pass', 0)} of {len(rows)} pass, "
                  f"{len(rows) - counts.get('pass', 0)} wrong verdicts, {seconds:.1f} s")
            for line in wrong:
                print(f"    {line}")


if __name__ == "__main__":
    main()
