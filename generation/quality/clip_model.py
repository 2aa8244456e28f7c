"""CLIP image/text embeddings for the quality metrics (CLIP score, temporal consistency).

Entry point: ``load_clip(name, profile, policy) -> ClipEmbedder``.

- ``full``: ``transformers.CLIPModel`` from a checkpoint (hub id or folder): the metrics use
  ``openai/clip-vit-large-patch14`` for the CLIP score and ``openai/clip-vit-base-patch32`` for
  temporal consistency, as upstream did.
- ``tiny``: the same class from a tiny config (32x32 images, 2 layers), seeded random weights,
  ``tiny_clip_tokenizer()``; offline, milliseconds.

Frames stay on the device: ``image_embeds`` takes a uint8 tensor [N,H,W,3] already there and does
CLIP's preprocessing with torch (shortest side resized to the model's image size, bicubic with
antialiasing; centre crop; OpenAI mean/std). This follows ``CLIPImageProcessor`` except that its
resize runs through PIL on the CPU, so values differ slightly from embeddings of the PIL path.
Embeddings come back L2-normalised in float32.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import torch
import torch.nn.functional as F

from core.device import DevicePolicy
from generation.config import CLIP_SCORE_MODEL, CLIP_TEMPORAL_MODEL  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TINY_IMAGE_SIZE = 32


class ClipEmbedder:
    """A CLIPModel and its tokenizer on one device; image and text embeddings, normalised."""

    def __init__(self, model: Any, tokenizer: Any, policy: DevicePolicy, name: str, profile: str):
        self.model = model
        self.tokenizer = tokenizer
        self.policy = policy
        self.name = name
        self.profile = profile
        self.image_size = int(model.config.vision_config.image_size)
        self.max_text_tokens = int(model.config.text_config.max_position_embeddings)
        device = torch.device(policy.device)
        self._mean = torch.tensor(OPENAI_CLIP_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(OPENAI_CLIP_STD, device=device).view(1, 3, 1, 1)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [N,H,W,3] -> normalised float [N,3,S,S] in the model's dtype."""
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        height, width = x.shape[-2:]
        scale = self.image_size / min(height, width)
        new_h, new_w = max(self.image_size, round(height * scale)), max(self.image_size, round(width * scale))
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
        top, left = (new_h - self.image_size) // 2, (new_w - self.image_size) // 2
        x = x[..., top:top + self.image_size, left:left + self.image_size].clamp(0.0, 1.0)
        x = (x - self._mean) / self._std
        return x.to(self.policy.dtype)

    @staticmethod
    def _features(output: Any) -> torch.Tensor:
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    @torch.inference_mode()
    def image_embeds(self, frames: torch.Tensor) -> torch.Tensor:
        """L2-normalised float32 image embeddings [N,D] of uint8 frames [N,H,W,3] on the device."""
        pixels = self.preprocess(frames.to(self.policy.device))
        features = self._features(self.model.get_image_features(pixel_values=pixels))
        return F.normalize(features.float(), dim=-1)

    @torch.inference_mode()
    def squashed_image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised float32 embeddings of float images [N,3,H,W] in [0,1], each squashed whole to the
        model's square input (bilinear, antialiased) and NOT normalised by CLIP's mean and std: how
        VideoPainter's evaluation feeds its temporal-consistency CLIP (``metrics_protocol=videopainter``)."""
        size = (self.image_size, self.image_size)
        x = F.interpolate(images.to(self.policy.device).float(), size=size, mode="bilinear", antialias=True,
                          align_corners=False)
        features = self._features(self.model.get_image_features(pixel_values=x.to(self.policy.dtype)))
        return F.normalize(features.float(), dim=-1)

    @torch.inference_mode()
    def text_embeds(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised float32 text embeddings [N,D] (texts truncated to the model's 77 tokens)."""
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_text_tokens,
                                return_tensors="pt").to(self.policy.device)
        features = self._features(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                                attention_mask=tokens["attention_mask"]))
        return F.normalize(features.float(), dim=-1)

    def describe(self) -> dict[str, Any]:
        return {"name": "CLIP", "source": self.name if self.profile == "full" else f"tiny-random-clip ({self.name})",
                "profile": self.profile, "device": self.policy.device, "dtype": self.policy.dtype_name,
                "image_size": self.image_size,
                "parameters": int(sum(p.numel() for p in self.model.parameters()))}


def tiny_clip_model(tokenizer: Any, seed: int) -> Any:
    """A CLIPModel with a 32x32, 2-layer vision tower and a 2-layer text tower, seeded random weights."""
    from transformers import CLIPConfig, CLIPModel

    eos = int(tokenizer.eos_token_id)
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 77,
                     "eos_token_id": eos, "pad_token_id": int(tokenizer.pad_token_id),
                     "bos_token_id": int(tokenizer.bos_token_id)},
        vision_config={"image_size": TINY_IMAGE_SIZE, "patch_size": 8, "hidden_size": 32,
                       "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2},
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPModel(config)


def load_clip(name: str, profile: str, policy: DevicePolicy, cache_dir: str | None = None) -> ClipEmbedder:
    """Load ``name`` (full) or build its tiny stand-in (seeded by the name), in eval mode on the device."""
    if profile == "tiny":
        from core.tokenizers import tiny_clip_tokenizer

        tokenizer = tiny_clip_tokenizer()
        model = tiny_clip_model(tokenizer, seed=zlib.crc32(name.encode("utf-8")) % 2**31)
    else:
        from transformers import AutoTokenizer, CLIPModel

        from core.model_lock import pinned_revision

        revision = pinned_revision(name, cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(name, cache_dir=cache_dir, revision=revision)
        model = CLIPModel.from_pretrained(name, dtype=policy.dtype, cache_dir=cache_dir, revision=revision)
    model = model.to(device=policy.device, dtype=policy.dtype).eval()
    embedder = ClipEmbedder(model, tokenizer, policy, name, profile)
    log.info("CLIP %s loaded on %s", embedder.describe()["source"], policy.describe())
    return embedder
