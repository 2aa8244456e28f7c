"""Edit instructions: parse ``--instructions``, expand the lane shorthand, give each its folder.

Several instructions per run are separated by ``||`` or new lines (blank lines are ignored). The
shorthand ``lane <count> <color> <pattern>`` (words from ``core.lanes.LaneSpec``: single|double,
white|yellow, solid|dashed, in any order) expands to a full instruction; anything else is taken as
free text. Without instructions the five built-in defaults run. Every instruction gets a validated
folder name (``core.ids.slugify``) under ``vp/<run_id>/``.

stdlib + core only: ``generation.config`` validates instructions with it before anything loads.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from core.errors import UsageError
from core.ids import slugify
from core.lanes import LaneSpec

log = logging.getLogger(__name__)

SUFFIX = ("aligned exactly to the original lane positions and perspective; "
          "keep road texture, lighting, and shadows unchanged")
DEFAULT_SHORTHANDS = (
    "lane single white solid",
    "lane double white solid",
    "lane single yellow solid",
    "lane double yellow solid",
    "lane single white dashed",
)
_SHORTHAND = re.compile(r"^\s*lanes?(\s+[A-Za-z,]+){0,3}\s*$", re.IGNORECASE)
_FREE_TEXT_SLUG_LEN = 60


@dataclass(frozen=True)
class Instruction:
    """One edit request: the text the models see and the folder its outputs go to."""

    text: str                  # full instruction (shorthand expanded)
    folder: str                # validated folder name under vp/<run_id>/
    source: str                # what the user wrote ("default" entries: the shorthand)
    kind: str                  # "default", "shorthand" or "free"
    lanes: LaneSpec | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"text": self.text, "folder": self.folder, "source": self.source, "kind": self.kind}
        if self.lanes is not None:
            out["lanes"] = self.lanes.words()
        return out


def expand(lanes: LaneSpec) -> str:
    """The full instruction for a lane spec (count, pattern, colour), ending with ``SUFFIX``."""
    return (f"Repaint the lane markings on the road as a {lanes.count} {lanes.pattern} {lanes.color} line, "
            f"{SUFFIX}")


def is_shorthand(text: str) -> bool:
    """``lane`` followed by at most three words (and no other punctuation than commas)."""
    return bool(_SHORTHAND.match(text))


def _shorthand(source: str, kind: str) -> Instruction:
    words = source.strip().split(None, 1)
    rest = words[1] if len(words) > 1 else ""
    if not rest.strip():
        raise UsageError(f"instruction {source.strip()!r}: lane shorthand needs words, "
                         "e.g. 'lane double yellow solid'")
    lanes = LaneSpec.parse(rest)      # one-line UsageError on an unknown word
    folder = slugify(f"lane {lanes.words()}")
    return Instruction(expand(lanes), folder, source.strip(), kind, lanes)


def _free(text: str) -> Instruction:
    clean = " ".join(text.split())
    digest = hashlib.sha1(clean.encode("utf-8")).hexdigest()[:8]
    folder = slugify(f"{slugify(clean, max_len=_FREE_TEXT_SLUG_LEN)}_{digest}")
    return Instruction(clean, folder, clean, "free")


def default_instructions() -> tuple[Instruction, ...]:
    return tuple(_shorthand(s, "default") for s in DEFAULT_SHORTHANDS)


def split_instructions(text: str) -> list[str]:
    """Split on new lines and ``||``; blank lines are skipped, an empty ``||`` part is an error."""
    parts: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        for piece in line.split("||"):
            if not piece.strip():
                raise UsageError(f"empty instruction in {line.strip()!r} (instructions are separated by '||' "
                                 "or new lines)")
            parts.append(piece.strip())
    if not parts:
        raise UsageError("empty instruction: give at least one, or leave --instructions unset for the defaults")
    return parts


def parse_instructions(text: str | None) -> tuple[Instruction, ...]:
    """The instructions of a run (the defaults when ``text`` is None: not given); duplicates dropped. Text
    given without any instruction in it (blank, only separators) is a usage error, never the defaults."""
    if text is None:
        return default_instructions()
    out: list[Instruction] = []
    seen: dict[str, str] = {}
    for part in split_instructions(text):
        inst = _shorthand(part, "shorthand") if is_shorthand(part) else _free(part)
        if inst.folder in seen:
            log.warning("instruction %r repeats %r (same folder %s): running it once", part, seen[inst.folder],
                        inst.folder)
            continue
        seen[inst.folder] = part
        out.append(inst)
    if not out:
        raise UsageError(f"--instructions {text!r}: no instruction in it (leave it out for the five built-in edits)")
    return tuple(out)
