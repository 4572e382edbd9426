"""EvalPlus 0.3.1's comparison of a program's output with the expected one, in the scorer's process.

The outputs arrive as plain values (``wire``), so ``==`` here is the builtin one: a program cannot
bring its own ``__eq__``, patch ``numpy.isclose`` or replace the special oracles, which run on the
scorer's own imports.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


@functools.cache
def _oracles() -> Any:
    """EvalPlus's special oracles (imported once, on first use: importing evalplus is slow)."""
    from evalplus.eval import _special_oracle

    return _special_oracle


def is_floats(x: Any) -> bool:
    """EvalPlus's rule: a float, or a non-empty list/tuple of floats."""
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def _allclose(out: Any, exp: Any, atol: float) -> bool:
    import numpy

    return bool(numpy.allclose(out, exp, rtol=1e-07, atol=atol))


@dataclass(frozen=True)
class OutputCheck:
    """How one task's outputs are compared: its EvalPlus dataset, entry point and ``atol``."""

    dataset: str  # "humaneval" or "mbpp"
    entry_point: str
    atol: float

    @property
    def projection(self) -> str | None:
        """"presence" where EvalPlus only checks that the answer is not None (its answers, regex
        match objects, could not cross; the program's server sends ``server.presence`` of them)."""
        if self.dataset == "mbpp" and self.entry_point in _oracles().MBPP_OUTPUT_NOT_NONE_TASKS:
            return "presence"
        return None

    def agrees(self, inp: Any, out: Any, exp: Any, atol: float) -> tuple[bool, float]:
        """EvalPlus's verdict on one output; returns (agrees, atol for the next input).

        Order matters: EvalPlus evaluates ``out == exp`` first, applies the task's special
        oracle, then raises ``atol`` to 1e-6 for float outputs *for the rest of the stage*, and
        compares with ``np.allclose(rtol=1e-7)`` after checking type and length. Any exception
        means "disagree".
        """
        try:
            return self._agrees(inp, out, exp, atol)
        except Exception:  # noqa: BLE001 - EvalPlus counts a failing comparison as a fail
            return False, atol

    def _agrees(self, inp: Any, out: Any, exp: Any, atol: float) -> tuple[bool, float]:
        exact = out == exp
        if self.dataset == "mbpp":
            exact = self._mbpp_oracle(inp, out, exp, atol, bool(exact))
        if self.dataset == "humaneval" and self.entry_point == "find_zero":
            return abs(_oracles()._poly(*inp, out)) <= atol, atol
        if atol == 0 and is_floats(exp):
            atol = 1e-6
        if not exact and atol != 0:
            if type(out) is not type(exp):
                return False, atol
            if isinstance(exp, (list, tuple)) and len(out) != len(exp):
                return False, atol
            return _allclose(out, exp, atol), atol
        return bool(exact), atol

    def _mbpp_oracle(self, inp: Any, out: Any, exp: Any, atol: float, exact: bool) -> bool:
        oracle = _oracles()
        entry = self.entry_point
        if entry == "are_equivalent":
            return True
        if entry == "sum_div":
            return exact or out == 0
        if entry == "surface_Area":
            return exact or abs(out - oracle._surface_Area(*inp)) <= atol
        if entry == "digit_distance_nums":
            return exact or out == oracle._digit_distance_nums(*inp)
        if entry in oracle.MBPP_OUTPUT_SET_EQ_TASKS:
            return set(out) == set(exp)
        if entry in oracle.MBPP_OUTPUT_NOT_NONE_TASKS:  # `out` is server.presence(answer)
            kind, value = out
            return value == exp if kind == "bool" else exp == (not value)
        return exact
