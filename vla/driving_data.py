"""The PhysicalAI-AV bridge: camera frames, ego history and ground-truth future through ``physical_ai_av``.

The dataset is read from a Hugging Face cache tree (``<dataset_dir>/datasets--nvidia--PhysicalAI-
Autonomous-Vehicles/{refs,snapshots}``) at an explicit 40-hex revision. ``HF_HUB_OFFLINE=1`` is set
here, the one place, before ``physical_ai_av`` (and with it ``huggingface_hub``) is imported. When
``huggingface_hub`` was already imported online (e.g. by a model loader in the same process), the
interface instance is switched to offline mode before it reads anything, so no lookup leaves the
machine either way.

What a sample holds (as Alpamayo-R1's loader builds it): 16 history poses at 0.1 s ending at t0 and
64 future poses at 0.1 s after t0, both in the ego frame at t0; 4 frames per camera ending at t0 at the
times stage 3 asks for (0.1 s apart by default), each the frame *at or before* its time, picked from the
reader's timestamps and decoded with its own ``decode_images_from_frame_indices``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import cv2
import numpy as np

from core.driving_dataset import (
    FUTURE_S,
    HISTORY_S,
    NUM_FUTURE,
    NUM_HISTORY,
    REPO_FOLDER,
    REPO_ID,
    TRAJ_STEP_S,
    camera_index,
)
from core.errors import LanepaintError, UsageError, brief

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrivingSample:
    clip_id: str
    t0_us: int
    camera_names: tuple[str, ...]     # sorted by camera index
    camera_indices: np.ndarray        # [N] int64
    frames: np.ndarray                # [N, T, H, W, 3] uint8, the dataset's (original) frames
    frame_timestamps_us: np.ndarray   # [N, T] int64, timestamps of the frames used
    ego_history_xyz: np.ndarray       # [16, 3] in the t0 ego frame
    ego_history_rot: np.ndarray       # [16, 3, 3]
    ego_future_xyz: np.ndarray        # [64, 3]
    ego_future_rot: np.ndarray        # [64, 3, 3]

    def with_camera(self, camera: str, new_frames: np.ndarray) -> np.ndarray:
        """All frames with ``camera``'s replaced by ``new_frames`` (bilinear resize if sizes differ)."""
        k = self.camera_names.index(camera)
        out = self.frames.copy()
        out[k] = fit_frames(new_frames, self.frames.shape[2:4])
        return out


def fit_frames(frames: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` resized bilinearly to ``size_hw`` when they differ."""
    h, w = size_hw
    if frames.shape[1:3] == (h, w):
        return frames
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames])


def _import_physical_ai_av(offline: bool):
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    import physical_ai_av

    return physical_ai_av


def resolve_revision(dataset_dir: str, revision: str | None) -> str:
    if revision:
        return revision
    ref = os.path.join(dataset_dir, REPO_FOLDER, "refs", "main")
    try:
        with open(ref, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        raise UsageError(f"--dataset-dir {dataset_dir}: no PhysicalAI-AV cache there ({ref} missing); "
                         "give --dataset-revision or a complete Hugging Face cache") from None


class DrivingData:
    """One open dataset interface, reused for every video of a run."""

    def __init__(self, dataset_dir: str, revision: str | None = None, offline: bool = True) -> None:
        if not dataset_dir:
            import huggingface_hub.constants as hf_constants

            dataset_dir = hf_constants.HF_HUB_CACHE
        self.dataset_dir = dataset_dir
        self.offline = offline
        self.revision = resolve_revision(dataset_dir, revision) if offline else revision
        pai = _import_physical_ai_av(offline)

        class _Interface(pai.PhysicalAIAVDatasetInterface):
            def _load_metadata(iface) -> None:   # runs inside the parent __init__, before any read
                if offline:
                    iface.is_offline_mode = True
                super()._load_metadata()

        try:
            self.avdi = _Interface(revision=self.revision, repo_id=REPO_ID, cache_dir=dataset_dir,
                                   token=False if offline else None)
        except Exception as exc:  # the package raises many kinds for a broken cache
            raise UsageError(f"--dataset-dir {dataset_dir}: cannot open PhysicalAI-AV revision "
                             f"{self.revision}: {brief(exc, 200)}") from None
        self.egomotion_feature = self.avdi.features.LABELS.EGOMOTION
        self.version = getattr(pai, "__version__", "?")
        log.info("PhysicalAI-AV dataset %s at revision %s (%d clips, offline=%s)", dataset_dir,
                 self.revision, len(self.avdi.clip_index), offline)

    def describe(self) -> dict[str, object]:
        return {"dataset_dir": self.dataset_dir, "revision": self.revision, "offline": self.offline,
                "physical_ai_av": self.version, "clips": int(len(self.avdi.clip_index))}

    def _feature(self, clip_id: str, feature: str):
        return self.avdi.get_clip_feature(clip_id, feature, maybe_stream=not self.offline)

    def check(self, clip_id: str, cameras: tuple[str, ...]) -> None:
        if clip_id not in self.avdi.clip_index.index:
            raise LanepaintError(f"clip {clip_id} is not in the dataset (revision {self.revision})")
        presence = getattr(self.avdi, "feature_presence", None)
        for camera in cameras:
            present = camera in self.avdi.features.ALL
            if present and presence is not None and camera in presence.columns and clip_id in presence.index:
                present = bool(presence.at[clip_id, camera])
            if not present:
                raise LanepaintError(f"clip {clip_id} has no {camera} in the dataset")

    def load(self, clip_id: str, camera: str, t0_after_start_us: int, cameras: tuple[str, ...],
             frame_offsets_us: np.ndarray) -> DrivingSample:
        """History, future and one frame per camera at each of ``t0 - frame_offsets_us`` (oldest first).

        t0 is ``t0_after_start_us`` after the first frame of ``camera`` (the edited camera): the
        edited clip's source video covers that camera's clip from its start. Each frame is the one at or
        before its time, the rule of Alpamayo-R1's loader.
        """
        names = tuple(sorted(set(cameras) | {camera}, key=camera_index))
        self.check(clip_id, names)
        readers = {}
        try:
            readers[camera] = self._feature(clip_id, camera)
            t0_us = int(readers[camera].timestamps[0]) + int(t0_after_start_us)
            history_xyz, history_rot, future_xyz, future_rot = self._trajectory(clip_id, t0_us)
            wanted = t0_us - np.asarray(frame_offsets_us, dtype=np.int64)
            frames, stamps = [], []
            for name in names:
                if name not in readers:
                    readers[name] = self._feature(clip_id, name)
                reader = readers[name]
                idx = at_or_before(reader.timestamps, wanted, clip_id, name)
                frames.append(reader.decode_images_from_frame_indices(idx))
                stamps.append(reader.timestamps[idx])
        finally:
            for reader in readers.values():
                reader.close()
        sizes = {f.shape[1:3] for f in frames}
        if len(sizes) > 1:   # upstream stacks the cameras into one tensor: bring them to one size
            size = max(sizes, key=lambda hw: hw[0] * hw[1])
            frames = [fit_frames(f, size) for f in frames]
        return DrivingSample(clip_id, t0_us, names,
                             np.array([camera_index(c) for c in names], dtype=np.int64),
                             np.stack(frames), np.stack(stamps).astype(np.int64),
                             history_xyz, history_rot, future_xyz, future_rot)

    def _trajectory(self, clip_id: str, t0_us: int):
        ego = self._feature(clip_id, self.egomotion_feature)
        start, end = (int(v) for v in ego.time_range)
        have_history = (t0_us - start) / 1e6
        have_future = (end - t0_us) / 1e6
        if have_history < HISTORY_S - 1e-6:
            raise LanepaintError(f"clip {clip_id}: t0 = {t0_us / 1e6:.3f} s has {max(have_history, 0):.2f} s "
                                 f"of ego history, needs {HISTORY_S:.1f} s")
        if have_future < FUTURE_S - 1e-6:
            raise LanepaintError(f"clip {clip_id}: t0 = {t0_us / 1e6:.3f} s has {max(have_future, 0):.2f} s "
                                 f"of ego future, needs {FUTURE_S:.1f} s")
        step = int(round(TRAJ_STEP_S * 1e6))
        history_t = t0_us + step * np.arange(-(NUM_HISTORY - 1), 1, dtype=np.int64)
        future_t = t0_us + step * np.arange(1, NUM_FUTURE + 1, dtype=np.int64)
        history, future = ego(history_t).pose, ego(future_t).pose
        origin_rot_inv = history.rotation[-1].inv()
        origin_xyz = history.translation[-1]

        def local(pose):
            xyz = origin_rot_inv.apply(pose.translation - origin_xyz)
            return xyz, (origin_rot_inv * pose.rotation).as_matrix()

        return (*local(history), *local(future))


def at_or_before(stamps: np.ndarray, wanted: np.ndarray, clip_id: str, camera: str) -> np.ndarray:
    """Index of the frame at or before each wanted time (microseconds); a time before the camera's first
    frame or more than a frame period after its last is a one-line error."""
    stamps = np.asarray(stamps, dtype=np.int64)
    period = int(np.median(np.diff(stamps))) if len(stamps) > 1 else 0
    if wanted.min() < stamps[0] or wanted.max() > stamps[-1] + period:
        raise LanepaintError(f"clip {clip_id} {camera}: frames at {wanted.min() / 1e6:.3f}..{wanted.max() / 1e6:.3f} s "
                             f"are outside the camera's {stamps[0] / 1e6:.3f}..{stamps[-1] / 1e6:.3f} s")
    return (np.searchsorted(stamps, wanted, side="right") - 1).astype(np.int64)
