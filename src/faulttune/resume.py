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

Inside a SLURM job (``$SLURM_JOB_ID``) the job also watches its own time limit (``squeue``'s end
time) and requests the stop ``$FAULTTUNE_STOP_BEFORE_LIMIT_S`` (300, the profile's
``--signal=TERM@300``; at most half the job's time) before it, signal or not: the Snakemake SLURM
plugin runs the first task of an array job in the batch step, which ``--signal=TERM@N`` never
reaches (only steps are signalled; ``B:`` signals the batch shell, which dies without passing it
on), and snakemake/snakemake#3241 reports worker jobs that miss SIGTERM.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from typing_extensions import Self

log = logging.getLogger(__name__)
STATE_FOLDER = ".resume"


STOP_ENV = "FAULTTUNE_STOP_BEFORE_LIMIT_S"
STOP_BEFORE_LIMIT_S = 300.0  # profiles/slurm: --signal=TERM@300
POLL_S = 30.0


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
        self.stop_reason = ""
        self._previous: dict[int, Any] = {}
        self._deadline: SlurmDeadline | None = None

    def __enter__(self) -> Self:
        self._drop_stale_states()
        resumed = self.state.is_dir() and any(self.state.iterdir())
        self.state.mkdir(parents=True, exist_ok=True)
        log.info("%s state in %s (%s)", self.output, self.state,
                 "resuming" if resumed else "starting")
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._request_stop)
        self._deadline = SlurmDeadline.for_this_job(self._stop_at_deadline)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if exc_type is None:
            shutil.rmtree(self.state, ignore_errors=True)
            parent = self.state.parent
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        elif exc_type is Preempted:
            log.warning("stopped on request; state kept in %s: rerun the job to continue", self.state)
            if exc is not None and self.stop_reason:  # the job's stderr (a SLURM log) says why
                exc.args = (f"{exc.args[0] if exc.args else 'stopped'} ({self.stop_reason})",)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_reason = f"received {signal.Signals(signum).name}"
        log.warning("%s: saving state and stopping", self.stop_reason)
        self.stop_requested = True

    def _stop_at_deadline(self, why: str) -> None:
        log.warning("%s: saving state and stopping", why)
        self.stop_reason = self.stop_reason or why
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


# ---------------------------------------------------------------------------------------------
# the SLURM job's own time limit


def slurm_job_window(job_id: str) -> tuple[float, float] | None:
    """(start, end) of a SLURM job in epoch seconds, by ``squeue``; None when it cannot say."""
    try:
        done = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%S %e"], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) != 2:
        return None
    try:
        start, end = (datetime.fromisoformat(f).timestamp() for f in fields)
    except ValueError:  # N/A, Unknown (no time limit)
        return None
    return start, end


def stop_time(start: float, end: float, margin_s: float) -> float:
    """When to stop a job that runs from ``start`` to ``end``: ``margin_s`` before its end, but
    never before half its time."""
    return end - min(margin_s, (end - start) / 2)


class SlurmDeadline:
    """A daemon thread that calls ``on_deadline(why)`` once at :func:`stop_time` of the job
    (its end time read again every ``poll_s``: an administrator may change it)."""

    def __init__(self, job_id: str, on_deadline: Callable[[str], None], margin_s: float,
                 poll_s: float = POLL_S,
                 window: Callable[[str], tuple[float, float] | None] = slurm_job_window,
                 clock: Callable[[], float] = time.time) -> None:
        self.job_id, self.on_deadline, self.margin_s = job_id, on_deadline, margin_s
        self.poll_s, self.window, self.clock = poll_s, window, clock
        self._cancelled = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="slurm-deadline", daemon=True)

    @classmethod
    def for_this_job(cls, on_deadline: Callable[[str], None]) -> SlurmDeadline | None:
        """The watcher of the SLURM job this process runs in (started), or None outside one."""
        job_id = os.environ.get("SLURM_JOB_ID")
        if not job_id or shutil.which("squeue") is None:
            return None
        margin = float(os.environ.get(STOP_ENV) or STOP_BEFORE_LIMIT_S)
        watcher = cls(job_id, on_deadline, margin)
        watcher.thread.start()
        return watcher

    def cancel(self) -> None:
        self._cancelled.set()

    def _watch(self) -> None:
        wait = 0.0
        while not self._cancelled.wait(wait):
            window = self.window(self.job_id)
            if window is None:
                wait = self.poll_s
                continue
            at = stop_time(*window, self.margin_s)
            if self.clock() >= at:
                end = datetime.fromtimestamp(window[1]).isoformat(timespec="seconds")
                self.on_deadline(f"SLURM job {self.job_id} reaches its time limit at {end}; "
                                 f"stopping {window[1] - at:.0f} s before it")
                return
            wait = min(self.poll_s, at - self.clock())
