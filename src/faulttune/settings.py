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
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from typing_extensions import Self

from faulttune.training.config import TrainConfig


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
    if hint is TrainConfig:
        return TrainConfig.from_dict(value)
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
    """masks: training examples of one examples kind of the registry, in the student's
    tokenisation; ``plugins``: where kinds outside the package are defined."""

    kind: str
    tokenizer: str
    max_length: int
    seed: int
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class TraceSettings(Settings):
    """traces: each pair's twins traced on their task's test inputs (at most ``max_inputs``),
    each twin's run within ``timeout_s``."""

    max_inputs: int
    timeout_s: float


@dataclass(frozen=True)
class TrainSettings(Settings):
    """train: one experiment. ``config``: the trainer's configuration, built once by the plan
    (its global batch is ``micro_batch_size x grad_accum x num_processes``); ``requires``: role ->
    the experiment whose model the method needs first; ``plugins``: where methods outside the
    package are defined."""

    experiment: str
    model: str
    config: TrainConfig
    grad_accum: int
    num_processes: int
    accelerate_config: str
    requires: dict[str, str] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> Self:
        """Rebuild after loading the plugins: the config's method may be one of theirs."""
        from faulttune.methods import load_plugins

        load_plugins(values.get("plugins"))
        return super().from_params(values)

    @property
    def method(self) -> str:
        return self.config.method


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
