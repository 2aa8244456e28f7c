"""Configuration of stage 3 (driving-VLA evaluation) and of the renderer. Standard library only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from core.driving_dataset import CAMERA_NAME, DEFAULT_CAMERAS
from core.errors import UsageError

MODELS = ("auto", "alpamayo", "constant-velocity")
DEFAULT_MODEL_PATH = "nvidia/Alpamayo-R1-10B"
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class EvaluateConfig:
    """``lanepaint evaluate``: plan on original vs edited clips and measure the change (minADE).

    ``video_data`` is stage 2's output: a ``vp/<run_id>`` root, one instruction folder under it, or
    one ``*_vp_edit_sample0.mp4``. ``dataset_dir`` is a Hugging Face cache directory holding
    ``datasets--nvidia--PhysicalAI-Autonomous-Vehicles`` (empty: the default Hugging Face cache).
    ``t0_offset_s`` is where the edited clip's first frame lies on the dataset camera timeline,
    after the camera's first frame (0: the clip given to stage 1 starts with the dataset clip).
    """

    video_data: str = ""
    run_id: str = ""
    output_root: str = "outputs"
    model: Literal["auto", "alpamayo", "constant-velocity"] = "auto"
    model_path: str = DEFAULT_MODEL_PATH
    num_traj_samples: int = 1
    video_name: str = "auto"
    dataset_dir: str = ""
    dataset_revision: str | None = None
    dataset_offline: bool = True
    cameras: tuple[str, ...] = DEFAULT_CAMERAS
    t0_offset_s: float = 0.0
    render: bool = True
    profile: Literal["full", "tiny"] = "full"
    device: str = "auto"
    overwrite: bool = False
    cache_dir: str | None = None
    seed: int = 42
    bootstrap_samples: int = 10000
    permutation_samples: int = 10000

    def __post_init__(self) -> None:
        if not self.video_data:
            raise UsageError("--video-data is required (stage 2 output: vp/<run_id> or one instruction folder)")
        if self.num_traj_samples < 1:
            raise UsageError(f"--num-traj-samples {self.num_traj_samples}: must be >= 1")
        bad = [c for c in self.cameras if not CAMERA_NAME.match(c)]
        if bad or not self.cameras:
            raise UsageError(f"--cameras {','.join(self.cameras)!r}: expected camera names like "
                             "camera_front_wide_120fov")
        if self.dataset_revision is not None and self.dataset_offline and not _HEX40.match(self.dataset_revision):
            raise UsageError(f"--dataset-revision {self.dataset_revision!r}: offline access needs a 40-hex "
                             "commit id (leave it empty to use the cache's refs/main)")
        if self.bootstrap_samples < 100 or self.permutation_samples < 100:
            raise UsageError("bootstrap and permutation samples must be >= 100")
        if not self.video_name.strip():
            raise UsageError("--video-name must not be empty (use auto for every video)")

    @property
    def resolved_model(self) -> str:
        """``auto``: Alpamayo-R1 for the full profile, the constant-velocity baseline for tiny."""
        if self.model != "auto":
            return self.model
        return "constant-velocity" if self.profile == "tiny" else "alpamayo"

    def wants(self, video_id: str, clip_id: str, file_name: str) -> bool:
        """Whether ``--video-name`` selects this video (``auto``: all; else a comma list of names)."""
        if self.video_name.strip().lower() == "auto":
            return True
        names = {n.strip() for n in self.video_name.split(",") if n.strip()}
        return bool(names & {video_id, clip_id, file_name, file_name.rsplit(".mp4", 1)[0]})


@dataclass(frozen=True)
class RenderConfig:
    """``lanepaint render``: overlay and comparison videos from ``*_vis_data.npz`` files.

    ``source`` is one npz or a folder searched recursively; videos go next to each npz unless
    ``out_dir`` is given.
    """

    source: str = ""
    out_dir: str | None = None
    fps: float = 10.0
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.source:
            raise UsageError("a *_vis_data.npz file or a folder is required")
        if self.fps <= 0:
            raise UsageError(f"--fps {self.fps}: must be > 0")
