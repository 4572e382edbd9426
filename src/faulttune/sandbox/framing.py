"""Frames on a pipe between the scorer and a jail: 4-byte big-endian length of what follows,
one kind byte, the body.

Standard library only: this module also runs inside the jail (see ``bootstrap``).
"""

from __future__ import annotations

import os

HEADER = 4
# bound now: the program shares the jail's process and may replace os.write & co. later
_read, _write = os.read, os.write


class WireError(ValueError):
    """Bytes that are not a well-formed frame or value of the restricted format."""


def frame(kind: bytes, body: bytes = b"") -> bytes:
    """One frame: length, kind byte, body."""
    return (len(body) + 1).to_bytes(HEADER, "big") + kind + body


def read_exact(fd: int, size: int) -> bytes:
    """``size`` bytes from a blocking fd; :class:`EOFError` when it closes first."""
    chunks = []
    while size:
        chunk = _read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("the channel closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> tuple[bytes, bytes]:
    """(kind, body) of the next frame on a blocking fd (the jail side of a channel)."""
    size = int.from_bytes(read_exact(fd, HEADER), "big")
    if size < 1:
        raise WireError("empty frame")
    data = read_exact(fd, size)
    return data[:1], data[1:]


class FrameReader:
    """Frames from a blocking fd, read in large chunks: the scorer queues many small requests
    at once, and one read then serves them all."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()

    def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            chunk = _read(self.fd, max(size - len(self.buffer), 1 << 16))
            if not chunk:
                raise EOFError("the channel closed")
            self.buffer += chunk

    def next(self) -> tuple[bytes, bytes]:
        self._fill(HEADER)
        size = int.from_bytes(self.buffer[:HEADER], "big")
        if size < 1:
            raise WireError("empty frame")
        self._fill(HEADER + size)
        data = bytes(self.buffer[HEADER: HEADER + size])
        del self.buffer[: HEADER + size]
        return data[:1], data[1:]


def write_frame(fd: int, kind: bytes, body: bytes = b"") -> None:
    """Write one whole frame to a blocking fd."""
    view = memoryview(frame(kind, body))
    while view:
        view = view[_write(fd, view):]
