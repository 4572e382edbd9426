"""The restricted data format that crosses the sandbox boundary, and its frames.

A value that crosses is built only of exact ``None``, ``bool``, ``int``, ``float``, ``complex``,
``str``, ``bytes`` and ``list`` / ``tuple`` / ``dict`` / ``set`` / ``frozenset`` of them (and
exact ``Counter`` / ``OrderedDict``). A subclass (a ``float`` whose ``__eq__`` always says yes) or
any other object cannot cross: the sender refuses it with :class:`Uncarriable`, which names its
type.

Encoding is pickle protocol 5 written by a pickler whose ``reducer_override`` refuses every object
that the C pickler does not handle natively as an exact builtin, so plain values cost no Python
code per node. Sets, frozensets and mappings never travel as pickle's own set and dict opcodes:
they go as lists of items (pairs) handed to this module's builders, so that the receiver hashes
nothing it has not checked.

Decoding (:func:`loads`) trusts nothing about the bytes, and its time and memory grow linearly
with their size whatever they hold:

* a scan of the opcodes (C speed for large values) refuses every opcode but those of plain values:
  no set or dict opcode, no object building, no global but ``complex`` and the builders;
* the C unpickler builds the value, with placeholders for sets and mappings;
* a walk re-checks the type of every node, the depth and the size (at most 2 parts per byte, so
  sharing cannot turn a small message into a huge tree);
* only then are the sets and mappings built, bottom-up, each after its elements' hashes are
  counted: elements that share one hash value beyond a handful (hash flooding, which makes
  building a set quadratic) are refused, and the hashing itself has a budget of the value's size.

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
MAX_SAME_HASH = 8  # set elements or mapping keys of one hash value (legitimately: -1 and -2)
HEADER = 4
_SMALL = 1 << 16  # bytes: below this, decoding cannot trigger a costly cyclic GC
_LARGE_SCAN = 1 << 18  # bytes: from here the opcode scan uses a regular expression (C speed)
_SCALAR_SET = frozenset(SCALARS)
_SEQUENCES = frozenset((list, tuple))
_HASHED = frozenset((set, frozenset, dict, *MAPPINGS))
# bound now: the program shares the jail's process and may replace os.write & co. later
_read, _write, _BytesIO = os.read, os.write, io.BytesIO


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


# --- sets and mappings travel as items ----------------------------------------------------------


def _set(items: list[Any]) -> set[Any]:
    return set(items)


def _frozenset(items: list[Any]) -> frozenset[Any]:
    return frozenset(items)


def _dict(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    return dict(pairs)


def _counter(pairs: list[tuple[Any, Any]]) -> Counter[Any]:
    return Counter(dict(pairs))


def _ordered(pairs: list[tuple[Any, Any]]) -> OrderedDict[Any, Any]:
    return OrderedDict(pairs)


_BUILDERS = {set: _set, frozenset: _frozenset, dict: _dict, Counter: _counter,
             OrderedDict: _ordered}
_BUILDER_NAMES = {f.__name__: f for f in _BUILDERS.values()}
_PAIRS = frozenset((_dict, _counter, _ordered))


class _Box:
    """A set or mapping on its way out: its kind and its items (pairs for a mapping)."""

    __slots__ = ("builder", "items")

    def __init__(self, builder: Any, items: list[Any]):
        self.builder, self.items = builder, items


class _Guarded(Pickler):
    """Refuses everything but exact builtins (the C pickler skips this hook for those)."""

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is _Box:
            return obj.builder, (obj.items,)
        if kind is Counter or kind is OrderedDict:
            return _BUILDERS[kind], (list(obj.items()),)
        # `is`, never `in` or `==`: the object may bring its own __eq__
        if kind is complex or obj is complex or any(obj is f for f in _BUILDERS.values()):
            return NotImplemented
        raise Uncarriable(describe_type(obj))


def _boxed(value: Any, memo: dict[int, Any], depth: int = 0) -> Any:
    """``value`` with every exact set and mapping replaced by a :class:`_Box` (sharing kept)."""
    kind = type(value)
    if kind in _SCALAR_SET:
        return value
    known = memo.get(id(value))
    if known is not None:
        return known
    if depth > MAX_DEPTH:
        raise Uncarriable("a value nested too deeply")
    if kind is list:
        out: Any = []
        memo[id(value)] = out
        out.extend(_boxed(x, memo, depth + 1) for x in value)
    elif kind is tuple:
        out = tuple(_boxed(x, memo, depth + 1) for x in value)
    elif kind in (set, frozenset):
        out = _Box(_BUILDERS[kind], [_boxed(x, memo, depth + 1) for x in value])
    elif kind in _BUILDERS:
        out = _Box(_BUILDERS[kind], [(_boxed(k, memo, depth + 1), _boxed(v, memo, depth + 1))
                                     for k, v in value.items()])
    else:
        return value  # the pickler refuses it, by name
    memo[id(value)] = out
    return out


def dumps(value: Any) -> bytes:
    """Encode ``value``; :class:`Uncarriable` when any part of it is not a plain builtin."""
    data = _pickled(value)
    # every set or mapping the C pickler writes starts with one of these opcodes (and a bytearray,
    # which it also writes natively, with the last): when none of the bytes is there (most large
    # values), nothing needs to be looked at; else the opcode scan says whether one is an opcode,
    # and then the value goes again with its sets and mappings as item lists
    if b"}" in data or b"\x8f" in data or b"\x91" in data or b"\x96" in data:
        try:
            hashing = _scan(data)
        except WireError:
            raise Uncarriable("a bytearray") from None
        if hashing:
            data = _pickled(_boxed(value, {}))
    return data


def dumps_trusted(value: Any) -> bytes:
    """Encode what the scorer sends a jail or its checker (decoded there by
    :func:`loads_trusted`): sets and mappings go as pickle writes them, unchecked."""
    return _pickled(value)


def _pickled(value: Any) -> bytes:
    buffer = _BytesIO()
    try:
        _Guarded(buffer, protocol=5).dump(value)
    except RecursionError:
        raise Uncarriable("a value nested too deeply") from None
    return buffer.getvalue()


# --- decoding -----------------------------------------------------------------------------------


class _Pending:
    """A set or mapping not built yet: its builder and its (unchecked) items."""

    __slots__ = ("builder", "items")

    def __init__(self, builder: Any, items: Any):
        self.builder, self.items = builder, items


def _pending(builder: Any) -> Any:
    def make(items: Any) -> _Pending:
        if type(items) is not list:
            raise WireError(f"{builder.__name__} needs a list of items")
        return _Pending(builder, items)

    return make


_GLOBALS = {("builtins", "complex"): complex}
_CHECKED = {**_GLOBALS, **{(__name__, n): _pending(f) for n, f in _BUILDER_NAMES.items()}}
_TRUSTED = {**_GLOBALS, **{(__name__, n): f for n, f in _BUILDER_NAMES.items()}}


class _Restricted(Unpickler):
    allowed = _CHECKED

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise WireError(f"the value names {module}.{name}, which is not allowed")
        return found


class _Trusted(_Restricted):
    allowed = _TRUSTED


# opcode -> length of its fixed argument; -1: a length-prefixed argument; -3: builds a set or dict
_OPCODES = {"N": 0, "\x88": 0, "\x89": 0, "]": 0, "a": 0, "e": 0, "(": 0, ")": 0, "t": 0,
            "\x85": 0, "\x86": 0, "\x87": 0, "\x94": 0, "\x93": 0, "R": 0, "0": 0, "1": 0,
            "K": 1, "h": 1, "q": 1, "\x80": 1, "M": 2, "J": 4, "j": 4, "r": 4, "G": 8, "\x95": 8}
_SIZE_WIDTH = {0x8C: 1, 0x43: 1, 0x8A: 1, 0x58: 4, 0x42: 4, 0x8B: 4, 0x8D: 8, 0x8E: 8}
_SET_OR_DICT = b"}dsu\x8f\x90\x91"
_SET_OR_DICT_BYTES = frozenset(_SET_OR_DICT)
_STOP = 0x2E
_ARGUMENT = [-2] * 256
for _op, _width in _OPCODES.items():
    _ARGUMENT[ord(_op)] = _width
for _op in _SIZE_WIDTH:
    _ARGUMENT[_op] = -1
for _op in _SET_OR_DICT:
    _ARGUMENT[_op] = -3
_run_of_fixed: Any = None


def _opcode_refused(data: bytes, i: int) -> WireError:
    if i >= len(data):
        return WireError("malformed value (it does not end)")
    return WireError(f"the value holds pickle opcode {data[i:i + 1]!r}, which this format never "
                     "uses")


def _skip_sized(data: bytes, i: int) -> int:
    width = _SIZE_WIDTH[data[i]]
    return i + 1 + width + int.from_bytes(data[i + 1: i + 1 + width], "little")


def _scan(data: bytes) -> bool:
    """Check every opcode of ``data``; True when it builds sets or dicts with pickle's own
    opcodes (which :func:`dumps` never writes). Linear in ``len(data)``."""
    if len(data) >= _LARGE_SCAN:
        return _scan_large(data)
    argument, sizes, end, hashing, i = _ARGUMENT, _SIZE_WIDTH, len(data) - 1, False, 0
    while i < end:
        width = argument[data[i]]
        if width >= 0:
            i += 1 + width
        elif width == -1:
            width = sizes[data[i]]
            i += 1 + width + int.from_bytes(data[i + 1: i + 1 + width], "little")
        elif width == -3:
            hashing, i = True, i + 1
        else:
            raise _opcode_refused(data, i)
    if i != end or data[end] != _STOP:
        raise _opcode_refused(data, i)
    return hashing


def _scan_large(data: bytes) -> bool:
    """:func:`_scan` with runs of fixed-size opcodes matched by one regular expression."""
    global _run_of_fixed
    if _run_of_fixed is None:
        import re

        by_width: dict[int, list[str]] = {}
        for op, width in _OPCODES.items():
            by_width.setdefault(width, []).append(re.escape(op))
        # possessive runs of one width at a time: ~100-250 MB/s (memo references first: the
        # commonest opcode of large values)
        runs = [f"(?:[{''.join(ops)}]{'.' * width})++" for width, ops in
                sorted(by_width.items(), key=lambda item: (item[0] != 1, item[0]))]
        _run_of_fixed = re.compile(("(?:" + "|".join(runs) + ")*+").encode("latin-1"), re.DOTALL)
    match, end, hashing, i = _run_of_fixed.match, len(data) - 1, False, 0
    while True:
        i = match(data, i).end()
        if i >= end:
            break
        width = _ARGUMENT[data[i]]
        if width == -1:
            i = _skip_sized(data, i)
        elif width == -3:
            hashing, i = True, i + 1
        else:
            break
    if i != end or data[end] != _STOP:
        raise _opcode_refused(data, i)
    return hashing


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

    Time and memory are linear in ``len(data)``; the value may have at most 2 parts per byte
    (plus a little).
    """
    if len(data) < _SMALL:  # GC cannot matter, and pausing it costs a lock
        return _checked_value(data)
    _pause_gc(1)
    try:
        return _checked_value(data)
    finally:
        _pause_gc(-1)


def loads_trusted(data: bytes) -> Any:
    """Decode what the scorer itself encoded (requests to a jail): no checks."""
    return _Trusted(_BytesIO(data)).load()


def _checked_value(data: bytes) -> Any:
    # only pickle's set and dict opcodes cost more than linear time (everything else is refused
    # by the unpickler or the walk): without any of their bytes, there is nothing to scan for
    if not _SET_OR_DICT_BYTES.isdisjoint(data) and _scan(data):
        raise WireError("the value builds sets or dicts with pickle's own opcodes, which this "
                        "format never uses")
    try:
        value = _Restricted(_BytesIO(data)).load()
    except WireError:
        raise
    except Exception as e:  # noqa: BLE001 - any malformed input is the sender's fault
        raise WireError(f"malformed value ({type(e).__name__}: {e})") from None
    budget = 2 * len(data) + 1000
    if type(value) in _SCALAR_SET:
        return value
    if _walk(value, budget):
        return _Builder(budget).build(value)
    return value


_WALKED = _SCALAR_SET | _SEQUENCES | {_Pending}


def _children(level: list[Any]) -> Iterator[Any]:
    """Every element of the containers in ``level`` (the items of placeholders)."""
    for node in level:
        yield from (node.items if type(node) is _Pending else node)


def _walk(value: Any, max_nodes: int) -> bool:
    """Raise :class:`WireError` unless ``value`` is a finite tree of at most ``max_nodes``
    exact plain builtins and placeholders; True when it holds placeholders.

    Walks level by level so that the common shapes (a list of tuples of str, a list of ints)
    are checked by C loops (``map(type, ...)``, ``chain``) rather than one Python step per node.
    """
    allowed = _WALKED
    if type(value) not in allowed:
        raise WireError(f"the value is {describe_type(value)}")
    level, count, pending = [value], 1, type(value) is _Pending
    for _ in range(MAX_DEPTH + 1):
        if not level:
            return pending
        plain = pending is False or _Pending not in set(map(type, level))
        count += sum(map(len, level)) if plain else sum(len(n.items) if type(n) is _Pending
                                                        else len(n) for n in level)
        if count > max_nodes:
            raise WireError(f"the value has more than {max_nodes} parts")
        children = chain.from_iterable(level) if plain else _children(level)
        kinds = set(map(type, children))
        if not kinds <= allowed:
            odd = next(n for n in _children(level) if type(n) not in allowed)
            raise WireError(f"the value holds {describe_type(odd)}")
        pending = pending or _Pending in kinds
        inner = kinds - _SCALAR_SET
        level = [n for n in _children(level) if type(n) in inner] if inner else []
    raise WireError(f"the value is nested deeper than {MAX_DEPTH} levels")


class _Builder:
    """Builds the placeholders of a checked value bottom-up (sharing kept), counting what
    hashing their elements costs against ``budget``."""

    def __init__(self, budget: int):
        self.budget = budget
        self.memo: dict[int, Any] = {}

    def build(self, node: Any) -> Any:
        kind = type(node)
        if kind in _SCALAR_SET:
            return node
        known = self.memo.get(id(node), self)
        if known is not self:
            return known
        if kind is list:
            self.memo[id(node)] = node
            if not _SCALAR_SET.issuperset(map(type, node)):
                node[:] = [self.build(x) for x in node]
            return node
        if kind is tuple:
            built = node if _SCALAR_SET.issuperset(map(type, node)) else tuple(
                self.build(x) for x in node)
            self.memo[id(node)] = built
            return built
        built = self._collection(node.builder, [self.build(x) for x in node.items])
        self.memo[id(node)] = built
        return built

    def _collection(self, builder: Any, items: list[Any]) -> Any:
        if builder in _PAIRS:
            if not all(type(p) is tuple and len(p) == 2 for p in items):
                raise WireError("a mapping's items must be (key, value) pairs")
            keys = [p[0] for p in items]
        else:
            keys = items
        self._check_hashes(keys)
        return builder(items)

    def _check_hashes(self, keys: list[Any]) -> None:
        self.budget -= _hash_cost(keys)
        if self.budget < 0:
            raise WireError("the value's set elements or mapping keys cost more to hash than "
                            "its size allows")
        _refuse_flooding(keys)


def _refuse_flooding(keys: list[Any]) -> None:
    """:class:`WireError` when ``keys`` are unhashable, or more than :data:`MAX_SAME_HASH` of
    them share one hash value (a set of them would take quadratic time to build)."""
    try:
        hashes = list(map(hash, keys))
    except TypeError as e:
        raise WireError(f"a set element or mapping key is unhashable ({e})") from None
    most = Counter(hashes).most_common(1)
    if most and most[0][1] > MAX_SAME_HASH:
        raise WireError(f"{most[0][1]} set elements or mapping keys share one hash value "
                        "(a value built to make decoding slow)")


def checked_set(items: Any) -> set[Any]:
    """``set(items)`` of a decoded value's elements (a list, say), refusing hash flooding."""
    keys = list(items)
    _refuse_flooding(keys)
    return set(keys)


def _hash_cost(keys: list[Any]) -> int:
    """What hashing ``keys`` costs: one per node of every tuple (tuples do not cache their
    hash, so a shared tuple is paid for each time), more for long integers."""
    cost, todo = 0, [keys]
    while todo:
        items = todo.pop()
        cost += len(items)
        kinds = set(map(type, items))
        if int in kinds:
            cost += sum(x.bit_length() >> 6 for x in items if type(x) is int)
        if tuple in kinds:
            todo.extend(x for x in items if type(x) is tuple)
    return cost


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
