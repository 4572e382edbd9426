"""The trainer on the tiny random model (CPU, seeded): every method learns, gradient accumulation
does not change the step's gradient, a killed run resumes to the same weights, and the precomputed
reference equals a frozen reference model.

Masks tables are built by hand in the contract's schema: prompt ids, a response ending with the
end-of-turn token (2) and a trailing newline token (198), masks as each kind defines them.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
from method_rows import (
    EOS,
    defaults,
    one_per_training,
    required_models,
    rows_of,
    trained,
    write_examples,
)
from safetensors.torch import load_file

from faulttune import methods
from faulttune.io import DataError
from faulttune.mask_table import write_masks
from faulttune.models import TINY_RANDOM, resolve_model
from faulttune.training import loop
from faulttune.training.budget import run_budget
from faulttune.training.config import TrainConfig, lr_at
from faulttune.training.data import (
    LoadedRows,
    load_rows,
    process_micro_batches,
    response_end,
    step_units,
    total_steps,
)
from faulttune.training.loop import train_experiment

pytestmark = pytest.mark.minutes(3.5)

NEWLINE = 198


def tiny_config(method: str, **overrides) -> TrainConfig:
    params = defaults(method, **overrides.pop("params", {}))
    values = {"method": method, "params": params, "lr": 1e-2, "max_steps": 2, "batch_size": 4,
              "micro_batch_size": 2, "warmup_ratio": 0.0, "precision": "fp32",
              "max_grad_norm": None, "seed": 0}
    return TrainConfig(**{**values, **overrides})


def recipe(method: str, **params):
    return methods.get(method).recipe(defaults(method, **params))


def load(paths: list[str], method: str, max_length: int = 1024, **params) -> LoadedRows:
    bound = recipe(method, **params)
    return load_rows(paths, bound.row_kinds, EOS, max_length, method, bound.skipped_kinds)


def units_of(paths: list[str], method: str, max_length: int = 1024) -> list:
    return recipe(method).group_units(load(paths, method, max_length).rows)


def make_rows(examples: str, count: int, seed: int = 0) -> list[dict]:
    return rows_of(methods.examples(examples), count, seed)


def train(paths: list[str], out: Path, config: TrainConfig, **kwargs) -> None:
    """train_experiment with the models the method requires (tiny-random stands in for each)."""
    train_experiment(paths, TINY_RANDOM, str(out), config,
                     models=required_models(config.method, **config.params), **kwargs)


def _log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def saved_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# ---------------------------------------------------------------------------------------------
# configuration, schedule, data order


def test_lr_at_warmup_then_cosine():
    config = TrainConfig(method="sft", lr=1.0, warmup_ratio=0.25, min_lr_ratio=0.1)
    # total 8 -> W = 2 warm-up steps: 1/3, 2/3; then cosine over 6 steps from 1.0 down to 0.1.
    assert lr_at(0, config, 8) == pytest.approx(1 / 3)
    assert lr_at(1, config, 8) == pytest.approx(2 / 3)
    assert lr_at(2, config, 8) == pytest.approx(1.0)
    assert lr_at(5, config, 8) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert lr_at(7, config, 8) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 5 / 6)))


@pytest.mark.parametrize("bad, message", [
    ({"lr": 0.0}, "lr must be > 0"),
    ({"batch_size": 8, "micro_batch_size": 3}, "not a multiple of micro_batch_size 3"),
    ({"method": "ppo"}, "method 'ppo'"),
    ({"precision": "int8"}, "precision 'int8'"),
    ({"method": "fgit", "params": defaults("fgit", **{"lambda": 0.5})},
     "fgit parameter lambda: 0.5 is less than the minimum of 1"),
    ({"method": "cct", "params": {"lambda": 2.0}}, "method 'cct' has no parameter 'lambda'"),
    ({"max_steps": 0}, "max_steps must be None or an integer >= 1"),
])
def test_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"method": "sft", **bad})


def test_config_accepts_every_fgit_weighting_of_the_loss():
    from faulttune.losses import WEIGHTINGS

    assert tuple(methods.get("fgit").param("weighting").schema["enum"]) == WEIGHTINGS
    config = TrainConfig(method="fgit", params=defaults("fgit", weighting="one_sided"))
    assert config.params["weighting"] == "one_sided"
    with pytest.raises(ValueError, match="weighting: 'symmetric' is not one of"):
        TrainConfig(method="fgit", params=defaults("fgit", weighting="symmetric"))


def test_config_keeps_the_user_names_and_never_fills_a_default(tmp_path):
    config = TrainConfig(method="fgit", params=defaults("fgit", **{"lambda": 3.0}))
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["params"]["lambda"] == 3.0  # what trainer_state.json stores
    for name in trained():
        assert TrainConfig(method=name, params=defaults(name)).params == methods.get(name).defaults()
    with pytest.raises(ValueError, match=r"method 'fgit' is missing parameter\(s\) \['granularity'"):
        TrainConfig(method="fgit", params={"lambda": 3.0})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['grad_accum'\]"):
        TrainConfig.from_dict({"grad_accum": 2})


def test_step_units_is_a_seeded_permutation_per_epoch():
    # 10 units, batch 4: 3 steps per epoch, the last one smaller (2 units), nothing repeated.
    epoch0 = [step_units(s, 10, 4, seed=1) for s in range(3)]
    assert [len(batch) for batch in epoch0] == [4, 4, 2]
    assert sorted(u for batch in epoch0 for u in batch) == list(range(10))
    assert step_units(3, 10, 4, seed=1) != epoch0[0]          # epoch 1: a new order
    assert step_units(0, 10, 4, seed=1) == epoch0[0]          # pure function of the step


def test_no_unit_repeats_within_a_step_of_a_small_data_set():
    # 3 units, global batch 128: one step per epoch with the 3 units once each
    assert total_steps(3, 128, 2.0, None) == 2
    for step in range(2):
        assert sorted(step_units(step, 3, 128, seed=0)) == [0, 1, 2]


def test_a_short_step_is_shared_by_processes_without_loss():
    # 5 units of a step of 8 (2 processes x 2 micro-steps x micro-batch 2): every unit once,
    # shares differ by at most one, every process runs 2 micro-steps (empty ones are fillers)
    units = [10, 11, 12, 13, 14]
    shares = [process_micro_batches(units, rank, 2, 2, 2) for rank in range(2)]
    assert shares == [[[10, 11], []], [[12, 13], [14]]]
    full = list(range(8))
    assert [process_micro_batches(full, rank, 2, 2, 2) for rank in range(2)] == [
        [[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    assert process_micro_batches([7], 0, 2, 2, 2) == [[], []]


def test_response_end_is_after_the_last_eos():
    assert response_end([1, 5, 6, EOS, NEWLINE], 1, EOS) == 4
    assert response_end([1, 5, 6], 1, EOS) == 3


def train_table(n: int) -> list[dict]:
    """Training-table rows (the columns the bugs and masks stages read) whose solutions admit
    every CCT bug family."""
    solution = "def f(xs, y):\n    total = len(xs) + y\n    return max(total, y)\n"
    return [{"task_id": f"T/{k}", "instruction": f"Task {k}.", "solution": solution, "test": "",
             "entry_point": "f"} for k in range(n)]


def pipeline_masks(folder: Path, tasks: list[dict], **cct_options) -> dict[str, str]:
    """The masks files as the pipeline writes them: the training table -> ``sft`` rows (id = the
    task id); ``cct_pairs`` as the mutate stage calls it -> ``cct`` + ``cct_seq`` rows (ids
    ``cct:<task>:<family>:<k>``)."""
    from faulttune.bugs.pairs import cct_pairs
    from faulttune.mask_table import build_mask_rows
    from faulttune.models import load_tokenizer

    tokenizer = load_tokenizer(TINY_RANDOM)
    pairs, _ = cct_pairs(tasks, 0, 1, verify=False, **cct_options)
    paths = {}
    for kind, source in (("sft", tasks), ("cct", pairs)):
        rows, rejected = build_mask_rows(source, tokenizer, kind)
        assert rejected == []
        paths[kind] = str(folder / f"{kind}.parquet")
        write_masks(rows, paths[kind], TINY_RANDOM)
    return paths


@pytest.mark.parametrize("cct_options", [{}, {"per_family": 1}])
def test_cct_units_are_the_tasks_of_the_real_pipeline(tmp_path, cct_options):
    tasks = train_table(6)
    paths = pipeline_masks(tmp_path, tasks, **cct_options)
    sft_units = units_of([paths["sft"]], "sft")
    units = units_of([paths["sft"], paths["cct"]], "cct")
    assert len(units) == len(sft_units) == len(tasks)  # one unit per task, as for SFT
    assert [u.task_id for u in units] == [t["task_id"] for t in tasks]
    pairs_per_task = 3 if cct_options else 1  # per_family=1: one twin of each family
    for unit in units:
        assert unit.of("sft")[0].id == unit.task_id
        assert len(unit.of("sft")) == 1
        assert len(unit.of("cct")) == len(unit.of("cct_seq")) == pairs_per_task
        assert all(r.id.startswith(f"cct:{unit.task_id}:") for r in unit.of("cct"))
    # an epoch of CCT takes as many optimiser steps (and L_lm updates) as an epoch of SFT
    for batch_size in (1, 4):
        assert total_steps(len(units), batch_size, 1.0, None) == total_steps(len(sft_units), batch_size, 1.0, None)


def test_fgit_trains_on_every_task_sft_trains_on(tmp_path):
    from faulttune.mask_table import build_mask_rows
    from faulttune.models import load_tokenizer

    tasks = train_table(4)
    pairs = [{"id": f"teacher:{t['task_id']}", "task_id": t["task_id"], "instruction": t["instruction"],
              "correct": t["solution"], "incorrect": t["solution"].replace("+ y", "- y")}
             for t in tasks[:2]]  # the teacher found a variant for two tasks of four
    rows, rejected = build_mask_rows(pairs, load_tokenizer(TINY_RANDOM), "fgit-hybrid", tasks=tasks)
    assert rejected == []
    write_masks(rows, tmp_path / "fgit.parquet", TINY_RANDOM)
    units = units_of([str(tmp_path / "fgit.parquet")], "fgit")
    assert [u.task_id for u in units] == [t["task_id"] for t in tasks]
    assert [u.rows[0].rejected is not None for u in units] == [True, True, False, False]
    # one micro-batch per unit: some micro-batches hold plain rows only (no y_i forward pass)
    for weighting in ("dynamic", "one_sided", "fixed"):
        out = tmp_path / weighting
        config = tiny_config("fgit", batch_size=4, micro_batch_size=1, params={"weighting": weighting})
        train([str(tmp_path / "fgit.parquet")], out, config)
        assert all(math.isfinite(r["loss"]) for r in _log(out))


# A twin far longer than the correct code: a few lines the correct code does not have.
LONG_TAIL = "".join(f"    unused_{k} = [{k}, {k + 1}, {k + 2}, {k + 3}]\n" for k in range(12))


def longest(rows: list[dict], side: str) -> int:
    return max(len(row[f"{side}_ids"]) for row in rows if row[f"{side}_ids"] is not None)


def run_budget_of(paths: list[str], method: str, max_length: int) -> tuple[dict, list[str], list[str]]:
    """The budget an epoch at batch 2 gives the rows of ``paths`` that fit ``max_length``."""
    loaded = load(paths, method, max_length)
    units = recipe(method).group_units(loaded.rows)
    config = tiny_config(method, batch_size=2, micro_batch_size=2, epochs=1.0, max_steps=None)
    budget = run_budget(units, recipe(method), config, total_steps(len(units), 2, 1.0, None),
                        len(loaded.too_long), len(loaded.plain))
    return budget, [u.task_id for u in units], [r.id for r in loaded.rows]


def test_fgit_keeps_every_sft_task_at_its_own_max_length(tmp_path):
    """paper.yaml builds the masks files at the run's longest max_length (2048, the DPO family's)
    while FGit and its SFT baseline train at 1024. A task whose y_i exceeds FGit's max_length
    while y_c fits trains as a plain row, exactly as in a masks file built at that max_length;
    FGit's budget keeps every task SFT's keeps."""
    from faulttune.config import load_config
    from faulttune.dag import Plan
    from faulttune.mask_table import build_mask_rows
    from faulttune.models import load_tokenizer

    paper = Plan(load_config(Path(__file__).parents[1] / "config/paper.yaml"), environ={})
    assert paper.masks("fgit-hybrid").max_length == 2048 > paper.train("fgit").config.max_length == 1024

    tokenizer = load_tokenizer(TINY_RANDOM)
    tasks = train_table(4)
    twins = {0: LONG_TAIL, 1: "", 2: LONG_TAIL}  # tasks 0 and 2: a twin longer than max_length
    pairs = [{"id": f"teacher:{t['task_id']}", "task_id": t["task_id"], "instruction": t["instruction"],
              "correct": t["solution"],
              "incorrect": t["solution"].replace("+ y", "- y") + twins[k]}
             for k, t in enumerate(tasks[:3])]
    sft, _ = build_mask_rows(tasks, tokenizer, "sft", max_length=2048)
    fgit, rejected = build_mask_rows(pairs, tokenizer, "fgit-hybrid", tasks=tasks, max_length=2048)
    assert rejected == [] and all(row["rejected_ids"] for row in fgit[:3])
    max_length = max(longest(sft, "chosen"), len(fgit[1]["rejected_ids"]))
    assert len(fgit[0]["rejected_ids"]) > max_length and len(fgit[2]["rejected_ids"]) > max_length
    paths = {}
    for name, rows in (("sft", sft), ("fgit", fgit),
                       ("fgit_at_max_length", build_mask_rows(pairs, tokenizer, "fgit-hybrid",
                                                              tasks=tasks, max_length=max_length)[0])):
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_masks(rows, paths[name], TINY_RANDOM)

    sft_budget, sft_tasks, _ = run_budget_of([paths["sft"]], "sft", max_length)
    fgit_budget, fgit_tasks, fgit_ids = run_budget_of([paths["fgit"]], "fgit", max_length)
    assert fgit_tasks == sft_tasks == [t["task_id"] for t in tasks]
    assert fgit_budget["train_tasks"] == sft_budget["train_tasks"] == 4
    assert fgit_budget["train_steps"] == sft_budget["train_steps"]
    assert (fgit_budget["left_out_too_long"], fgit_budget["plain_twin_too_long"]) == (0, 2)
    # the same rows as a masks file built at the run's own max_length
    shared = load([paths["fgit"]], "fgit", max_length).rows
    own = load([paths["fgit_at_max_length"]], "fgit", max_length).rows
    assert fgit_ids == [r.id for r in own] == ["T/0", "teacher:T/1", "T/2", "T/3"]
    for a, b in zip(shared, own):
        assert (a.rejected is None) == (b.rejected is None)
        assert torch.equal(a.chosen.ids, b.chosen.ids) and torch.equal(a.chosen.mask, b.chosen.mask)
    assert [r.rejected is not None for r in shared] == [False, True, False, False]
    # and the trainer writes it into budget.json
    run = loop.setup_run([paths["fgit"]], TINY_RANDOM, str(tmp_path / "run"),
                         tiny_config("fgit", max_steps=None, epochs=1.0, max_length=max_length))
    assert (run.budget["train_tasks"], run.budget["plain_twin_too_long"]) == (4, 2)


def test_cct_keeps_the_tasks_l_lm_row_when_its_comparison_rows_are_too_long(tmp_path):
    """CCT at a max_length its bug-fix samples (prompt = the buggy code) exceed: the cct_seq rows
    are left out and counted, every task keeps its L_lm row, so CCT's units are SFT's."""
    paths = pipeline_masks(tmp_path, train_table(4))
    sft_rows = load([paths["sft"]], "sft").rows
    max_length = max(len(r.chosen.ids) for r in sft_rows)
    sft_budget, sft_tasks, _ = run_budget_of([paths["sft"]], "sft", max_length)
    cct_budget, cct_tasks, cct_ids = run_budget_of([paths["sft"], paths["cct"]], "cct", max_length)
    assert cct_tasks == sft_tasks and cct_budget["train_tasks"] == sft_budget["train_tasks"] == 4
    assert cct_budget["train_steps"] == sft_budget["train_steps"]
    assert cct_budget["train_tokens_by_kind"]["sft"] == sft_budget["train_tokens"]
    assert "cct_seq" not in cct_budget["train_tokens_by_kind"]
    assert cct_budget["left_out_too_long"] >= 4 and cct_budget["plain_twin_too_long"] == 0
    assert set(cct_ids) >= set(sft_tasks)


def test_dpo_and_its_comparisons_leave_out_the_same_pairs(tmp_path):
    """The DPO family's units are pairs: a pair with a side over max_length is left out and
    counted, identically for DPO, Target-DPO and Focused-DPO (one pairs table, one tokenisation)."""
    from faulttune.mask_table import build_mask_rows
    from faulttune.models import load_tokenizer

    tokenizer = load_tokenizer(TINY_RANDOM)
    pairs = [{"id": f"cf:{t['task_id']}", "task_id": t["task_id"], "instruction": t["instruction"],
              "chosen": t["solution"],
              "rejected": t["solution"].replace("+ y", "- y") + (LONG_TAIL if k % 2 else "")}
             for k, t in enumerate(train_table(6))]
    paths, lengths = {}, {}
    for kind in ("dpo", "target_dpo", "focused_dpo"):
        rows, rejected = build_mask_rows(pairs, tokenizer, kind, max_length=2048)
        assert rejected == []
        paths[kind] = str(tmp_path / f"{kind}.parquet")
        write_masks(rows, paths[kind], TINY_RANDOM)
        lengths[kind] = [len(r["rejected_ids"]) for r in rows]
    assert lengths["dpo"] == lengths["target_dpo"] == lengths["focused_dpo"]
    max_length = max(n for n, pair in zip(lengths["dpo"], pairs) if not pair["rejected"].endswith(LONG_TAIL))
    method_of = {"dpo": "dpo", "target_dpo": "target_dpo", "focused_dpo": "focused_dpo"}
    budgets = {kind: run_budget_of([paths[kind]], method_of[kind], max_length) for kind in paths}
    for budget, tasks, ids in budgets.values():
        assert ids == [p["id"] for p in pairs[0::2]] and tasks == [p["task_id"] for p in pairs[0::2]]
        assert (budget["units"], budget["left_out_too_long"], budget["plain_twin_too_long"]) == (3, 3, 0)
    steps = {kind: b["train_steps"] for kind, (b, _, _) in budgets.items()}
    assert len(set(steps.values())) == 1


def test_fgit_plain_row_with_a_segment_is_an_error(tmp_path):
    rows = make_rows("fgit-hybrid", 3)
    rows[2]["chosen_mask"] = rows[0]["chosen_mask"][: len(rows[2]["chosen_ids"])]
    rows[2]["chosen_mask"] += [0] * (len(rows[2]["chosen_ids"]) - len(rows[2]["chosen_mask"]))
    write_masks(rows, tmp_path / "fgit.parquet", TINY_RANDOM)
    with pytest.raises(DataError, match="row 2: field chosen_mask is nonzero for a fgit row without"):
        load([str(tmp_path / "fgit.parquet")], "fgit")


def test_the_trainer_ends_responses_at_the_templates_end_of_turn(tmp_path):
    """A model whose eos (a new </s>) is not what its chat template ends a turn with
    (<|im_end|>): SFT's masks and FGit's labels (the trainer's response span) cover the same
    tokens, <|im_end|> included and nothing after it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from faulttune.mask_table import build_mask_rows

    folder = tmp_path / "model"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(TINY_RANDOM))
    tokenizer.add_special_tokens({"eos_token": "</s>"})
    model = AutoModelForCausalLM.from_pretrained(resolve_model(TINY_RANDOM))
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    tasks = train_table(3)
    files = {"sft": build_mask_rows(tasks, tokenizer, "sft")[0],
             "fgit": build_mask_rows([], tokenizer, "fgit-hybrid", tasks=tasks)[0]}
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for row in files["sft"]:
        last = max(i for i, m in enumerate(row["chosen_mask"]) if m)
        assert row["chosen_ids"][last] == im_end != tokenizer.eos_token_id
    tokens = {}
    for method, rows in files.items():
        write_masks(rows, tmp_path / f"{method}.parquet", str(folder))
        extra = {"params": {"weighting": "fixed"}} if method == "fgit" else {}
        config = tiny_config(method, max_steps=None, epochs=1.0, **extra)
        run = loop.setup_run([str(tmp_path / f"{method}.parquet")], str(folder), str(tmp_path / method), config)
        tokens[method] = run.budget["train_tokens"]
    assert tokens["fgit"] == tokens["sft"] == sum(sum(row["chosen_mask"]) for row in files["sft"])


def test_a_kind_the_method_does_not_use_names_file_row_and_field(tmp_path):
    paths = write_examples(tmp_path, "dpo", count=2)
    with pytest.raises(DataError, match=r"dpo.parquet row 0: field kind 'dpo' is not used by method 'sft'"):
        load(paths, "sft")
    with pytest.raises(DataError, match="no training examples of at most 8 tokens"):
        load(paths, "dpo", 8)


def test_rows_longer_than_the_runs_max_length_are_left_out_and_counted(tmp_path):
    paths = write_examples(tmp_path, "sft", count=4)
    rows = load(paths, "sft").rows
    lengths = sorted(len(r.chosen.ids) for r in rows)
    loaded = load(paths, "sft", lengths[1])
    kept, too_long = loaded.rows, loaded.too_long
    assert loaded.plain == []
    assert len(kept) == sum(n <= lengths[1] for n in lengths) and len(too_long) == 4 - len(kept)
    assert all(len(r.chosen.ids) <= lengths[1] for r in kept)
    assert too_long[0].startswith(f"{paths[0]} row ")


# ---------------------------------------------------------------------------------------------
# every method trains


@pytest.mark.parametrize("method", trained())
def test_every_method_changes_every_parameter(tmp_path, method):
    out = tmp_path / "out"
    train(write_examples(tmp_path, method), out, tiny_config(method))
    before = load_file(str(Path(resolve_model(TINY_RANDOM)) / "model.safetensors"))
    after = saved_weights(out)
    assert set(after) == set(before)                       # the CCT head is not saved
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == []
    lines = _log(out)
    assert [l["step"] for l in lines] == [1, 2]
    expected = ("rewards/accuracies" if methods.get(method).reference else "L_token"
                if methods.get(method).head else "fgit_weight" if method == "fgit" else "L_lm")
    assert all(math.isfinite(l["loss"]) and expected in l and l["tokens_per_s"] > 0 for l in lines)
    assert not (out / "checkpoints").exists()
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert torch.equal(reloaded["model.norm.weight"], after["model.norm.weight"])


# ---------------------------------------------------------------------------------------------
# invariance: (batch 8, micro 8) and (batch 8, micro 2 -> accumulation 4) give the same gradient


def first_step_gradients(paths: list[str], out: Path, config: TrainConfig) -> dict[str, torch.Tensor]:
    run = loop.setup_run(paths, TINY_RANDOM, str(out), config, required_models(config.method))
    loop.accumulate_gradients(run, 0)
    return {n: p.grad.detach().clone() for n, p in run.module.named_parameters() if p.grad is not None}


# float32 sums in another order differ by ~1e-6 of the gradients' scale (measured: 2e-7 to 1e-6,
# ~8 float32 epsilons); the bound is 50 times that. Round-off follows the size of the summed
# terms, so the scale is the largest gradient of the model, not of each tensor: a gradient that
# cancels to ~0 (the CCT head's bias) is round-off of its own, off by 150 % relative to itself.
GRADIENT_ATOL = 5e-5


def assert_same_gradients(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    scale = max(float(g.abs().max()) for g in expected.values())
    assert scale > 0
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=GRADIENT_ATOL * scale, msg=name)


def variants() -> list[str]:
    """Every trained method, and each other value of an enum parameter that is not a data key
    (``method-param=value``)."""
    out = trained()
    for name in trained():
        for p in methods.get(name).params:
            out += [f"{name}-{p.name}={v}" for v in p.schema.get("enum", ())
                    if not p.data and v != p.default]
    return out


@pytest.mark.parametrize("method", variants())
def test_accumulation_does_not_change_the_gradient(tmp_path, method):
    method, _, variant = method.partition("-")
    key, _, value = variant.partition("=")
    extra = {"params": {key: value}} if variant else {}
    paths = write_examples(tmp_path, method, count=8)
    whole = first_step_gradients(paths, tmp_path / "a", tiny_config(method, batch_size=8, micro_batch_size=8, **extra))
    split = first_step_gradients(paths, tmp_path / "b", tiny_config(method, batch_size=8, micro_batch_size=2, **extra))
    assert whole.keys() == split.keys() and len(whole) > 0
    assert_same_gradients(split, whole)


@pytest.mark.parametrize("method", one_per_training())
def test_a_short_last_step_gives_the_gradient_of_its_units(tmp_path, method):
    # 6 units, batch 4: step 1 holds the 2 units left; with micro-batches of 1 (accumulation 4)
    # two of its four micro-steps are zero-loss fillers
    paths = write_examples(tmp_path, method, count=6)
    grads, losses = [], []
    for micro in (4, 1):
        config = tiny_config(method, batch_size=4, micro_batch_size=micro)
        run = loop.setup_run(paths, TINY_RANDOM, str(tmp_path / f"m{micro}"), config,
                             required_models(method))
        assert len(step_units(1, len(run.units), 4, config.seed)) == 2
        metrics, _ = loop.accumulate_gradients(run, 1)
        losses.append(sum(metrics["loss"]))
        grads.append({n: p.grad.clone() for n, p in run.module.named_parameters() if p.grad is not None})
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert grads[0].keys() == grads[1].keys()
    assert_same_gradients(grads[1], grads[0])


def test_the_trainer_writes_the_budget_and_warns_about_few_steps(tmp_path, caplog):
    paths = write_examples(tmp_path, "sft", count=8)
    config = tiny_config("sft", max_steps=None, epochs=1.0)
    with caplog.at_level(logging.WARNING, logger="faulttune.training.setup"):
        train_experiment(paths, TINY_RANDOM, str(tmp_path / "out"), config)
    budget = json.loads((tmp_path / "out" / "budget.json").read_text())
    tokens = sum(sum(row["chosen_mask"]) for row in make_rows("sft", 8))  # every response token
    assert budget == {"method": "sft", "train_tasks": 8, "train_examples": 8, "train_steps": 2,
                      "train_tokens": tokens, "train_tokens_by_kind": {"sft": tokens}, "units": 8,
                      "steps_per_epoch": 2, "batch_size": 4, "few_steps": True,
                      "left_out_too_long": 0, "plain_twin_too_long": 0}
    assert "sft trains for only 2 optimiser steps (< 20)" in caplog.text


def test_cct_and_sft_budgets_match_on_the_real_pipeline(tmp_path):
    paths = pipeline_masks(tmp_path, train_table(6))

    def budget(method: str, files: list[str], epochs: float) -> dict:
        units = units_of(files, method)
        config = tiny_config(method, batch_size=2, micro_batch_size=2, epochs=epochs, max_steps=None)
        return run_budget(units, recipe(method), config, total_steps(len(units), 2, epochs, None))

    for epochs in (1.0, 2.5):
        sft = budget("sft", [paths["sft"]], epochs)
        cct = budget("cct", [paths["sft"], paths["cct"]], epochs)
        assert (cct["train_tasks"], cct["train_steps"]) == (sft["train_tasks"], sft["train_steps"])
        assert cct["train_tokens_by_kind"]["sft"] == sft["train_tokens"]  # the same L_lm budget
        assert cct["train_examples"] == 3 * sft["train_examples"]         # + a pair and a bug fix
    assert (sft["train_tasks"], sft["train_steps"], sft["train_examples"]) == (6, 8, 16)


def test_a_loss_term_weighted_zero_trains_no_rows(tmp_path):
    """CCT at beta 0 (cct~beta=0.0) does not train its bug-fix samples: they would add nothing
    to the loss, only compute and 'loss tokens' to its budget; alpha 0 likewise its pairs."""
    from collections import Counter

    paths = pipeline_masks(tmp_path, train_table(6))
    files = [paths["sft"], paths["cct"]]

    def kinds(**params) -> dict[str, int]:
        return dict(Counter(row.kind for row in load(files, "cct", **params).rows))

    full = kinds()
    assert set(full) == {"sft", "cct", "cct_seq"}
    assert kinds(beta=0.0) == {k: n for k, n in full.items() if k != "cct_seq"}
    assert kinds(alpha=0, beta=0.5) == {k: n for k, n in full.items() if k != "cct"}
    assert kinds(alpha=0.0, beta=0.0) == {"sft": full["sft"]}
    bound = recipe("cct", beta=0.0)
    units = bound.group_units(load(files, "cct", beta=0.0).rows)
    config = tiny_config("cct", params={"beta": 0.0}, batch_size=2, micro_batch_size=2,
                         max_steps=None, epochs=1.0)
    budget = run_budget(units, bound, config, total_steps(len(units), 2, 1.0, None))
    assert set(budget["train_tokens_by_kind"]) == {"sft", "cct"}


# ---------------------------------------------------------------------------------------------
# resume and reference


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    paths = write_examples(tmp_path, "cct", count=8)
    config = tiny_config("cct", max_steps=4, save_every=2, weight_decay=0.1, warmup_ratio=0.25,
                         max_grad_norm=1.0)
    train_experiment(paths, TINY_RANDOM, str(tmp_path / "straight"), config)

    def kill_after_third_step(step: int) -> None:
        if step == 2:
            raise Killed

    resumed = tmp_path / "resumed"
    with pytest.raises(Killed):
        train_experiment(paths, TINY_RANDOM, str(resumed), config, on_step_end=kill_after_third_step)
    assert (resumed / "checkpoints" / "step-2" / "trainer_state.json").is_file()
    train_experiment(paths, TINY_RANDOM, str(resumed), config)
    a, b = saved_weights(tmp_path / "straight"), saved_weights(resumed)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)
    steps = [r["step"] for r in _log(resumed)]
    assert steps == [1, 2, 3, 4]
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["resumed_from_step"] == 2 and not (resumed / "checkpoints").exists()


@pytest.mark.parametrize("method", one_per_training(reference=True))
def test_precomputed_reference_equals_a_frozen_reference_model(tmp_path, method):
    paths = write_examples(tmp_path, method, count=4)
    for precompute in (True, False):
        train(paths, tmp_path / str(precompute), tiny_config(method, precompute_ref=precompute))
    assert (tmp_path / "True" / "ref_logps.pt").is_file()
    assert not (tmp_path / "False" / "ref_logps.pt").exists()
    logs = [_log(tmp_path / p) for p in ("True", "False")]
    assert [r["loss"] for r in logs[0]] == pytest.approx([r["loss"] for r in logs[1]], rel=1e-6)
    assert logs[0][0]["dpo"] == pytest.approx(math.log(2), rel=1e-6)  # policy == reference at step 1
    a, b = saved_weights(tmp_path / "True"), saved_weights(tmp_path / "False")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)


def test_the_reference_is_precomputed_only_for_the_units_the_run_draws(tmp_path):
    """8 pairs, 2 steps of 2: the run draws 4 units; the reference of the other 4 is never
    needed (a study's DPO draws 128 of ~470 pairs), and training is unchanged."""
    paths = write_examples(tmp_path, "dpo", count=8)
    for precompute in (True, False):
        config = tiny_config("dpo", batch_size=2, micro_batch_size=1, precompute_ref=precompute)
        train_experiment(paths, TINY_RANDOM, str(tmp_path / str(precompute)), config)
    stored = torch.load(tmp_path / "True" / "ref_logps.pt")["logps"]
    drawn = {i for step in range(2) for i in step_units(step, 8, 2, 0)}
    assert stored.shape == (8, 2) and len(drawn) == 4
    assert sorted(torch.isfinite(stored[:, 0]).nonzero().flatten().tolist()) == sorted(drawn)
    logs = [[r["loss"] for r in _log(tmp_path / p)] for p in ("True", "False")]
    assert logs[0] == pytest.approx(logs[1], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# several processes (accelerate launch, gloo on the CPU)


@pytest.mark.slow
@pytest.mark.parametrize("method", [one_per_training(head=True)[0],
                                    one_per_training(reference=True)[0]])
def test_two_processes_train_like_one(tmp_path, method):
    """`accelerate launch` with the repo's DDP config and 2 processes (the train rule's command)
    gives the step losses and gradient norms of one process with the same global batch: each
    process takes its half of the step's units, the losses use step-level counts, and the
    DDP average is undone. The weights end equal too. 5 examples at batch 4: the second step
    holds one unit, so process 0 runs a zero-loss filler while process 1 trains it."""
    from faulttune.training.launch import launch

    paths = write_examples(tmp_path, method, count=5)
    config = tiny_config(method, max_steps=2, batch_size=4, micro_batch_size=2, lr=1e-3)
    train_experiment(paths, TINY_RANDOM, str(tmp_path / "one"), config)
    launch(paths, TINY_RANDOM, str(tmp_path / "two"), config, num_processes=2, accelerate_config="ddp")
    state = json.loads((tmp_path / "two" / "trainer_state.json").read_text())
    assert state["num_processes"] == 2 and state["accumulation"] == 1
    one, two = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2]
    for a, b in zip(one, two):
        for key in ("loss", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), (a["step"], key)
    assert_same_adam_update(saved_weights(tmp_path / "one"), saved_weights(tmp_path / "two"), config.lr)


def assert_same_adam_update(one: dict[str, torch.Tensor], two: dict[str, torch.Tensor], lr: float) -> None:
    """The two runs' weights moved alike. Adam divides each gradient element by its own running RMS,
    so where an element's gradient is near round-off (or its two steps nearly cancel) a different
    float summation order (two processes, or another BLAS thread count) shows as a step difference
    up to ~1e-5: a few elements in millions, measured. A missed or extra step moves elements by
    about ``lr`` (a run one step short differs by 5e-4: caught); a wrongly weighted gradient, to
    which Adam's step is blind in scale, shows in the gradient norms compared above."""
    from transformers import AutoModelForCausalLM

    start = dict(AutoModelForCausalLM.from_pretrained(resolve_model(TINY_RANDOM)).state_dict())
    moved = torch.cat([(one[name] - start[name]).abs().flatten() for name in one])
    assert moved.median() > lr / 2  # the steps are what a fault would change
    differs = torch.cat([(two[name] - one[name]).abs().flatten() for name in one])
    assert differs.max() < lr / 20, differs.max()
    assert (differs > 1e-6).sum() <= differs.numel() * 1e-5, (differs > 1e-6).sum()


# ---------------------------------------------------------------------------------------------
# TIS-DPO: token weights from the contrastive models its registry entry requires


def perturbed_model(folder: Path) -> str:
    """tiny-random with seeded noise on every weight: a second contrastive model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(resolve_model(TINY_RANDOM))
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model(TINY_RANDOM)).save_pretrained(folder)
    return str(folder)


def test_tis_dpo_with_one_model_as_both_contrasts_trains_as_dpo(tmp_path):
    """Identical contrastive models give every token the weight k * exp(0) = 1: DPO exactly."""
    paths = write_examples(tmp_path, "tis_dpo", count=6)
    for method in ("dpo", "tis_dpo"):
        train(paths, tmp_path / method, tiny_config(method))
    logs = {m: [r["loss"] for r in _log(tmp_path / m)] for m in ("dpo", "tis_dpo")}
    assert logs["tis_dpo"] == pytest.approx(logs["dpo"], rel=1e-6)
    a, b = saved_weights(tmp_path / "dpo"), saved_weights(tmp_path / "tis_dpo")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)


def test_tis_dpo_weights_come_from_the_two_models_and_are_clipped(tmp_path):
    from faulttune.models import load_model

    paths = write_examples(tmp_path, "tis_dpo", count=4)
    negative = perturbed_model(tmp_path / "negative")
    config = tiny_config("tis_dpo")
    run = loop.setup_run(paths, TINY_RANDOM, str(tmp_path / "run"), config,
                         {"positive": TINY_RANDOM, "negative": negative})
    plain = load(paths, "tis_dpo").rows

    def token_logps(model_path: str, ids: torch.Tensor) -> torch.Tensor:
        """log p(ids[t] | ids[<t]) by a plain forward pass over the whole sequence."""
        with torch.no_grad():
            logits = load_model(model_path, precision="fp32", device="cpu")(ids[None]).logits[0]
        picked = logits[:-1].log_softmax(-1).gather(1, ids[1:, None])[:, 0]
        return torch.cat([torch.zeros(1), picked])

    p = config.params
    for weighted, row in zip((u.rows[0] for u in run.units), plain):
        for side, sign in (("chosen", 1.0), ("rejected", -1.0)):
            ids, mask = getattr(row, side).ids, getattr(row, side).mask
            gap = (token_logps(TINY_RANDOM, ids) - token_logps(negative, ids)).clamp(p["lower"], p["upper"])
            expected = torch.where(mask != 0, p["scale"] * torch.exp(sign * p["mu"] * gap), 0.0)
            got = getattr(weighted, side).mask
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-4, msg=side)
            kept = got[mask != 0]
            assert kept.min() >= math.exp(-0.5 if sign > 0 else -1.5) - 1e-6
            assert kept.max() <= math.exp(1.5 if sign > 0 else 0.5) + 1e-6
    assert len({round(float(w), 4) for u in run.units for w in u.rows[0].chosen.mask}) > 3
    with pytest.raises(ValueError, match="tis_dpo needs the positive/negative model"):
        loop.setup_run(paths, TINY_RANDOM, str(tmp_path / "none"), config)
