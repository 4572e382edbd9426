"""Scatter and gather: every sharded stage, run as shards and gathered, writes the bytes one job
writes (the teacher's seeded variants and generation with the tiny random model, task synthesis,
CodeFlow and the judge with the scripted teacher, scoring in the sandbox); a shard's slice of the
rows; a stopped shard resumes alone."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_teacher import FakeTeacher, humaneval_scripts, serve

from faulttune import io
from faulttune.settings import (
    BackendSettings,
    BenchmarkSource,
    CodeflowSettings,
    GatherSettings,
    GenerateSettings,
    ScoreSettings,
    SynthesisSettings,
    TeacherSettings,
    TrainTableSettings,
)
from faulttune.shards import Shard
from faulttune.stages import bugs, codeflow, data
from faulttune.stages import eval as evaluate
from faulttune.stages.gather import gather

pytestmark = pytest.mark.minutes(2)

TINY = BackendSettings("hf", "tiny-random", {"batch_size": 4, "precision": "fp32"})


def test_shards_split_whole_chunks_as_evenly_as_they_can() -> None:
    assert Shard.parse("2-of-4") == Shard(1, 4) and str(Shard(1, 4)) == "2-of-4"
    assert Shard.parse(None) == Shard(0, 1)
    rows = list(range(40))  # 3 chunks of 16: 16, 16, 8
    parts = [Shard(k, 2).take(rows, 16) for k in range(2)]
    assert parts == [(rows[:16], 0), (rows[16:], 1)]
    assert [len(Shard(k, 3).take(rows, 1)[0]) for k in range(3)] == [13, 13, 14]
    assert [Shard(k, 5).take(rows[:2], 1)[0] for k in range(5)] == [[], [], [0], [], [1]]
    for bad in ("0-of-2", "3-of-2", "2of4", "1-of-0"):
        with pytest.raises(ValueError, match="not a shard name"):
            Shard.parse(bad)


def sharded(run, n: int, folder: Path, name: str) -> list[Path]:
    """``run(out, shard)`` once per shard of ``n``; the shards' outputs."""
    outs = []
    for k in range(1, n + 1):
        out = folder / ".shards" / name / f"{k}-of-{n}.{name.split('.', 1)[1]}"
        run(str(out), f"{k}-of-{n}")
        outs.append(out)
    return outs


def assert_same_bytes(*pairs: tuple[Path, Path]) -> None:
    for whole, gathered in pairs:
        assert Path(whole).read_bytes() == Path(gathered).read_bytes(), gathered


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tables")
    data.prepare_train(TrainTableSettings({"source": "humaneval-split", "limit": 40}, 0, None, ()),
                       str(folder / "train.parquet"))
    data.prepare_benchmark(BenchmarkSource("humaneval-split-heldout", split=(0, 40), limit=5),
                           str(folder / "bench.parquet"))
    return folder


def test_the_teachers_seeded_variants_gathered_are_one_jobs_bytes(tables, tmp_path) -> None:
    settings = TeacherSettings(TINY, n_variants=2, temperature=0.8, max_new_tokens=6, seed=3)
    train = str(tables / "train.parquet")
    bugs.teacher_variants(settings, train, str(tmp_path / "teacher.parquet"))
    parts = sharded(lambda out, s: bugs.teacher_variants(settings, train, out, shard=s), 2,
                    tmp_path / "s", "teacher.parquet")
    gather(GatherSettings("teacher_variants"), SimpleNamespace(parts=parts),
           [str(tmp_path / "gathered.parquet")])
    assert_same_bytes((tmp_path / "teacher.parquet", tmp_path / "gathered.parquet"))
    assert len(io.read_parquet(parts[0])) == 2 * 16  # whole chunks: 16 tasks, then 24
    assert len({r["raw"] for r in io.read_parquet(tmp_path / "teacher.parquet")}) > 1


def test_generation_and_scoring_gathered_are_one_jobs_bytes(tables, tmp_path) -> None:
    bench = str(tables / "bench.parquet")
    generate = GenerateSettings(TINY, max_new_tokens=12)
    samples = tmp_path / "humaneval-split-heldout.samples.jsonl"
    evaluate.generate(generate, bench, str(samples))
    parts = sharded(lambda out, s: evaluate.generate(generate, bench, out, shard=s), 2,
                    tmp_path / "g", "x.samples.jsonl")
    gathered = tmp_path / "gathered.samples.jsonl"
    gather(GatherSettings("generate"), SimpleNamespace(parts=parts), [str(gathered)])
    assert_same_bytes((samples, gathered),
                      (tmp_path / "humaneval-split-heldout.samples.raw.jsonl",
                       tmp_path / "gathered.samples.raw.jsonl"))

    score = ScoreSettings(None)
    evaluate.score(score, bench, str(samples), str(tmp_path / "score.json"), workers=2)
    parts = sharded(lambda out, s: evaluate.score(score, bench, str(samples), out, 2, shard=s), 3,
                    tmp_path / "c", "x.json")
    gather(GatherSettings("score", score), SimpleNamespace(parts=parts, bench=bench),
           [str(tmp_path / "gathered.json")])
    assert_same_bytes((tmp_path / "score.json", tmp_path / "gathered.json"))


@pytest.fixture(scope="module")
def teacher(tables):
    rows = io.read_parquet(tables / "train.parquet")[:6]
    with serve(FakeTeacher(humaneval_scripts(rows))) as served:
        yield served, rows


def test_synthesis_codeflow_and_the_judge_gathered_are_one_jobs_bytes(teacher, tmp_path) -> None:
    served, rows = teacher
    fake = BackendSettings("openai", "fake-teacher", {"base_url": served.base_url})
    instructions = tmp_path / "instructions.parquet"
    io.write_parquet(rows, instructions, data.TRAIN_SCHEMA)
    synthesis = SynthesisSettings(fake, max_new_tokens=512, seed=0)
    tasks = tmp_path / "tasks.parquet"
    codeflow.synthesize(synthesis, str(instructions), str(tasks), threads=2)
    parts = sharded(lambda out, s: codeflow.synthesize(synthesis, str(instructions), out, 2, s),
                    3, tmp_path / "t", "tasks.parquet")
    gather(GatherSettings("synthesize_tasks"), SimpleNamespace(parts=parts),
           [str(tmp_path / "tasks.gathered.parquet")])
    assert_same_bytes((tasks, tmp_path / "tasks.gathered.parquet"),
                      (io.rejected_path(tasks), tmp_path / "tasks.gathered.rejected.parquet"))

    settings = CodeflowSettings(fake, max_new_tokens=512, max_iters=1, start="solution",
                                rejected="random", max_length=2048, seed=0,
                                tokenizer="tiny-random", judge=fake)
    names = ("trajectories", "pairs", "rejected")
    whole = {n: str(tmp_path / f"{n}.parquet") for n in names}
    whole["rejected"] = str(tmp_path / "pairs.rejected.parquet")
    codeflow.codeflow(settings, str(tasks), None, whole, threads=2)
    shard_outputs = []
    for k in (1, 2):
        folder = tmp_path / "cf" / f"{k}-of-2"
        outputs = {n: str(folder / f"{n}.parquet") for n in names}
        outputs["rejected"] = str(folder / "pairs.rejected.parquet")
        codeflow.codeflow(settings, str(tasks), None, outputs, threads=2, shard=f"{k}-of-2")
        shard_outputs.append(outputs)
    gathered = {n: str(tmp_path / f"g-{n}.parquet") for n in names}
    gathered["rejected"] = str(tmp_path / "g-pairs.rejected.parquet")
    gather(GatherSettings("codeflow"),
           SimpleNamespace(trajectories=[o["trajectories"] for o in shard_outputs],
                           parts=[o["pairs"] for o in shard_outputs]),
           [gathered["trajectories"], gathered["pairs"], gathered["rejected"]])
    assert_same_bytes(*((whole[n], gathered[n]) for n in names))
    reasons = [r["reason"] for r in io.read_parquet(whole["rejected"])]
    assert any(r.startswith("judge: neither yes nor no") for r in reasons), reasons


def test_a_stopped_shard_resumes_alone_without_asking_again(teacher, tmp_path) -> None:
    """Shard 2 of 2 of CodeFlow is stopped after its first round (a SIGTERM at a time limit) and
    run again: it continues from its state; shard 1's file is never touched."""
    from faulttune.resume import Preempted, Resumable

    served, rows = teacher
    fake = BackendSettings("openai", "fake-teacher", {"base_url": served.base_url})
    tasks = tmp_path / "tasks.parquet"
    io.write_parquet(rows, tasks, data.TRAIN_SCHEMA)
    settings = CodeflowSettings(fake, max_new_tokens=512, max_iters=2, start="model",
                                rejected="random", max_length=2048, seed=0,
                                tokenizer="tiny-random")
    outputs = {n: str(tmp_path / "s2" / f"{n}.parquet") for n in ("trajectories", "pairs")}
    outputs["rejected"] = str(tmp_path / "s2" / "pairs.rejected.parquet")
    original = Resumable.__enter__

    def stop_at_once(job):
        entered = original(job)
        job.stop_requested = True
        return entered

    before = len(served.requests)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Resumable, "__enter__", stop_at_once)
        with pytest.raises(Preempted):
            codeflow.codeflow(settings, str(tasks), None, outputs, shard="2-of-2")
    first_round = served.requests[before:]
    assert len(first_round) == 3  # rows 3..5: one first attempt each
    codeflow.codeflow(settings, str(tasks), None, outputs, shard="2-of-2")
    later = served.requests[before + 3:]
    assert not set(first_round) & set(later)  # no prompt asked twice
    trajectories = io.read_parquet(outputs["trajectories"])
    assert {r["task_id"] for r in trajectories} == {r["task_id"] for r in rows[3:]}
    assert len(served.requests) - before == 3 + 2  # then the hanging task's two fixes
