"""The canonical solutions' outputs on every base and plus input, computed once and cached.

``$FAULTTUNE_CACHE/expected/<sha256 of the dataset file>-v5/`` (default ``~/.cache/faulttune``):
``index.pkl`` maps task_id to ``{"file", "base_time", "plus_time", "base_encode_time",
"plus_encode_time", "needs_numpy", "largest"}`` (per input, in seconds: the canonical call, timed
by EvalPlus's ``trusted_exec``, and the pickling of its output; ``largest``: the bytes of the
largest pickled output, which sets the task's answer limit), and
each task file is a pickle stream of ``(input, pickled expected output, holds NaN, is floats)``
per input, base inputs then plus inputs (the last two, of the output, let the scorer take an
answer by its bytes without decoding the expected output; ``holds NaN`` is None for a value of a
type :func:`~faulttune.sandbox.comparison.holds_nan` does not know). The scorer reads them one
input at a time (a task's outputs can be huge: Mbpp/255 holds ~800 MB) and unpickles an expected
output only to compare it itself. This folder lives
outside every jail: programs never see it.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import multiprocessing
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faulttune.data.benchmarks import BenchmarkTask
from faulttune.io import cache_dir, exclusive
from faulttune.sandbox.comparison import holds_nan
from faulttune.sandbox.differential import Pickled

log = logging.getLogger(__name__)

DIFF_BENCHMARKS = {"humaneval_plus": ("humaneval", True), "mbpp": ("mbpp", False),
                   "mbpp_plus": ("mbpp", True)}  # name -> (EvalPlus dataset, with plus inputs)
_CACHE_VERSION = 5


def expected_outputs(benchmark: str, tasks: list[BenchmarkTask], source: Path,
                     workers: int | None = None) -> dict[str, dict[str, Any]]:
    """Index of the canonical outputs: ``{task_id: {file, base_time, plus_time, ...}}``.

    Computed once per dataset file (keyed by its sha256) with EvalPlus's ``trusted_exec``.
    """
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    folder = cache_dir() / "expected" / f"{digest}-v{_CACHE_VERSION}"
    if not (folder / "index.pkl").is_file():
        with exclusive(folder):  # scorers started together build it once
            if not (folder / "index.pkl").is_file():
                log.info("computing expected outputs of %s (%d tasks) into %s", benchmark,
                         len(tasks), folder)
                _build(DIFF_BENCHMARKS[benchmark][0], tasks, folder, workers)
    with open(folder / "index.pkl", "rb") as f:
        index = pickle.load(f)
    return {tid: {**entry, "file": str(folder / entry["file"])} for tid, entry in index.items()}


def reference_times(entry: dict[str, Any], stage: str) -> list[float]:
    """Per input of ``stage`` ("base" or "plus"): the canonical solution's call plus the pickling
    of its output. A program's clock in the scorer runs until its pickled answer has arrived, so
    its reference must include the encoding too: Mbpp/255's plus input #85 returns 261 MB, which
    takes longer to pickle (1.7-1.9 s) than to compute (~1.5 s)."""
    return [call + encode for call, encode in
            zip(entry[f"{stage}_time"], entry[f"{stage}_encode_time"], strict=True)]


def reference_seconds(entry: dict[str, Any]) -> float:
    """The whole reference of a task: every base and plus input's :func:`reference_times`."""
    return sum(reference_times(entry, "base")) + sum(reference_times(entry, "plus"))


def read_cases(path: str) -> Iterator[tuple[Any, Pickled]]:
    """The ``(input, expected)`` pairs of one task file, in order (the file closes with it); the
    expected output stays pickled until a comparison needs it (the checker gets it as it is)."""
    with open(path, "rb") as f:
        while True:
            try:
                inp, expected, nan, floats = pickle.load(f)
            except EOFError:
                return
            yield inp, Pickled.known(expected, nan, floats)


def _build(dataset: str, tasks: list[BenchmarkTask], folder: Path, workers: int | None) -> None:
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        jobs = [(str(staging / f"{i}.pkl"), t.prompt + t.extra["canonical_body"], t.entry_point,
                 t.extra["base_input"], t.extra["plus_input"],
                 dataset == "mbpp" and t.entry_point in MBPP_OUTPUT_NOT_NONE_TASKS)
                for i, t in enumerate(tasks)]
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max(1, workers or os.cpu_count() or 1),
                                    mp_context=ctx) as pool:
            metas = list(pool.map(_write_canonical_outputs, jobs))
        index = {t.task_id: {**meta, "file": f"{i}.pkl"} for i, (t, meta) in
                 enumerate(zip(tasks, metas))}
        with open(staging / "index.pkl", "wb") as f:
            pickle.dump(index, f)
        os.chmod(staging, 0o755)
        staging.rename(folder)
    except OSError:
        if not (folder / "index.pkl").is_file():  # not another process finishing first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_canonical_outputs(job: tuple[Any, ...]) -> dict[str, Any]:
    """Run one trusted canonical solution (EvalPlus's ``trusted_exec``) and stream its outputs."""
    from evalplus.eval import is_floats
    from evalplus.gen.util import trusted_exec

    path, code, entry, base, plus, not_none = job
    meta: dict[str, Any] = {"needs_numpy": False, "largest": 0}
    with open(path, "wb") as f:
        for name, inputs in (("base", base), ("plus", plus)):
            outputs, meta[f"{name}_time"] = trusted_exec(
                code, inputs, entry, record_time=True, output_not_none=not_none)
            meta[f"{name}_encode_time"] = encode_times = []
            for inp, out in zip(inputs, outputs):
                start = time.perf_counter()
                encoded = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
                encode_times.append(time.perf_counter() - start)
                floats = is_floats(out)
                pickle.dump((inp, encoded, holds_nan(out), floats), f,
                            protocol=pickle.HIGHEST_PROTOCOL)
                meta["largest"] = max(meta["largest"], len(encoded))
                meta["needs_numpy"] = meta["needs_numpy"] or floats
    return meta
