"""Decoding a hash-flooding answer: the wire decoder vs pickle's own, at two sizes.

An answer that is a frozenset of N ints that all hash alike (k * (2**61 - 1)) costs pickle's C
unpickler time quadratic in N to build (every insertion probes every earlier element). The same
bytes through :func:`faulttune.sandbox.wire.loads` are refused after linear work (the opcode scan
refuses pickle's FROZENSET opcode; written as the format's own builder call, the hash count
refuses it before any set is built), and an honest set of N distinct ints decodes in linear time.
Each line: seconds at N and at 2N, and their ratio (2 means linear, 4 quadratic).

    python bench/hash_flood_decode.py [--count 50000] [--pickle-count 10000]

(both sizes of the wire lines are above 256 KiB, where the opcode scan switches to its regular
expression; ``--pickle-count 0`` skips pickle's own decoder, which takes seconds)
"""

from __future__ import annotations

import argparse
import pickle
import time

from faulttune.sandbox import wire

P = 2**61 - 1


def _long(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _text(s: str) -> bytes:
    return b"\x8c" + bytes([len(s)]) + s.encode()


def flood(count: int, form: str) -> bytes:
    """The answer's bytes: pickle's FROZENSET opcode, or the format's builder call."""
    items = b"".join(_long(k * P) for k in range(1, count + 1))
    if form == "opcode":
        return b"\x80\x05(" + items + b"\x91."
    builder = _text("faulttune.sandbox.wire") + _text("_frozenset") + b"\x93"
    return b"\x80\x05" + builder + b"](" + items + b"e\x85R."


def seconds(decode, data: bytes, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        try:
            decode(data)
        except wire.WireError:
            pass
        best = min(best, time.perf_counter() - start)
    return best


def line(label: str, decode, make, count: int) -> None:
    small, large = seconds(decode, make(count)), seconds(decode, make(2 * count))
    print(f"{label:58s} N={count}: {small * 1000:9.2f} ms  2N: {large * 1000:9.2f} ms  "
          f"ratio {large / small:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--pickle-count", type=int, default=10_000,
                        help="N for pickle.loads on the opcode form (quadratic: slow; 0 skips)")
    args = parser.parse_args()
    n = args.count
    line("wire.loads, flood as FROZENSET opcode (refused)", wire.loads,
         lambda c: flood(c, "opcode"), n)
    line("wire.loads, flood as builder call (refused)", wire.loads,
         lambda c: flood(c, "builder"), n)
    line("wire.loads, honest frozenset of distinct ints", wire.loads,
         lambda c: wire.dumps(frozenset(range(c * 1000, c * 1000 + c))), n)
    if args.pickle_count:
        line("pickle.loads, flood as FROZENSET opcode (what the scorer did)", pickle.loads,
             lambda c: flood(c, "opcode"), args.pickle_count)


if __name__ == "__main__":
    main()
