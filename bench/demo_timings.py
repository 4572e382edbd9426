"""Where the demo's time goes, rule by rule, from its Snakemake `benchmark:` files.

    python bench/demo_timings.py [results/demo] [--budget-minutes 30]

Prints every rule's jobs, total minutes, slowest job and peak memory, then the total against the
budget of `make demo` (30 minutes on a 2-core machine, install included): run it after each
`make demo` that adds work (seeds, new checks) to see what the addition costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faulttune.timings import format_table, per_rule, read_jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="results/demo")
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    args = parser.parse_args()
    rules = per_rule(read_jobs(Path(args.run_dir) / "benchmarks"))
    if not rules:
        print(f"no benchmark files under {args.run_dir}/benchmarks: run `make demo` first")
        return 1
    print(format_table(rules))
    total = sum(r.seconds for r in rules) / 60
    print(f"\njob time {total:.1f} min (jobs may overlap on 2 cores); demo budget "
          f"{args.budget_minutes:.0f} min wall time, install included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
