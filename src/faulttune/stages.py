"""One function per workflow rule. ``workflow/scripts/*.py`` only unpack the ``snakemake`` object
and call these, so every stage is importable and testable without Snakemake."""

from __future__ import annotations

import contextlib
import logging
import os
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


def prepare_train(config: Mapping[str, Any], out: str, section: str = "train") -> None:
    """The task table of ``data.<section>`` (``train``, or ``codeflow_train`` for CodeFlow)."""
    from faulttune.data.sources import load_training_rows

    source = config["data"][section]
    rows, rejected = load_training_rows(source, config["seed"], data_dir(config))
    if config["data"].get("decontaminate"):
        from faulttune.contamination import decontaminate

        rows, overlapping = decontaminate(rows, contamination_benchmarks(config))
        rejected += overlapping
        log.info("decontaminate: %d rows overlap an evaluated benchmark", len(overlapping))
    io.write_parquet(rows, out, TRAIN_SCHEMA)
    io.write_rejected(rejected, out, f"prepare_{section}")
    log.info("%s source %s: %d rows, %d rejected", section, source["source"], len(rows), len(rejected))


def contamination_benchmarks(config: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The evaluated benchmarks whose tasks training must not contain (the demo split: only its
    held-out half; a plus variant shares its base set's tasks; BigCodeBench is not checked)."""
    from faulttune.contamination import load_benchmarks
    from faulttune.data.sources import humaneval_split

    base = {"humaneval_plus": "humaneval", "mbpp_plus": "mbpp"}
    names = {base.get(b, b) for b in active_benchmarks(config) if not b.startswith("bigcodebench-")}
    sets: dict[str, list[Any]] = {}
    if "humaneval-split-heldout" in names:
        names.discard("humaneval-split-heldout")
        heldout = humaneval_split(config["seed"], config["data"]["train"].get("limit") or 64)[1]
        sets["humaneval-split-heldout"] = load_benchmarks(
            ["humaneval"], data_dir(config), {"humaneval": heldout})["humaneval"]
    sets.update(load_benchmarks(sorted(names), data_dir(config)))
    return sets


def contamination(config: Mapping[str, Any], tables: Sequence[str], out: str) -> None:
    """Overlap of the training table and the generated pairs with every evaluated benchmark."""
    from faulttune.contamination import contamination_report, write_report

    rows = [{**row, "id": row.get("id") or row["task_id"]} for t in tables for row in io.read_parquet(t)]
    report = contamination_report(rows, contamination_benchmarks(config))
    write_report(report, out)
    for name, part in report["benchmarks"].items():
        log.info("contamination vs %s: %d of %d rows flagged", name, part["n_rows_flagged"],
                 part["n_rows_checked"])


def prepare_benchmark(config: Mapping[str, Any], name: str, out: str) -> None:
    from faulttune.data.bench_table import BENCH_SCHEMA, benchmark_rows

    rows = benchmark_rows(
        name, seed=config["seed"], train_limit=config["data"]["train"].get("limit"),
        data_dir=data_dir(config), limit=config["data"].get("benchmark_limit"),
        bigcodebench_source=config["data"]["bigcodebench"]["source"],
    )
    io.write_parquet(rows, out, BENCH_SCHEMA)
    log.info("benchmark %s: %d tasks", name, len(rows))


def generate(config: Mapping[str, Any], bench: str, model: str, out: str, threads: int = 1) -> None:
    """Greedy samples of ``model`` for every task of a benchmark table (resumable)."""
    import torch

    from faulttune.generate import GenerationParams, backend_options, make_backend
    from faulttune.generate.run import generate_samples

    torch.set_num_threads(max(1, threads))
    gen = config["generation"]
    backend = make_backend(gen["backend"], model, **backend_options(gen, student=config["student"]))
    tasks = io.read_parquet(bench, required=("task_id", "prompt", "entry_point"))
    params = GenerationParams(max_new_tokens=gen["max_new_tokens"], seed=config["seed"])
    generate_samples(tasks, backend, out, params=params)


def score(config: Mapping[str, Any], bench: str, samples: str, out: str, workers: int | None) -> None:
    from faulttune.evaluate import score_samples

    scored_as = io.read_parquet(bench, required=("scored_as",))[0]["scored_as"]
    if scored_as.startswith("bigcodebench-"):
        result = _score_bigcodebench(config, bench, scored_as, samples, out, workers)
    else:
        result = score_samples(scored_as, samples, out, data_dir=data_dir(config), workers=workers)
    log.info("%s (scored as %s): pass@1 %.4f over %d samples",
             bench, scored_as, result["pass_at_1"], result["n_samples"])


def _score_bigcodebench(config: Mapping[str, Any], bench: str, name: str, samples: str, out: str,
                        workers: int | None) -> dict[str, Any]:
    """The official package's local execution (the papers' numbers), or our sandbox (offline)."""
    from faulttune import bigcodebench as bcb

    settings = config["data"]["bigcodebench"]
    task_ids = [r["task_id"] for r in io.read_parquet(bench)]
    if settings["scorer"] == "official":
        return bcb.score_official(samples, name, out, local_tasks=settings["source"],
                                  task_ids=task_ids, parallel=workers)
    subset, _ = bcb.parse_benchmark_name(name)
    tasks = [t for t in bcb.load_tasks(settings["source"], subset) if t["task_id"] in set(task_ids)]
    return bcb.score_with_sandbox(tasks, samples, name, out, workers=workers)


def report(config: Mapping[str, Any], out_dir: str, **inputs: Sequence[str]) -> None:
    """Tables, plots and the manifest; ``inputs``: scores, sensitivity, pairs, trajectories,
    masks (lists of files, any may be empty) and ``models`` (trained model folders, whose
    ``train_log.jsonl`` is read)."""
    from faulttune.report import write_report

    models = inputs.pop("models", [])
    logs = [str(Path(m) / "train_log.jsonl") for m in models if (Path(m) / "train_log.jsonl").is_file()]
    write_report(config, out_dir, train_logs=logs, **inputs)


def _train_tasks(train: str) -> list[dict[str, Any]]:
    return io.read_parquet(train, required=TRAIN_SCHEMA.names)


def _write_pairs(pairs: list[dict[str, Any]], rejected: list[dict[str, Any]], out: str,
                 stage: str) -> None:
    from faulttune.bugs.pairs import PAIRS_SCHEMA, REJECTED_SCHEMA, counts

    io.write_parquet(pairs, out, PAIRS_SCHEMA)
    io.write_rejected(rejected, out, stage, REJECTED_SCHEMA)
    log.info("%s: %s", stage, counts(pairs, rejected))


def mutate(config: Mapping[str, Any], train: str, source: str, out: str, workers: int) -> None:
    """Verified twins by universalmutator (``mutation``) or CCT's AST injection (``cct``)."""
    from faulttune.bugs.pairs import cct_pairs, mutation_pairs

    bugs, tasks = config["bugs"], _train_tasks(train)
    make = mutation_pairs if source == "mutation" else cct_pairs
    pairs, rejected = make(tasks, config["seed"], bugs["max_per_task"], verify=bugs["verify"],
                           workers=workers)
    _write_pairs(pairs, rejected, out, f"mutate:{source}")


def teacher_variants(config: Mapping[str, Any], train: str, out: str, threads: int = 1) -> None:
    """FGit's teacher: ``n_variants`` raw wrong-but-similar answers per task."""
    import torch

    from faulttune.bugs.pairs import teacher_candidates
    from faulttune.generate import backend_options, make_backend

    torch.set_num_threads(max(1, threads))
    teacher = config["teacher"]
    backend = make_backend(teacher["backend"], teacher["model"],
                           **backend_options(teacher, generation=config["generation"],
                                             student=config["student"]))
    rows = teacher_candidates(_train_tasks(train), backend, teacher["n_variants"],
                              teacher["temperature"], config["seed"], teacher["max_new_tokens"])
    io.write_parquet(rows, out)
    log.info("teacher %s: %d raw variants", teacher["model"], len(rows))


def select_pairs(config: Mapping[str, Any], train: str, candidates: str, out: str,
                 workers: int) -> None:
    """The most similar teacher variant per task, verified against the tests where they exist."""
    from faulttune.bugs.pairs import select_pairs as select

    pairs, rejected = select(io.read_parquet(candidates), _train_tasks(train),
                             similarity=config["teacher"]["similarity"],
                             verify=config["bugs"]["verify"], workers=workers)
    _write_pairs(pairs, rejected, out, "select_pairs")


def codeflow(config: Mapping[str, Any], train: str, mutants: str | None, out_dir: str,
             threads: int = 1) -> None:
    """CodeFlow debugging of every training task, then IterPref pairs (resumable)."""
    import torch

    from faulttune.codeflow import run_codeflow
    from faulttune.generate import backend_options, make_backend
    from faulttune.models import load_tokenizer

    torch.set_num_threads(max(1, threads))
    cf, student = config["codeflow"], config["student"]["model"]
    tokenizer = load_tokenizer(student)
    trajectories, pairs, rejected = run_codeflow(
        _train_tasks(train), make_backend(config["generation"]["backend"], student,
                                          **backend_options(config["generation"],
                                                            student=config["student"])),
        max_iters=cf["max_iters"], start=cf["start"],
        mutants=io.read_parquet(mutants) if mutants else None,
        checkpoint=Path(out_dir) / "trajectories.checkpoint.jsonl", seed=config["seed"],
        rejected=cf["rejected"], max_length=cf["max_length"],
        count_tokens=lambda s: len(tokenizer(s, add_special_tokens=False).input_ids),
        workers=threads,
    )
    io.write_parquet(trajectories, Path(out_dir) / "trajectories.parquet")
    io.write_parquet(pairs, Path(out_dir) / "pairs.parquet")
    io.write_rejected(rejected, Path(out_dir) / "pairs.parquet", "codeflow", _codeflow_rejected_schema())
    log.info("codeflow: %d versions, %d pairs, %d without a pair",
             len(trajectories), len(pairs), len(rejected))


def _codeflow_rejected_schema() -> pa.Schema:
    from faulttune.codeflow import REJECTED_COLUMNS

    ints = {"rejected_iteration", "chosen_iteration", "n_iterations"}
    return pa.schema([(c, pa.int64() if c in ints else pa.string()) for c in REJECTED_COLUMNS])


def masks(config: Mapping[str, Any], pairs: str, kind: str, out: str) -> None:
    """Training examples with their masks (``kind``: sft, cct, dpo, target_dpo, focused_dpo,
    fgit-line, fgit-token, fgit-hybrid), tokenised with the student's tokenizer."""
    from faulttune.mask_table import build_mask_rows, write_masks
    from faulttune.models import load_tokenizer

    student = config["student"]["model"]
    base_kind, _, granularity = kind.partition("-")
    rows = io.read_parquet(pairs)  # sft: the training table itself (the correct solutions)
    examples, rejected = build_mask_rows(
        rows, load_tokenizer(student), base_kind, granularity=granularity or "hybrid",
        seed=config["seed"], max_length=config["train"]["max_length"], source=pairs)
    write_masks(examples, out, student)
    io.write_rejected(rejected, out, f"masks:{kind}")
    log.info("masks %s from %s: %d examples, %d rejected", kind, pairs, len(examples), len(rejected))


def codeflow_pairs(config: Mapping[str, Any], train: str, trajectories: str, rejected_rule: str,
                   out: str) -> None:
    """IterPref pairs with another rejected-version rule (the paper's random|first|last ablation)
    from the trajectories already computed."""
    from faulttune.codeflow import build_pairs
    from faulttune.models import load_tokenizer

    tokenizer = load_tokenizer(config["student"]["model"])
    instructions = {t["task_id"]: t["instruction"] for t in _train_tasks(train)}
    pairs, rejected = build_pairs(
        io.read_parquet(trajectories), instructions, rejected=rejected_rule, seed=config["seed"],
        max_length=config["codeflow"]["max_length"],
        count_tokens=lambda s: len(tokenizer(s, add_special_tokens=False).input_ids))
    io.write_parquet(pairs, out)
    io.write_rejected(rejected, out, f"codeflow:{rejected_rule}", _codeflow_rejected_schema())
    log.info("codeflow pairs (rejected=%s): %d pairs, %d without", rejected_rule, len(pairs),
             len(rejected))


# experiment keys that only choose the data (masks/pairs), not the trainer
_DATA_KEYS = {"bugs", "granularity", "rejected"}
# train keys that choose how the job is launched
_LAUNCH_KEYS = {"num_processes", "accelerate_config"}


def train_config(config: Mapping[str, Any], experiment: Mapping[str, Any]) -> Any:
    """The trainer's config: ``train:`` defaults, then the experiment's own keys."""
    from faulttune.train import TrainConfig

    train = {k: v for k, v in config["train"].items() if k not in _LAUNCH_KEYS}
    grad_accum = train.pop("grad_accum", 1)
    values = {**train, "micro_batch_size": max(1, train["batch_size"] // grad_accum),
              "seed": config["seed"]}
    values.update({k: v for k, v in experiment.items() if k not in _DATA_KEYS})
    return TrainConfig.from_dict(values)


def train(config: Mapping[str, Any], experiment: str, examples: Sequence[str], out_dir: str,
          threads: int = 1) -> None:
    """Fine-tune the student on the experiment's training examples (resumes from checkpoints)."""
    import torch

    from faulttune.config import expand_experiments
    from faulttune.train import train_experiment

    torch.set_num_threads(max(1, threads))
    cfg = train_config(config, expand_experiments(config)[experiment])
    log.info("training %s (%s) on %s", experiment, cfg.method, list(examples))
    if config["train"]["num_processes"] > 1:
        from faulttune.train_launch import launch

        launch(examples, config["student"]["model"], out_dir, cfg, config["train"]["num_processes"],
               config["train"]["accelerate_config"])
    else:
        train_experiment(list(examples), config["student"]["model"], out_dir, cfg)


def heldout_tasks(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """HumanEval tasks no experiment trains on: the demo split's held-out half, else all of them
    (as task rows for the bugs stage)."""
    from faulttune.bugs.pairs import task_rows
    from faulttune.data.benchmarks import load_benchmark
    from faulttune.data.sources import DEMO_SPLIT, humaneval_split

    tasks = load_benchmark("humaneval", data_dir(config))
    if config["data"]["train"]["source"] == DEMO_SPLIT:
        keep = set(humaneval_split(config["seed"], config["data"]["train"].get("limit") or 64)[1])
        tasks = [t for t in tasks if t.task_id in keep]
    return task_rows(tasks)


def heldout_twins(config: Mapping[str, Any], out: str, workers: int) -> None:
    """Verified CCT twins of held-out HumanEval tasks, for the fault-sensitivity probe."""
    from faulttune.bugs.pairs import cct_pairs

    pairs, rejected = cct_pairs(heldout_tasks(config), config["seed"], 1, verify=True, workers=workers)
    _write_pairs(pairs, rejected, out, "heldout_twins")


def sensitivity(config: Mapping[str, Any], model: str, twins: str, out: str, threads: int = 1) -> None:
    """Log-likelihood of correct vs buggy code: HumanEvalFix (with a benchmark folder) and the
    held-out twins, at most ``sensitivity.limit`` pairs of each."""
    import torch

    from faulttune.sensitivity import humanevalfix_pairs, probe, twin_pairs, write_sensitivity

    torch.set_num_threads(max(1, threads))
    settings, folder = config["sensitivity"], data_dir(config)
    limit = settings.get("limit") or None
    pairs = (humanevalfix_pairs(folder)[:limit] if folder else []) + twin_pairs(twins)[:limit]
    write_sensitivity(probe(model, pairs, settings["batch_size"]), out)
    log.info("sensitivity of %s on %d pairs", model, len(pairs))
