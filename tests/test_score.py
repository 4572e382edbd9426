"""faulttune.evaluate / data.benchmarks on the real benchmark files (../shared/data)."""

from __future__ import annotations

import json
import os
import re
import time
from argparse import Namespace
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from faulttune.data.benchmarks import BENCHMARKS, BenchmarkTask, load_benchmark
from faulttune.evaluate import score_command, score_samples, summarise
from faulttune.io import DataError

pytestmark = pytest.mark.minutes(6)


def write_samples(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def score(tmp_path: Path, data_dir: Path, benchmark: str, rows: list[dict]) -> dict:
    samples = write_samples(tmp_path / f"{benchmark}.jsonl", rows)
    return score_samples(benchmark, samples, tmp_path / f"{benchmark}.json", data_dir=data_dir,
                         workers=2)


def canonical_rows(tasks) -> list[dict]:
    return [{"task_id": t.task_id, "solution": t.canonical_solution} for t in tasks]


# --- one scoring call per benchmark -------------------------------------------------------------
# A test that only reads its own rows' verdicts registers them (test name -> benchmark and the
# rows, built from the benchmark's tasks): the rows of every selected test of a benchmark are
# scored in one call (a row two tests share, once), so a corpus is loaded and scored once, and
# slow rows (timeouts) run beside the others instead of one call at a time.

Tasks = dict[str, BenchmarkTask]
BATCHED: dict[str, tuple[str, Callable[[Tasks], list[dict]]]] = {}


def batched(benchmark: str, rows: Callable[[Tasks], list[dict]]):
    def register(test):
        BATCHED[test.__name__] = (benchmark, rows)
        return test
    return register


@pytest.fixture(scope="module")
def batches(request, tmp_path_factory, data_dir) -> dict[str, list[dict]]:
    """Test name -> the results of its rows, one score_samples call per benchmark."""
    selected = sorted({item.name for item in request.session.items
                       if item.module is request.module and item.name in BATCHED})
    by_benchmark: dict[str, list[str]] = defaultdict(list)
    for name in selected:
        by_benchmark[BATCHED[name][0]].append(name)
    folder = tmp_path_factory.mktemp("batches")
    out = {}
    for benchmark, names in by_benchmark.items():
        tasks = {t.task_id: t for t in load_benchmark(benchmark, data_dir)}
        rows = {name: [json.dumps(r) for r in BATCHED[name][1](tasks)] for name in names}
        unique = list(dict.fromkeys(r for name in names for r in rows[name]))  # each row once
        results = score(folder, data_dir, benchmark, [json.loads(r) for r in unique])["results"]
        verdict = dict(zip(unique, results, strict=True))
        out.update({name: [verdict[r] for r in rows[name]] for name in names})
    return out


@pytest.fixture
def verdicts(request, batches) -> list[dict]:
    """The results of this test's rows (see :func:`batched`)."""
    return batches[request.node.name]


# --- loading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, count, first", [
    ("humaneval", 164, "HumanEval/0"), ("humaneval_plus", 164, "HumanEval/0"),
    ("mbpp", 378, "Mbpp/2"), ("mbpp_plus", 378, "Mbpp/2"), ("humanevalfix", 164, "Python/0")])
def test_load_benchmark_counts_and_normalised_tests(name, count, first, data_dir):
    tasks = load_benchmark(name, data_dir)
    assert len(tasks) == count and tasks[0].task_id == first
    assert all(t.benchmark == name for t in tasks)
    if name != "mbpp" and name != "mbpp_plus":
        assert all(t.test.rstrip().splitlines()[-1] == f"check({t.entry_point})" for t in tasks)


def test_quirks_are_handled(data_dir):
    mbpp = {t.task_id: t for t in load_benchmark("mbpp_plus", data_dir)}
    assert mbpp["Mbpp/120"].test.startswith("import math\n")
    assert len(mbpp["Mbpp/793"].extra["plus_input"]) == 0  # stored as {}
    # EvalPlus deserialises Mbpp/2's inputs to tuples
    assert mbpp["Mbpp/2"].extra["base_input"][0] == [(3, 4, 5, 6), (5, 7, 4, 10)]
    fix = {t.task_id: t for t in load_benchmark("humanevalfix", data_dir)}
    assert fix["Python/0"].extra["bug_type"] == "missing logic"
    assert fix["Python/0"].extra["buggy_program"].startswith("from typing import List")
    assert fix["Python/0"].test.count("\ncheck(has_close_elements)") == 1  # not appended twice


def test_unknown_benchmark_is_rejected(data_dir):
    with pytest.raises(ValueError, match=r"unknown benchmark 'humaneval\+'"):
        load_benchmark("humaneval+", data_dir)
    assert "humaneval_plus" in BENCHMARKS


# --- pass@k -------------------------------------------------------------------------------------


def test_pass_at_k_unbiased_and_averaged_over_tasks():
    rows = [{"task_id": "A", "status": s} for s in ("pass", "fail", "fail")]
    rows += [{"task_id": "B", "status": s} for s in ("pass", "pass", "timeout")]
    rows += [{"task_id": "nope", "status": "error"}]
    summary = summarise(rows, known={"A", "B"})
    # A: n=3, c=1 -> pass@1 = 1/3; B: n=3, c=2 -> 2/3; mean 1/2. pass@10 needs n >= 10.
    assert summary["pass_at_1"] == pytest.approx(0.5)
    assert summary["pass_at_k"] == {"pass@1": pytest.approx(0.5)}
    assert (summary["n_samples"], summary["n_tasks"]) == (7, 2)


# --- bad input ----------------------------------------------------------------------------------


def test_malformed_json_line_names_file_and_line(tmp_path, data_dir):
    samples = tmp_path / "bad.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "solution": "x = 1"}\n{"task_id": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl line 2: not valid JSON"):
        score_samples("humaneval", samples, tmp_path / "out.json", data_dir=data_dir)
    args = Namespace(benchmark="humaneval", samples=str(samples), out=str(tmp_path / "o.json"),
                     data_dir=str(data_dir), workers=1)
    assert score_command(args) == 2


def test_bad_rows_get_errors_and_the_rest_is_scored(tmp_path, data_dir):
    task = load_benchmark("humaneval", data_dir)[0]
    body = task.canonical_solution[len(task.prompt):]
    rows = [{"solution": "x = 1"},
            {"task_id": "HumanEval/999", "solution": "x = 1"},
            {"task_id": task.task_id, "solution": "   "},
            {"task_id": task.task_id, "completion": body},
            {"task_id": task.task_id, "solution": task.prompt + "    return True\n"}]
    summary = score(tmp_path, data_dir, "humaneval", rows)
    results = summary["results"]
    assert [r["status"] for r in results] == ["error", "error", "error", "pass", "fail"]
    assert "line 1: missing 'task_id'" in results[0]["detail"]
    assert "line 2: unknown task_id 'HumanEval/999'" in results[1]["detail"]
    assert "line 3: empty solution" in results[2]["detail"]
    assert results[4]["detail"].startswith("AssertionError: assert candidate(")
    # HumanEval/0 has 3 rows (the empty one counts as a failed sample): pass@1 = 1/3
    assert summary["pass_at_1"] == pytest.approx(1 / 3) and summary["n_samples"] == 5
    on_disk = json.loads((tmp_path / "humaneval.json").read_text())
    assert on_disk["results"] == results and on_disk["benchmark"] == "humaneval"


def test_an_out_that_cannot_be_written_is_refused_before_anything_runs(tmp_path, data_dir):
    samples = write_samples(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "solution": "x"}])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out, reason in ((tmp_path, "--out is a folder"),
                        (blocker / "results.json", "--out: cannot write there")):
        with pytest.raises(DataError, match=reason):
            score_samples("humaneval", samples, out, data_dir=data_dir)
    args = Namespace(benchmark="humaneval", samples=str(samples), out=str(tmp_path),
                     data_dir=str(data_dir), workers=1)
    assert score_command(args) == 2


def refuse_to_run(monkeypatch):
    """Any program run fails the test: the refusals below come before the first one."""
    from faulttune import evaluate

    def no_run(*args, **kwargs):
        raise AssertionError("a program ran")

    monkeypatch.setattr(evaluate, "run_in_pool", no_run)


def test_an_out_that_is_not_a_regular_file_is_refused_naming_why(tmp_path, data_dir, monkeypatch):
    refuse_to_run(monkeypatch)
    samples = write_samples(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "solution": "x"}])
    kept = samples.read_bytes()
    target = tmp_path / "earlier.json"
    target.write_text("earlier")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    hard = tmp_path / "hard.jsonl"
    os.link(samples, hard)
    cases = [(link, "--out is a symbolic link (to "), (fifo, "--out is a FIFO (named pipe)"),
             (Path("/dev/null"), "--out is a character device, not a file"),
             (samples, f"--out is the input file {samples} itself"),
             (hard, f"--out is the input file {samples} itself"),
             (tmp_path, "--out is a folder")]
    for out, reason in cases:
        with pytest.raises(DataError, match=re.escape(f"{out}: {reason}")):
            score_samples("humaneval", samples, out, data_dir=data_dir)
        args = Namespace(benchmark="humaneval", samples=str(samples), out=str(out),
                         data_dir=str(data_dir), workers=1)
        assert score_command(args) == 2
    assert link.is_symlink() and target.read_text() == "earlier" and fifo.is_fifo()
    assert samples.read_bytes() == kept and Path("/dev/null").is_char_device()


def test_results_replace_a_regular_file_whole(tmp_path, data_dir):
    out = tmp_path / "results.json"
    out.write_text("earlier results")
    os.chmod(out, 0o600)
    rows = [{"task_id": "HumanEval/0", "solution": "def has_close_elements(n, t):\n    return 1\n"}]
    summary = score(tmp_path, data_dir, "humaneval", rows)
    assert json.loads((tmp_path / "humaneval.json").read_text()) == summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["humaneval.json", "humaneval.jsonl",
                                                          "results.json"]


def test_generate_refuses_the_same_outputs_before_loading_a_model(tmp_path, monkeypatch):
    from faulttune.generate.run import raw_path
    from faulttune.stages import eval as stage

    monkeypatch.setattr(stage, "load_tasks", lambda *a, **k: pytest.fail("tasks were loaded"))
    fifo = tmp_path / "samples.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="--out is a FIFO"):
        stage.run_generation("tiny-random", "humaneval", fifo, generation={})
    out = tmp_path / "other.jsonl"
    raw_path(out).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DataError, match=r"other\.raw\.jsonl: --out \(its raw file\) is a symbolic"):
        stage.run_generation("tiny-random", "humaneval", out, generation={})


def test_results_are_written_atomically(tmp_path, data_dir, monkeypatch):
    from faulttune.evaluate import samples as samples_module

    out = tmp_path / "results.json"
    out.write_text('{"earlier": "results"}')
    rows = [{"task_id": "HumanEval/0", "solution": "def has_close_elements(n, t):\n    return 1\n"}]
    path = write_samples(tmp_path / "s.jsonl", rows)

    def broken_dumps(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(samples_module.json, "dumps", broken_dumps)
    with pytest.raises(OSError, match="disk full"):
        score_samples("humaneval", path, out, data_dir=data_dir)
    assert out.read_text() == '{"earlier": "results"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "s.jsonl"]


@pytest.mark.parametrize("content, message", [
    (b'{"task_id": "HumanEval/0", "solution": "x"}\n\n\xff\xfe{}\n',
     r"s\.jsonl line 3: not valid UTF-8 \(byte 0xff at column 1\)"),
    (b'\n\n{"task_id": \n', r"s\.jsonl line 3: not valid JSON"),
    (b'\n[1, 2]\n', r"s\.jsonl line 2: expected a JSON object, got list"),
    (b"", r"s\.jsonl: no sample rows \(the file is empty\)"),
    (b'{"task_id": 7, "solution": "x"}\n\n{"task_id": "HumanEval/999", "solution": " "}\n',
     (r"s\.jsonl: no scorable row in 2 \(1 x 'task_id' must be a string, got int 7, "
      r"1 x unknown task_id 'HumanEval/999'")),
])
def test_unreadable_samples_stop_with_the_file_and_line(content, message, tmp_path, data_dir):
    samples = tmp_path / "s.jsonl"
    samples.write_bytes(content)
    with pytest.raises(DataError, match=message):
        score_samples("humaneval", samples, tmp_path / "out.json", data_dir=data_dir)
    assert not (tmp_path / "out.json").exists()


def test_a_line_nested_too_deeply_is_named(tmp_path, data_dir):
    samples = tmp_path / "s.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    samples.write_text('{"task_id": "HumanEval/0", "solution": "x"}\n{"x": ' + deep + "}\n")
    with pytest.raises(DataError, match=r"s\.jsonl line 2: JSON nested too deeply to read"):
        score_samples("humaneval", samples, tmp_path / "out.json", data_dir=data_dir)


def test_a_device_as_samples_stops_at_the_line_limit(tmp_path, data_dir):
    with pytest.raises(DataError, match=r"/dev/zero line 1: longer than 16 MiB"):
        score_samples("humaneval", "/dev/zero", tmp_path / "out.json", data_dir=data_dir)
    assert not (tmp_path / "out.json").exists()


def corrupt_copy(data_dir: Path, folder: Path, damage) -> Path:
    """The data folder with HumanEval+'s archive damaged by ``damage(bytes) -> bytes``."""
    import shutil

    copy = folder / "data"
    shutil.copytree(data_dir, copy)
    archive = copy / "humanevalplus" / "HumanEvalPlus.jsonl.gz"
    os.chmod(archive.parent, 0o755)
    os.chmod(archive, 0o644)
    archive.write_bytes(damage(archive.read_bytes()))
    return copy


@pytest.mark.parametrize("damage, reason", [
    (lambda data: data[: len(data) // 2], r"line \d+: the archive is corrupt or truncated \(EOFError"),
    (lambda data: data[:10] + bytes(200) + data[210:], r"line 1: the archive is corrupt or truncated"),
    (lambda data: b"not gzip at all" + data, (r"line 1: the archive is corrupt or truncated "
                                             r"\(BadGzipFile")),
])
def test_a_corrupt_benchmark_archive_is_named(damage, reason, tmp_path, data_dir):
    broken = corrupt_copy(data_dir, tmp_path, damage)
    samples = write_samples(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "solution": "x"}])
    with pytest.raises(ValueError, match=r"HumanEvalPlus\.jsonl\.gz " + reason):
        score_samples("humaneval_plus", samples, tmp_path / "out.json", data_dir=broken)
    args = Namespace(benchmark="humaneval_plus", samples=str(samples),
                     out=str(tmp_path / "o.json"), data_dir=str(broken), workers=1)
    assert score_command(args) == 2


def test_a_model_that_answers_nothing_scores_zero_instead_of_failing_the_run(tmp_path, data_dir):
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "solution": ""}\n'
                       '{"task_id": "HumanEval/1", "completion": "  "}\n')
    summary = score_samples("humaneval", samples, tmp_path / "out.json", data_dir=data_dir)
    assert (summary["pass_at_1"], summary["n_tasks"]) == (0.0, 2)
    assert [r["status"] for r in summary["results"]] == ["error", "error"]
    assert summary["results"][1]["detail"] == f"{samples} line 2: empty solution"


def test_a_folder_as_samples_is_named(tmp_path, data_dir):
    with pytest.raises(DataError, match=r"is a folder, not a SAMPLES.jsonl file"):
        score_samples("humaneval", tmp_path, tmp_path / "out.json", data_dir=data_dir)


def test_rows_with_bad_fields_are_errors_naming_the_real_line(tmp_path, data_dir):
    good = {"task_id": "HumanEval/0", "solution": "def has_close_elements(n, t):\n    return 1\n"}
    lines = ['{"task_id": ["HumanEval/0"], "solution": "x"}', "",
             '{"task_id": "HumanEval/0", "solution": "x = \'\\ud800\'"}',
             '{"task_id": "HumanEval/\\udcff", "solution": "x"}', "", json.dumps(good)]
    samples = tmp_path / "s.jsonl"
    samples.write_text("\n".join(lines) + "\n")
    summary = score_samples("humaneval", samples, tmp_path / "out.json", data_dir=data_dir)
    details = [r["detail"] for r in summary["results"]]
    assert details[0] == f"{samples} line 1: 'task_id' must be a string, got list ['HumanEval/0']"
    assert details[1] == (f"{samples} line 3: 'solution' holds a lone surrogate (U+D800): "
                          "not valid Unicode")
    assert details[2] == (f"{samples} line 4: 'task_id' holds a lone surrogate (U+DCFF): "
                          "not valid Unicode")
    assert summary["results"][2]["task_id"] == "HumanEval/\\udcff"
    assert [r["status"] for r in summary["results"]] == ["error", "error", "error", "fail"]
    assert json.loads((tmp_path / "out.json").read_text())["results"] == summary["results"]


def test_results_record_the_isolation(tmp_path, data_dir):
    from faulttune.sandbox import isolation

    rows = [{"task_id": "HumanEval/0", "solution": "def has_close_elements(n, t):\n    return 1\n"}]
    summary = score(tmp_path, data_dir, "humaneval", rows)
    assert summary["isolation"] == isolation().label()


# --- the judge: the task's helpers, not the program's ---------------------------------------------


def own_helper_rows(tasks: Tasks) -> list[dict]:
    # HumanEval/32: a `poly` that is 0 everywhere makes any x a root of "the" polynomial
    find_zero = tasks["HumanEval/32"].prompt.replace(
        "    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])", "    return 0")
    find_zero += "    return 0.0\n"
    # HumanEval/38: encode_cyclic as the identity makes the identity a decoder
    cyclic = tasks["HumanEval/38"].prompt.replace(
        '    return "".join(groups)', "    return s", 1) + "    return s\n"
    assert find_zero != tasks["HumanEval/32"].prompt and "return s\n" in cyclic
    return [{"task_id": "HumanEval/32", "solution": find_zero},
            {"task_id": "HumanEval/38", "solution": cyclic},
            {"task_id": "HumanEval/32", "solution": tasks["HumanEval/32"].canonical_solution}]


@batched("humaneval", own_helper_rows)
def test_a_programs_own_helper_does_not_reach_the_tests(verdicts):
    assert [r["status"] for r in verdicts] == ["fail", "fail", "pass"]
    assert verdicts[0]["detail"] == "AssertionError: assert math.fabs(poly(coeffs, solution)) < 1e-4"
    assert verdicts[1]["detail"] == "AssertionError: assert candidate(encoded_str) == str"


# --- EvalPlus semantics -------------------------------------------------------------------------


def base_only_variant(task) -> str:
    """A program right on the base inputs and returning None on every other input."""
    known = sorted({repr(tuple(inp)) for inp in task.extra["base_input"]})
    return (task.canonical_solution + f"\n_right = {task.entry_point}\n_KNOWN = {known!r}\n"
            f"def {task.entry_point}(*args):\n"
            f"    return _right(*args) if repr(args) in _KNOWN else None\n")


def test_the_longest_tasks_start_first_and_results_keep_the_row_order(tmp_path, data_dir,
                                                                       monkeypatch):
    """Runs start in the order of their canonical solution's time, longest first (the slowest
    task is not left for last); RESULTS keeps the rows' order."""
    from faulttune import evaluate
    from faulttune.sandbox import SandboxResult

    started: list[str] = []

    def recording_pool(func, plans, **kwargs):  # each plan's result names its function
        started.extend(plan.entry_point for plan in plans)
        return [SandboxResult("pass", plan.entry_point) for plan in plans]

    monkeypatch.setattr(evaluate, "run_in_pool", recording_pool)
    tasks = {t.task_id: t for t in load_benchmark("humaneval_plus", data_dir)}
    chosen = ["HumanEval/0", "HumanEval/139", "HumanEval/2", "HumanEval/15", "HumanEval/2"]
    rows = [{"task_id": tid, "solution": tasks[tid].canonical_solution} for tid in chosen]
    summary = score(tmp_path, data_dir, "humaneval_plus", rows)
    assert [r["detail"] for r in summary["results"]] == [tasks[t].entry_point for t in chosen]
    # special_factorial (HumanEval/139) and string_sequence (HumanEval/15) take seconds
    assert set(started[:2]) == {"special_factorial", "string_sequence"}, started
    assert set(started[2:]) == {"has_close_elements", "truncate_number"}, started


@batched("humaneval_plus", lambda tasks: [
    {"task_id": "HumanEval/13", "solution": base_only_variant(tasks["HumanEval/13"])}])
def test_plus_inputs_catch_what_base_inputs_miss(verdicts, data_dir):
    task = {t.task_id: t for t in load_benchmark("humaneval_plus", data_dir)}["HumanEval/13"]
    [plus] = verdicts
    assert plus["status"] == "fail"
    assert plus["detail"].startswith("wrong output on plus input #0: greatest_common_divisor(")
    assert plus["detail"].endswith("returned None, expected " + repr(
        __import__("math").gcd(*task.extra["plus_input"][0])))


# HumanEval/2 has atol 0 and float outputs, so EvalPlus compares with atol 1e-6
@batched("humaneval_plus", lambda tasks: [
    {"task_id": "HumanEval/2", "completion": "    return number % 1.0 + 1e-9\n"},
    {"task_id": "HumanEval/2", "completion": "    return number % 1.0 + 1e-4\n"}])
def test_float_tolerance_follows_evalplus(verdicts, data_dir):
    prompt = {t.task_id: t for t in load_benchmark("humaneval_plus", data_dir)}["HumanEval/2"].prompt
    assert [r["status"] for r in verdicts] == ["pass", "fail"]
    assert prompt.rstrip().endswith('"""')


@batched("mbpp", lambda tasks: [
    # Mbpp/2 compares as sets: any order of the shared elements passes
    {"task_id": "Mbpp/2", "solution": "def similar_elements(a, b):\n"
                                      "    return tuple(sorted(set(a) & set(b), reverse=True))\n"},
    # exact comparison elsewhere: a list where a tuple is expected fails
    {"task_id": "Mbpp/2", "solution": "def similar_elements(a, b):\n    return None\n"},
    # EvalPlus's reliability guard disables open(): a program that uses it fails
    {"task_id": "Mbpp/2", "solution": "def similar_elements(a, b):\n"
                                      "    open('x', 'w')\n    return tuple(set(a) & set(b))\n"},
])
def test_mbpp_special_oracles_and_guard(verdicts):
    assert [r["status"] for r in verdicts] == ["pass", "fail", "error"]
    assert "TypeError: 'NoneType' object is not callable" in verdicts[2]["detail"]


@batched("humaneval_plus", lambda tasks: [
    {"task_id": "HumanEval/0", "completion": "    import time\n    time.sleep(30)\n"}])
def test_slow_program_times_out_per_input(verdicts):
    [result] = verdicts
    assert result["status"] == "timeout"
    assert result["detail"].startswith("base input #0 exceeded")


def test_a_per_input_limit_holds_when_the_program_switches_its_timers_off(tmp_path, data_dir):
    from jail_checks import hostile

    program = hostile("disable_timer") + "\nhas_close_elements = solve\n"
    rows = [{"task_id": "HumanEval/0", "solution": program}]
    start = time.monotonic()
    result = score(tmp_path, data_dir, "humaneval_plus", rows)["results"][0]
    assert result["status"] == "timeout"
    assert result["detail"].startswith("base input #0 exceeded 1.00 s: has_close_elements(")
    assert time.monotonic() - start < 10


def answers_compared_rows(tasks: Tasks) -> list[dict]:
    from jail_checks import hostile

    return [  # HumanEval/2 expects a float: a float that equals everything cannot cross
        {"task_id": "HumanEval/2", "solution": hostile("lying_values", KIND=0)
         + "\ntruncate_number = solve\n"},
        # a wrong answer with numpy.isclose/allclose and math.isclose patched to say yes
        {"task_id": "HumanEval/2", "solution": hostile("patch_stdlib") + "\n"
         "def truncate_number(number):\n    return number % 1.0 + 0.25\n"}]


@batched("humaneval_plus", answers_compared_rows)
def test_answers_are_compared_in_the_scorer(verdicts):
    assert [r["status"] for r in verdicts] == ["fail", "fail"]
    assert verdicts[0]["detail"].endswith("returned a YesFloat (a subclass of float), which cannot "
                                          "cross the sandbox boundary (plain builtin values only)")
    assert verdicts[1]["detail"].startswith("wrong output on base input #0: truncate_number(")


# Mbpp/255 plus input #85 expects 1.3 M tuples (~800 MB of expected outputs for the task).
# EvalPlus 0.3.1 fails even the canonical solution with MemoryError: its checking child gets
# RLIMIT_AS = 4 GiB on top of its own copy of the expected outputs. Ours stay in the scorer.
@batched("mbpp_plus", lambda tasks: [
    {"task_id": "Mbpp/255", "solution": tasks["Mbpp/255"].canonical_solution},
    {"task_id": "Mbpp/255", "solution": (  # drops the last combination
        "from itertools import combinations_with_replacement\n"
        "def combinations_colors(l, n):\n"
        "    return list(combinations_with_replacement(l, n))[:-1]\n")}])
def test_huge_expected_outputs_leave_the_program_its_memory(verdicts):
    assert verdicts[0] == {"task_id": "Mbpp/255", "status": "pass", "detail": ""}
    assert verdicts[1]["status"] == "fail"
    assert verdicts[1]["detail"].startswith("wrong output on base input #0: combinations_colors(")


def test_a_limit_covers_the_canonical_call_and_the_pickling_of_its_output(data_dir):
    """A program's clock runs until its pickled answer has arrived, so the reference it is held
    to (EvalPlus's max(1 s, 4 x the canonical's time)) includes encoding the canonical output."""
    from faulttune.data.benchmarks import dataset_path
    from faulttune.evaluate import _stage, expected_outputs

    stage = _stage("base", {"base_time": [0.1, 3.0], "base_encode_time": [0.05, 2.0]})
    assert stage.time_limits == (1.0, 20.0) and stage.budget_s == 22.0
    tasks = {t.task_id: t for t in load_benchmark("mbpp_plus", data_dir)}
    entry = expected_outputs("mbpp_plus", list(tasks.values()),
                             dataset_path("mbpp_plus", data_dir))["Mbpp/255"]
    encode = entry["plus_encode_time"]
    assert len(encode) == len(entry["plus_time"]) == len(tasks["Mbpp/255"].extra["plus_input"])
    # input #85's output (261 MB) takes the longest to pickle, by far
    assert max(range(len(encode)), key=encode.__getitem__) == 85
    assert encode[85] > 3 * sorted(encode)[-2]


def test_scorers_started_together_build_the_expected_outputs_once(tmp_path, monkeypatch):
    import pickle
    import threading

    from faulttune.evaluate import expected

    builds = []

    def slow_build(dataset, tasks, folder, workers):
        builds.append(folder)
        time.sleep(0.5)
        folder.mkdir(parents=True)
        (folder / "index.pkl").write_bytes(pickle.dumps({"T/0": {"file": "0.pkl"}}))

    monkeypatch.setenv("FAULTTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(expected, "_build", slow_build)
    source = tmp_path / "dataset.jsonl"
    source.write_text("{}\n")
    found = []
    scorers = [threading.Thread(target=lambda: found.append(
        expected.expected_outputs("mbpp_plus", [], source))) for _ in range(3)]
    for scorer in scorers:
        scorer.start()
    for scorer in scorers:
        scorer.join()
    assert len(builds) == 1
    assert [index["T/0"]["file"] for index in found] == [str(builds[0] / "0.pkl")] * 3


# --- whole benchmarks (slow: every canonical solution, and every HumanEvalFix bug) ---------------


CORPORA = ["humaneval", "humaneval_plus", "mbpp", "mbpp_plus"]
for _name in CORPORA:
    BATCHED[f"test_every_canonical_solution_passes[{_name}]"] = (
        _name, lambda tasks: canonical_rows(tasks.values()))


@pytest.mark.slow
@pytest.mark.parametrize("name", CORPORA)
def test_every_canonical_solution_passes(name, verdicts, data_dir):
    tasks = {t.task_id for t in load_benchmark(name, data_dir)}
    assert len(verdicts) == len(tasks)
    failures = [r for r in verdicts if r["status"] != "pass"]
    assert failures == [] and summarise(verdicts, tasks)["pass_at_1"] == 1.0


@pytest.mark.slow
def test_humanevalfix_canonical_pass_and_buggy_do_not(tmp_path, data_dir):
    tasks = load_benchmark("humanevalfix", data_dir)
    rows = canonical_rows(tasks)
    rows += [{"task_id": t.task_id, "solution": t.extra["buggy_program"]} for t in tasks]
    results = score(tmp_path, data_dir, "humanevalfix", rows)["results"]
    canonical, buggy = results[:164], results[164:]
    assert [r for r in canonical if r["status"] != "pass"] == []
    assert all(r["status"] in ("fail", "error", "timeout") for r in buggy)
    by_id = {r["task_id"]: r["status"] for r in buggy}
    assert by_id["Python/156"] == "timeout"  # labelled "infinite loop"
    assert by_id["Python/10"] in ("timeout", "error")  # labelled "stackoverflow"


# --- issue 27: the scorer's own process --------------------------------------------------------


def test_hash_flood_answers_fail_while_the_canonical_beside_them_pass(tmp_path, data_dir):
    from jail_checks import hostile

    task = {t.task_id: t for t in load_benchmark("humaneval_plus", data_dir)}["HumanEval/0"]
    canonical = {"task_id": "HumanEval/0", "solution": task.canonical_solution}
    floods = [{"task_id": "HumanEval/0", "solution": hostile("hash_flood", COUNT=count, FORM=form)
               + "\nhas_close_elements = solve\n"} for count in (70_000, 5_000) for form in (0, 1)]
    rows = [row for flood in floods for row in (flood, canonical)]
    results = score(tmp_path, data_dir, "humaneval_plus", rows)["results"]
    assert [r["status"] for r in results[1::2]] == ["pass"] * 4, results
    assert [r["status"] for r in results[::2]] == ["fail"] * 4, results
    assert "share one hash value" in results[0]["detail"]  # checked by the checker (0.8 MB)
    assert "share one hash value" in results[4]["detail"]  # checked here (60 KB)
    assert "pickle's own opcodes" in results[2]["detail"]


def scorer_peak_growth_mb(action) -> tuple[object, float]:
    """``action()`` and by how much this process's resident memory grew meanwhile (sampled)."""
    import threading

    import psutil

    me, peaks, stop = psutil.Process(), [], threading.Event()
    base = me.memory_info().rss

    def sample():
        while not stop.is_set():
            peaks.append(me.memory_info().rss)
            time.sleep(0.01)

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        result = action()
    finally:
        stop.set()
        watcher.join()
    return result, (max(peaks, default=base) - base) / 2**20


def test_a_large_answer_is_decoded_outside_the_scorer(tmp_path, data_dir):
    from jail_checks import hostile

    from faulttune.data.benchmarks import dataset_path
    from faulttune.evaluate import diff_job, expected_outputs
    from faulttune.sandbox import run_differential

    # HumanEval/130's largest canonical output is 9 MB: its answer limit is 4 x that. A wrong
    # answer of 20 MB (about 150 MB decoded) is checked by the checker, not in this process,
    # which holds the bytes of a few answers at most (the program answers inputs ahead).
    tasks = {t.task_id: t for t in load_benchmark("humaneval_plus", data_dir)}
    expected = expected_outputs("humaneval_plus", list(tasks.values()),
                                dataset_path("humaneval_plus", data_dir))
    program = hostile("big_answer", MB=20) + "\ntri = solve\n"
    job = diff_job("humaneval_plus", tasks["HumanEval/130"], program, expected["HumanEval/130"])
    result, growth = scorer_peak_growth_mb(lambda: run_differential(job))
    assert result.status == "fail" and result.detail.startswith("wrong output on base input #0")
    assert growth < 4 * 20 + 20, growth  # never the decoded value (about 150 MB)
    rows = [{"task_id": "HumanEval/0", "solution": program + "\nhas_close_elements = solve\n"}]
    [result] = score(tmp_path, data_dir, "humaneval_plus", rows)["results"]
    assert result["status"] == "fail" and result["detail"].startswith(
        "answer too large: on base input #0: has_close_elements(")
    assert result["detail"].endswith("the program answered more than 1024 KiB (the task's answer "
                                     "limit)")


def test_sigterm_ends_the_scorer_while_a_large_answer_is_checked(tmp_path, data_dir):
    import signal
    import subprocess
    import sys

    from jail_checks import jail_processes, leftovers, needs_jail

    needs_jail()
    from jail_checks import hostile

    program = hostile("big_answer", MB=25) + "\ntri = solve\n"
    samples = write_samples(tmp_path / "s.jsonl", [{"task_id": "HumanEval/130", "solution": program}])
    out = tmp_path / "r.json"
    scorer = subprocess.Popen([sys.executable, "-m", "faulttune.cli", "score", "humaneval_plus",
                               str(samples), "--out", str(out), "--data-dir", str(data_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            "checker" in p.cmdline() for p in jail_processes(scorer.pid)):
        time.sleep(0.02)
    assert scorer.poll() is None, "the scorer ended before its checker started"
    scorer.send_signal(signal.SIGTERM)
    start = time.monotonic()
    scorer.wait(timeout=20)
    assert time.monotonic() - start < 5
    assert leftovers(scorer.pid) == {} and not out.exists()


def test_a_run_whose_sandbox_breaks_is_its_rows_error_and_the_others_are_scored():
    import pickle

    from faulttune.sandbox import DiffJob, Limits, OutputCheck, Stage, run_differential, run_in_pool

    def cases(broken: bool):
        yield (1,), 2
        if broken:  # an expected-outputs file cut short or damaged
            raise pickle.UnpicklingError("pickle data was truncated")
        yield (2,), 3

    jobs = [DiffJob("def f(x):\n    return x + 1\n", "f", (Stage("base", (1.0, 1.0), 5.0),),
                    OutputCheck("humaneval", "f", 0.0), lambda broken=broken: cases(broken),
                    Limits(timeout_s=8.0)) for broken in (True, False)]
    first, second = run_in_pool(run_differential, jobs, workers=2, progress=False)
    assert (first.status, first.detail) == (
        "error", "sandbox failure: UnpicklingError: pickle data was truncated")
    assert second.passed


def _pickled(value):
    import pickle

    from faulttune.sandbox.differential import Pickled

    return Pickled(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def _differential(program: str, cases: list):
    """The verdict on ``program`` (entry point ``f``) over ``cases``, compared as HumanEval+."""
    from faulttune.sandbox import DiffJob, Limits, OutputCheck, Stage, run_differential

    stage = Stage("base", tuple(1.0 for _ in cases), 5.0)
    return run_differential(DiffJob(program, "f", (stage,), OutputCheck("humaneval", "f", 0.0),
                                    lambda: iter(cases), Limits(timeout_s=8.0)))


def test_an_answer_that_is_the_expected_pickle_agrees_without_being_decoded(monkeypatch):
    from faulttune.sandbox import differential

    # ~500 KB: an answer this large is otherwise decoded and compared by the checker
    cases = [((3,), _pickled(list(range(100_000)))), ((1,), _pickled("one"))]
    program = "def f(x):\n    return list(range(100_000)) if x == 3 else 'one'\n"

    def never(*args):
        raise AssertionError("decoded and compared")

    with monkeypatch.context() as patched:
        patched.setattr(differential, "expected_value", never)
        patched.setattr(differential._StageRun, "_check_outside", never)
        result = _differential(program, cases)
    assert (result.status, result.detail) == ("pass", "")
    # one element off: decoded and compared, and wrong
    result = _differential(program.replace("range(100_000)", "range(1, 100_001)"), cases)
    assert result.status == "fail" and result.detail.startswith("wrong output on base input #0")


def test_a_float_answer_taken_by_its_bytes_still_raises_the_tolerance():
    # EvalPlus compares with atol 1e-6 after a float output, for the rest of the stage: the second
    # answer (1e-9 off, not all floats) passes only after the first
    cases = [((0,), _pickled([0.5, 0.25])), ((1,), _pickled([1, 2.0]))]
    program = "def f(x):\n    return [0.5, 0.25] if x == 0 else [1, 2.0 + 1e-9]\n"
    assert _differential(program, cases).status == "pass"
    assert _differential(program, cases[1:]).status == "fail"  # exact comparison


def test_a_nan_answer_fails_though_its_bytes_are_the_expected_ones():
    import pickle

    from faulttune.sandbox.differential import Pickled

    program = "def f(x):\n    return float('nan')\n"  # its answer pickles as the expected NaN
    assert _differential(program, [((0,), _pickled(float("nan")))]).status == "fail"
    said = Pickled.known(pickle.dumps(float("nan"), protocol=5), holds_nan=True, floats=True)
    assert _differential(program, [((0,), said)]).status == "fail"


def test_holds_nan_finds_a_nan_anywhere_and_knows_what_it_does_not_know():
    from faulttune.sandbox.comparison import holds_nan

    nan = float("nan")
    assert holds_nan([1.0, 2.5, float("inf")]) is False
    assert holds_nan([1.0, nan]) is True
    assert holds_nan({"a": [(1, "x", complex(0, nan))]}) is True
    assert holds_nan({nan: 1}) is True
    assert holds_nan(("s", b"b", None, True, 10**40, frozenset({1.5}))) is False
    looped: list = [1.0]
    looped.append(looped)
    assert holds_nan(looped) is False
    assert holds_nan([1.0, object()]) is None


def test_an_answer_is_taken_by_its_bytes_where_the_cache_says_no_nan(monkeypatch):
    """A float's bytes can look like a NaN's inside a pickle (G, then 0x7f 0xf0, mid-float):
    where the cache says the value holds none, equal bytes are enough; where it does not say,
    the answer is decoded and compared."""
    import pickle
    import struct

    from faulttune.sandbox import differential
    from faulttune.sandbox.differential import Pickled

    value = [struct.unpack(">d", b"\x40G\x7f\xf0\x00\x00\x00\x01")[0], 2.0]
    encoded = pickle.dumps(value, protocol=5)
    assert differential._MAYBE_NAN.search(encoded)
    decoded = []  # the answers decoded (the load's reply is decoded too: not counted)
    real_loads = differential.wire.loads
    monkeypatch.setattr(differential.wire, "loads", lambda body: decoded.extend(
        [body] if body == encoded else []) or real_loads(body))
    program = f"def f(x):\n    return {value!r}\n"
    said = Pickled.known(encoded, holds_nan=False, floats=True)
    assert _differential(program, [((0,), said)]).passed and decoded == []
    assert _differential(program, [((0,), Pickled(encoded))]).passed and len(decoded) == 1


def test_the_cache_says_which_expected_outputs_hold_a_nan_and_are_floats(data_dir, monkeypatch):
    """HumanEval/130's outputs are large lists of floats whose bytes look like NaNs': a correct
    program's answers are taken by their bytes, never sent to the checker."""
    import pickle

    from faulttune.data.benchmarks import dataset_path
    from faulttune.evaluate import diff_job, expected_outputs
    from faulttune.evaluate.expected import read_cases
    from faulttune.sandbox import differential, run_differential
    from faulttune.sandbox.comparison import holds_nan, is_floats

    tasks = {t.task_id: t for t in load_benchmark("humaneval_plus", data_dir)}
    entry = expected_outputs("humaneval_plus", list(tasks.values()),
                             dataset_path("humaneval_plus", data_dir))["HumanEval/130"]
    facts = []
    for _, expected in read_cases(entry["file"]):
        value = pickle.loads(expected)
        assert (expected.holds_nan, expected.floats) == (holds_nan(value), is_floats(value))
        facts.append((expected.holds_nan, expected.floats, len(expected)))
    assert {nan for nan, *_ in facts} == {False}  # (lists of ints then floats: not is_floats)
    assert max(size for *_, size in facts) > differential.INLINE_ANSWER
    task = tasks["HumanEval/130"]
    job = diff_job("humaneval_plus", task, task.prompt + task.extra["canonical_body"], entry)
    checked_outside = []
    real = differential._StageRun._check_outside
    monkeypatch.setattr(differential._StageRun, "_check_outside",
                        lambda self, *a: checked_outside.append(a) or real(self, *a))
    assert run_differential(job).passed
    assert checked_outside == []


def test_the_inputs_in_flight_are_bounded_by_count_and_by_their_requests_bytes(monkeypatch):
    from collections import deque

    from faulttune.sandbox import DiffJob, Limits, OutputCheck, Stage, differential

    seen: list[int] = []  # inputs in flight after each top-up
    real = differential._StageRun._top_up

    def recording(self, waiting, upcoming, cases):
        real(self, waiting, upcoming, cases)
        seen.append(len(waiting))

    monkeypatch.setattr(differential._StageRun, "_top_up", recording)
    program = "def f(s):\n    return len(s)\n"
    small = [((str(i),), len(str(i))) for i in range(3 * differential.WINDOW)]
    assert _differential(program, small).passed  # (their requests fit the pipe at once)
    assert max(seen) == differential.WINDOW

    class PipeThatTakesEverything:  # so that only the bounds stop the top-up
        def sending(self, name):
            return False

        def post(self, name, kind, body):
            return True

    size = 20_000
    mid = [(("x" * size,), size)] * 100
    stage = Stage("base", (1.0,) * len(mid), 5.0)
    job = DiffJob(program, "f", (stage,), OutputCheck("humaneval", "f", 0.0), lambda: iter(mid),
                  Limits())
    run = differential._StageRun(PipeThatTakesEverything(), job, stage)
    waiting: deque = deque()
    run._top_up(waiting, iter(enumerate(stage.time_limits)), iter(mid))
    request = len(differential.wire.dumps_trusted(("f", ["x" * size], {})))
    assert run.requests_in_flight == len(waiting) * request
    assert differential.REQUEST_BYTES <= run.requests_in_flight < differential.REQUEST_BYTES + request
    assert len(waiting) < differential.WINDOW
