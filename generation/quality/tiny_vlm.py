"""A tiny Qwen2.5-VL (random weights) and its image-only processor, built offline in about a second.

The same classes as the full model (``Qwen2_5_VLForConditionalGeneration``, ``Qwen2_5_VLProcessor``
through ``ImageOnlyQwenProcessor``) from a tiny config:

- text model: 2 layers, hidden 32, 4 heads of 8 (2 key/value heads); the multimodal rotary
  sections ``mrope_section`` must sum to head_dim / 2 = 4, so (2, 1, 1) for (time, height, width);
- vision tower: 2 blocks, hidden 32, patch 14, spatial merge 2 (one 28x28 area = one token),
  window 56, the last block with full attention;
- image processor: PIL backend without torchvision with min/max pixels of 4 and 16 merged tokens, so any
  panel becomes 4-16 image tokens;
- tokenizer: ``tiny_qwen_tokenizer()`` (byte-level BPE with the Qwen chat and vision tokens).

Its answers are random bytes: the judge parses them to FAIL, which is what the tests expect.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from core.tokenizers import (
    QWEN_CHAT_TEMPLATE,
    image_only_processor,
    qwen_image_processor_class,
    tiny_qwen_tokenizer,
)

log = logging.getLogger(__name__)

TINY_SOURCE = "tiny-random-qwen2.5-vl"
TINY_SEED = 0
TINY_MIN_PIXELS = 28 * 28 * 4
TINY_MAX_PIXELS = 28 * 28 * 16

def build_processor(image_processor: Any, tokenizer: Any) -> Any:
    """An image-only Qwen2.5-VL processor, left padding (batched generation), a chat template."""
    tokenizer.padding_side = "left"
    template = getattr(tokenizer, "chat_template", None) or QWEN_CHAT_TEMPLATE
    from transformers import Qwen2_5_VLProcessor

    return image_only_processor(Qwen2_5_VLProcessor)(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=None, chat_template=template
    )


def tiny_qwen_config(tokenizer: Any) -> Any:
    from transformers import Qwen2_5_VLConfig

    def tid(token: str) -> int:
        return int(tokenizer.convert_tokens_to_ids(token))

    end = tid("<|im_end|>")
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 1, 1]},
            "bos_token_id": None, "eos_token_id": end, "pad_token_id": tid("<|endoftext|>"),
        },
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
            "out_hidden_size": 32, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "window_size": 56, "fullatt_block_indexes": [1],
        },
        image_token_id=tid("<|image_pad|>"),
        video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"),
        vision_end_token_id=tid("<|vision_end|>"),
    )


def build_tiny_qwen(device: str = "cpu", dtype: Any = torch.float32, seed: int = TINY_SEED) -> tuple[Any, Any]:
    """(model in eval mode on ``device``, processor): random weights, seeded, offline."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    tokenizer = tiny_qwen_tokenizer()
    image_processor = qwen_image_processor_class()(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    processor = build_processor(image_processor, tokenizer)
    config = tiny_qwen_config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model = model.to(device=device, dtype=dtype).eval()
    log.debug("tiny Qwen2.5-VL: %d parameters", sum(p.numel() for p in model.parameters()))
    return model, processor
