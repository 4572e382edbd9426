# Issue 27, class 1: answers with a frozenset of COUNT ints that all hash alike, written as the
# wire format's own builder call (FORM 0) or as pickle's FROZENSET opcode (FORM 1), so that the
# process that decodes it would spend quadratic time building the set. The program never builds
# the set itself (that would be quadratic here): it replaces the server's encoder for its answer.
import sys

COUNT = 0  # replaced by the test
FORM = 0  # replaced by the test
P = 2**61 - 1  # k * P hashes like 0 for every k


def _text(s):
    return b"\x8c" + bytes([len(s)]) + s.encode()


def _long(n):
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def flood_bytes():
    items = b"".join(_long(k * P) for k in range(1, COUNT + 1))
    if FORM == 0:
        builder = _text("faulttune.sandbox.wire") + _text("_frozenset") + b"\x93"
        return b"\x80\x05" + builder + b"](" + items + b"e\x85R."
    return b"\x80\x05(" + items + b"\x91."


_wire = sys.modules["faulttune.sandbox.wire"]
_encode = _wire.dumps
_wire.dumps = lambda value: flood_bytes() if value == "FLOOD" else _encode(value)


def solve(*args):
    return "FLOOD"
