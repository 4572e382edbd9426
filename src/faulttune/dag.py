"""The DAG's plan: every stage's settings from one validated config (:mod:`faulttune.settings`).

The DAG (``workflow/rules/common.smk``) builds one :class:`Plan` and asks it for each job's
settings, the experiments, the benchmarks and the inputs each experiment needs (the masks files and
the models its method requires, from the registry).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from faulttune import methods
from faulttune.config import ConfigError, Experiment, expand_experiments
from faulttune.methods.kinds import EVERY_TASK
from faulttune.settings import (
    BackendSettings,
    BenchmarkSource,
    BugSettings,
    CodeflowPairsSettings,
    CodeflowSettings,
    ContaminationSettings,
    GatherSettings,
    GenerateSettings,
    HeldoutSettings,
    MaskSettings,
    ProbePairsSettings,
    ReportSettings,
    ScoreSettings,
    SelectSettings,
    SensitivitySettings,
    SynthesisSettings,
    TeacherSettings,
    TraceSettings,
    TrainSettings,
    TrainTableSettings,
)
from faulttune.training.config import TrainConfig

DEMO_SPLIT = "humaneval-split"
DEMO_BENCHMARK = "humaneval-split-heldout"
# Training sources read from the benchmark folder (the rest come from packages or the hub).
SOURCES_IN_DATA_DIR = ("mbpp", "mbpp-train")
# A benchmark scored on another's tasks: the contamination check compares with those once.
_CONTAMINATION_BASE = {"humaneval_plus": "humaneval", "mbpp_plus": "mbpp"}
# The heavy stages that config key `shards` splits into one job per shard (faulttune.shards).
SHARDED_STAGES = ("teacher_variants", "synthesize_tasks", "codeflow", "generate", "score")
# Benchmarks made of HumanEval's tasks, which the demo split trains on.
HUMANEVAL_BENCHMARKS = ("humaneval", "humaneval_plus", "humanevalfix")
# The traces stage: test inputs per pair and seconds per twin.
TRACE_INPUTS, TRACE_TIMEOUT_S = 16, 10.0


class Plan:
    """The validated config seen by the DAG: experiments, benchmarks and each job's settings."""

    def __init__(self, config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        env = os.environ if environ is None else environ
        self.data_dir: str | None = config["data"].get("data_dir") or env.get("FAULTTUNE_DATA_DIR") or None
        self.experiments: dict[str, Experiment] = expand_experiments(config)
        self.trained = [n for n, e in self.experiments.items() if e.trained]
        # every experiment but those another one requires (those train, nothing more)
        self.evaluated = [n for n, e in self.experiments.items() if e.evaluated]
        self.plugins = tuple(config.get("plugins") or ())
        self.benchmarks = self._benchmarks()
        self._check_demo_split()
        self._check_codeflow()

    def _check_demo_split(self) -> None:
        """The demo split trains on half of HumanEval: a benchmark of all HumanEval tasks would
        score it on its training data (decontamination would drop every training row)."""
        if self.config["data"]["train"]["source"] != DEMO_SPLIT:
            return
        overlap = [b for b in self.benchmarks if b in HUMANEVAL_BENCHMARKS]
        if overlap:
            raise ConfigError(
                f"config: {DEMO_SPLIT} trains on HumanEval tasks: it cannot be scored on "
                f"{', '.join(overlap)} (their tasks include its training tasks); evaluate "
                f"{DEMO_BENCHMARK}, or train on another source")

    def _check_codeflow(self) -> None:
        """Mutants are twins of the training table's tasks, never of synthesized ones."""
        cf = self.config["codeflow"]
        if cf["tasks"] == "synthesize" and cf["start"] == "mutant":
            raise ConfigError(
                "config: codeflow.start mutant debugs twins of the training table's tasks; with "
                "codeflow.tasks synthesize start from the teacher's solution (start: solution) or "
                "the debugger's own attempt (start: model)")

    def _benchmarks(self) -> list[str]:
        names = list(self.config["data"]["benchmarks"])
        if self.data_dir:
            names += [b for b in self.config["data"]["optional_benchmarks"] if b not in names]
        return names

    # -- data ------------------------------------------------------------------------------

    @property
    def demo_split(self) -> tuple[int, int]:
        return (self.config["seed"], self.config["data"]["train"].get("limit") or 64)

    def benchmark_source(self, name: str, limit: int | None = None) -> BenchmarkSource:
        bcb = name.startswith("bigcodebench-")
        return BenchmarkSource(
            name, data_dir=None if bcb else self.data_dir,
            split=self.demo_split if name == DEMO_BENCHMARK else None, limit=limit,
            bigcodebench_source=self.config["data"]["bigcodebench"]["source"] if bcb else None)

    def contamination_sources(self) -> tuple[BenchmarkSource, ...]:
        """The evaluated benchmarks training must not overlap, each set of tasks once: a plus
        variant shares its base set's tasks; BigCodeBench's complete and instruct splits share
        their subset's (``bigcodebench-{subset}``: both prompts are checked), and the hard
        subset's tasks are tasks of the full set. The probe's HumanEval twins are evaluated data
        too: ``humaneval`` is checked whenever the probe runs (the demo split's held-out half
        is disjoint from its training half by construction)."""
        names = {_CONTAMINATION_BASE.get(b, b) for b in self.benchmarks}
        probe = self.config["sensitivity"]["enabled"]
        if probe and self.config["data"]["train"]["source"] != DEMO_SPLIT:
            names.add("humaneval")
        names = {"bigcodebench-" + b.split("-")[1] if b.startswith("bigcodebench-") else b
                 for b in names}
        if "bigcodebench-full" in names:
            names.discard("bigcodebench-hard")
        return tuple(self.benchmark_source(n) for n in sorted(names))

    def train_table(self, section: str = "train") -> TrainTableSettings:
        source = self.config["data"][section]
        decontaminate = self.config["data"]["decontaminate"]
        return TrainTableSettings(
            source=dict(source), seed=self.config["seed"],
            data_dir=self.data_dir if source["source"] in SOURCES_IN_DATA_DIR else None,
            decontaminate=self.contamination_sources() if decontaminate else ())

    def prepare_benchmark(self, prompt_set: str) -> BenchmarkSource:
        return self.benchmark_source(prompt_set, self.config["data"].get("benchmark_limit"))

    def contamination(self) -> ContaminationSettings:
        return ContaminationSettings(self.contamination_sources())

    # -- bugs ------------------------------------------------------------------------------

    def mutate(self, source: str) -> BugSettings:
        bugs = self.config["bugs"]
        per_family = bugs["cct_per_family"] if source == "cct" else None
        return BugSettings(source, bugs["max_per_task"], bugs["verify"], self.config["seed"],
                           per_family)

    def backend(self, section: Mapping[str, Any], model: str) -> BackendSettings:
        """A ``generation`` or ``teacher`` section's backend (shared keys it lacks come from
        ``generation`` and ``student``: :func:`faulttune.generate.backend_options`)."""
        from faulttune.generate import backend_options

        options = backend_options(section, self.config["generation"], self.config["student"])
        return BackendSettings(section["backend"], model, options)

    def student_backend(self, model: str | None = None) -> BackendSettings:
        return self.backend(self.config["generation"], model or self.config["student"]["model"])

    def teacher(self) -> TeacherSettings:
        t = self.config["teacher"]
        return TeacherSettings(self.backend(t, t["model"]),
                               t["n_variants"], t["temperature"], t["max_new_tokens"],
                               self.config["seed"])

    def select_pairs(self) -> SelectSettings:
        return SelectSettings(self.config["teacher"]["similarity"], self.config["bugs"]["verify"])

    # -- codeflow --------------------------------------------------------------------------

    def shards_of(self, stage: str) -> int:
        """Jobs a heavy stage (:data:`SHARDED_STAGES`) is split into: ``shards`` when it is a
        number, else its entry for the stage (or its ``default``, else 1)."""
        if stage not in SHARDED_STAGES:
            raise ValueError(f"stage {stage!r} is not sharded; sharded: {', '.join(SHARDED_STAGES)}")
        shards = self.config["shards"]
        if isinstance(shards, int):
            return shards
        return shards.get(stage, shards.get("default", 1))

    def teacher_backend(self) -> BackendSettings:
        return self.backend(self.config["teacher"], self.config["teacher"]["model"])

    def synthesis(self) -> SynthesisSettings:
        return SynthesisSettings(self.teacher_backend(), self.config["teacher"]["max_new_tokens"],
                                 self.config["seed"])

    def codeflow(self) -> CodeflowSettings:
        cf = self.config["codeflow"]
        if cf["debugger"] == "teacher":
            debugger, max_new = self.teacher_backend(), self.config["teacher"]["max_new_tokens"]
        else:
            debugger, max_new = self.student_backend(), self.config["generation"]["max_new_tokens"]
        return CodeflowSettings(debugger, max_new, cf["max_iters"], cf["start"], cf["rejected"],
                                cf["max_length"], self.config["seed"],
                                self.config["student"]["model"], self.codeflow_judge())

    def codeflow_judge(self) -> BackendSettings | None:
        return self.teacher_backend() if self.config["codeflow"]["judge"] else None

    def codeflow_pairs(self, rejected: str) -> CodeflowPairsSettings:
        return CodeflowPairsSettings(rejected, self.config["student"]["model"],
                                     self.config["codeflow"]["max_length"], self.config["seed"],
                                     self.codeflow_judge())

    # -- training --------------------------------------------------------------------------

    def masks(self, kind: str) -> MaskSettings:
        return MaskSettings(kind, self.config["student"]["model"], self.max_mask_length(),
                            self.config["seed"], self.plugins)

    def masks_reads(self, kind: str) -> tuple[bool, bool]:
        """Whether the masks file of an examples kind reads the training table besides its
        pairs (a kind that covers every task), and the pairs' traces (a traced mask kind)."""
        examples = methods.examples(kind)
        return examples.reads == EVERY_TASK, examples.traced

    def traces(self) -> TraceSettings:
        return TraceSettings(TRACE_INPUTS, TRACE_TIMEOUT_S)

    def max_mask_length(self) -> int:
        """Masks files are shared by experiments: they keep every example that the longest
        ``max_length`` of any experiment admits; each run leaves out what its own exceeds, but
        trains an fgit pair whose y_i alone exceeds it as the task's plain row
        (``training.data.load_rows``)."""
        own = [e.overrides.get("max_length") for e in self.experiments.values()]
        return max([self.config["train"]["max_length"], *[m for m in own if m]])

    def train(self, name: str) -> TrainSettings:
        """The training job of an experiment: its trainer config, built here once."""
        exp, train = self.experiments[name], self.config["train"]
        values = {key: exp.overrides.get(key, train[key]) for key in
                  ("lr", "epochs", "max_steps", "max_length", "warmup_ratio")}
        batch = train["micro_batch_size"] * train["grad_accum"] * train["num_processes"]
        try:
            config = TrainConfig(
                method=exp.method, params=dict(exp.params), seed=exp.seed, **values,
                batch_size=batch, micro_batch_size=train["micro_batch_size"],
                precision=train["precision"], gradient_checkpointing=train["gradient_checkpointing"],
                lora=train["lora"], save_every=train["save_every"])
        except ValueError as e:
            raise ConfigError(f"config: experiment {name}: {e}") from None
        return TrainSettings(name, self.config["student"]["model"], config, train["grad_accum"],
                             train["num_processes"], train["accelerate_config"],
                             dict(exp.requires), self.plugins)

    def budget_mismatches(self) -> list[str]:
        """Every setting in which a trained experiment differs from its trained baseline: the
        units it draws and everything that sets how often and how hard it learns from them."""
        out = []
        for name, exp in self.experiments.items():
            base = self.experiments.get(exp.baseline or "")
            if not exp.trained or base is None or not base.trained:
                continue
            mine, theirs = self.train(name).config, self.train(base.name).config
            fields_ = ("lr", "epochs", "max_steps", "max_length", "warmup_ratio", "batch_size",
                       "seed")
            diffs = [f"{f} {getattr(mine, f)} vs {getattr(theirs, f)}" for f in fields_
                     if getattr(mine, f) != getattr(theirs, f)]
            units = [methods.get(e.method).unit_source(e.params) for e in (exp, base)]
            if units[0] != units[1]:
                diffs.append(f"units from {units[0]} vs {units[1]}")
            if diffs:
                out.append(f"{name} vs its baseline {base.name}: " + "; ".join(diffs))
        return out

    def mask_inputs(self, name: str) -> list[tuple[str, str]]:
        exp = self.experiments[name]
        return methods.get(exp.method).mask_inputs(exp.params)

    def required_models(self, name: str) -> list[str]:
        """The experiments whose models ``name``'s method needs first, in the order of their
        roles in ``train(name).requires``."""
        return list(self.experiments[name].requires.values())

    def required_by_others(self, name: str) -> bool:
        """Whether another experiment's method needs ``name``'s model before it trains."""
        return self.experiments[name].required_by is not None

    # -- evaluation ------------------------------------------------------------------------

    def model_of(self, name: str) -> str | None:
        """The student for an untrained experiment, else None (its trained folder)."""
        return None if self.experiments[name].trained else self.config["student"]["model"]

    def generate(self, model: str) -> GenerateSettings:
        return GenerateSettings(self.student_backend(model),
                                self.config["generation"]["max_new_tokens"])

    def score(self, benchmark: str) -> ScoreSettings:
        if benchmark.startswith("bigcodebench-"):
            bcb = self.config["data"]["bigcodebench"]
            return ScoreSettings(None, bcb["source"])
        return ScoreSettings(self.data_dir)

    def gather(self, stage: str, benchmark: str | None = None) -> GatherSettings:
        return GatherSettings(stage, self.score(benchmark) if benchmark else None)

    def heldout_twins(self) -> HeldoutSettings:
        split = self.demo_split if self.config["data"]["train"]["source"] == DEMO_SPLIT else None
        return HeldoutSettings(self.config["seed"], split, self.data_dir,
                               self.config["sensitivity"]["limit"])

    def probe_pairs(self) -> ProbePairsSettings:
        return ProbePairsSettings(self.config["sensitivity"]["limit"], self.config["seed"])

    def sensitivity(self, model: str) -> SensitivitySettings:
        s = self.config["sensitivity"]
        return SensitivitySettings(model, s["batch_size"],
                                   self.data_dir if s["humanevalfix"] else None)

    def report(self) -> ReportSettings:
        experiments = {n: {**e.values(), "seed": e.seed, "baseline": e.baseline,
                           "sweep_of": e.sweep_of, "swept": list(e.swept) if e.swept else None,
                           "replica_of": e.replica_of}
                       for n, e in self.experiments.items() if e.evaluated}
        return ReportSettings(self.config["run"], self.config["student"]["model"],
                              self.config["data"]["train"]["source"], experiments,
                              dict(self.config))
