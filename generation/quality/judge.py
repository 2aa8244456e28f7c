"""The Qwen2.5-VL judge loop: refine the first-frame caption until the edit passes, then check the clip.

Integration API (stage 2 wires these; models are loaded once and reused across videos):

    vlm = QwenVLM(profile, model=cfg.qwen_model, device=cfg.qwen_device,
                  vram_reserve_gib=cfg.qwen_vram_reserve_gib, unload_after_use=cfg.unload_qwen_after_use)
    judge = Judge(vlm, iters=cfg.caption_refine_iters, temperature=cfg.caption_refine_temperature,
                  compliance_frames=cfg.compliance_frames, seed=cfg.seed)
    writer = CaptionRefineWriter(layout.vp_caption_refine_dir(run_id, folder, video_id))
    result = judge.refine_first_frame(instruction, frame0, mask0, inpaint=lambda caption, attempt: ...,
                                      record=writer)            # -> RefineResult
    vlm.maybe_unload()                                          # VP_UNLOAD_QWEN_AFTER_USE
    ... generate the clip from result.image ...
    compliance = judge.compliance_over_time(instruction, original, masks, edited, record=writer)
    writer.write_summary(result, compliance)                    # summary.json in the same folder
    sidecar["judge"] = {**result.to_dict(), "compliance": compliance.to_dict()}

The loop functions take plain callables, so they run without a model or storage:
``refine_first_frame(instruction, original, mask, first_caption, inpaint, judge, max_iters, record)``
with ``inpaint(caption, attempt) -> uint8 [H,W,3]`` and ``judge(panel, prompt, attempt) -> str``;
``compliance_over_time(instruction, original, masks, edited, judge_many, frames, record)`` with
``judge_many(panels, prompts) -> list[str]``. The second argument of ``judge`` is the full prompt
(instruction and the caption used), so what is recorded is exactly what the model saw.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core import storage
from generation.quality.judge_parse import FAIL, PASS, Verdict, parse_verdict
from generation.quality.judge_prompts import ATTRIBUTE_KEYS, build_panel, compliance_prompt, judge_prompt

log = logging.getLogger(__name__)

Inpainter = Callable[[str, int], np.ndarray]
JudgeFn = Callable[[np.ndarray, str, int], str]
JudgeManyFn = Callable[[Sequence[np.ndarray], Sequence[str]], list[str]]


@dataclass
class Attempt:
    """One judged image: a first-frame attempt (``kind="first_frame"``) or a clip frame (``"compliance"``)."""

    kind: str
    index: int                      # attempt number (1-based) or position among the checked frames
    frame: int                      # frame index in the clip (0 for the first frame)
    caption: str | None
    prompt: str
    raw: str
    verdict: Verdict
    panel: np.ndarray = field(repr=False)
    image: np.ndarray | None = field(default=None, repr=False)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "index": self.index, "frame": self.frame, "caption": self.caption,
                "verdict": self.verdict.verdict, "checks_passed": self.verdict.checks_passed,
                "reasons": list(self.verdict.reasons), "revised_caption": self.verdict.revised_caption,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


@dataclass
class RefineResult:
    image: np.ndarray = field(repr=False)
    caption: str
    iterations: int
    verdict: str                    # PASS when an attempt passed, else FAIL
    chosen_attempt: int
    history: list[Attempt]

    def to_dict(self) -> dict[str, Any]:
        return {"caption": self.caption, "iterations": self.iterations, "final_verdict": self.verdict,
                "chosen_attempt": self.chosen_attempt, "history": [a.to_dict() for a in self.history]}


@dataclass
class ComplianceResult:
    frames: list[int]
    verdicts: list[Verdict]

    @property
    def passed(self) -> int:
        return sum(v.passed for v in self.verdicts)

    @property
    def fraction(self) -> float | None:
        """Share of checked frames that PASS (None when no frame was checked)."""
        return self.passed / len(self.verdicts) if self.verdicts else None

    def to_dict(self) -> dict[str, Any]:
        return {"frames": list(self.frames), "passed": self.passed, "checked": len(self.verdicts),
                "fraction": self.fraction, "verdicts": [v.verdict for v in self.verdicts],
                "reasons": [list(v.reasons) for v in self.verdicts]}


def refine_first_frame(instruction: str, original: np.ndarray, mask: np.ndarray, first_caption: str,
                       inpaint: Inpainter, judge: JudgeFn, max_iters: int = 10,
                       record: Callable[[Attempt], None] | None = None) -> RefineResult:
    """Inpaint, judge, and on FAIL retry with the judge's revised caption, up to ``max_iters`` attempts.

    Returns the first PASS; when none passes, the attempt with the most attribute checks passed
    (the latest among ties) with verdict FAIL.
    """
    if max_iters < 1:
        raise ValueError(f"max_iters must be >= 1, got {max_iters}")
    caption = first_caption
    history: list[Attempt] = []
    for attempt in range(1, max_iters + 1):
        started = time.perf_counter()
        image = np.asarray(inpaint(caption, attempt))
        inpainted = time.perf_counter()
        panel = build_panel(original, mask, image)
        prompt = judge_prompt(instruction, caption)
        raw = judge(panel, prompt, attempt)
        verdict = parse_verdict(raw, require_caption=True)
        item = Attempt("first_frame", attempt, 0, caption, prompt, raw if isinstance(raw, str) else repr(raw),
                       verdict, panel, image, {"inpaint": inpainted - started,
                                               "judge": time.perf_counter() - inpainted})
        history.append(item)
        log.info("attempt %d/%d: %s (%d/%d checks)%s", attempt, max_iters, verdict.verdict, verdict.checks_passed,
                 len(ATTRIBUTE_KEYS),
                 f" - {'; '.join(verdict.reasons)}" if verdict.reasons else "")
        if record is not None:
            record(item)
        if verdict.passed:
            return RefineResult(image, caption, attempt, PASS, attempt, history)
        if verdict.revised_caption:
            caption = verdict.revised_caption
    best = max(history, key=lambda a: (a.verdict.checks_passed, a.index))
    assert best.image is not None and best.caption is not None
    return RefineResult(best.image, best.caption, len(history), FAIL, best.index, history)


def compliance_frames(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over the clip, first and last included."""
    if num_frames < 1 or count < 1:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, min(count, num_frames))})


def compliance_over_time(instruction: str, original: np.ndarray, masks: np.ndarray, edited: np.ndarray,
                         judge_many: JudgeManyFn, frames: int = 4,
                         record: Callable[[Attempt], None] | None = None) -> ComplianceResult:
    """Judge ``frames`` frames spread over the edited clip; the result holds the fraction that PASS."""
    if not (len(original) == len(masks) == len(edited)):
        raise ValueError(f"clip lengths differ: original {len(original)}, masks {len(masks)}, edited {len(edited)}")
    indices = compliance_frames(len(edited), frames)
    if not indices:
        return ComplianceResult([], [])
    prompt = compliance_prompt(instruction)
    panels = [build_panel(original[i], masks[i], edited[i]) for i in indices]
    started = time.perf_counter()
    answers = judge_many(panels, [prompt] * len(panels))
    seconds = (time.perf_counter() - started) / len(panels)
    verdicts = []
    for pos, (i, panel, raw) in enumerate(zip(indices, panels, answers, strict=True), start=1):
        verdict = parse_verdict(raw, require_caption=False)
        verdicts.append(verdict)
        if record is not None:
            record(Attempt("compliance", pos, i, None, prompt, raw if isinstance(raw, str) else repr(raw),
                           verdict, panel, None, {"judge": seconds}))
    result = ComplianceResult(indices, verdicts)
    log.info("compliance over time: %d/%d frames PASS", result.passed, len(indices))
    return result


class CaptionRefineWriter:
    """Writes every attempt into ``<video_id>_caption_refine/`` (any storage URI).

    First-frame attempt n: ``attempt_NN_panel.png``, ``_prompt.txt``, ``_answer.txt``,
    ``_verdict.json``; clip frames: ``compliance/frame_FFFFF_*``; ``summary.json`` at the end.
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.written: list[str] = []

    def _put(self, name: str, data: bytes) -> None:
        uri = storage.join(self.folder, name)
        storage.write_bytes(uri, data)
        self.written.append(uri)

    def __call__(self, attempt: Attempt) -> None:
        stem = (f"attempt_{attempt.index:02d}" if attempt.kind == "first_frame"
                else f"compliance/frame_{attempt.frame:05d}")
        ok, png = cv2.imencode(".png", np.ascontiguousarray(attempt.panel[..., ::-1]))
        if not ok:
            raise ValueError(f"{stem}: could not encode the panel as PNG")
        self._put(f"{stem}_panel.png", png.tobytes())
        self._put(f"{stem}_prompt.txt", attempt.prompt.encode("utf-8"))
        self._put(f"{stem}_answer.txt", attempt.raw.encode("utf-8", errors="replace"))
        record = {**attempt.to_dict(), "parsed": attempt.verdict.to_dict()}
        self._put(f"{stem}_verdict.json", json.dumps(record, indent=2, ensure_ascii=False).encode("utf-8"))

    def write_summary(self, result: RefineResult | None, compliance: ComplianceResult | None = None) -> str:
        summary = {"first_frame": result.to_dict() if result else None,
                   "compliance": compliance.to_dict() if compliance else None}
        self._put("summary.json", json.dumps(summary, indent=2, ensure_ascii=False).encode("utf-8"))
        return self.written[-1]


class Judge:
    """The judge loop bound to a Qwen2.5-VL (anything with ``caption``, ``ask`` and ``ask_many``)."""

    def __init__(self, vlm: Any, iters: int = 10, temperature: float = 0.1, max_new_tokens: int = 512,
                 compliance_frames: int = 4, seed: int | None = 42, caption_max_new_tokens: int = 120):
        if iters < 1:
            raise ValueError(f"caption refine iterations must be >= 1, got {iters}")
        if temperature < 0:
            raise ValueError(f"caption refine temperature must be >= 0, got {temperature}")
        self.vlm = vlm
        self.iters = iters
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.compliance_frames = compliance_frames
        self.seed = seed
        self.caption_max_new_tokens = caption_max_new_tokens

    def _seed(self, offset: int) -> int | None:
        return None if self.seed is None else self.seed + offset

    def first_caption(self, instruction: str) -> str:
        return self.vlm.caption(instruction, temperature=self.temperature,
                                max_new_tokens=self.caption_max_new_tokens, seed=self._seed(0))

    def __call__(self, panel: np.ndarray, prompt: str, attempt: int) -> str:
        return self.vlm.ask(panel, prompt, temperature=self.temperature, max_new_tokens=self.max_new_tokens,
                            seed=self._seed(attempt))

    def judge_many(self, panels: Sequence[np.ndarray], prompts: Sequence[str]) -> list[str]:
        return self.vlm.ask_many(list(panels), list(prompts), temperature=self.temperature,
                                 max_new_tokens=self.max_new_tokens, seed=self._seed(1000))

    def refine_first_frame(self, instruction: str, original: np.ndarray, mask: np.ndarray, inpaint: Inpainter,
                           record: Callable[[Attempt], None] | None = None,
                           first_caption: str | None = None) -> RefineResult:
        caption = first_caption if first_caption is not None else self.first_caption(instruction)
        return refine_first_frame(instruction, original, mask, caption, inpaint, self, self.iters, record)

    def compliance_over_time(self, instruction: str, original: np.ndarray, masks: np.ndarray,
                             edited: np.ndarray, record: Callable[[Attempt], None] | None = None) -> ComplianceResult:
        return compliance_over_time(instruction, original, masks, edited, self.judge_many,
                                    self.compliance_frames, record)
