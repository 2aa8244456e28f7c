"""Configuration of ``lanepaint dataset generate`` and ``lanepaint dataset filter``: stdlib only.

Values come from defaults < config file < environment < command line (``core.config``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from core.config import (
    Profile,
    Settings,
    cache_dir_setting,
    check_seed,
    overwrite_setting,
    profile_setting,
    setting,
)
from core.errors import UsageError
from segmentation.config import TINY_SEED
from training.lane_dataset import COLORS, COUNTS, PATTERNS

DEFAULT_FRAMES = (1, 100, 200, 300, 400, 500)
MIN_COVERAGE = 0.01           # the same threshold stage 1 flags (segmentation.cleanup.LOW_COVERAGE)
ANY = "any"


def _check_uri(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{what} must not be empty")


@dataclass(frozen=True)
class DatasetGenerateConfig(Settings):
    """Everything one ``generate_dataset`` call needs (``lanepaint dataset generate``).

    ``sources``: ``chunks://`` URIs, video URIs (``.mp4``), folders (every ``.mp4`` below, in name
    order) or ``.txt`` lists (one URI per line, ``#`` comments); videos are taken in that order,
    skipping ``start_index`` and stopping after ``limit``. ``frames``: 0-based source frame numbers,
    read by seeking. ``devices``: one worker per device, each loading SAM2 and Qwen once. The
    captioner sees frames scaled to at most ``caption_max_side`` pixels; the dataset keeps full-size images.
    """

    SECTION: ClassVar[str] = "dataset-generate"

    sources: tuple[str, ...] = setting(
        (), help="videos: chunks://bucket/prefix?start=..&end=.., .mp4 URIs, folders, or .txt lists (one URI per "
        "line); repeatable, taken in order", flag="--source", nargs="+", metavar="URI", env=None, pipeline=False)
    output: str = setting("", help="dataset folder URI (local path or gs://...)", env=None, default_text="required")
    frames: tuple[int, ...] = setting(DEFAULT_FRAMES, help="0-based frame numbers to take from each video, read by "
                                      "seeking", aliases=("DATASET_FRAMES",))
    start_index: int = setting(0, help="skip this many videos first")
    limit: int | None = setting(None, help="at most this many videos (listing stops there)", default_text="all")
    profile: Profile = profile_setting()
    sam2_model: Literal["tiny", "small", "base_plus", "large"] = setting("large", help="SAM2.1 size", group="SAM2")
    sam2_checkpoint: str | None = setting(None, help="local SAM2 checkpoint (path or URI) instead of the hub",
                                          group="SAM2")
    sam2_config: str | None = setting(None, help="packaged sam2 config for --sam2-checkpoint", group="SAM2")
    prompt: Literal["points6", "points9", "box"] = setting("points6", help="SAM2 prompt strategy, as in stage 1",
                                                           group="SAM2")
    tiny_seed: int = setting(TINY_SEED, help="seed of the tiny profile's SAM2 weights", group="SAM2",
                             check=check_seed)
    min_coverage: float = setting(MIN_COVERAGE, help="drop frames whose road mask covers less than this fraction",
                                  group="SAM2")
    vlm_model: str = setting("7B", help="Qwen2.5-VL captioner: 7B, 72B, a hub id or a local folder",
                             aliases=("DATASET_VLM_MODEL",), group="captioner")
    caption_temperature: float = setting(0.0, help="captioner temperature (0: greedy)", group="captioner")
    caption_max_new_tokens: int = setting(64, help="captioner answer length in tokens", group="captioner")
    caption_max_side: int = setting(1024, help="longer side of the frames the captioner sees, in pixels "
                                    "(0: full size)", group="captioner")
    batch_size: int = setting(8, help="frames per SAM2 / Qwen batch", group="runtime")
    devices: str = setting("auto", help="auto (every GPU; CPU for tiny), cpu, cuda or cuda:0,cuda:1: one worker per "
                           "device", aliases=("DATASET_DEVICES",), group="runtime")
    io_workers: int = setting(8, help="threads writing sample files", group="runtime")
    overwrite: bool = overwrite_setting(group="runtime")
    cache_dir: str | None = cache_dir_setting(group="runtime")

    def validate(self) -> None:
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
        if self.sam2_config is not None and self.sam2_checkpoint is None:
            raise UsageError("--sam2-config needs --sam2-checkpoint (a local checkpoint file)")
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
class DatasetFilterConfig(Settings):
    """Everything one ``filter_dataset`` call needs (``lanepaint dataset filter``).

    ``count``/``color``/``pattern``: the value to keep, or ``any``. ``copy_mode``: hardlink and symlink
    only between local folders; any remote side copies. ``output``: default
    ``<input>__<count>_<color>_<pattern>`` (+ ``_clearroad``), next to the input.
    """

    SECTION: ClassVar[str] = "dataset-filter"

    input: str = setting("", help="dataset folder URI (holding train.csv)", env=None, default_text="required")
    output: str | None = setting(None, help="new dataset folder", env=None,
                                 default_text="<input>__<count>_<color>_<pattern>[_clearroad]")
    count: str = setting(ANY, help="lane count to keep", choices=(*COUNTS, ANY))
    color: str = setting(ANY, help="lane colour to keep", choices=(*COLORS, ANY))
    pattern: str = setting(ANY, help="lane pattern to keep", choices=(*PATTERNS, ANY))
    require_clear_road: bool = setting(False, help="drop rows with any unknown attribute")
    copy_mode: Literal["copy", "hardlink", "symlink"] = setting("copy", help="how files reach the output")
    sort: Literal["prompt", "image"] | None = setting(None, help="output order", default_text="input order")
    limit: int | None = setting(None, help="at most this many valid rows", default_text="all")
    workers: int = setting(8, help="threads copying files")
    overwrite: bool = overwrite_setting()

    def validate(self) -> None:
        _check_uri(self.input, "--input")
        if self.output is not None:
            _check_uri(self.output, "--output")
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
