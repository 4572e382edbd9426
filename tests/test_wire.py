"""faulttune.sandbox.wire: the restricted data format that crosses the sandbox boundary."""

from __future__ import annotations

import math
import os
import pickle
from collections import Counter, OrderedDict, defaultdict

import pytest

from faulttune.sandbox import wire

PLAIN = [None, True, False, 0, -7, 10**200, 1.5, -0.0, float("inf"), 2 - 3j, "", "x\ud800y",
         b"\x00\xff", [], (), {}, set(), frozenset(), [1, (2, "3"), {4: [5.0]}, {6}, frozenset({7})],
         {(1, 2): {"a": [None]}}, Counter("abca"), OrderedDict([("b", 1), ("a", 2)]),
         [[0] * 3] * 3]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_cross_with_their_exact_types(value):
    back = wire.loads(wire.dumps(value))
    assert back == value and type(back) is type(value)
    if isinstance(value, (list, tuple)) and value:
        assert [type(x) for x in back] == [type(x) for x in value]


def test_nan_crosses_as_nan():
    assert math.isnan(wire.loads(wire.dumps(float("nan"))))


class Lying(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


class Box:
    pass


@pytest.mark.parametrize("value, what", [
    (Lying(1.0), "a Lying (a subclass of float)"),
    ([1, {"k": Lying(2.0)}], "a Lying (a subclass of float)"),
    (Box(), "a Box"),
    (defaultdict(int), "a defaultdict (a subclass of dict)"),
    (type("C", (Counter,), {})(), "a C (a subclass of dict)"),
    ((x for x in ()), "a generator"),
    (len, "a builtin_function_or_method"),
    (bytearray(b"x"), "a bytearray"),
    ([{1: 2}, bytearray(b"x")], "a bytearray"),
    (os, "a module"),
])
def test_anything_else_is_refused_by_name(value, what):
    with pytest.raises(wire.Uncarriable) as refused:
        wire.dumps(value)
    assert refused.value.what == what


def test_refusing_uses_no_method_of_the_value():
    class Trap(float):
        def __eq__(self, other):
            raise AssertionError("compared")

        __hash__ = float.__hash__

        def __reduce_ex__(self, protocol):
            raise AssertionError("reduced")

    with pytest.raises(wire.Uncarriable, match="Trap"):
        wire.dumps([Trap(1.0)])


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def shared(levels: int) -> tuple:
    value: tuple = ()
    for _ in range(levels):
        value = (value, value)
    return value


def self_containing() -> list:
    value: list = []
    value.append(value)
    return value


@pytest.mark.parametrize("data, reason", [
    (pickle.dumps(os.system), "the value names posix.system, which is not allowed"),
    (pickle.dumps(Lying(1.0)), r"opcode b'\\x81', which this format never uses|not allowed"),
    (pickle.dumps(bytearray(b"x"), protocol=5), "the value is a bytearray"),
    (pickle.dumps({1: 2}), "builds sets or dicts with pickle's own opcodes"),
    (pickle.dumps(frozenset({1})), "builds sets or dicts with pickle's own opcodes"),
    (pickle.dumps(Counter("ab")), "builds sets or dicts"),
    (pickle.dumps(self_containing()), "nested deeper than"),
    (pickle.dumps(nested(wire.MAX_DEPTH + 5)), "nested deeper than"),
    (pickle.dumps(shared(64)), "the value has more than"),
    (b"\x80\x05\x95garbage", "malformed value"),
    (pickle.dumps([1, 2, 3])[:-4], "malformed value"),
])
def test_hostile_bytes_give_a_wire_error(data, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.loads(data)


class Items:
    """Pickles as one of wire's builders applied to ``items``, as a hostile sender may write it
    (without building the set here: building it would be the quadratic part)."""

    def __init__(self, builder, items):
        self.builder, self.items = builder, items

    def __reduce__(self):
        return self.builder, (self.items,)


P = 2**61 - 1  # ints that differ by a multiple of P hash alike


@pytest.mark.parametrize("value, reason", [
    (Items(wire._frozenset, [k * P for k in range(1, 2000)]), ("1999 set elements or mapping keys "
                                                              "share one hash value")),
    (Items(wire._set, [complex(1000003 * k, -k) for k in range(2, 500)]), "share one hash value"),
    (Items(wire._dict, [((k * P,), None) for k in range(1, 100)]), "share one hash value"),
    (Items(wire._set, [shared(40)]), "the value has more than"),
    (Items(wire._set, [[1, 2]]), "unhashable"),
    (Items(wire._dict, [1, 2]), r"must be \(key, value\) pairs"),
    (Items(wire._counter, "ab"), "needs a list of items"),
])
def test_sets_and_mappings_are_checked_before_they_are_built(value, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.loads(pickle.dumps(value, protocol=5))


def shared_long_int_set(copies: int) -> bytes:
    """A set holding one tuple of ``copies`` references to one 10**3000 (memoised once: the
    pickler never shares ints, a hostile sender can): hashing it costs copies x its length."""
    def text(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()

    big = (10**3000).to_bytes(1300, "little", signed=True)
    return (b"\x80\x05" + text("faulttune.sandbox.wire") + text("_set") + b"\x93]("
            + b"\x8b" + len(big).to_bytes(4, "little") + big + b"\x94" + b"h\x00" * copies
            + b"ta\x85R.")


def test_hashing_shared_long_ints_has_a_budget():
    assert wire.loads(shared_long_int_set(3)) == {(10**3000,) * 4}
    with pytest.raises(wire.WireError, match="cost more to hash than its size allows"):
        wire.loads(shared_long_int_set(10_000))


def test_a_few_equal_hashes_are_legitimate():
    value = {-1, -2, P, 1, 2 * P + 2, 2}  # -1 and -2 hash alike, so do 1, P + 1 ...
    assert wire.loads(wire.dumps(value)) == value
    nested_value = {frozenset({(1, 2), (3, 4)}): [{"a": Counter("xyz")}], (5, (6,)): set()}
    back = wire.loads(wire.dumps([nested_value, nested_value]))
    assert back == [nested_value, nested_value] and back[0] is back[1]
    assert type(back[0][(5, (6,))]) is set


def test_large_values_decode_through_the_fast_scan():
    value = [list(range(50_000)), [(i, str(i)) for i in range(20_000)], {i: i for i in range(30_000)},
             b"x" * 300_000, 10**5000]
    assert len(wire.dumps(value)) > 2**18
    assert wire.loads(wire.dumps(value)) == value
    with pytest.raises(wire.WireError, match="share one hash value"):
        wire.loads(pickle.dumps([b"x" * 300_000, Items(wire._set, [k * P for k in range(1, 50)])],
                                protocol=5))


def test_frames_cross_a_pipe():
    read, write = os.pipe()
    try:
        wire.write_frame(write, b"R", b"body")
        wire.write_frame(write, b"H")
        assert wire.read_frame(read) == (b"R", b"body")
        assert wire.read_frame(read) == (b"H", b"")
        os.close(write)
        with pytest.raises(EOFError):
            wire.read_frame(read)
    finally:
        os.close(read)
