"""The opcode scan of pickle bytes from an untrusted sender (see :mod:`.wire`).

Every opcode is checked against those that plain values need; pickle's own set and dict opcodes
are found (the only ones whose cost is not linear: hashing untrusted keys), and everything else
is refused. Linear in the size of the data, at C speed for large values (a regular expression
over runs of fixed-size opcodes).

Standard library only: this module also runs inside the jail (see ``bootstrap``).
"""

from __future__ import annotations

from faulttune.sandbox.framing import WireError

TYPE_CHECKING = False  # typing costs the jail's start-up more than all the rest
if TYPE_CHECKING:
    from typing import Any

LARGE_SCAN = 1 << 18  # bytes: from here the scan uses a regular expression (C speed)

# opcode -> length of its fixed argument; -1: a length-prefixed argument; -3: builds a set or dict
_OPCODES = {"N": 0, "\x88": 0, "\x89": 0, "]": 0, "a": 0, "e": 0, "(": 0, ")": 0, "t": 0,
            "\x85": 0, "\x86": 0, "\x87": 0, "\x94": 0, "\x93": 0, "R": 0, "0": 0, "1": 0,
            "K": 1, "h": 1, "q": 1, "\x80": 1, "M": 2, "J": 4, "j": 4, "r": 4, "G": 8, "\x95": 8}
_SIZE_WIDTH = {0x8C: 1, 0x43: 1, 0x8A: 1, 0x58: 4, 0x42: 4, 0x8B: 4, 0x8D: 8, 0x8E: 8}
_SET_OR_DICT = b"}dsu\x8f\x90\x91"
# one C search (memchr) per opcode byte: iterating the bytes in a frozenset test costs ~10 ns each
_SET_OR_DICT_NEEDLES = tuple(bytes((op,)) for op in _SET_OR_DICT)
_STOP = 0x2E
_ARGUMENT = [-2] * 256
for _op, _width in _OPCODES.items():
    _ARGUMENT[ord(_op)] = _width
for _op in _SIZE_WIDTH:
    _ARGUMENT[_op] = -1
for _op in _SET_OR_DICT:
    _ARGUMENT[_op] = -3
_run_of_fixed: Any = None  # compiled on first use: re costs the jail's start-up


def _opcode_refused(data: bytes, i: int) -> WireError:
    if i >= len(data):
        return WireError("malformed value (it does not end)")
    return WireError(f"the value holds pickle opcode {data[i:i + 1]!r}, which this format never "
                     "uses")


def _skip_sized(data: bytes, i: int) -> int:
    width = _SIZE_WIDTH[data[i]]
    return i + 1 + width + int.from_bytes(data[i + 1: i + 1 + width], "little")


def scan(data: bytes) -> bool:
    """Check every opcode of ``data``; True when it builds sets or dicts with pickle's own
    opcodes (which :func:`dumps` never writes). Linear in ``len(data)``."""
    if len(data) >= LARGE_SCAN:
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
    """:func:`scan` with runs of fixed-size opcodes matched by one regular expression."""
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


def may_build_hashed(data: bytes) -> bool:
    """Whether a byte of a set or dict opcode occurs in ``data`` at all (when none does, there
    is nothing to scan for)."""
    return any(needle in data for needle in _SET_OR_DICT_NEEDLES)
