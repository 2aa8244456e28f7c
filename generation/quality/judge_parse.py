"""Reading the judge's answer, which is untrusted text: ``parse_verdict(raw) -> Verdict``, never raising.

Rules (every forced FAIL records its reason in ``Verdict.reasons``):

- The answer must hold exactly one JSON object and nothing else. A Markdown code fence around that
  object is tolerated (noted, not a failure: Qwen often fences JSON); any other text outside it,
  a second object, or no complete object (malformed, cut off) gives FAIL.
- ``verdict`` must be PASS or FAIL (any case); anything else, or missing, gives FAIL.
- ``checks`` must hold every attribute of ``judge_prompts.ATTRIBUTES`` (a few spellings accepted,
  e.g. ``color``), each a boolean, PASS/FAIL/yes/no, or an object with ``pass``. Missing or
  unreadable checks give FAIL, and so does a PASS that contradicts a failed check.
- ``revised_caption`` is required for first-frame verdicts (``require_caption=True``). From a
  cut-off answer a complete ``"revised_caption": "..."`` string is still salvaged for the next try.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from generation.quality.judge_prompts import ATTRIBUTE_KEYS

PASS, FAIL = "PASS", "FAIL"
MAX_ANSWER_CHARS = 50_000
MAX_CAPTION_CHARS = 1000
_MAX_OBJECT_STARTS = 200

ATTRIBUTE_ALIASES = {
    "count": "count", "number": "count", "line_count": "count", "lane_count": "count",
    "colour": "colour", "color": "colour",
    "pattern": "pattern", "style": "pattern",
    "alignment": "alignment", "alignment_with_original_lanes": "alignment", "aligned": "alignment",
    "position": "alignment",
    "paint_texture": "paint_texture", "texture": "paint_texture",
    "lighting_shadow": "lighting_shadow", "lighting": "lighting_shadow", "lighting_shadows": "lighting_shadow",
    "lighting_and_shadow": "lighting_shadow", "shadows": "lighting_shadow",
    "background_preserved": "background_preserved", "background": "background_preserved",
}
_TRUE_WORDS = {"pass", "passed", "true", "yes", "ok", "y"}
_FALSE_WORDS = {"fail", "failed", "false", "no", "n"}
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_CAPTION_SALVAGE = re.compile(r'"revised_caption"\s*:\s*"((?:[^"\\]|\\.)*)"')


@dataclass
class Verdict:
    """The parsed judge answer. ``verdict`` is final (after our rules); ``model_verdict`` is what it said."""

    verdict: str
    model_verdict: str | None = None
    checks: dict[str, bool | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    revised_caption: str | None = None
    reasons: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def checks_passed(self) -> int:
        return sum(1 for v in self.checks.values() if v is True)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checks_passed"] = self.checks_passed
        return out


def excerpt(text: Any, limit: int) -> str:
    """A short, single-line, printable excerpt of untrusted text (safe for logs and reasons)."""
    clean = "".join(ch for ch in str(text) if ch.isprintable() or ch.isspace())
    return " ".join(clean.split())[:limit]


def norm_key(key: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(key).strip().lower()).strip("_")


def clean_caption(raw: Any, fallback: str | None = None) -> str | None:
    """A caption from free text: fences, a ``Caption:`` label and quotes removed, whitespace collapsed."""
    text = raw if isinstance(raw, str) else ""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    text = "".join(ch for ch in text if ch.isprintable() or ch.isspace())  # no control characters
    text = " ".join(text.split())
    text = re.sub(r"^(revised\s+)?caption\s*:\s*", "", text, flags=re.IGNORECASE)
    text = text.strip().strip("\"'`").strip()[:MAX_CAPTION_CHARS].strip()
    return text or fallback


def _as_bool(value: Any) -> tuple[bool | None, str]:
    """(pass?, note) for one check value; None when unreadable."""
    if isinstance(value, bool):
        return value, ""
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value), ""
    if isinstance(value, str):
        word = norm_key(value)
        if word in _TRUE_WORDS:
            return True, ""
        if word in _FALSE_WORDS:
            return False, ""
        return None, excerpt(value, 200)
    if isinstance(value, dict):
        lowered = {norm_key(k): v for k, v in value.items()}
        note = next((excerpt(lowered[k], 500) for k in ("note", "reason", "comment", "explanation") if k in lowered), "")
        for key in ("pass", "passed", "ok", "result", "verdict", "value"):
            if key in lowered:
                flag, _ = _as_bool(lowered[key])
                return flag, note
        return None, note
    return None, ""


def find_json_object(text: str) -> tuple[dict[str, Any] | None, str, list[str]]:
    """(first JSON object, text outside it, remarks). The object may sit in a code fence."""
    remarks: list[str] = []
    fenced = _FENCE.search(text)
    if fenced:
        remarks.append("answer was in a code fence")
        outside = text[:fenced.start()] + text[fenced.end():]
        body = fenced.group(1)
    else:
        outside, body = "", text
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"\{", body)][:_MAX_OBJECT_STARTS]
    for start in starts:
        try:
            obj, end = decoder.raw_decode(body, start)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj, outside + body[:start] + body[end:], remarks
    return None, outside + body, remarks


def _fail(verdict: Verdict, reason: str) -> None:
    verdict.reasons.append(reason)
    verdict.verdict = FAIL


def parse_verdict(raw: Any, require_caption: bool = True, allow_fence: bool = True) -> Verdict:
    """Parse a judge answer into a ``Verdict``; any doubt is FAIL with the reason recorded."""
    out = Verdict(verdict=FAIL)
    if not isinstance(raw, str):
        _fail(out, f"answer is not text ({type(raw).__name__})")
        return out
    text = raw[:MAX_ANSWER_CHARS]
    if len(raw) > MAX_ANSWER_CHARS:
        out.remarks.append(f"answer truncated to {MAX_ANSWER_CHARS} characters")
    if not text.strip():
        _fail(out, "empty answer")
        return out
    obj, outside, remarks = find_json_object(text)
    out.remarks.extend(remarks)
    if obj is None:
        salvaged = _CAPTION_SALVAGE.search(text)
        if salvaged:
            try:
                out.revised_caption = clean_caption(json.loads(f'"{salvaged.group(1)}"'))
            except ValueError:
                out.revised_caption = None
        _fail(out, "no complete JSON object in the answer (malformed or cut off)"
              if "{" in text else "no JSON object in the answer")
        return out
    if remarks and not allow_fence:
        _fail(out, "answer was in a code fence")
    if outside.strip():
        _fail(out, f"extra text outside the JSON object: {excerpt(outside, 120)!r}")
    fields = {norm_key(k): v for k, v in obj.items()}

    verdict = fields.get("verdict")
    if verdict is None:
        _fail(out, "verdict missing")
    elif not isinstance(verdict, str) or verdict.strip().upper() not in (PASS, FAIL):
        _fail(out, f"unknown verdict {excerpt(verdict, 40)!r}")
    else:
        out.model_verdict = verdict.strip().upper()

    checks = fields.get("checks")
    source = checks if isinstance(checks, dict) else fields  # tolerate checks at the top level
    if checks is not None and not isinstance(checks, dict):
        out.remarks.append("checks is not an object")
    for key, value in source.items():
        name = ATTRIBUTE_ALIASES.get(norm_key(key))
        if name is None or name in out.checks:
            continue
        flag, note = _as_bool(value)
        out.checks[name] = flag
        if note:
            out.notes[name] = note
    missing = [k for k in ATTRIBUTE_KEYS if k not in out.checks]
    unreadable = [k for k in ATTRIBUTE_KEYS if k in out.checks and out.checks[k] is None]
    for k in missing:
        out.checks[k] = None
    out.checks = {k: out.checks[k] for k in ATTRIBUTE_KEYS}
    if missing:
        _fail(out, f"missing checks: {', '.join(missing)}")
    if unreadable:
        _fail(out, f"unreadable checks: {', '.join(unreadable)}")

    caption = fields.get("revised_caption", fields.get("caption"))
    if isinstance(caption, str) and caption.strip():
        out.revised_caption = clean_caption(caption)
    elif require_caption:
        _fail(out, "revised_caption missing" if caption is None else "revised_caption is not a non-empty string")

    failed = [k for k, v in out.checks.items() if v is False]
    if out.model_verdict == PASS and failed:
        _fail(out, f"verdict PASS contradicts failed checks: {', '.join(failed)}")
    if not out.reasons:
        out.verdict = out.model_verdict or FAIL
    return out
