"""Many runs at once: a thread per running jail, results in input order, a stall warning, and
every jail killed when the scorer is interrupted."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from faulttune.sandbox import spares
from faulttune.sandbox.assertions import TestJob, run_test_job
from faulttune.sandbox.results import Limits, SandboxResult
from faulttune.sandbox.runner import allow_sessions, terminate_all

log = logging.getLogger("faulttune.sandbox")

T = TypeVar("T")
R = TypeVar("R")


def run_in_pool(func: Callable[[T], R], items: Sequence[T], *, workers: int | None = None,
                progress: bool = True, desc: str = "sandbox", stall_s: float = 20.0) -> list[R]:
    """``[func(x) for x in items]`` on a thread pool (each call drives its own jails).

    Shows a tqdm bar and logs a warning when nothing has finished for ``stall_s`` seconds. An
    exception or an interrupt (Ctrl-C, SystemExit from a signal handler) kills every jail at once
    instead of waiting for the running ones. With more items than workers, each worker starts its
    next jail while it runs one (:mod:`.spares`).
    """
    from tqdm import tqdm

    results: list[Any] = [None] * len(items)
    allow_sessions()
    threads = max(1, workers or os.cpu_count() or 1)
    call = _ahead(func) if len(items) > threads else func
    pool = cf.ThreadPoolExecutor(threads)
    try:
        with tqdm(total=len(items), desc=desc, disable=not progress, leave=False) as bar:
            pending = {pool.submit(call, item): i for i, item in enumerate(items)}
            while pending:
                done, _ = cf.wait(pending, timeout=stall_s, return_when=cf.FIRST_COMPLETED)
                if not done:
                    log.warning("%s: nothing finished in the last %.0f s; %d still running",
                                desc, stall_s, len(pending))
                for future in done:
                    results[pending.pop(future)] = future.result()
                    bar.update(1)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        terminate_all()  # and no new jail: a worker may be about to start one
        pool.shutdown(wait=True)  # quick: every jail is dead, so every worker returns
        allow_sessions()
        raise
    finally:
        spares.discard_all()
    pool.shutdown(wait=True)
    return results


def _ahead(func: Callable[[T], R]) -> Callable[[T], R]:
    def call(item: T) -> R:
        with spares.ahead():
            return func(item)

    return call


def as_test_job(job: TestJob | tuple[str, str]) -> TestJob:
    return job if isinstance(job, TestJob) else TestJob(*job)


def run_many(jobs: Sequence[TestJob | tuple[str, str]], *, limits: Limits | None = None,
             workers: int | None = None, progress: bool = True,
             desc: str = "sandbox") -> list[SandboxResult]:
    """Judge every job (a :class:`TestJob`, or ``(program, tests)``); results in input order."""
    chosen = limits or Limits()
    return run_in_pool(lambda job: run_test_job(as_test_job(job), chosen), list(jobs),
                       workers=workers, progress=progress, desc=desc)
