"""Jobs that a kill does not send back to the start, inside the workflow.

Snakemake deletes the declared outputs of a job that did not finish before it runs the job again
(``rerun-incomplete``), so a job's resumable state (training checkpoints, samples written so far,
teacher candidates, CodeFlow's versions) lives beside its output, not in it:

    <output's folder>/.resume/<output's name>.<settings digest>/

keyed by the job's settings (:mod:`faulttune.settings`), so a config edit that reruns the job
starts from nothing instead of from state computed with other settings. The declared output
appears only when the job completes (:func:`publish`, an atomic rename), and the state folder is
removed then. One helper for every resumable rule::

    with Resumable(output, settings) as job:
        ... write and read job.state ...; check job.stop_requested ...
        job.publish(job.state / "samples.jsonl")

SIGTERM (SLURM sends it at the time limit, earlier with ``--signal``) and SIGINT set
``stop_requested``; a loop that sees it saves what it has and raises :class:`Preempted`, so the
job exits non-zero quickly and its retry continues from the saved state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from typing_extensions import Self

log = logging.getLogger(__name__)
STATE_FOLDER = ".resume"


class Preempted(RuntimeError):
    """The job was asked to stop (SIGTERM / SIGINT) and saved its state; rerun it to continue."""


def settings_digest(settings: Mapping[str, Any] | Any) -> str:
    values = settings.to_params() if hasattr(settings, "to_params") else settings
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def state_dir(output: str | os.PathLike[str], settings: Mapping[str, Any] | Any) -> Path:
    out = Path(output)
    return out.parent / STATE_FOLDER / f"{out.name}.{settings_digest(settings)}"


def publish(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> None:
    """Move a finished file or folder to the declared output in one rename (same filesystem)."""
    src, dst = Path(source), Path(output)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    os.replace(src, dst)


class Resumable:
    """A resumable job's state folder and its stop request (see the module docstring)."""

    def __init__(self, output: str | os.PathLike[str], settings: Mapping[str, Any] | Any) -> None:
        self.output = Path(output)
        self.state = state_dir(output, settings)
        self.stop_requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        self._drop_stale_states()
        resumed = self.state.is_dir() and any(self.state.iterdir())
        self.state.mkdir(parents=True, exist_ok=True)
        log.info("%s state in %s (%s)", self.output, self.state,
                 "resuming" if resumed else "starting")
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._request_stop)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if exc_type is None:
            shutil.rmtree(self.state, ignore_errors=True)
            parent = self.state.parent
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        elif exc_type is Preempted:
            log.warning("stopped on request; state kept in %s: rerun the job to continue", self.state)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        log.warning("received %s: saving state and stopping", signal.Signals(signum).name)
        self.stop_requested = True

    def check_stop(self) -> None:
        """Raise :class:`Preempted` when a stop was requested (call after saving state)."""
        if self.stop_requested:
            raise Preempted(f"{self.output}: stopped on request; state in {self.state}")

    def publish(self, source: str | os.PathLike[str]) -> None:
        publish(source, self.output)

    def _drop_stale_states(self) -> None:
        """State of this output under other settings can never be resumed: remove it."""
        folder = self.state.parent
        if not folder.is_dir():
            return
        for other in folder.glob(f"{self.output.name}.*"):
            if other != self.state and other.name.rsplit(".", 1)[0] == self.output.name:
                log.info("removing the state of other settings %s", other)
                shutil.rmtree(other, ignore_errors=True)
