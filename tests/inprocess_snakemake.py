"""Snakemake's command line, run many times in a few long-lived worker processes.

A `python -m snakemake -n` spends most of its CPU time starting Python and importing Snakemake and
faulttune. A worker here imports them once and then runs each command through Snakemake's own
command-line entry (``snakemake.cli.parse_args`` and ``args_to_api``), so every run still parses
the workflow, builds its DAG and decides what reruns from the recorded metadata exactly as the
command does. tests/test_rerun_promise.py checks that a few of these runs plan the same jobs as
the real command.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: str  # what the command would have printed, stdout and stderr together


def _start_worker(workdir: str, hide_data_dir: bool) -> None:
    os.chdir(workdir)
    os.environ["OMP_NUM_THREADS"] = "1"
    if hide_data_dir:
        os.environ.pop("FAULTTUNE_DATA_DIR", None)


def run(args: Sequence[str]) -> Outcome:
    """``snakemake ARGS`` in this process (in a worker of :func:`snakemake_workers`)."""
    from snakemake.cli import args_to_api, parse_args

    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            parser, parsed = parse_args(list(args))
            ok = bool(args_to_api(parsed, parser))
        except SystemExit as exit_:
            ok = exit_.code in (0, None)
        except Exception as error:  # noqa: BLE001 (as snakemake.cli.main: print it, exit 1)
            print(f"{type(error).__name__}: {error}")
            ok = False
    return Outcome(ok, output.getvalue())


@contextlib.contextmanager
def snakemake_workers(workdir: Path, workers: int = 2, hide_data_dir: bool = False
                      ) -> Iterator[ProcessPoolExecutor]:
    """A pool whose ``map(run, [args, ...])`` runs ``snakemake ARGS`` in ``workdir``, one torch
    thread; ``hide_data_dir`` hides $FAULTTUNE_DATA_DIR as conftest.snakemake(data_dir=False)."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, not a fork of pytest
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(str(workdir), hide_data_dir)) as pool:
        yield pool

