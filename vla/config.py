"""Configuration of stage 3 (driving-VLA evaluation) and of the renderer. Standard library + core only."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from core.config import Settings, StageSettings, check_seed, overwrite_setting, require, setting
from core.device import DEVICE_HELP, check_device
from core.driving_dataset import CAMERA_NAME, DEFAULT_CAMERAS
from core.errors import UsageError

DEFAULT_MODEL_PATH = "nvidia/Alpamayo-R1-10B"
PROCESSOR_SOURCE = "Qwen/Qwen3-VL-2B-Instruct"   # upstream hard-codes it: image processor + chat template
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def _dataset_dir(**declared: Any) -> Any:
    return setting("", help="Hugging Face cache folder holding the PhysicalAI-AV dataset",
                   default_text="the Hugging Face hub cache", aliases=("PAI_DATASET_DIR",), **declared)


def _dataset_revision(**declared: Any) -> Any:
    return setting(None, aliases=("PAI_DATASET_REVISION",),
                   **({"help": "dataset commit (40 hex)", "default_text": "the cache's refs/main"} | declared))


def _cameras(help: str, **declared: Any) -> Any:
    return setting(DEFAULT_CAMERAS, help=help, **declared)


def check_cameras(cameras: tuple[str, ...]) -> None:
    bad = [c for c in cameras if not CAMERA_NAME.match(c)]
    if bad or not cameras:
        raise UsageError(f"--cameras {','.join(cameras)!r}: expected camera names like camera_front_wide_120fov")


@dataclass(frozen=True)
class EvaluateConfig(StageSettings):
    """``lanepaint evaluate``: plan on original vs edited clips and measure the change (minADE).

    ``video_data`` is stage 2's output: a ``vp/<run_id>`` root, one instruction folder under it, or
    one ``*_vp_edit_sample0.mp4``. ``dataset_dir`` is a Hugging Face cache directory holding
    ``datasets--nvidia--PhysicalAI-Autonomous-Vehicles`` (empty: the default Hugging Face cache).
    ``t0_offset`` is where the edited clip's first frame lies on the dataset camera timeline,
    after the camera's first frame (0: the clip given to stage 1 starts with the dataset clip).
    """

    SECTION: ClassVar[str] = "evaluate"

    video_data: str = setting("", help="stage 2 output: <root>/vp/<run_id>, one instruction folder under it, or one "
                              "*_vp_edit_sample0.mp4 (local path, gs:// or memory://)", env=None,
                              default_text="required", pipeline=False)
    model: Literal["auto", "alpamayo", "constant-velocity"] = setting(
        "auto", help="trajectory model; auto = alpamayo (the tiny profile builds its architecture with random "
        "weights)", aliases=("ALPAMAYO_MODEL",), group="driving model")
    model_path: str = setting(DEFAULT_MODEL_PATH, help="Alpamayo-R1 checkpoint: hub id or local folder (released "
                              "layout)", aliases=("ALPAMAYO_MODEL_PATH", "ALPAMAYO_MODEL_ID"), group="driving model")
    processor_path: str = setting(PROCESSOR_SOURCE, help="image processor and chat template of the driving model "
                                  "(hub id or local folder)", group="driving model")
    model_offline: bool = setting(False, help="load the checkpoint, its backbone config and tokenizer and the "
                                  "processor from local files only (a node without network)", group="driving model")
    num_traj_samples: int = setting(1, help="trajectory samples per input; minADE takes the best, the plan "
                                    "displacement averages the paired samples", aliases=("ALPAMAYO_NUM_TRAJ_SAMPLES",),
                                    group="driving model")
    max_generation_length: int | None = setting(None, help="most reasoning tokens sampled before the trajectory",
                                                default_text="full 256, tiny 16", group="driving model")
    baseline: bool = setting(True, help="also run the constant-velocity baseline on every clip, reported beside "
                             "the model as a reference line", group="driving model")
    video_name: str = setting("auto", help="auto = every edited clip; else comma-separated video ids "
                              "(<clip>.<camera>), clip ids or file names", aliases=("ALPAMAYO_VIDEO_NAME",))
    dataset_dir: str = _dataset_dir(group="driving dataset")
    dataset_revision: str | None = _dataset_revision(group="driving dataset")
    dataset_offline: bool = setting(True, help="read PhysicalAI-AV from the local cache only",
                                    aliases=("HF_HUB_OFFLINE",), group="driving dataset")
    cameras: tuple[str, ...] = _cameras(help="comma-separated cameras the model sees (the edited one is always "
                                        "added)", group="driving dataset")
    frame_spacing: Literal["model", "edit"] = setting(
        "model", help="the 4 frames per camera ending at t0: 0.1 s apart as the driving model was trained (model), "
        "or the edited clip's frame step (edit: 0.125 s at 8 fps); each the frame at or before its time",
        group="driving dataset")
    t0_offset: float = setting(0.0, help="seconds between the dataset camera's first frame and the edited "
                                 "clip's first frame", group="driving dataset")
    render: bool = setting(True, help="overlay and comparison videos per clip")
    device: str = setting("auto", help=f"{DEVICE_HELP} (Alpamayo only)")
    seed: int = setting(42, help="sampling and bootstrap seed", check=check_seed)
    bootstrap_samples: int = setting(10000, help="bootstrap resamples of the report's confidence intervals",
                                     group="report statistics")
    permutation_samples: int = setting(10000, help="sign-flip resamples of the report's p-values (exact below "
                                       "about 14 clips)", group="report statistics")

    def validate(self) -> None:
        if not self.video_data:
            raise UsageError("--video-data is required (stage 2 output: vp/<run_id> or one instruction folder)")
        check_cameras(self.cameras)
        if self.dataset_revision is not None and self.dataset_offline and not _HEX40.match(self.dataset_revision):
            raise UsageError(f"--dataset-revision {self.dataset_revision!r}: offline access needs a 40-hex "
                             "commit id (leave it empty to use the cache's refs/main)")
        require((
            (self.num_traj_samples >= 1, f"--num-traj-samples {self.num_traj_samples}: must be >= 1"),
            (self.bootstrap_samples >= 100, "--bootstrap-samples must be >= 100"),
            (self.permutation_samples >= 100, "--permutation-samples must be >= 100"),
            (bool(self.video_name.strip()), "--video-name must not be empty (use auto for every video)"),
            (math.isfinite(self.t0_offset), f"--t0-offset {self.t0_offset}: must be a finite number of seconds"),
        ))
        check_device(self.device)
        if self.max_generation_length is None:
            object.__setattr__(self, "max_generation_length", 256 if self.profile == "full" else 16)
        require(((self.max_generation_length >= 1, "--max-generation-length must be >= 1"),))

    @property
    def resolved_model(self) -> str:
        """``auto``: Alpamayo-R1 (its tiny profile runs the same architecture with random weights)."""
        return "alpamayo" if self.model == "auto" else self.model

    def wants(self, video_id: str, clip_id: str, file_name: str) -> bool:
        """Whether ``--video-name`` selects this video (``auto``: all; else a comma list of names)."""
        if self.video_name.strip().lower() == "auto":
            return True
        names = {n.strip() for n in self.video_name.split(",") if n.strip()}
        return bool(names & {video_id, clip_id, file_name, file_name.rsplit(".mp4", 1)[0]})


@dataclass(frozen=True)
class RenderConfig(Settings):
    """``lanepaint render``: overlay and comparison videos from ``*_vis_data.npz`` files.

    ``source`` is one npz or a folder searched recursively; videos go next to each npz unless
    ``out_dir`` is given.
    """

    SECTION: ClassVar[str] = "render"

    source: str = setting("", help="a *_vis_data.npz, or a folder searched recursively (local, gs://, memory://)",
                          positional=True, env=None, metavar="NPZ_OR_FOLDER")
    out_dir: str | None = setting(None, help="folder for the videos", default_text="next to each npz",
                                  flag="--out", env=None)
    fps: float = setting(10.0, help="frame rate of the videos")
    overwrite: bool = overwrite_setting()

    def validate(self) -> None:
        if not self.source:
            raise UsageError("a *_vis_data.npz file or a folder is required")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise UsageError(f"--fps {self.fps}: must be > 0")


@dataclass(frozen=True)
class FetchDatasetConfig(Settings):
    """``lanepaint fetch-dataset``: the PhysicalAI-AV files some clips need, into a Hugging Face cache folder.

    Clips are given as clip ids or video ids ``<clip_id>.<camera>`` (whose camera is then added), on the
    command line or in a text file (one per line). The hub token comes from ``HF_TOKEN`` (or the token
    ``huggingface-cli login`` saved): the dataset is gated.
    """

    SECTION: ClassVar[str] = "fetch-dataset"

    clips: tuple[str, ...] = setting((), help="clip ids or <clip_id>.<camera> video ids", flag="--clip", nargs="+",
                                     metavar="ID", env=None)
    clips_from: str | None = setting(None, help="a text file of clip or video ids, one per line ('#' comments)",
                                     env=None, metavar="FILE")
    cameras: tuple[str, ...] = _cameras(help="comma-separated cameras to fetch besides the ego motion (those of "
                                        "lanepaint evaluate --cameras)")
    dataset_dir: str = _dataset_dir()
    revision: str | None = _dataset_revision(flag="--revision", help="dataset revision: a commit (40 hex) or a branch",
                                             default_text="main, resolved to its commit (written to the cache's "
                                             "refs/main)")
    endpoint: str | None = setting(None, help="hub endpoint (a mirror)", default_text="https://huggingface.co",
                                   aliases=("HF_ENDPOINT",))
    workers: int = setting(4, help="files downloaded at the same time")
    dry_run: bool = setting(False, help="list the files and their sizes (cached or to download); download nothing "
                            "but the small metadata, into a temporary folder", env=None)

    def validate(self) -> None:
        check_cameras(self.cameras)
        if not self.clips and not self.clips_from:
            raise UsageError("no clips: give --clip ID [ID ...] or --clips-from FILE")
        require(((self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),))
