"""Model jobs on a CPU: one after another on all cores, or side by side on one core each?

    python bench/model_jobs_side_by_side.py [--run demo] [--experiments sft dpo]

Needs a finished `make demo`; it reruns a few of its jobs with `--force` (the next `make demo`
then reruns the jobs downstream of them). For each kind of
model job it runs the same jobs twice through Snakemake, side by side in one run:

- in turn: `profiles/local` (the `gpu` resource lets one model job run at a time) with 2 threads;
- side by side: `profiles/cpu` (two model jobs at a time, 1 thread each), what `make demo` uses;

and prints the wall times and their ratio. Measured on the 2-core CI machine type (2026-11-27):
generation + probe of two experiments 111.6 s in turn, 73.8 s side by side (1.51x); training two
experiments 172 s in turn (73 + 99 s), 154 s side by side (1.12x).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def targets(run: str, experiments: list[str]) -> dict[str, list[str]]:
    root = f"results/{run}"
    return {
        "generate + probe": [
            path for e in experiments for path in (
                f"{root}/eval/{e}/humaneval-split-heldout.samples.jsonl",
                f"{root}/eval/{e}/bug_sensitivity.json",
            )
        ],
        "train": [f"{root}/models/{e}" for e in experiments],
    }


def timed_run(profile: str, paths: list[str]) -> float:
    command = [sys.executable, "-m", "snakemake", "--profile", profile, "--cores", "2", "--quiet",
               "--force", *paths]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="demo")
    parser.add_argument("--experiments", nargs=2, default=["sft", "dpo"])
    parser.add_argument("--kinds", nargs="+", default=["generate + probe", "train"])
    args = parser.parse_args()
    if not (REPO / "results" / args.run / "report").is_dir():
        print(f"results/{args.run} has no report: run `make demo` first")
        return 1
    for kind in args.kinds:
        paths = targets(args.run, args.experiments)[kind]
        in_turn = timed_run("profiles/local", paths)
        side_by_side = timed_run("profiles/cpu", paths)
        print(f"{kind:18s} {' + '.join(args.experiments)}: in turn {in_turn:6.1f} s, "
              f"side by side {side_by_side:6.1f} s, {in_turn / side_by_side:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
