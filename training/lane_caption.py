"""Lane-attribute captions for dataset frames: the VLM question, the parsing of its untrusted answer,
and the captioner interface. No torch at import (Qwen is imported when a ``QwenCaptioner`` is built).

- ``LANE_QUESTION``: asks for one JSON object ``{"count": ..., "color": ..., "pattern": ...}``.
- ``parse_lane_answer(raw) -> ParsedCaption``: never raises. The answer's JSON object (a code fence is
  tolerated, as in the judge) gives the attributes, each normalised to the dataset vocabulary
  (``lane_dataset.COUNTS/COLORS/PATTERNS``; e.g. "two" -> double, "broken" -> dashed, "white and
  yellow" -> mixed); without one, a structured sentence ``road with ... lane markings`` in the text is
  used. Anything else, or a value outside the vocabulary, is ``unknown`` with a note saying why.
- A captioner is any callable ``(images, names) -> raw answers`` (one per uint8 RGB frame; ``names``
  are the sample names, handy for scripted captioners in tests). ``QwenCaptioner`` is the real one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from generation.quality.judge_parse import ATTRIBUTE_ALIASES, excerpt, find_json_object, norm_key
from training.lane_dataset import COLORS, COUNTS, PATTERNS, PROMPT_RE, UNKNOWN, LaneAttributes

log = logging.getLogger(__name__)

Captioner = Callable[[Sequence[np.ndarray], Sequence[str]], Sequence[str]]
MAX_ANSWER_CHARS = 4000

LANE_QUESTION = (
    "This is a frame from a car's front camera. Look at the lane markings painted on the road ahead "
    "(the lines between lanes, not the road edge).\n"
    "Answer with one JSON object and nothing else:\n"
    '{"count": "single" or "double" or "unknown", "color": "white" or "yellow" or "mixed" or "unknown", '
    '"pattern": "solid" or "dashed" or "mixed" or "unknown"}\n'
    "count: single = one line, double = two parallel lines side by side. color: mixed = both white and "
    "yellow lines. pattern: mixed = solid and dashed lines together. Use unknown when the markings are "
    "not visible or you are not sure."
)

# words (after lower-casing and splitting on non-letters) that name each value
_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "count": {"single": ("single", "one", "1", "solo"), "double": ("double", "two", "2", "pair", "twin", "paired")},
    "color": {"white": ("white",), "yellow": ("yellow", "amber", "orange")},
    "pattern": {"solid": ("solid", "continuous", "unbroken"),
                "dashed": ("dashed", "dash", "dashes", "broken", "dotted", "intermittent", "skip")},
}
_MIXED = ("mixed", "both", "combination", "multiple", "various")
_UNKNOWN_WORDS = ("unknown", "unclear", "none", "no", "not", "n/a", "na", "uncertain", "unsure")
_FIELD = {"count": "count", "colour": "color", "pattern": "pattern"}  # judge alias target -> ours
_ALLOWED = {"count": COUNTS, "color": COLORS, "pattern": PATTERNS}


@dataclass
class ParsedCaption:
    attributes: LaneAttributes
    source: str                                   # "json", "sentence" or "none"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        a = self.attributes
        return {"count": a.count, "color": a.color, "pattern": a.pattern, "prompt": a.prompt,
                "parsed_from": self.source, "parse_notes": list(self.notes)}


def normalise_value(kind: str, value: Any) -> tuple[str, str | None]:
    """(value in the dataset vocabulary, note or None) for one attribute value of the answer."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return UNKNOWN, f"{kind} is not text ({type(value).__name__})"
    text = str(value).strip().lower()
    if text in _ALLOWED[kind]:
        return text, None
    words = [w for w in re.split(r"[^a-z0-9/]+", text) if w]
    found = {name for name, synonyms in _WORDS[kind].items() if any(w in synonyms for w in words)}
    if len(found) > 1 or (kind != "count" and any(w in _MIXED for w in words)):
        return ("mixed", None) if kind != "count" else (UNKNOWN, f"count {excerpt(value, 40)!r} is ambiguous")
    if len(found) == 1 and not any(w in _UNKNOWN_WORDS for w in words):
        return found.pop(), None
    if any(w in _UNKNOWN_WORDS for w in words):
        return UNKNOWN, None
    return UNKNOWN, f"{kind} {excerpt(value, 40)!r} is not one of {', '.join(_ALLOWED[kind])}"


def parse_lane_answer(raw: Any) -> ParsedCaption:
    """The lane attributes in a VLM answer; unknown attributes (with notes) when it does not parse."""
    if not isinstance(raw, str) or not raw.strip():
        return ParsedCaption(LaneAttributes(), "none", ["empty answer" if isinstance(raw, str) else
                                                        f"answer is not text ({type(raw).__name__})"])
    text = raw[:MAX_ANSWER_CHARS]
    obj, _outside, _remarks = find_json_object(text)
    if obj is not None:
        values: dict[str, str] = {}
        notes: list[str] = []
        for key, value in obj.items():
            name = _FIELD.get(ATTRIBUTE_ALIASES.get(norm_key(key), ""))
            if name is None or name in values:
                continue
            values[name], note = normalise_value(name, value)
            if note:
                notes.append(note)
        for name in ("count", "color", "pattern"):
            if name not in values:
                values[name] = UNKNOWN
                notes.append(f"{name} missing")
        return ParsedCaption(LaneAttributes(**values), "json", notes)
    match = PROMPT_RE.search(text.lower())
    if match:
        return ParsedCaption(LaneAttributes(**match.groupdict()), "sentence", ["no JSON object; used the sentence"])
    reason = "no complete JSON object (malformed or cut off)" if "{" in text else "no JSON object"
    return ParsedCaption(LaneAttributes(), "none", [f"{reason}: {excerpt(text, 80)!r}"])


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled down (area interpolation) so its longer side is at most ``max_side`` (0: as is).

    Qwen2.5-VL spends one token per 28x28 pixels: a 1920x1080 frame is about 2,600 image tokens, at
    1024 px about 750, and the lane markings stay plainly visible."""
    height, width = image.shape[:2]
    if max_side <= 0 or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class QwenCaptioner:
    """Qwen2.5-VL answering ``LANE_QUESTION`` for a batch of frames (one ``generate`` call per batch)."""

    def __init__(self, profile: str, model: str | None, device: str, temperature: float = 0.0,
                 max_new_tokens: int = 64, batch_size: int = 8, cache_dir: str | None = None,
                 max_side: int = 0) -> None:
        from generation.quality.vlm import QwenVLM

        self.vlm = QwenVLM(profile=profile, model=model, device=device, cache_dir=cache_dir).load()
        self.temperature = float(temperature)
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = max(1, int(batch_size))
        self.max_side = int(max_side)

    def __call__(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[str]:
        answers: list[str] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [shrink(i, self.max_side) for i in images[start:start + self.batch_size]]
            answers += self.vlm.ask_many(chunk, [LANE_QUESTION] * len(chunk), temperature=self.temperature,
                                         max_new_tokens=self.max_new_tokens)
        return answers

    def describe(self) -> dict[str, Any]:
        return self.vlm.describe() | {"question": "LANE_QUESTION", "temperature": self.temperature,
                                      "max_new_tokens": self.max_new_tokens, "max_side": self.max_side}


def describe_captioner(captioner: Any) -> dict[str, Any]:
    describe = getattr(captioner, "describe", None)
    return describe() if callable(describe) else {"name": getattr(captioner, "__name__", type(captioner).__name__),
                                                  "kind": "custom captioner callable"}
