"""SAM2 road segmentation: ``load_segmenter(cfg, policy)`` loads the video predictor once per stage
call; ``RoadSegmenter.segment(frames)`` prompts and propagates the road through one clip.
Image mode (single frames, no memory: lane datasets): ``load_image_segmenter(cfg, policy)``;
``RoadImageSegmenter.segment(frames)`` prompts each frame on its own.

Profiles, one code path (only the loader differs):

- ``full``: SAM2.1 checkpoints by hub id (``--model tiny|small|base_plus|large``, default large,
  the checkpoint file sam2's ``from_pretrained`` reads, at the commit ``lanepaint fetch-models`` pinned), or a
  local ``--checkpoint`` (path or URI) with the
  packaged config of ``--model`` or ``--model-config``. ``vos_optimized`` (torch.compile) on GPU.
- ``tiny``: the Hiera-T config shrunk (64 px images, a 5-block trunk, one memory-attention layer,
  two memory frames) with random weights from ``torch.manual_seed(tiny_seed)``; CPU, float32,
  about 6.7M parameters, single-threaded. Its masks are meaningless; they only exercise the
  pipeline code (the default seed is one whose masks are not all empty: see SegmentConfig).

Frames decoded by core go straight into an inference state built here from the arrays (the same
content ``init_state`` builds from a JPEG folder). Long clips run in windows of ``cfg.window``
frames sharing one frame, each seeded with the previous window's mask, so memory stays bounded;
``offload_video_to_cpu``/``offload_state_to_cpu`` move frames and memories off the GPU.

Image mode builds the plain SAM2 model (``build_sam2``, the model ``SAM2ImagePredictor`` wraps) with
the same configs, overrides and checkpoints, and runs the image predictor's steps on it (encoder,
no-memory embedding, prompt encoder, mask decoder, logits resized to the frame) in batches. It does
not use ``SAM2ImagePredictor`` itself: that class imports torchvision for its transforms, which CPU
environments cannot have (see UPSTREAM_NOTES); the resize here is the video loader's PIL bicubic.

This is the only module of the stage that imports torch and sam2.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import sam2.sam2_video_predictor as _sam2_video_predictor
import torch
import torch.nn.functional as F
from PIL import Image
from sam2.build_sam import build_sam2, build_sam2_video_predictor
from sam2.modeling.sam2_base import SAM2Base
from sam2.sam2_video_predictor import SAM2VideoPredictor
from tqdm import tqdm as _tqdm

from core import storage
from core.device import DevicePolicy, tiny_cpu_threads, torch_threads
from core.errors import LanepaintError, UsageError, one_line
from segmentation.cleanup import default_workers
from segmentation.config import MODEL_CONFIGS, MODEL_HUB_IDS, SegmentConfig
from segmentation.prompts import get_strategy, plan_windows, prompt_frames

log = logging.getLogger(__name__)

# sam2 draws its own tqdm bar for every propagation (one per window); our runner already shows
# progress per video and logs one line each, so the library's bars are switched off.
_sam2_video_predictor.tqdm = functools.partial(_tqdm, disable=True)

TINY_IMAGE_SIZE = 64
TINY_OVERRIDES = (
    f"++model.image_size={TINY_IMAGE_SIZE}",
    "++model.image_encoder.trunk.embed_dim=16",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    # a global-attention block must not open a stage: block 3 is the 2nd block of stage 3
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.dim_feedforward=256",
    "++model.num_maskmem=2",
)


@dataclass
class LoadedPredictor:
    predictor: SAM2Base        # a SAM2VideoPredictor (video mode) or the plain SAM2Base (image mode)
    policy: DevicePolicy
    description: dict[str, Any]

    @property
    def image_size(self) -> int:
        return int(self.predictor.image_size)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _load_tiny(cfg: SegmentConfig, policy: DevicePolicy, image_mode: bool) -> tuple[SAM2Base, dict[str, Any]]:
    torch.manual_seed(cfg.tiny_seed)
    build = build_sam2 if image_mode else build_sam2_video_predictor
    model = build(MODEL_CONFIGS["tiny"], ckpt_path=None, device=policy.device,
                  hydra_overrides_extra=list(TINY_OVERRIDES))
    return model, {"name": "SAM2.1 Hiera (tiny test config, random weights)",
                   "source": MODEL_CONFIGS["tiny"], "overrides": list(TINY_OVERRIDES), "seed": cfg.tiny_seed}


def _load_full(cfg: SegmentConfig, policy: DevicePolicy, image_mode: bool) -> tuple[SAM2Base, dict[str, Any]]:
    kwargs: dict[str, Any] = {"device": policy.device}
    if not image_mode:
        kwargs["vos_optimized"] = cfg.vos_optimized
    if cfg.checkpoint:
        config = cfg.model_config or MODEL_CONFIGS[cfg.model]
        local = storage.fetch(cfg.checkpoint, cfg.cache_dir or storage.DEFAULT_CACHE_DIR)
        build = build_sam2 if image_mode else build_sam2_video_predictor
        model = build(config, ckpt_path=local, **kwargs)
        return model, {"name": f"SAM2.1 Hiera ({cfg.model})", "source": cfg.checkpoint, "config": config}
    from huggingface_hub import hf_hub_download
    from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

    from core.model_lock import pinned_revision

    hub_id = MODEL_HUB_IDS[cfg.model]
    config, filename = HF_MODEL_ID_TO_FILENAMES[hub_id]
    revision = pinned_revision(hub_id)      # what sam2's own from_pretrained does, at the pinned commit
    local = hf_hub_download(repo_id=hub_id, filename=filename, revision=revision)
    build = build_sam2 if image_mode else build_sam2_video_predictor
    model = build(config, ckpt_path=local, **kwargs)
    return model, {"name": f"SAM2.1 Hiera ({cfg.model})", "source": hub_id, "revision": revision or "main"}


def load_predictor(cfg: SegmentConfig, policy: DevicePolicy, image_mode: bool = False) -> LoadedPredictor:
    """Build the video predictor (or, ``image_mode``, the plain SAM2 model) for ``cfg.profile`` on
    ``policy.device`` (eval mode)."""
    if cfg.vos_optimized and not policy.is_cuda:
        raise UsageError("vos_optimized (torch.compile of SAM2) needs a CUDA device")
    loader = _load_tiny if cfg.profile == "tiny" else _load_full
    try:
        predictor, description = loader(cfg, policy, image_mode)
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:  # hub/network/checkpoint errors: one line, run-level failure
        what = "tiny config" if cfg.profile == "tiny" else (cfg.checkpoint or MODEL_HUB_IDS[cfg.model])
        reason = one_line(exc)
        raise LanepaintError(f"cannot load SAM2 model: {reason}" if what in reason
                             else f"cannot load SAM2 model {what}: {reason}") from None
    predictor.eval()
    description |= {
        "profile": cfg.profile,
        "mode": "image" if image_mode else "video",
        "image_size": int(predictor.image_size),
        "parameters": _params(predictor),
        "device": policy.describe(),
        "vos_optimized": bool(cfg.vos_optimized and not image_mode),
    }
    log.info("SAM2 loaded (%s mode): %s (%s, %d px, %.1fM parameters) on %s", description["mode"],
             description["name"], description["source"], description["image_size"],
             description["parameters"] / 1e6, description["device"])
    return LoadedPredictor(predictor, policy, description)


# ---- the inference state, built from decoded frames (no JPEG folder) ---------------------------
IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)


def _resize_square(frames: np.ndarray, size: int, workers: int) -> np.ndarray:
    """``[N, H, W, 3]`` uint8 -> ``[N, size, size, 3]`` uint8, PIL bicubic (as sam2's JPEG loader)."""
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = np.asarray(Image.fromarray(frames[i]).resize((size, size), Image.Resampling.BICUBIC))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, range(len(frames))))
    return out


class NormalisedFrames:
    """The ``images`` of an inference state: uint8 square frames, normalised on access.

    sam2 reads ``images[i]`` and moves it to the compute device as float32; keeping uint8 here (on
    CPU when offloading, else on the device) holds 4x less memory than the float32 stack sam2's
    own loader builds, and returns the same values.
    """

    def __init__(self, square_u8: np.ndarray, device: torch.device) -> None:
        self.u8 = torch.from_numpy(square_u8).to(device)
        self.device = device
        self.mean = torch.tensor(IMG_MEAN, dtype=torch.float32, device=device)[:, None, None]
        self.std = torch.tensor(IMG_STD, dtype=torch.float32, device=device)[:, None, None]

    def __len__(self) -> int:
        return int(self.u8.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        img = self.u8[index].permute(2, 0, 1).to(torch.float32) / 255.0
        return (img - self.mean) / self.std


@torch.inference_mode()
def init_state_from_frames(predictor: SAM2VideoPredictor, frames: np.ndarray, offload_video_to_cpu: bool = True,
                           offload_state_to_cpu: bool = False, workers: int = 1,
                           square: np.ndarray | None = None) -> dict[str, Any]:
    """What ``SAM2VideoPredictor.init_state`` builds from a JPEG folder, built from ``[N, H, W, 3]``
    uint8 RGB frames in memory: square-resized ImageNet-normalised images, the original size, the
    devices, and empty per-object prompt/output tables. ``square``: the frames already resized
    (``RoadSegmenter.model_input``), e.g. by the thread that decoded them."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [N, H, W, 3] with N >= 1, got {frames.dtype} {frames.shape}")
    device = predictor.device
    size = int(predictor.image_size)
    if square is None:
        square = _resize_square(frames, size, workers)
    elif square.shape != (len(frames), size, size, 3):
        raise ValueError(f"model input {square.shape} does not match {len(frames)} frames at {size}x{size}")
    state: dict[str, Any] = {
        "images": NormalisedFrames(square, torch.device("cpu") if offload_video_to_cpu else device),
        "num_frames": len(frames),
        "offload_video_to_cpu": offload_video_to_cpu,
        "offload_state_to_cpu": offload_state_to_cpu,
        "video_height": int(frames.shape[1]),
        "video_width": int(frames.shape[2]),
        "device": device,
        "storage_device": torch.device("cpu") if offload_state_to_cpu else device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {},
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        "frames_tracked_per_obj": {},
    }
    return state


# ---- road segmentation of one clip ---------------------------------------------------------------
OBJ_ID = 1


class SegmentationStopped(LanepaintError):
    """A segmentation asked to stop (``RoadSegmenter.segment``'s ``should_stop``)."""


class RoadSegmenter:
    """Prompts the road and propagates it through a clip, window by window; reused across videos."""

    def __init__(self, loaded: LoadedPredictor, cfg: SegmentConfig) -> None:
        self.loaded = loaded
        self.predictor = loaded.predictor
        self.policy = loaded.policy
        self.strategy = get_strategy(cfg.prompt)
        self.reprompt_every = cfg.reprompt_every
        self.direction = cfg.direction
        self.window = cfg.window
        self.offload_video = cfg.offload_video_to_cpu
        self.offload_state = cfg.offload_state_to_cpu
        self.workers = default_workers(cfg.workers)
        # The tiny model's tensors are so small that torch's intra-op threads cost more than they
        # give (5x slower on a busy 2-core machine): run it single-threaded, restore afterwards.
        self.threads = tiny_cpu_threads(cfg.profile, not self.policy.is_cuda)

    def _add_prompt(self, state: dict[str, Any], local: int, frame: np.ndarray) -> None:
        prompt = self.strategy.prompt_for(frame)
        self.predictor.add_new_points_or_box(state, frame_idx=local, obj_id=OBJ_ID, points=prompt.points,
                                             labels=prompt.labels, box=prompt.box)

    def model_input(self, frames: np.ndarray) -> np.ndarray:
        """The frames as SAM2 takes them: ``[T, S, S, 3]`` uint8 squares (bicubic, as sam2's own loader). CPU
        work that the thread decoding the frames can do, so that the segmenting thread only feeds the model."""
        return _resize_square(frames, int(self.predictor.image_size), self.workers)

    def segment(self, frames: np.ndarray, square: np.ndarray | None = None,
                should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Raw road masks ``[T, H, W]`` bool (logits > 0) for uint8 RGB frames ``[T, H, W, 3]``; ``square``:
        their ``model_input`` when already made; ``should_stop``: asked after every frame, True raises
        ``SegmentationStopped`` (a time limit or a shutdown reached the thread running this)."""
        with torch_threads(self.threads):
            return self._segment(frames, square, should_stop)

    @torch.inference_mode()
    def _segment(self, frames: np.ndarray, square: np.ndarray | None = None,
                 should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        total, height, width = frames.shape[:3]
        masks = np.zeros((total, height, width), dtype=bool)
        prompted = prompt_frames(total, self.reprompt_every, self.direction)
        backward = self.direction == "backward"
        seeded = False
        with warnings.catch_warnings(), self.policy.autocast():
            # without the optional compiled sam2._C, hole filling of low-res logits is skipped
            warnings.filterwarnings("ignore", message=r".*cannot import name '_C'.*")
            warnings.filterwarnings("ignore", message=r".*Skipping the post-processing step.*")
            for start, end in plan_windows(total, self.window, self.direction):
                state = init_state_from_frames(self.predictor, frames[start:end], self.offload_video,
                                               self.offload_state, self.workers,
                                               None if square is None else square[start:end])
                seed = end - 1 if backward else start
                mask_seeded = seeded and bool(masks[seed].any())
                if mask_seeded:  # continue from the previous window's mask on the shared frame
                    self.predictor.add_new_mask(state, frame_idx=seed - start, obj_id=OBJ_ID, mask=masks[seed])
                else:
                    self._add_prompt(state, seed - start, frames[seed])
                for g in prompted:
                    if start <= g < end and g != seed:
                        self._add_prompt(state, g - start, frames[g])
                for local, _ids, logits in self.predictor.propagate_in_video(
                        state, start_frame_idx=seed - start, reverse=backward):
                    if should_stop is not None and should_stop():
                        raise SegmentationStopped(f"segmentation stopped at frame {start + local} of {total}")
                    if mask_seeded and start + local == seed:
                        continue
                    masks[start + local] = (logits[0, 0] > 0).cpu().numpy()
                seeded = True
                del state
        return masks


def load_segmenter(cfg: SegmentConfig, policy: DevicePolicy) -> RoadSegmenter:
    """Load the predictor for ``cfg`` once and wrap it for road segmentation."""
    return RoadSegmenter(load_predictor(cfg, policy), cfg)


# ---- image mode: each frame on its own (lane datasets) ------------------------------------------
class RoadImageSegmenter:
    """Road masks for independent frames with SAM2 in image mode; load once, reuse for every video.

    The steps of ``SAM2ImagePredictor.set_image_batch`` + ``predict``, batched: square resize and
    ImageNet normalisation, ``forward_image``, the no-memory embedding, one prompt per frame
    (``cfg.prompt``), a single-mask decoder output (SAM2 falls back to its most stable multimask
    output by itself), logits resized bilinearly to the frame and thresholded at 0.
    """

    def __init__(self, loaded: LoadedPredictor, cfg: SegmentConfig, batch_size: int = 8) -> None:
        self.loaded = loaded
        self.model = loaded.predictor
        self.policy = loaded.policy
        self.strategy = get_strategy(cfg.prompt)
        self.batch_size = max(1, int(batch_size))
        self.workers = default_workers(cfg.workers)
        self.threads = tiny_cpu_threads(cfg.profile, not self.policy.is_cuda)

    def segment(self, frames: np.ndarray) -> np.ndarray:
        """Raw road masks ``[N, H, W]`` bool for uint8 RGB frames ``[N, H, W, 3]`` (one size)."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
        with torch_threads(self.threads):
            out = np.zeros(frames.shape[:3], dtype=bool)
            for start in range(0, len(frames), self.batch_size):
                out[start:start + self.batch_size] = self._batch(frames[start:start + self.batch_size])
            return out

    def _prompts(self, frames: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Point (and box corner) prompts of every frame in the model's input coordinates."""
        height, width = frames.shape[1:3]
        scale = np.array([size / width, size / height], dtype=np.float32)
        coords, labels = [], []
        for frame in frames:
            prompt = self.strategy.prompt_for(frame)
            pts, lab = [], []
            if prompt.box is not None:  # a box is its two corners with labels 2 and 3, placed first
                pts.append(np.asarray(prompt.box, np.float32).reshape(2, 2))
                lab.append(np.array([2, 3], np.int32))
            if prompt.points is not None:
                pts.append(np.asarray(prompt.points, np.float32))
                lab.append(np.asarray(prompt.labels, np.int32))
            coords.append(np.concatenate(pts) * scale)
            labels.append(np.concatenate(lab))
        device = self.model.device
        return (torch.from_numpy(np.stack(coords)).to(device),
                torch.from_numpy(np.stack(labels)).to(device=device, dtype=torch.int32))

    @torch.inference_mode()
    def _batch(self, frames: np.ndarray) -> np.ndarray:
        model, size = self.model, int(self.model.image_size)
        count, height, width = frames.shape[:3]
        square = NormalisedFrames(_resize_square(frames, size, self.workers), model.device)
        images = torch.stack([square[i] for i in range(count)])
        coords, labels = self._prompts(frames, size)
        with self.policy.autocast():
            backbone = model.forward_image(images)
            _, feats, _, sizes = model._prepare_backbone_features(backbone)
            if model.directly_add_no_mem_embed:
                feats[-1] = feats[-1] + model.no_mem_embed
            maps = [f.permute(1, 2, 0).reshape(count, -1, *hw) for f, hw in zip(feats, sizes, strict=True)]
            sparse, dense = model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
            low_res, _iou, _tokens, _scores = model.sam_mask_decoder(
                image_embeddings=maps[-1], image_pe=model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
                repeat_image=False, high_res_features=maps[:-1])
        logits = F.interpolate(low_res.float(), (height, width), mode="bilinear", align_corners=False)
        return (logits[:, 0] > 0).cpu().numpy()


def load_image_segmenter(cfg: SegmentConfig, policy: DevicePolicy, batch_size: int = 8) -> RoadImageSegmenter:
    """Load the plain SAM2 model for ``cfg`` once and wrap it for per-frame road segmentation."""
    return RoadImageSegmenter(load_predictor(cfg, policy, image_mode=True), cfg, batch_size)
