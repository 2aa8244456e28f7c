"""The lane vocabulary every package shares: count, colour and pattern of a lane marking.

A ``LaneSpec`` is what the synthetic clips paint, what an instruction shorthand (``lane double yellow
solid``) asks for, and what a lane dataset's captions describe (which add ``mixed`` and ``unknown``).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import UsageError

COUNTS = ("single", "double")
COLORS = ("white", "yellow")
PATTERNS = ("solid", "dashed")
MIXED = "mixed"          # a dataset caption: white and yellow, or solid and dashed, side by side
UNKNOWN = "unknown"      # a dataset caption: no clear marking


@dataclass(frozen=True)
class LaneSpec:
    count: str = "single"
    color: str = "white"
    pattern: str = "solid"

    @classmethod
    def parse(cls, text: str) -> LaneSpec:
        """Parse words in any order, e.g. ``"double yellow solid"`` or ``"lane single white dashed"``."""
        values: dict[str, str] = {}
        for word in text.replace(",", " ").lower().split():
            if word in ("lane", "lanes"):
                continue
            for key, allowed in (("count", COUNTS), ("color", COLORS), ("pattern", PATTERNS)):
                if word in allowed:
                    if key in values and values[key] != word:
                        raise UsageError(f"lane spec {text!r}: {key} given twice ({values[key]}, {word})")
                    values[key] = word
                    break
            else:
                raise UsageError(f"lane spec {text!r}: unknown word {word!r} "
                                 f"(use {'|'.join(COUNTS)}, {'|'.join(COLORS)}, {'|'.join(PATTERNS)})")
        if not values:
            raise UsageError(f"lane spec {text!r}: empty")
        return cls(**values)

    def words(self) -> str:
        return f"{self.count} {self.color} {self.pattern}"
