"""What the Qwen2.5-VL judge sees: the prompts and the labelled three-panel image.

- ``caption_prompt(instruction)``: asks for the first FluxFill caption.
- ``judge_prompt(instruction, caption)``: asks for a JSON verdict on one panel (first frame), with a
  check per attribute and a revised caption.
- ``compliance_prompt(instruction)``: the same verdict for a frame of the generated clip (no caption).
- ``build_panel(original, mask, generated)``: ORIGINAL | MASK | GENERATED side by side, labelled.

No torch here: numpy, Pillow and OpenCV only.
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np

# (key, what it checks). The keys are what the model must answer with; the parser accepts a few
# spellings of each (see judge_parse.ATTRIBUTE_ALIASES).
ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("count", "the number of lane lines matches the instruction (single / double)"),
    ("colour", "the paint colour matches the instruction (white / yellow)"),
    ("pattern", "the line pattern matches the instruction (solid / dashed)"),
    ("alignment", "the new lines follow the positions and perspective of the original lanes"),
    ("paint_texture", "the lines look like real road paint (edges, wear, no smudges or artifacts)"),
    ("lighting_shadow", "lighting and shadows on the new paint match the scene"),
    ("background_preserved", "everything outside the mask is unchanged"),
)
ATTRIBUTE_KEYS: tuple[str, ...] = tuple(key for key, _ in ATTRIBUTES)

PANEL_LABELS = ("ORIGINAL", "MASK (white = repainted)", "GENERATED")
SEPARATOR_PX = 4
MAX_TILE_SIDE = 1024


def caption_prompt(instruction: str) -> str:
    return (
        "You write prompts for an image inpainting model that repaints the road surface inside a mask "
        "of a driving-camera frame.\n"
        f"Edit instruction: {instruction.strip()}\n"
        "Write one caption (at most 60 words) describing the road inside the mask after the edit: "
        "the number of lane lines, their colour and pattern (solid or dashed), that they follow the "
        "original lane positions and perspective, realistic paint texture, and lighting and shadows "
        "consistent with the scene. Answer with the caption only."
    )


def _schema(with_caption: bool) -> str:
    checks = ",\n".join(f'    "{key}": {{"pass": true or false, "note": "<{text}>"}}' for key, text in ATTRIBUTES)
    caption = (',\n  "revised_caption": "<a better caption for the inpainting model if FAIL, '
               'else the caption used>"') if with_caption else ""
    return ("{\n"
            '  "verdict": "PASS" or "FAIL",\n'
            '  "checks": {\n' + checks + "\n  }" + caption + "\n}")


def _rules() -> str:
    return ("The image has three panels, left to right: ORIGINAL frame, MASK (white = area that was "
            "repainted), GENERATED frame.\n"
            "Judge only what you see. PASS only if every check passes.\n")


def judge_prompt(instruction: str, caption: str) -> str:
    """The first-frame judge question (answer: JSON with verdict, checks and a revised caption)."""
    return (
        _rules()
        + f"Edit instruction: {instruction.strip()}\n"
        + f"Caption given to the inpainting model: {caption.strip()}\n"
        + "Answer with one JSON object and nothing else, in this form:\n"
        + _schema(with_caption=True)
    )


def compliance_prompt(instruction: str) -> str:
    """The per-frame compliance question for frames of the generated clip."""
    return (
        _rules()
        + f"Edit instruction: {instruction.strip()}\n"
        + "Answer with one JSON object and nothing else, in this form:\n"
        + _schema(with_caption=False)
    )


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _tile(array: np.ndarray, height: int, width: int) -> np.ndarray:
    if array.shape[:2] == (height, width):
        return array
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA)


def _check_frame(name: str, array: Any) -> np.ndarray:
    frame = np.asarray(array)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"panel {name} must be uint8 [H,W,3], got {frame.dtype} {list(frame.shape)}")
    return frame


def build_panel(original: Any, mask: Any, generated: Any, labels: tuple[str, str, str] = PANEL_LABELS,
                max_tile_side: int = MAX_TILE_SIDE) -> np.ndarray:
    """ORIGINAL | MASK | GENERATED as one labelled uint8 [H', 3W'+2s, 3] image.

    ``mask`` is [H,W] (bool or numeric; > 0.5 is the repainted area). Tiles larger than
    ``max_tile_side`` are scaled down (keeps the judge's image-token count bounded).
    """
    from PIL import Image, ImageDraw

    original = _check_frame("original", original)
    generated = _check_frame("generated", generated)
    mask_arr = np.asarray(mask)
    if mask_arr.ndim != 2 or mask_arr.shape != original.shape[:2] or generated.shape != original.shape:
        raise ValueError(f"panel shapes differ: original {list(original.shape)}, mask {list(mask_arr.shape)}, "
                         f"generated {list(generated.shape)}")
    height, width = original.shape[:2]
    scale = min(1.0, max_tile_side / max(height, width))
    th, tw = max(1, round(height * scale)), max(1, round(width * scale))
    mask_rgb = np.repeat(((mask_arr > 0.5) * 255).astype(np.uint8)[..., None], 3, axis=2)
    tiles = [_tile(t, th, tw) for t in (original, mask_rgb, generated)]
    label_h = max(14, th // 10)
    panel = np.full((label_h + th, 3 * tw + 2 * SEPARATOR_PX, 3), 96, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        x = i * (tw + SEPARATOR_PX)
        panel[label_h:, x:x + tw] = tile
        panel[:label_h, x:x + tw] = 0
    image = Image.fromarray(panel)
    draw = ImageDraw.Draw(image)
    font = _font(max(10, label_h - 4))
    for i, label in enumerate(labels):
        draw.text((i * (tw + SEPARATOR_PX) + 3, 1), label, fill=(255, 255, 255), font=font)
    return np.asarray(image).copy()
