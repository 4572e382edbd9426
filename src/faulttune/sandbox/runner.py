"""One run: the jails of one program (its server, and a judge for assert-style tests), driven
from the scorer's side (what the frames mean is in ``protocol``).

A :class:`Session` moves frames to and from its jails without blocking, against deadlines the
scorer keeps itself: a jail that does not answer in time gets SIGKILL, whatever it does inside (a
loop in C code, signals ignored, timers disabled). While it waits for one jail it keeps reading the
stdout/stderr of all of them (the last ``Limits.max_output_kb`` are kept), so a program that floods
its output cannot block. Every live session is known, so an interrupted scorer kills them all
(:func:`terminate_all`).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from faulttune.sandbox import framing, jail, reaper, spares
from faulttune.sandbox.contention import Contention, probe
from faulttune.sandbox.results import Limits

_BIG_FRAME = 1 << 20  # a reply larger than this gets time to arrive (see Session.receive)
_TRANSFER_BYTES_PER_S = 50e6


class Overdue(Exception):
    """The jail did not answer before the deadline."""


class Closed(Exception):
    """The jail's channel closed: its process ended (or closed it) before answering."""


class Oversize(Exception):
    """A jail (``name``) announced a frame larger than the session accepts."""

    def __init__(self, name: str, size: int):
        super().__init__(name, size)
        self.name, self.size = name, size


@dataclass
class _Tail:
    cap: int
    data: bytearray = field(default_factory=bytearray)

    def add(self, chunk: bytes) -> None:
        self.data.extend(chunk)
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class _Jail:
    spawned: jail.Spawned
    stdout: _Tail
    stderr: _Tail
    inbox: bytearray = field(default_factory=bytearray)
    outbox: deque[memoryview] = field(default_factory=deque)  # what is still to be written
    frames: list[tuple[bytes, bytes, float]] = field(default_factory=list)  # kind, body, arrived
    drained: float = 0.0  # when the outbox last became empty
    closed: bool = False
    started: bool = False  # said hello
    partial: tuple[int, float] | None = None  # (announced size, when) of a frame not yet whole
    queued: int = 0  # bytes of the frames received and not yet taken
    paused: bool = False  # not read while ``queued`` is at the session's frame limit
    resumed: float = 0.0  # when reading it last resumed
    contention: Contention | None = None
    probed: bool = False  # whether ``contention`` was looked for


_live: set[Session] = set()
_live_lock = threading.Lock()
_stopping = threading.Event()


class Stopping(RuntimeError):
    """The scorer is being interrupted: no new jail starts."""


def terminate_all() -> None:
    """SIGKILL every jail of every live session (their threads then finish on their own) and
    refuse new sessions until :func:`allow_sessions`."""
    with _live_lock:
        _stopping.set()
        sessions = list(_live)
    spares.discard_all(stop=True)
    for session in sessions:
        session.terminate()


def allow_sessions() -> None:
    _stopping.clear()
    spares.reopen()


class Session:
    """The jails of one run; use as a context manager (leaving it kills them all)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.max_frame = limits.max_answer_kb * 1024
        self.jails: dict[str, _Jail] = {}
        self.selector = selectors.DefaultSelector()

    def __enter__(self) -> Session:  # noqa: PYI034 - final in practice
        with _live_lock:
            if _stopping.is_set():
                raise Stopping("the scorer is stopping")
            _live.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, name: str, role: str) -> None:
        """Start a jail for ``role`` under ``name``; its bootstrap bundle goes out first."""
        spawned = spares.spawn(role, self.limits)
        cap = self.limits.max_output_kb * 1024
        state = _Jail(spawned, _Tail(cap), _Tail(cap))
        with _live_lock:  # terminate_all() either sees this jail or we see its flag
            self.jails[name] = state
            stopping = _stopping.is_set()
        if stopping:
            raise Stopping("the scorer is stopping")  # close() kills the jail
        proc = spawned.proc
        assert proc.stdout is not None and proc.stderr is not None
        for fd, stream in ((proc.stdout.fileno(), "stdout"), (proc.stderr.fileno(), "stderr"),
                           (spawned.from_jail, "channel")):
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, (name, stream))
        os.set_blocking(spawned.to_jail, False)
        if spawned.preamble:  # a spare (``spares``) has written all or part of it already
            state.outbox.append(memoryview(spawned.preamble))
            self.selector.register(spawned.to_jail, selectors.EVENT_WRITE, (name, "request"))

    # --- frames -------------------------------------------------------------------------------

    def send(self, name: str, kind: bytes, body: bytes, deadline: float) -> None:
        """Queue one frame for ``name`` and wait until it is written (Overdue, Closed)."""
        if not self.post(name, kind, body):
            self.flush(name, deadline)

    def flush(self, name: str, deadline: float) -> None:
        """Wait until every frame queued for ``name`` is written (Overdue, Closed)."""
        state = self.jails[name]
        self._pump(lambda: not state.outbox or state.closed, deadline)
        if state.outbox:
            raise Closed(name)

    def post(self, name: str, kind: bytes, body: bytes) -> bool:
        """Queue one frame for ``name`` without waiting; True when it went out whole at once
        (otherwise the event loop writes the rest; see :meth:`sending`)."""
        state = self.jails[name]
        if state.closed:
            raise Closed(name)
        if len(body) > _BIG_FRAME:  # not copied: the event loop writes it from ``body``
            if not state.outbox:
                self.selector.register(state.spawned.to_jail, selectors.EVENT_WRITE,
                                       (name, "request"))
            state.outbox.append(memoryview((len(body) + 1).to_bytes(framing.HEADER, "big") + kind))
            state.outbox.append(memoryview(body))
            return False
        data = framing.frame(kind, body)
        if not state.outbox:  # the common case: the pipe takes it at once, no event loop
            written = self._write_now(state, data)
            if written == len(data):
                state.drained = time.monotonic()
                return True
            data = data[written:]
            self.selector.register(state.spawned.to_jail, selectors.EVENT_WRITE, (name, "request"))
        state.outbox.append(memoryview(data))
        return False

    def sending(self, name: str) -> bool:
        """Whether frames for ``name`` are still being written."""
        return bool(self.jails[name].outbox)

    def drained_at(self, name: str) -> float:
        """When the last frame for ``name`` was written whole."""
        return self.jails[name].drained

    @staticmethod
    def _write_now(state: _Jail, data: bytes) -> int:
        try:
            return os.write(state.spawned.to_jail, data)
        except BlockingIOError:
            return 0
        except OSError:  # the jail closed its end
            state.closed = True
            return 0

    def receive(self, name: str, deadline: float) -> tuple[bytes, bytes]:
        """The next frame from ``name`` (Overdue, Closed, Oversize)."""
        kind, body, _ = self.receive_timed(name, deadline)
        return kind, body

    def receive_timed(self, name: str, deadline: float) -> tuple[bytes, bytes, float]:
        """The next frame from ``name`` and when it arrived whole (Overdue, Closed, Oversize).

        A frame over 1 MiB whose header came in time gets what its size needs to arrive
        (50 MB/s), so the limit measures computing rather than copying a large return value.
        What is already in the pipe is always read before the jail is called overdue.
        """
        state = self.jails[name]
        while not state.frames:
            if state.closed:
                raise Closed(name)
            left = self._limit(state, deadline) - time.monotonic()
            for key, _ in self.selector.select(min(max(left, 0), 0.5)):
                self._handle(*key.data, key.fd)
            if not (state.frames or state.closed) and left <= 0 \
                    and self._limit(state, deadline) <= time.monotonic():
                raise Overdue()
        frame = state.frames.pop(0)
        state.queued -= len(frame[1])
        if state.paused and state.queued < self.max_frame:
            self.selector.register(state.spawned.from_jail, selectors.EVENT_READ, (name, "channel"))
            state.paused, state.resumed = False, time.monotonic()
        return frame

    def contention(self, name: str) -> Contention | None:
        """The run-queue wait of ``name``'s server (see :mod:`.contention`; None where it cannot
        be read). Looked for once, after the jail said hello."""
        state = self.jails[name]
        if not state.probed and state.started:
            state.probed = True
            if jail.isolation().kind == "bwrap":
                state.contention = probe(state.spawned.proc.pid)
        return state.contention

    def resumed_at(self, name: str) -> float:
        """When reading ``name``'s answers last resumed after a pause (0: never paused)."""
        return self.jails[name].resumed

    @staticmethod
    def _limit(state: _Jail, deadline: float) -> float:
        if state.partial and state.partial[0] > _BIG_FRAME:
            return max(deadline, state.partial[1] + 0.25 + state.partial[0] / _TRANSFER_BYTES_PER_S)
        return deadline

    # --- the event loop -----------------------------------------------------------------------

    def _pump(self, done: Any, deadline: float) -> None:
        """Handle events until ``done()``; Overdue once the deadline has passed.

        What has already arrived is always taken first: when this thread was held up (another
        thread decoding a large answer keeps the GIL), the jail is not blamed for our delay.
        """
        while not done():
            left = deadline - time.monotonic()
            for key, _ in self.selector.select(min(max(left, 0), 0.5)):
                self._handle(*key.data, key.fd)
            if left <= 0 and not done():
                raise Overdue()

    def _handle(self, name: str, stream: str, fd: int) -> None:
        state = self.jails[name]
        if stream == "request":
            self._write(state, fd)
            return
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.selector.unregister(fd)
            if stream == "channel":
                state.closed = True
            return
        if stream == "channel":
            self._take(name, state, chunk)
        else:
            getattr(state, stream).add(chunk)

    def _write(self, state: _Jail, fd: int) -> None:
        head = state.outbox[0]
        try:
            written = os.write(fd, head[: 1 << 20])
        except BlockingIOError:
            return
        except OSError:  # the jail closed its end
            state.closed = True
            state.outbox.clear()
            written = 0
        if state.outbox:
            if written == len(head):
                state.outbox.popleft()
            else:
                state.outbox[0] = head[written:]
        if not state.outbox:
            state.drained = time.monotonic()
            self.selector.unregister(fd)

    def _take(self, name: str, state: _Jail, chunk: bytes) -> None:
        state.inbox.extend(chunk)
        while len(state.inbox) >= framing.HEADER:
            size = int.from_bytes(state.inbox[: framing.HEADER], "big")
            if size < 1 or size > self.max_frame + 1:
                raise Oversize(name, size)
            if len(state.inbox) < framing.HEADER + size:
                if state.partial is None or state.partial[0] != size:
                    state.partial = (size, time.monotonic())
                return
            kind = bytes(state.inbox[framing.HEADER: framing.HEADER + 1])
            body = bytes(memoryview(state.inbox)[framing.HEADER + 1: framing.HEADER + size])
            if size > _BIG_FRAME:  # a fresh buffer for what follows frees the large one now
                state.inbox = bytearray(memoryview(state.inbox)[framing.HEADER + size:])
            else:
                del state.inbox[: framing.HEADER + size]
            state.partial = None
            state.frames.append((kind, body, time.monotonic()))
            state.queued += len(body)
            if state.queued >= self.max_frame and not state.paused:
                # the program answers ahead (inputs are pipelined): hold at most one answer
                # limit of them, so a worker never holds more than a few
                self.selector.unregister(state.spawned.from_jail)
                state.paused = True

    # --- after the run ------------------------------------------------------------------------

    def returncode(self, name: str, wait_s: float = 1.0) -> int | None:
        """The jail's exit status once its process has ended (None: still running)."""
        proc = self.jails[name].spawned.proc
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)
        self._drain(name)
        return proc.returncode

    def _drain(self, name: str) -> None:
        """Read what is left of a finished jail's stdout/stderr."""
        with contextlib.suppress(Overdue):
            self._pump(lambda: False, time.monotonic() + 0.05)

    def stderr_tail(self, name: str, chars: int = 4000) -> str:
        return self.jails[name].stderr.text()[-chars:] if name in self.jails else ""

    def out_of_memory(self, name: str) -> bool:
        group = self.jails[name].spawned.cgroup
        return group is not None and group.out_of_memory()

    def discard(self, name: str) -> None:
        """Kill one process of the session now (a checker that overran its time)."""
        state = self.jails.pop(name)
        for fd in (state.spawned.to_jail, state.spawned.from_jail,
                   state.spawned.proc.stdout.fileno(), state.spawned.proc.stderr.fileno()):
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
        reaper.kill(state.spawned)
        self._close_files(state)

    def terminate(self) -> None:
        """SIGKILL every jail now (safe from another thread; close() cleans up)."""
        import signal

        for state in list(self.jails.values()):
            state.spawned.proc.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(state.spawned.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        with _live_lock:
            _live.discard(self)
        for state in self.jails.values():
            reaper.kill(state.spawned)
            self._close_files(state)
        self.selector.close()

    @staticmethod
    def _close_files(state: _Jail) -> None:
        if state.contention is not None:
            state.contention.close()
        reaper.release(state.spawned)
