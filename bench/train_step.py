"""Step time and peak memory of every training loss, side by side in one run.

    python bench/train_step.py [--models tiny-random smollm2-135m-instruct] [--steps 4]

Configurations: every trained method of the registry at its defaults, each other value of its
enum parameters that are not data keys (``fgit_fixed``), and DPO with a frozen reference model.
Data: HumanEval tasks (prompt -> canonical solution) with one operator flipped as the rejected /
incorrect code, turned into masks rows by `faulttune.mask_table.build_mask_rows` (the trainer's
real input), one file per examples kind the configurations read. Each configuration first runs alone in a fresh subprocess (so ru_maxrss is its own
peak): `--steps` timed optimiser steps after one warm-up step, median step time. Then each ratio
comes from one subprocess that interleaves the steps of the two configurations (A B A B ...; vs
TRL, one of our steps after each TRL step), so both see the same load on a shared machine.
Ratios (goals from the "Training" issue):
  * masked vs unmasked at equal compute: target_dpo, focused_dpo vs dpo; fgit(fixed) vs sft (<= 1.05x)
  * extra forward work, reported only: every other configuration vs its method's registry
    baseline (a reference method whose baseline is untrained: vs dpo)
  * our dpo (precomputed reference) vs TRL DPOTrainer on the same text (<= 0.8x TRL's)
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ANCHOR = "dpo"  # what a method whose registry baseline is untrained is timed against
FROZEN_REF = "dpo_frozen_ref"
TRL = ("trl_dpo", "trl_dpo_precomputed")
GOALS = {("target_dpo", "dpo"): 1.05, ("focused_dpo", "dpo"): 1.05, ("fgit_fixed", "sft"): 1.05,
         ("dpo", "trl_dpo"): 0.8}


def configurations() -> dict[str, tuple[str, dict, dict]]:
    """name -> (method, params, other TrainConfig keys), from the registry."""
    from faulttune import methods

    out = {}
    for name in methods.trained_methods():
        method = methods.get(name)
        out[name] = (name, method.defaults(), {})
        for p in method.params:
            for value in p.schema.get("enum", ()) if not p.data else ():
                if value != p.default:
                    out[f"{name}_{value}"] = (name, {**method.defaults(), p.name: value}, {})
    out[FROZEN_REF] = (ANCHOR, methods.get(ANCHOR).defaults(), {"precompute_ref": False})
    return out


def ratios(ours: dict[str, tuple[str, dict, dict]]) -> list[tuple[str, str, float | None]]:
    """(name, against, goal or None): each configuration against its method's baseline."""
    from faulttune import methods

    out = []
    for name, (method, _, extra) in ours.items():
        baseline = methods.get(method).baseline
        if extra or baseline not in ours:  # an untrained baseline: reference methods vs dpo
            baseline = ANCHOR if methods.get(method).reference else None
        if baseline not in (None, name):
            out.append((name, baseline, GOALS.get((name, baseline))))
    return out + [(ANCHOR, t, GOALS.get((ANCHOR, t))) for t in TRL]


FLIPS = [(" + ", " - "), (" < ", " <= "), (" == ", " != "), (" > ", " >= "), (" - ", " + ")]


def humaneval_pairs(count: int) -> list[dict]:
    from faulttune.data.benchmarks import load_benchmark

    pairs = []
    for task in load_benchmark("humaneval"):
        for old, new in FLIPS:
            if old in task.canonical_solution:
                wrong = task.canonical_solution.replace(old, new, 1)
                pairs.append({"id": task.task_id, "task_id": task.task_id, "instruction": task.prompt,
                              "correct": task.canonical_solution, "incorrect": wrong})
                break
        if len(pairs) == count:
            return pairs
    return pairs


def examples_of(name: str) -> list:
    from faulttune import methods

    method, params, _ = configurations()[name]
    return methods.get(method).examples_of(params)


def write_data(model: str, folder: Path, count: int) -> None:
    from faulttune.mask_table import build_examples, build_mask_rows, write_masks
    from faulttune.models import load_tokenizer
    from faulttune.tracing.divergence import changed

    tokenizer, pairs = load_tokenizer(model), humaneval_pairs(count)
    tasks = [{"task_id": p["task_id"], "instruction": p["instruction"], "solution": p["correct"]}
             for p in pairs]
    kinds = {e.name: e for name in configurations() for e in examples_of(name)}
    for examples in kinds.values():  # traced kinds get the line diff's lines (no sandbox here)
        traced = {p["id"]: changed(p["correct"], p["incorrect"]) for p in pairs}
        rows, _ = build_examples(examples, tasks if examples.reads == "tasks" else pairs, tokenizer,
                                 tasks=tasks, traced=traced, max_length=2048)
        write_masks(rows, folder / f"{examples.name}.parquet", model, examples.name)
    rows, _ = build_mask_rows(pairs, tokenizer, "dpo", max_length=2048)
    text = [{"prompt": tokenizer.decode(r["chosen_ids"][:r["chosen_start"]]),
             "chosen": tokenizer.decode(r["chosen_ids"][r["chosen_start"]:]),
             "rejected": tokenizer.decode(r["rejected_ids"][r["rejected_start"]:])} for r in rows]
    (folder / "trl.json").write_text(json.dumps(text))


# ---------------------------------------------------------------------------------------------
# one configuration (runs in a subprocess)


def setup(name: str, model: str, folder: Path, out: str, steps: int, batch: int, micro: int):
    """The run of one configuration (the models its method requires: ``model`` itself)."""
    from faulttune import methods
    from faulttune.training import loop
    from faulttune.training.config import TrainConfig

    method, params, extra = configurations()[name]
    paths = [str(folder / f"{e.name}.parquet") for e in examples_of(name)]
    config = TrainConfig(method=method, params=params, lr=1e-5, max_steps=steps + 1,
                         batch_size=batch, micro_batch_size=micro, precision="fp32",
                         max_length=2048, **extra)
    requires = methods.get(method).requires
    models = {role: model for role in requires(params)} if requires else {}
    return loop.setup_run(paths, model, out, config, models)


def time_ours(name: str, model: str, folder: Path, steps: int, batch: int, micro: int) -> list[float]:
    from faulttune.training import loop

    run = setup(name, model, folder, str(folder / "out" / name), steps, batch, micro)
    times = []
    for step in range(steps + 1):
        began = time.perf_counter()
        loop.train_step(run, step)
        times.append(time.perf_counter() - began)
    return times[1:]


def time_trl(name: str, model: str, folder: Path, steps: int, batch: int, micro: int,
             after_step=None) -> list[float]:
    import datasets
    import trl
    from transformers import TrainerCallback

    from faulttune.models import load_model, load_tokenizer

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.began)
            if after_step is not None:
                after_step()

    args = trl.DPOConfig(
        output_dir=str(folder / "out" / name), bf16=False, report_to="none", use_cpu=True,
        per_device_train_batch_size=micro, gradient_accumulation_steps=batch // micro,
        gradient_checkpointing=False, beta=0.1, max_length=2048, learning_rate=1e-5,
        max_steps=steps + 1, save_strategy="no", logging_strategy="no", disable_tqdm=True,
        precompute_ref_log_probs=name == "trl_dpo_precomputed", lr_scheduler_type="cosine",
    )
    timer = Timer()
    trainer = trl.DPOTrainer(
        model=load_model(model, "fp32", "cpu").train(), args=args, callbacks=[timer],
        train_dataset=datasets.Dataset.from_list(json.loads((folder / "trl.json").read_text())),
        processing_class=load_tokenizer(model),
    )
    trainer.train()
    return timer.times[1:]


def ours_runs(names: list[str], model: str, folder: Path, steps: int, batch: int, micro: int) -> list:
    return [setup(name, model, folder, str(folder / "out" / f"pair-{name}"), steps, batch, micro)
            for name in names]


def timed_step(run, step: int) -> float:
    from faulttune.training import loop

    began = time.perf_counter()
    loop.train_step(run, step)
    return time.perf_counter() - began


def pair(name: str, against: str, model: str, folder: Path, steps: int, batch: int, micro: int) -> dict:
    """Median step times of `name` and `against`, their steps interleaved (A B A B ...) so that
    both see the same machine load. Against TRL: one of our steps runs after each TRL step."""
    if against in TRL:
        (run,) = ours_runs([name], model, folder, steps, batch, micro)
        ours: list[float] = []
        trl_times = time_trl(against, model, folder, steps, batch, micro,
                             after_step=lambda: ours.append(timed_step(run, len(ours))))
        return {"a": statistics.median(ours[1:]), "b": statistics.median(trl_times)}
    run_a, run_b = ours_runs([name, against], model, folder, steps, batch, micro)
    times_a, times_b = [], []
    for step in range(steps + 1):
        times_a.append(timed_step(run_a, step))
        times_b.append(timed_step(run_b, step))
    return {"a": statistics.median(times_a[1:]), "b": statistics.median(times_b[1:])}


def one(name: str, model: str, folder: Path, steps: int, batch: int, micro: int) -> dict:
    fn = time_trl if name in TRL else time_ours
    times = fn(name, model, folder, steps, batch, micro)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"name": name, "step_s": statistics.median(times), "peak_rss_mb": peak_mb}


# ---------------------------------------------------------------------------------------------
# driver


def _subprocess(args: list[str]) -> dict | None:
    command = [sys.executable, __file__, *args]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(r"^RESULT (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        print(f"{' '.join(args)}: failed\n{out.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(match.group(1))


def run_model(model: str, steps: int, batch: int, micro: int, count: int, names: list[str],
              skip_alone: bool = False) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_train_"))
    write_data(model, folder, count)
    common = ["--models", model, "--folder", str(folder), "--batch", str(batch), "--micro", str(micro)]
    print(f"\n{model}: each configuration alone ({steps} timed steps, batch {batch}, micro {micro})")
    for name in [] if skip_alone else names:
        result = _subprocess(["--one", name, "--steps", str(steps), *common])
        if result:
            print(f"  {name:20s} {result['step_s']:8.3f} s/step   peak RSS {result['peak_rss_mb']:7.0f} MB",
                  flush=True)
    print(f"\n{model}: ratios of step times, interleaved side by side")
    for name, against, goal in ratios(configurations()):
        if name not in names or against not in names:
            continue
        result = _subprocess(["--pair", name, against, "--steps", str(steps), *common])
        if result:
            ratio = result["a"] / result["b"]
            verdict = "" if goal is None else f"  goal <= {goal:.2f}: {'OK' if ratio <= goal else 'MISSED'}"
            print(f"  {name:16s} / {against:20s} = {ratio:5.2f}x  ({result['a']:.3f} s vs "
                  f"{result['b']:.3f} s){verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny-random", "smollm2-135m-instruct"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--micro", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--only", nargs="*", help="configurations to run (default: all)")
    parser.add_argument("--ratios-only", action="store_true", help="skip the runs alone (memory)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--pair", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args.one, args.models[0], Path(args.folder), args.steps,
                                         args.batch, args.micro)))
        return
    if args.pair:
        print("RESULT " + json.dumps(pair(*args.pair, args.models[0], Path(args.folder), args.steps,
                                          args.batch, args.micro)))
        return
    names = args.only or [*configurations(), *TRL]
    for model in args.models:
        run_model(model, args.steps, args.batch, args.micro, args.pairs, names, args.ratios_only)


if __name__ == "__main__":
    main()
