"""Hashing what an untrusted sender chose: set elements and mapping keys of a decoded value are
hashed only after this module has counted what that costs and how many share one hash value
(hash flooding makes building a set quadratic). See :mod:`.wire`.

Standard library only: this module also runs inside the jail (see ``bootstrap``).
"""

from __future__ import annotations

from collections import Counter

from faulttune.sandbox.framing import WireError

TYPE_CHECKING = False  # typing costs the jail's start-up more than all the rest
if TYPE_CHECKING:
    from typing import Any

MAX_SAME_HASH = 8  # set elements or mapping keys of one hash value (legitimately: -1 and -2)


def refuse_flooding(keys: list[Any]) -> None:
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
    refuse_flooding(keys)
    return set(keys)


def hash_cost(keys: list[Any]) -> int:
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
