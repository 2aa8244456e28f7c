"""Configuration of ``lanepaint dataset generate`` and ``lanepaint dataset filter``: stdlib only.

Values come from defaults < environment (``core.config.ENV_TABLE``, section ``dataset``) < command
line, through ``core.config.build_config(<Config>, "dataset", cli_values)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from core.errors import UsageError
from segmentation.config import MODEL_HUB_IDS, PROMPTS, TINY_SEED
from training.lane_dataset import COLORS, COUNTS, PATTERNS

SECTION = "dataset"
DEFAULT_FRAMES = (1, 100, 200, 300, 400, 500)
MIN_COVERAGE = 0.01           # the same threshold stage 1 flags (segmentation.cleanup.LOW_COVERAGE)
COPY_MODES = ("copy", "hardlink", "symlink")
SORT_KEYS = ("prompt", "image")
ANY = "any"


def _check_uri(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{what} must not be empty")


@dataclass(frozen=True)
class DatasetGenerateConfig:
    """Everything one ``generate_dataset`` call needs.

    ``sources``: ``chunks://`` URIs, video URIs (``.mp4``), folders (every ``.mp4`` below, in name
    order) or ``.txt`` lists (one URI per line, ``#`` comments); videos are taken in that order,
    skipping ``start_index`` and stopping after ``limit``. ``frames``: 0-based source frame numbers,
    read by seeking. ``min_coverage``: frames whose cleaned road mask covers less are dropped.
    ``devices``: ``auto`` (every GPU for the full profile, else CPU), ``cpu``, ``cuda``, or a comma
    list such as ``cuda:0,cuda:1``: one worker per device, each loading SAM2 and Qwen once.
    ``sam2_*`` and ``tiny_seed`` pick SAM2 as in stage 1 (``lanepaint segment --model ...``);
    ``vlm_model`` picks Qwen2.5-VL (7B, 72B, a hub id or a local folder); it sees frames scaled to at
    most ``caption_max_side`` pixels (0: full size); the dataset keeps full-size images.
    """

    sources: tuple[str, ...] = ()
    output: str = ""
    frames: tuple[int, ...] = DEFAULT_FRAMES
    start_index: int = 0
    limit: int | None = None
    profile: Literal["full", "tiny"] = "full"
    sam2_model: Literal["tiny", "small", "base_plus", "large"] = "large"
    sam2_checkpoint: str | None = None
    sam2_config: str | None = None
    prompt: Literal["points6", "points9", "box"] = "points6"
    tiny_seed: int = TINY_SEED
    min_coverage: float = MIN_COVERAGE
    vlm_model: str = "7B"
    caption_temperature: float = 0.0
    caption_max_new_tokens: int = 64
    caption_max_side: int = 1024
    batch_size: int = 8
    devices: str = "auto"
    io_workers: int = 8
    overwrite: bool = False
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        _check_uri(self.output, "--output")
        if not self.sources:
            raise UsageError("no sources: give --source (chunks://, a video, a folder or a .txt list)")
        for source in self.sources:
            _check_uri(source, "--source")
        if not self.frames:
            raise UsageError("--frames must name at least one frame number")
        if any(f < 0 for f in self.frames):
            raise UsageError(f"--frames {','.join(map(str, self.frames))}: frame numbers must be >= 0")
        if self.start_index < 0:
            raise UsageError(f"--start-index must be >= 0, got {self.start_index}")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be >= 1, got {self.limit}")
        if self.profile not in ("full", "tiny"):
            raise UsageError(f"profile {self.profile!r}: use full or tiny")
        if self.sam2_model not in MODEL_HUB_IDS:
            raise UsageError(f"--sam2-model {self.sam2_model!r}: use one of {', '.join(MODEL_HUB_IDS)}")
        if self.sam2_config is not None and self.sam2_checkpoint is None:
            raise UsageError("--sam2-config needs --sam2-checkpoint (a local checkpoint file)")
        if self.prompt not in PROMPTS:
            raise UsageError(f"--prompt {self.prompt!r}: use one of {', '.join(PROMPTS)}")
        if not 0.0 <= self.min_coverage < 1.0:
            raise UsageError(f"--min-coverage must be in [0, 1), got {self.min_coverage}")
        if self.caption_temperature < 0 or self.caption_max_new_tokens < 1 or self.caption_max_side < 0:
            raise UsageError("--caption-temperature and --caption-max-side must be >= 0, "
                             "--caption-max-new-tokens >= 1")
        if self.batch_size < 1 or self.io_workers < 1:
            raise UsageError("--batch-size and --io-workers must be >= 1")
        parse_devices(self.devices)

    @property
    def frame_numbers(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.frames)))


def parse_devices(text: str) -> tuple[str, ...]:
    """``auto``/``cpu``/``cuda``/``cuda:N`` entries of a comma list, validated (not resolved). A device
    may be listed twice (two workers on it, e.g. ``cpu,cpu``, or a GPU with room for two)."""
    items = tuple(d.strip().lower() for d in str(text).split(",") if d.strip())
    if not items:
        raise UsageError("--devices must not be empty (auto, cpu, cuda or cuda:0,cuda:1,...)")
    for item in items:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", item):
            raise UsageError(f"--devices entry {item!r}: use auto, cpu, cuda or cuda:N")
    if len(items) > 1 and "auto" in items:
        raise UsageError("--devices auto cannot be combined with other devices")
    return items


@dataclass(frozen=True)
class DatasetFilterConfig:
    """Everything one ``filter_dataset`` call needs.

    ``count``/``color``/``pattern``: the value to keep, or ``any``. ``require_clear_road``: drop rows
    with any ``unknown`` attribute. ``copy_mode``: how files reach the output (hardlink and symlink
    only between local folders; any remote side copies). ``sort``: output order (default: input order).
    ``limit``: at most this many valid rows. ``output``: default ``<input>__<count>_<color>_<pattern>``
    (+ ``_clearroad``), next to the input.
    """

    input: str = ""
    output: str | None = None
    count: str = ANY
    color: str = ANY
    pattern: str = ANY
    require_clear_road: bool = False
    copy_mode: Literal["copy", "hardlink", "symlink"] = "copy"
    sort: Literal["prompt", "image"] | None = None
    limit: int | None = None
    workers: int = 8
    overwrite: bool = False

    def __post_init__(self) -> None:
        _check_uri(self.input, "--input")
        if self.output is not None:
            _check_uri(self.output, "--output")
        for name, value, allowed in (("count", self.count, COUNTS), ("color", self.color, COLORS),
                                     ("pattern", self.pattern, PATTERNS)):
            if value != ANY and value not in allowed:
                raise UsageError(f"--{name} {value!r}: use any or one of {', '.join(allowed)}")
        if self.copy_mode not in COPY_MODES:
            raise UsageError(f"--copy-mode {self.copy_mode!r}: use one of {', '.join(COPY_MODES)}")
        if self.sort is not None and self.sort not in SORT_KEYS:
            raise UsageError(f"--sort {self.sort!r}: use prompt or image")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be >= 1, got {self.limit}")
        if self.workers < 1:
            raise UsageError(f"--workers must be >= 1, got {self.workers}")

    def output_uri(self) -> str:
        """``output``, or ``<input>__<count>_<color>_<pattern>[_clearroad]`` beside the input."""
        if self.output:
            return self.output
        suffix = f"__{self.count}_{self.color}_{self.pattern}" + ("_clearroad" if self.require_clear_road else "")
        return self.input.rstrip("/") + suffix
