"""Typed settings of every stage, built once from the validated config.

Each rule's ``params: settings=`` is exactly the settings object its script reads (as a plain
mapping: Snakemake can only compare builtin values when it decides what a config edit reruns), and
the script rebuilds it with ``<Settings>.from_params`` and reads nothing else from the config. So
what a job computes from the config and what triggers its rerun are one object, and a key lands in
the settings of exactly the stages that read it: a key a stage does not use is not in its settings
(``data_dir`` is in ``prepare_train``'s only when its source reads the benchmark folder, the backend
options only for the backend that uses them).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from typing_extensions import Self

from faulttune import methods
from faulttune.config import ConfigError, Experiment, expand_experiments

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


@dataclass(frozen=True)
class Settings:
    """Base of every stage's settings: a frozen dataclass that travels as a plain mapping."""

    def to_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> Self:
        """Rebuild from :meth:`to_params`; a missing or unknown key is an error."""
        names = {f.name for f in fields(cls)}
        if set(values) != names:
            raise ValueError(f"{cls.__name__}: expected keys {sorted(names)}, got {sorted(values)}")
        hints = typing.get_type_hints(cls)
        return cls(**{name: _rebuild(hints[name], values[name]) for name in names})


def _rebuild(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _rebuild(inner[0], value) if len(inner) == 1 else value
    if isinstance(hint, type) and issubclass(hint, Settings):
        return hint.from_params(value)
    if origin is tuple:
        item = args[0] if args else Any
        return tuple(_rebuild(item, v) for v in value)
    return value


# ---------------------------------------------------------------------------------------------
# settings of each stage


@dataclass(frozen=True)
class BenchmarkSource(Settings):
    """Where one benchmark's tasks come from: ``split`` is the demo split's (seed, training
    tasks) for ``humaneval-split-heldout``; ``bigcodebench_source`` only for BigCodeBench."""

    name: str
    data_dir: str | None = None
    split: tuple[int, int] | None = None
    limit: int | None = None
    bigcodebench_source: str | None = None


@dataclass(frozen=True)
class TrainTableSettings(Settings):
    """prepare_train / prepare_codeflow_train: one task table, decontaminated against
    ``decontaminate`` (every evaluated benchmark unless ``data.decontaminate`` is false)."""

    source: dict[str, Any]
    seed: int
    data_dir: str | None
    decontaminate: tuple[BenchmarkSource, ...]


@dataclass(frozen=True)
class BugSettings(Settings):
    """mutate: verified twins by universalmutator (``mutation``) or CCT's AST bugs (``cct``)."""

    source: str
    max_per_task: int
    verify: bool
    seed: int
    cct_per_family: int | None = None


@dataclass(frozen=True)
class BackendSettings(Settings):
    """A generation backend and the options it reads (:func:`faulttune.generate.backend_options`:
    only the chosen backend's keys, so an option of another backend reruns nothing)."""

    backend: str
    model: str
    options: dict[str, Any]


@dataclass(frozen=True)
class GenerateSettings(Settings):
    """generate: greedy samples of one model on one benchmark table."""

    backend: BackendSettings
    max_new_tokens: int


@dataclass(frozen=True)
class TeacherSettings(Settings):
    """teacher_variants: FGit's teacher samples ``n_variants`` wrong-but-similar answers."""

    backend: BackendSettings
    n_variants: int
    temperature: float
    max_new_tokens: int
    seed: int


@dataclass(frozen=True)
class SelectSettings(Settings):
    """select_pairs: the most similar teacher variant per task, verified by the tests."""

    similarity: str
    verify: bool


@dataclass(frozen=True)
class SynthesisSettings(Settings):
    """synthesize_tasks: the teacher writes a solution and a unittest file per instruction."""

    backend: BackendSettings
    max_new_tokens: int
    seed: int


@dataclass(frozen=True)
class CodeflowSettings(Settings):
    """codeflow: the debugger (``backend``: the student's or the teacher's) debugs until the tests
    pass; IterPref pairs, measured in the student's ``tokenizer``, judged by ``judge`` (the
    teacher's backend) when set."""

    backend: BackendSettings
    max_new_tokens: int
    max_iters: int
    start: str
    rejected: str
    max_length: int
    seed: int
    tokenizer: str
    judge: BackendSettings | None = None


@dataclass(frozen=True)
class CodeflowPairsSettings(Settings):
    """codeflow_pairs: IterPref pairs with another rejected-version rule (judged as codeflow's)."""

    rejected: str
    tokenizer: str
    max_length: int
    seed: int
    judge: BackendSettings | None = None


@dataclass(frozen=True)
class MaskSettings(Settings):
    """masks: training examples of one kind with their masks, in the student's tokenisation."""

    kind: str
    tokenizer: str
    max_length: int
    seed: int


@dataclass(frozen=True)
class TrainSettings(Settings):
    """train: one experiment. ``params``: the method's parameters by their user names;
    the global batch is ``micro_batch_size x grad_accum x num_processes``."""

    experiment: str
    method: str
    params: dict[str, Any]
    model: str
    seed: int
    lr: float
    epochs: float
    max_steps: int | None
    max_length: int
    warmup_ratio: float
    micro_batch_size: int
    grad_accum: int
    num_processes: int
    accelerate_config: str
    precision: str
    gradient_checkpointing: bool
    lora: dict[str, Any] | None
    save_every: int | None

    @property
    def global_batch(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.num_processes


@dataclass(frozen=True)
class ScoreSettings(Settings):
    """score: the sandbox (or BigCodeBench's own scorer) on one samples file."""

    data_dir: str | None
    bigcodebench_source: str | None = None


@dataclass(frozen=True)
class GatherSettings(Settings):
    """gather_<stage>: the shards of a sharded stage as the files one job writes; a score's gather
    recomputes the summary as its scorer does (``score``)."""

    stage: str
    score: ScoreSettings | None = None


@dataclass(frozen=True)
class HeldoutSettings(Settings):
    """heldout_twins: verified twins of the HumanEval tasks no experiment trains on, of at most
    ``limit`` of them (a seeded sample: the probe draws ``limit`` pairs spread over tasks)."""

    seed: int
    split: tuple[int, int] | None
    data_dir: str | None
    limit: int | None = None


@dataclass(frozen=True)
class ProbePairsSettings(Settings):
    """probe_pairs: a seeded random sample of the held-out twins, chosen by no model, so that
    every experiment is probed on the same pairs."""

    limit: int
    seed: int


@dataclass(frozen=True)
class SensitivitySettings(Settings):
    """sensitivity: the fault-sensitivity probe of one model on the probe pairs, plus HumanEvalFix's
    pairs of the same tasks when a benchmark folder is set and ``sensitivity.humanevalfix`` is on
    (``data_dir``)."""

    model: str
    batch_size: int
    data_dir: str | None


@dataclass(frozen=True)
class ContaminationSettings(Settings):
    """contamination: overlap of the training data with every evaluated benchmark."""

    benchmarks: tuple[BenchmarkSource, ...]


@dataclass(frozen=True)
class ReportSettings(Settings):
    """report: the experiments as resolved, and the whole config for the manifest."""

    run: str
    student: str
    train_source: str
    experiments: dict[str, dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# the plan: every stage's settings from one validated config


class Plan:
    """The validated config seen by the DAG: experiments, benchmarks and each job's settings."""

    def __init__(self, config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        env = os.environ if environ is None else environ
        self.data_dir: str | None = config["data"].get("data_dir") or env.get("FAULTTUNE_DATA_DIR") or None
        self.experiments: dict[str, Experiment] = expand_experiments(config)
        self.trained = [n for n, e in self.experiments.items() if e.trained]
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
                            self.config["seed"])

    def max_mask_length(self) -> int:
        """Masks files are shared by experiments: they keep every example that the longest
        ``max_length`` of any experiment admits; each run leaves out what its own exceeds, but
        trains an fgit pair whose y_i alone exceeds it as the task's plain row
        (``training.data.load_rows``)."""
        own = [e.overrides.get("max_length") for e in self.experiments.values()]
        return max([self.config["train"]["max_length"], *[m for m in own if m]])

    def train(self, name: str) -> TrainSettings:
        exp, train = self.experiments[name], self.config["train"]
        values = {key: exp.overrides.get(key, train[key]) for key in
                  ("lr", "epochs", "max_steps", "max_length", "warmup_ratio")}
        return TrainSettings(
            experiment=name, method=exp.method, params=dict(exp.params),
            model=self.config["student"]["model"], seed=exp.seed, **values,
            micro_batch_size=train["micro_batch_size"], grad_accum=train["grad_accum"],
            num_processes=train["num_processes"], accelerate_config=train["accelerate_config"],
            precision=train["precision"], gradient_checkpointing=train["gradient_checkpointing"],
            lora=train["lora"], save_every=train["save_every"])

    def budget_mismatches(self) -> list[str]:
        """Every setting in which a trained experiment differs from its trained baseline: the
        units it draws and everything that sets how often and how hard it learns from them."""
        out = []
        for name, exp in self.experiments.items():
            base = self.experiments.get(exp.baseline or "")
            if not exp.trained or base is None or not base.trained:
                continue
            mine, theirs = self.train(name), self.train(base.name)
            fields_ = ("lr", "epochs", "max_steps", "max_length", "warmup_ratio", "global_batch",
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
                       for n, e in self.experiments.items()}
        return ReportSettings(self.config["run"], self.config["student"]["model"],
                              self.config["data"]["train"]["source"], experiments,
                              dict(self.config))
