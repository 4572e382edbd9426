"""One function per workflow rule. ``workflow/scripts/*.py`` only unpack the ``snakemake`` object
and call these, so every stage is importable and testable without Snakemake."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from faulttune import io

log = logging.getLogger("faulttune")

TRAIN_SCHEMA = pa.schema([(c, pa.string()) for c in
                          ("task_id", "source", "instruction", "solution", "test", "entry_point")])


@contextlib.contextmanager
def log_to(path: str | os.PathLike[str]) -> Iterator[None]:
    """Send logging and stderr (progress bars, warnings) of a rule to its log file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f, contextlib.redirect_stderr(f):
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            logging.getLogger("faulttune").exception("stage failed")
            raise
        finally:
            root.removeHandler(handler)


def data_dir(config: Mapping[str, Any]) -> str | None:
    """The benchmark folder: ``data.data_dir``, else ``$FAULTTUNE_DATA_DIR``, else None."""
    return config["data"].get("data_dir") or os.environ.get("FAULTTUNE_DATA_DIR") or None


def active_benchmarks(config: Mapping[str, Any]) -> list[str]:
    """Benchmarks to evaluate: the configured ones, plus the optional ones when data is there."""
    names = list(config["data"]["benchmarks"])
    if data_dir(config):
        names += [b for b in config["data"].get("optional_benchmarks", []) if b not in names]
    return names


def prepare_train(config: Mapping[str, Any], out: str) -> None:
    from faulttune.data.sources import load_training_rows

    rows, rejected = load_training_rows(config["data"]["train"], config["seed"], data_dir(config))
    io.write_parquet(rows, out, TRAIN_SCHEMA)
    io.write_rejected(rejected, out, "prepare_train")
    log.info("training source %s: %d rows, %d rejected",
             config["data"]["train"]["source"], len(rows), len(rejected))


def prepare_benchmark(config: Mapping[str, Any], name: str, out: str) -> None:
    from faulttune.data.bench_table import BENCH_SCHEMA, benchmark_rows

    rows = benchmark_rows(
        name, seed=config["seed"], train_limit=config["data"]["train"].get("limit"),
        data_dir=data_dir(config), limit=config["data"].get("benchmark_limit"),
    )
    io.write_parquet(rows, out, BENCH_SCHEMA)
    log.info("benchmark %s: %d tasks", name, len(rows))


def generate(config: Mapping[str, Any], bench: str, model: str, out: str, threads: int = 1) -> None:
    """Greedy samples of ``model`` for every task of a benchmark table (resumable)."""
    import torch

    from faulttune.generate import GenerationParams, make_backend
    from faulttune.generate.run import generate_samples

    torch.set_num_threads(max(1, threads))
    gen = config["generation"]
    options: dict[str, Any] = {"batch_size": gen["batch_size"]}
    if gen["backend"] == "hf":
        options["precision"] = config["student"].get("precision", "auto")
    elif gen["backend"] == "vllm":
        options["tensor_parallel_size"] = gen["tensor_parallel_size"]
    backend = make_backend(gen["backend"], model, **options)
    tasks = io.read_parquet(bench, required=("task_id", "prompt", "entry_point"))
    params = GenerationParams(max_new_tokens=gen["max_new_tokens"], seed=config["seed"])
    generate_samples(tasks, backend, out, params=params)


def score(config: Mapping[str, Any], bench: str, samples: str, out: str, workers: int | None) -> None:
    from faulttune.evaluate import score_samples

    scored_as = io.read_parquet(bench, required=("scored_as",))[0]["scored_as"]
    result = score_samples(scored_as, samples, out, data_dir=data_dir(config), workers=workers)
    log.info("%s (scored as %s): pass@1 %.4f over %d samples",
             bench, scored_as, result["pass_at_1"], result["n_samples"])


def report(config: Mapping[str, Any], score_files: Sequence[str], out_dir: str) -> None:
    from faulttune.report import write_report

    write_report(config, score_files, out_dir)
