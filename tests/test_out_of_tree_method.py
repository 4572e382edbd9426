"""A method defined in this test module, outside src/, registered through the ``plugins:`` config
key (this file is the plugin) and trained through the Snakemake smoke DAG to a model, an
evaluation and a report row.

The method: a toy token-weighted SFT whose first ``head`` response tokens weigh ``head_weight``
(the rest 1). It is one registry entry plus its training behaviour, written here; nothing in
src/ knows it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml
from torch import Tensor

from faulttune import methods
from faulttune.batching import Batch, Layout, Row, Unit, masked_labels, rows_of, target_count
from faulttune.losses import sft_loss
from faulttune.methods import Method, Param
from faulttune.methods.recipe import LossOut, Recipe, sides

pytestmark = pytest.mark.minutes(1)

TOY = "toy_weighted_sft"


class ToyWeightedSFT(Recipe):
    """One group of every training-table row; NLL with the first response tokens up-weighted."""

    def layout(self, units: Sequence[Unit]) -> Layout:
        return Layout({"lm": sides(units, tuple(self.row_kinds))})

    def normalisers(self, units: Sequence[Unit]) -> dict[str, float]:
        return {"lm_tokens": sum(target_count(r.chosen, False) for r in rows_of(units))}

    def loss_tokens(self, row: Row) -> int:
        return target_count(row.chosen, False)

    def objective(self, logits: Tensor, batch: Batch, norms: Mapping[str, float],
                  scores: Tensor | None = None, reference: object = None) -> LossOut:
        weights = batch.mask.clone()  # a window starts one token before the response
        weights[:, 1:1 + self.params["head"]] *= self.params["head_weight"]
        labels = masked_labels(batch.labels, batch.mask)
        loss, metrics = sft_loss(logits, labels, weights, num_target_tokens=norms["lm_tokens"])
        return loss, {"L_lm": loss.detach(), **metrics}


ENTRY = Method(
    TOY, "toy token-weighted SFT: the first `head` response tokens weigh head_weight",
    params=(Param("head_weight", 2.0, "weight of the first response tokens", {"type": "number", "minimum": 0}),
            Param("head", 4, "how many response tokens weigh more", {"type": "integer", "minimum": 0})),
    examples=lambda params: ("sft",), baseline="sft", training=ToyWeightedSFT)


def register_entries(register) -> None:
    """The plugin hook: ``faulttune.methods.load_plugins`` calls it once."""
    register(ENTRY)


def test_importing_the_plugin_registers_nothing():
    assert TOY not in methods.METHODS  # only load_plugins registers (this pytest run stays clean)


@pytest.mark.slow
def test_a_method_defined_here_trains_through_the_dag_to_a_report_row(workdir):
    from conftest import REPO, snakemake

    smoke = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config = {**smoke, "plugins": [str(Path(__file__).resolve())], "sweeps": {},
              "sensitivity": {"enabled": False},
              "experiments": {"base": {"method": "base"}, "sft": {"method": "sft", "max_steps": 2},
                              "toy": {"method": TOY, "head_weight": 3.0, "max_steps": 2}}}
    (workdir / "plugin-config.yaml").write_text(yaml.safe_dump(config))
    target = "results/smoke/report/summary.csv"
    snakemake(workdir, "--configfile", "plugin-config.yaml", "--cores", "2", target)
    run = workdir / "results" / "smoke"
    budget = json.loads((run / "models" / "toy" / "budget.json").read_text())
    assert budget["method"] == TOY and budget["train_steps"] == 2
    state = json.loads((run / "models" / "toy" / "trainer_state.json").read_text())
    assert state["config"]["params"] == {"head_weight": 3.0, "head": 4}
    scores = json.loads((run / "eval" / "toy" / "humaneval-split-heldout.json").read_text())
    assert scores["n_samples"] == smoke["data"]["benchmark_limit"]
    with (run / "report" / "summary.csv").open() as f:
        rows = {r["experiment"]: r for r in csv.DictReader(f)}
    assert (rows["toy"]["method"], rows["toy"]["baseline"]) == (TOY, "sft")
    assert float(rows["toy"]["head_weight"]) == 3.0 and rows["sft"]["head_weight"] == ""
    # the toy trained differently from SFT on the same data and budget
    sft_log = (run / "models" / "sft" / "train_log.jsonl").read_text().splitlines()
    toy_log = (run / "models" / "toy" / "train_log.jsonl").read_text().splitlines()
    assert json.loads(toy_log[0])["loss"] != json.loads(sft_log[0])["loss"]
    assert json.loads(budget_of(run, "sft"))["train_tokens"] == budget["train_tokens"]


def budget_of(run: Path, experiment: str) -> str:
    return (run / "models" / experiment / "budget.json").read_text()
