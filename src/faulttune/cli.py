"""The ``faulttune`` command line. Each subcommand imports its module only when it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# subcommand -> "module:function"; the function takes the parsed argparse namespace, returns rc.
_HANDLERS = {
    "score": "faulttune.evaluate:score_command",
    "generate": "faulttune.generate.run:generate_command",
    "show-mask": "faulttune.mask_view:show_mask_command",
    "convert-model": "faulttune.models:convert_command",
    "methods": "faulttune.methods:methods_command",
    "timings": "faulttune.timings:timings_command",
    "plan": "faulttune.plan:plan_command",
}


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score samples against a benchmark's tests (EvalPlus-compatible)")
    p.add_argument("benchmark", help="humaneval | humaneval_plus | mbpp | mbpp_plus | humanevalfix")
    p.add_argument("samples", help="JSONL with {task_id, solution} or {task_id, completion} rows")
    p.add_argument("--out", required=True, help="where to write RESULTS.json")
    p.add_argument("--data-dir", default=None, help="benchmark folder laid out like shared/data "
                   "(default: $FAULTTUNE_DATA_DIR, else the real loaders)")
    p.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: cores)")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate benchmark samples with a model")
    p.add_argument("--model", required=True, help="registry name, hub id or local path")
    p.add_argument("--benchmark", required=True, help="benchmark name (or a benchmark parquet)")
    p.add_argument("--out", required=True, help="SAMPLES.jsonl (raw output goes to *.raw.jsonl)")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm", "openai"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--tensor-parallel-size", type=int, default=None, help="vllm: GPUs per model")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL)")


def _add_show_mask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show-mask", help="print one row of a masks parquet with masked tokens highlighted")
    p.add_argument("masks", help="results/<run>/masks/<kind>_<source>.parquet")
    p.add_argument("--row", type=int, default=0)
    p.add_argument("--model", default=None,
                   help="tokenizer to decode with (default: the model named in the file's metadata)")


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-model", help="dequantise the embedded default into its cache folder")
    p.add_argument("--model", default="smollm2-135m-instruct")


def _add_methods(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("methods", help="every training method and its parameters, defaults and help")


def _add_timings(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("timings", help="where a run's time went: per-rule wall time and peak memory")
    p.add_argument("run_dir", help="results/<run> (reads its benchmarks/ folder)")
    p.add_argument("--slowest", type=int, default=None, help="only the N slowest rules")


def _add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="each trained experiment's examples and optimiser steps, before "
                       "any GPU is used (rc 1 when one would train fewer than 20 steps)")
    p.add_argument("--configfile", default="config/config.yaml", help="the run's config")
    p.add_argument("--results", default="results",
                   help="where the run's files live (counts are exact once they exist)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faulttune", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_score, _add_generate, _add_show_mask, _add_convert, _add_methods, _add_timings,
                _add_plan):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module_name, func_name = _HANDLERS[args.command].split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
