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
    (pickle.dumps(Lying(1.0)), "which is not allowed"),
    (pickle.dumps(bytearray(b"x"), protocol=5), "the value is a bytearray"),
    (pickle.dumps(self_containing()), "nested deeper than"),
    (pickle.dumps(nested(wire.MAX_DEPTH + 5)), "nested deeper than"),
    (pickle.dumps(shared(64)), "the value has more than"),
    (b"\x80\x05\x95garbage", "malformed value"),
    (pickle.dumps([1, 2, 3])[:-4], "malformed value"),
])
def test_hostile_bytes_give_a_wire_error(data, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.loads(data)


class CounterWithState:
    """Pickles as Counter({"a": 1}) followed by BUILD, which sets instance attributes."""

    def __reduce__(self):
        return Counter, ({"a": 1},), {"most_common": "lies"}


def test_a_counter_with_attributes_is_refused():
    with pytest.raises(wire.WireError, match="with attributes"):
        wire.loads(pickle.dumps(CounterWithState()))


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
