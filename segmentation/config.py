"""Configuration of stage 1 (``lanepaint segment``): one frozen dataclass, stdlib only.

Values come from defaults < config file < environment < command line (``core.config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from core.config import StageSettings, check_seed, require, setting
from core.device import check_device
from core.errors import UsageError
from core.moment import EDIT_WINDOW_FRAMES, MOMENT_FPS
from core.stage_cli import command_line

# --model sizes -> Hugging Face hub ids of the SAM2.1 checkpoints (full profile)
MODEL_HUB_IDS = {
    "tiny": "facebook/sam2.1-hiera-tiny",
    "small": "facebook/sam2.1-hiera-small",
    "base_plus": "facebook/sam2.1-hiera-base-plus",
    "large": "facebook/sam2.1-hiera-large",
}
# the packaged sam2 configs of those sizes (used with a local --checkpoint)
MODEL_CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
TINY_SEED = 4
DEFAULT_FPS = 8.0       # VideoPainter's (and CogVideoX's) frame rate
MAX_FPS = 120.0         # resampling above a camera's rate only repeats frames


@dataclass(frozen=True)
class SegmentConfig(StageSettings):
    """Everything one ``run_segment`` call needs (``lanepaint segment``).

    ``window``: frames per SAM2 inference state; longer clips are cut into windows that overlap by one
    frame, each seeded with the previous window's mask, so memory stays bounded (0: no limit).
    ``tiny_seed``: the default 4 is a seed whose random object-score head does not answer "no object"
    on every frame: with seeds 0, 1, 3, 6, 8, 9, 14, 15 every tiny mask is empty (README, Stage 1).
    """

    SECTION: ClassVar[str] = "segment"
    RETIRED_ENV: ClassVar[Mapping[str, str]] = {
        name: "give the chunk range in the input URI: --input 'chunks://bucket/prefix?start=N&end=M&per_chunk=K'"
        for name in ("SAM2_CHUNK_START", "SAM2_CHUNK_END", "SAM2_FILES_PER_CHUNK")}

    inputs: tuple[str, ...] = setting(
        (), help="videos: local paths, gs:// URIs or chunks://bucket/prefix?start=..&end=.. (repeatable)",
        flag="--input", nargs="+", metavar="URI", env=None, pipeline=False)
    model: Literal["tiny", "small", "base_plus", "large"] = setting(
        "large", help="SAM2.1 size of the full profile", aliases=("SAM2_MODEL",), group="model")
    checkpoint: str | None = setting(
        None, help="local SAM2 checkpoint (.pt path or URI) instead of the hub download",
        aliases=("SAM2_CHECKPOINT",), group="model")
    model_config: str | None = setting(
        None, help="packaged sam2 config for --checkpoint, e.g. configs/sam2.1/sam2.1_hiera_l.yaml",
        default_text="the one of --model", aliases=("SAM2_CONFIG",), group="model")
    tiny_seed: int = setting(TINY_SEED, help="seed of the tiny profile's random weights", group="model",
                             check=check_seed)
    max_frames: int = setting(150, help="frames per video after resampling", aliases=("SAM2_MAX_FRAMES",),
                              group="frames")
    fps: float | None = setting(
        None, help="resampling frame rate", default_text="8 (VideoPainter's rate); 10 with --plan-moment (holds "
        "the driving model's frame times t0 - 0.1 k)", aliases=("SAM2_FPS",), group="frames")
    plan_moment: bool = setting(
        False, help="plan the moment t0 stage 3 evaluates (1.6 s of history before it, 6.4 s of future after it) "
        "and keep only the edit window ending at t0; a video too short for it fails here", default_text="off; on "
        "in a lanepaint run that goes on to stage 3", group="frames")
    edit_window: int = setting(
        EDIT_WINDOW_FRAMES, help="with --plan-moment: frames of the window ending at t0, at most --max-frames (49: "
        "one VideoPainter window; 0: the whole video up to --max-frames, t0 the latest edited moment with 6.4 s of "
        "future)",
        group="frames")
    prompt: Literal["points6", "points9", "box"] = setting(
        "points6", help="prompt strategy: 6 or 9 positive points on the lower frame, or a box",
        aliases=("SAM2_PROMPT",), group="prompting")
    reprompt_every: int = setting(0, help="prompt again every N frames to stop drift (0: first frame only)",
                                  aliases=("SAM2_REPROMPT_EVERY",), group="prompting")
    direction: Literal["forward", "backward"] = setting(
        "forward", help="propagate from the first frame forward, or from the last frame backward",
        aliases=("SAM2_DIRECTION",), group="prompting")
    window: int = setting(160, help="frames per SAM2 state; longer clips run in windows seeded by the previous "
                          "mask (0: no limit)", aliases=("SAM2_WINDOW",), group="memory and device")
    device: str | None = setting(None, help="auto, cpu, cuda or cuda:N", default_text="auto",
                                 aliases=("SAM2_DEVICE",), group="memory and device")
    vos_optimized: bool = setting(False, help="torch.compile SAM2 (GPU only; slow first video, faster after)",
                                  aliases=("SAM2_VOS_OPTIMIZED",), group="memory and device")
    offload_video_to_cpu: bool = setting(True, help="keep the resized frames in CPU memory",
                                         aliases=("SAM2_OFFLOAD_VIDEO",), group="memory and device")
    offload_state_to_cpu: bool = setting(False, help="keep SAM2's memory bank in CPU memory (less GPU memory, "
                                         "a bit slower)", aliases=("SAM2_OFFLOAD_STATE",), group="memory and device")
    prefetch: bool = setting(True, help="pipeline the videos: write one while the next is segmented and the one "
                             "after is fetched and decoded (two threads; at most three videos' frames in memory, and one video at "
                             "SAM2's input size)")
    workers: int = setting(0, help="threads for resizing, cleanup and writing (0: one per CPU, at most 8)",
                           group="memory and device")
    caption: str = setting("", help="caption written into VideoPainter's meta.csv", group="frames")

    def validate(self) -> None:
        if self.fps is None:
            object.__setattr__(self, "fps", MOMENT_FPS if self.plan_moment else DEFAULT_FPS)
        if self.model_config is not None and self.checkpoint is None:
            raise UsageError("--model-config needs --checkpoint (a local checkpoint file)")
        require((
            (self.max_frames >= 1, f"--max-frames must be >= 1, got {self.max_frames}"),
            (0 < self.fps <= MAX_FPS, f"--fps {self.fps:g}: must be in (0, {MAX_FPS:g}]"),
            (self.edit_window >= 0, f"--edit-window must be >= 0 (0: the whole video), got {self.edit_window}"),
            (self.reprompt_every >= 0, f"--reprompt-every must be >= 0, got {self.reprompt_every}"),
            (self.window == 0 or self.window >= 2, f"--window must be 0 (no limit) or >= 2 frames, got {self.window}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
            (not (self.vos_optimized and self.profile == "tiny"),
             "--vos-optimized (torch.compile) is for the full profile on a GPU"),
        ))
        check_device(self.device, "--device")


def edit_command(run_id: str, output_root: str, profile: str) -> str:
    """The command that runs stage 2 on this run's VideoPainter hand-off."""
    return command_line("lanepaint", "edit", data_run_id=run_id, output_root=output_root, profile=profile)
