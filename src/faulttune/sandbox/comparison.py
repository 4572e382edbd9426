"""EvalPlus 0.3.1's comparison of a program's output with the expected one, outside the program.

The outputs arrive as plain values (``wire``), so ``==`` here is the builtin one: a program cannot
bring its own ``__eq__``, patch ``numpy.isclose`` or replace the special oracles. The task-specific
part (:class:`OutputCheck`, which uses EvalPlus's own oracles on the trusted inputs) runs in the
scorer and reduces each input to a :class:`Rule`; :func:`agrees` applies a rule and needs neither
EvalPlus nor the task, so it also runs in the checker process that judges large answers
(``checker``).
"""

from __future__ import annotations

import cmath
import functools
import math
from dataclasses import dataclass
from typing import Any

from faulttune.sandbox.hashing import checked_set


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


_NO_FLOATS = frozenset({int, bool, str, bytes, type(None)})
_CONTAINERS = frozenset({list, tuple, set, frozenset})


def holds_nan(value: Any) -> bool | None:
    """Whether a NaN float (or complex) is anywhere in ``value``, a trusted value; None where it
    holds a type this walk does not know (a NumPy array, an object)."""
    todo, seen = [value], set()
    while todo:
        node = todo.pop()
        kind = type(node)
        if kind is float or kind is complex:
            if cmath.isnan(node):
                return True
        elif kind in _CONTAINERS or kind is dict:
            if id(node) in seen:
                continue
            seen.add(id(node))
            items = list(node.items()) if kind is dict else node
            kinds = set(map(type, items))
            if kinds == {float}:
                if any(map(math.isnan, items)):
                    return True
            elif not kinds <= _NO_FLOATS:
                todo.extend(items)
        elif kind not in _NO_FLOATS:
            return None
    return False


def _allclose(out: Any, exp: Any, atol: float) -> bool:
    import numpy

    return bool(numpy.allclose(out, exp, rtol=1e-07, atol=atol))


def safe_repr(value: Any, limit: int = 160) -> str:
    """A short repr of an answer for a verdict's detail (never an exception)."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 24
    short.maxlevel = 4
    try:
        text = short.repr(value)
    except Exception as e:  # noqa: BLE001 - a huge int, say
        return f"<unrepresentable {type(e).__name__}>"
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def poly(xs: list[float], x: float) -> float:
    """HumanEval/32's polynomial (its prompt's ``poly``), which its oracle evaluates."""
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


@dataclass(frozen=True)
class Rule:
    """How one output is compared. ``mode``: "exact"; HumanEval "find_zero" (``reference``: the
    coefficients); MBPP "equivalent" (always agrees), "sum_div" (exact or 0), "close_to" and
    "equal_to" (exact, or near / equal to ``reference``, the oracle's value), "set_eq" (as
    sets), "presence" (the answer is ``server.presence`` of the program's)."""

    dataset: str  # "humaneval" or "mbpp"
    mode: str = "exact"
    reference: Any = None


def agrees(rule: Rule, out: Any, exp: Any, atol: float) -> tuple[bool, float]:
    """EvalPlus's verdict on one output; returns (agrees, atol for the next input).

    Order matters: EvalPlus evaluates ``out == exp`` first, applies the task's special oracle,
    then raises ``atol`` to 1e-6 for float outputs *for the rest of the stage*, and compares with
    ``np.allclose(rtol=1e-7)`` after checking type and length. Any exception means "disagree".
    """
    try:
        return _agrees(rule, out, exp, atol)
    except Exception:  # noqa: BLE001 - EvalPlus counts a failing comparison as a fail
        return False, atol


def _agrees(rule: Rule, out: Any, exp: Any, atol: float) -> tuple[bool, float]:
    exact = out == exp
    if rule.dataset == "mbpp":
        exact = _mbpp_oracle(rule, out, exp, atol, bool(exact))
    if rule.mode == "find_zero":
        return abs(poly(rule.reference, out)) <= atol, atol
    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        if type(out) is not type(exp):
            return False, atol
        if isinstance(exp, (list, tuple)) and len(out) != len(exp):
            return False, atol
        return _allclose(out, exp, atol), atol
    return bool(exact), atol


def _mbpp_oracle(rule: Rule, out: Any, exp: Any, atol: float, exact: bool) -> bool:
    mode = rule.mode
    if mode == "equivalent":
        return True
    if mode == "sum_div":
        return exact or out == 0
    if mode == "close_to":
        return exact or abs(out - rule.reference) <= atol
    if mode == "equal_to":
        return exact or out == rule.reference
    if mode == "set_eq":  # the answer's elements are hashed: checked against hash flooding first
        return checked_set(out) == set(exp)
    if mode == "presence":  # `out` is server.presence(answer)
        kind, value = out
        return value == exp if kind == "bool" else exp == (not value)
    return exact


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

    def rule(self, inp: Any) -> Rule:
        """The rule for the output on input ``inp`` (the oracle's values computed here)."""
        entry = self.entry_point
        fixed = _fixed_rule(self.dataset, entry)
        if fixed is not None:
            return fixed
        if entry == "find_zero":
            return Rule("humaneval", "find_zero", inp[0])
        value = _value(getattr(_oracles(), "_" + entry), inp)
        mode = "close_to" if entry == "surface_Area" else "equal_to"
        return Rule("mbpp", "exact") if value is None else Rule("mbpp", mode, value)

    def agrees(self, inp: Any, out: Any, exp: Any, atol: float) -> tuple[bool, float]:
        """:func:`agrees` with this task's rule for ``inp``."""
        return agrees(self.rule(inp), out, exp, atol)


ORACLES_OF_THE_INPUT = ("find_zero", "surface_Area", "digit_distance_nums")


@functools.lru_cache(maxsize=1024)
def _fixed_rule(dataset: str, entry: str) -> Rule | None:
    """The rule of a task whose comparison does not depend on the input (None: it does)."""
    if dataset == "humaneval":
        return None if entry == "find_zero" else Rule("humaneval")
    if entry in ORACLES_OF_THE_INPUT:
        return None
    oracle = _oracles()
    modes = {"are_equivalent": "equivalent", "sum_div": "sum_div"}
    if entry in modes:
        return Rule("mbpp", modes[entry])
    if entry in oracle.MBPP_OUTPUT_SET_EQ_TASKS:
        return Rule("mbpp", "set_eq")
    if entry in oracle.MBPP_OUTPUT_NOT_NONE_TASKS:
        return Rule("mbpp", "presence")
    return Rule("mbpp")


def _value(oracle: Any, inp: Any) -> Any:
    try:
        return oracle(*inp)
    except Exception:  # noqa: BLE001 - then EvalPlus's `exact or ...` is just `exact`
        return None
