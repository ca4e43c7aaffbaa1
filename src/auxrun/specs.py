"""How a config value is checked: :class:`Spec`, a key's type and range.

:mod:`auxrun.schema` maps every key of the shared config groups to one; a weighting strategy
declares the specs of its own keys beside its code (``Weighting.keys``). Kept apart from the
schema, which imports every strategy, so that a strategy can import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

INT32_MAX = 2**31 - 1  # what torch sizes, NumPy seeds, Python's range and PyG's int32 node ids take without overflow


@dataclass(frozen=True)
class Spec:
    """One key's type and range: ``kind`` (``int``, ``float``, ``bool``, ``str``); numbers in
    ``[low, high]`` (``low_open`` / ``high_open`` exclude the bound); ``choices`` for text;
    ``null`` allowed with ``optional``; ``each`` checks every item of a list."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    optional: bool = False
    each: bool = False
    words: tuple[Any, ...] = ()       # values allowed besides the range (``auto``, ``-1`` for all)
    length: int = 0                  # with ``each``: exactly this many items (0: any number)
    sum_below: float | None = None   # with ``each``: the items sum to less than this

    def describe(self) -> str:
        if self.choices:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        else:
            text = {int: "an integer", float: "a number", bool: "true or false", str: "text"}[self.kind]
            num = (lambda v: str(int(v))) if self.kind is int else (lambda v: f"{v:g}")  # noqa: E731
            if self.low is not None and self.high is not None:
                text += f" in {'(' if self.low_open else '['}{num(self.low)}, {num(self.high)}{')' if self.high_open else ']'}"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {num(self.low)}"
        if self.each:
            items = text.replace("an integer", "integers").replace("a number", "numbers")
            text = f"a list of {f'{self.length} ' if self.length else ''}{items}"
            text += f" summing below {self.sum_below:g}" if self.sum_below is not None else ""
        text += "".join(f" or {w}" for w in self.words)
        return text + (" (or null)" if self.optional else "")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit, or ``None``."""
        if value is None:
            return None if self.optional else "null is not allowed"
        if not isinstance(value, bool) and value in self.words:
            return None
        if self.each:
            if not isinstance(value, (list, tuple)) or not value:
                return "not a non-empty list"
            if self.length and len(value) != self.length:
                return f"{len(value)} item(s), not {self.length}"
            item = Spec(self.kind, self.low, self.high, self.low_open, self.high_open, self.choices,
                        words=tuple(w for w in self.words if not isinstance(w, str)))  # -1 per item; a word, whole
            why = next((p for p in map(item.problem, value) if p), None)
            if why is None and self.sum_below is not None and sum(value) >= self.sum_below:
                return f"the items sum to {sum(value):g}"
            return why
        if self.choices:
            return None if value in self.choices or str(value) in map(str, self.choices) else "not allowed"
        if self.kind is bool:
            return None if isinstance(value, bool) else "not true or false"
        if self.kind is str:
            return None if isinstance(value, str) else "not text"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "not a number" if self.kind is float else "not an integer"
        if self.kind is int and not float(value).is_integer():
            return "not an integer"
        if not math.isfinite(float(value)):
            return "not finite"
        low_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        high_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if low_bad or high_bad:
            return "out of range"
        if self.kind is float and abs(value) > FLOAT32_MAX:
            return f"too large: the model computes in 32-bit floats, which hold at most {FLOAT32_MAX:.3g}"
        return None


FLOAT32_MAX = 3.4028234663852886e38  # every float a user sets reaches float32 tensors: larger ones overflow to inf
