"""The restricted data format that crosses the sandbox boundary, and its frames.

A value that crosses is built only of exact ``None``, ``bool``, ``int``, ``float``, ``complex``,
``str``, ``bytes`` and ``list`` / ``tuple`` / ``dict`` / ``set`` / ``frozenset`` of them. A
subclass (a ``float`` whose ``__eq__`` always says yes) or any other object cannot cross: the
sender refuses it with :class:`Uncarriable`, which names its type.

Encoding is pickle protocol 5 written by a pickler whose ``reducer_override`` refuses every object
that the C pickler does not handle natively as an exact builtin, so plain values cost no Python
code per node. Decoding (:func:`loads`) trusts nothing about the bytes: the unpickler resolves no
global but ``complex``, ``Counter`` and ``OrderedDict``, and a walk re-checks the type of every
node, the depth and the size, so a hostile sender that writes its own bytes still only produces a
plain value or a :class:`WireError`.

Frames on a pipe: 4-byte big-endian length of what follows, one kind byte, the body.

Standard library only: this module also runs inside the jail (see ``bootstrap``).
"""

from __future__ import annotations

import _thread
import gc
import io
import os
from _pickle import Pickler, Unpickler  # not `pickle`: it imports re and enum (jail start-up)
from collections import Counter, OrderedDict
from itertools import chain

TYPE_CHECKING = False  # typing costs the jail's start-up more than all the rest
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

SCALARS = (type(None), bool, int, float, complex, str, bytes)
CONTAINERS = (list, tuple, set, frozenset, dict)
# Standard mappings that canonical solutions return (MBPP+ Mbpp/88 expects a Counter): exact
# instances cross by value and are rebuilt from plain items by the receiver's own classes.
MAPPINGS = (Counter, OrderedDict)
MAX_DEPTH = 200  # containers nested deeper than this do not cross
HEADER = 4
_SMALL = 1 << 16  # bytes: below this, decoding cannot trigger a costly cyclic GC
_SCALAR_SET = frozenset(SCALARS)
_CONTAINER_SET = frozenset(CONTAINERS + MAPPINGS)
_DICTS = frozenset((dict, *MAPPINGS))
_ALLOWED = _SCALAR_SET | _CONTAINER_SET
# bound now: the program shares the jail's process and may replace os.write & co. later
_read, _write, _BytesIO = os.read, os.write, io.BytesIO
_GLOBALS = {("builtins", "complex"): complex, ("collections", "Counter"): Counter,
            ("collections", "OrderedDict"): OrderedDict}


class WireError(ValueError):
    """Bytes that are not a well-formed frame or value of the restricted format."""


class Uncarriable(TypeError):
    """A value the restricted format cannot carry; ``what`` names its type."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def describe_type(obj: Any) -> str:
    """'a Lying (a subclass of float)', 'a generator', 'a Counter (a subclass of dict)'."""
    kind = type(obj)
    name = getattr(kind, "__qualname__", None) or getattr(kind, "__name__", "object")
    article = "an" if name[:1].lower() in "aeiou" else "a"
    for base in (*SCALARS, *CONTAINERS):
        if base is not type(None) and isinstance(obj, base) and kind is not base:
            return f"{article} {name} (a subclass of {base.__name__})"
    return f"{article} {name}"


class _Guarded(Pickler):
    """Refuses everything but exact builtins (the C pickler skips this hook for those)."""

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        # `is`, never `in` or `==`: the object may bring its own __eq__
        if kind is complex or obj is complex or obj is Counter or obj is OrderedDict:
            return NotImplemented
        if kind is Counter:
            return Counter, (dict(obj),)
        if kind is OrderedDict:
            return OrderedDict, (list(obj.items()),)
        raise Uncarriable(describe_type(obj))


def dumps(value: Any) -> bytes:
    """Encode ``value``; :class:`Uncarriable` when any part of it is not a plain builtin."""
    buffer = _BytesIO()
    try:
        _Guarded(buffer, protocol=5).dump(value)
    except RecursionError:
        raise Uncarriable("a value nested too deeply") from None
    return buffer.getvalue()


class _Restricted(Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        raise WireError(f"the value names {module}.{name}, which is not allowed")


_gc_pauses = 0
_gc_lock = _thread.allocate_lock()


def _pause_gc(step: int) -> None:
    """Count decoders at work; no cyclic GC while any is (a value being built cannot form
    garbage cycles yet, and collections triggered by millions of new tuples cost more than
    decoding them)."""
    global _gc_pauses
    with _gc_lock:
        _gc_pauses += step
        if _gc_pauses == step == 1:
            gc.disable()
        elif _gc_pauses == 0:
            gc.enable()


def loads(data: bytes) -> Any:
    """Decode bytes from an untrusted sender into a plain value, or raise :class:`WireError`.

    The value may have at most 2 parts per byte of ``data`` (plus a little): sharing (one list
    referenced many times) cannot turn a small message into a huge tree to walk or compare.
    """
    if len(data) < _SMALL:  # GC cannot matter, and pausing it costs a lock
        return _checked(_decode(data), len(data))
    _pause_gc(1)
    try:
        return _checked(_decode(data), len(data))
    finally:
        _pause_gc(-1)


def loads_trusted(data: bytes) -> Any:
    """Decode what the scorer itself encoded (requests to a jail): no walk."""
    return _Restricted(_BytesIO(data)).load()


def _decode(data: bytes) -> Any:
    try:
        return _Restricted(_BytesIO(data)).load()
    except WireError:
        raise
    except Exception as e:  # noqa: BLE001 - any malformed input is the sender's fault
        raise WireError(f"malformed value ({type(e).__name__}: {e})") from None


def _checked(value: Any, size: int) -> Any:
    if type(value) not in _SCALAR_SET:
        check_plain(value, 2 * size + 1000)
    return value


def _dict_parts(level: list[Any]) -> Iterator[Any]:
    for node in level:
        if type(node) in _DICTS:
            if type(node) is not dict and vars(node):
                raise WireError(f"the value holds {describe_type(node)} with attributes")
            yield from node.keys()
            yield from node.values()
        else:
            yield from node


def _children(level: list[Any]) -> Iterator[Any]:
    """Every element of the containers in ``level`` (keys and values of mappings)."""
    if _DICTS.isdisjoint(map(type, level)):
        return chain.from_iterable(level)
    return _dict_parts(level)


def check_plain(value: Any, max_nodes: int = 50_000_000) -> None:
    """Raise :class:`WireError` unless ``value`` is a finite tree of exact plain builtins.

    Walks level by level so that the common shapes (a list of tuples of str, a list of ints)
    are checked by C loops (``map(type, ...)``, ``chain``) rather than one Python step per node.
    """
    if type(value) not in _ALLOWED:
        raise WireError(f"the value is {describe_type(value)}")
    level = [value] if type(value) in _CONTAINER_SET else []
    count = 1
    for _ in range(MAX_DEPTH + 1):
        if not level:
            return
        count += sum(map(len, level))
        if count > max_nodes:
            raise WireError(f"the value has more than {max_nodes} parts")
        kinds = set(map(type, _children(level)))
        if not kinds <= _ALLOWED:
            odd = next(n for n in _children(level) if type(n) not in _ALLOWED)
            raise WireError(f"the value holds {describe_type(odd)}")
        inner = kinds & _CONTAINER_SET
        level = [n for n in _children(level) if type(n) in inner] if inner else []
    raise WireError(f"the value is nested deeper than {MAX_DEPTH} levels")


# --- frames ---------------------------------------------------------------------------------


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
