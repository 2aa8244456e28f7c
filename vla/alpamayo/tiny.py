"""The tiny profile of Alpamayo-R1: the same classes from a tiny config, seeded random weights, offline.

- backbone: ``Qwen3VLForConditionalGeneration``, text 2 layers x 64 (4 heads of 16, 2 key/value heads,
  multimodal rotary sections (4, 2, 2) summing to head_dim / 2), vision 2 blocks x 32 with 16-pixel
  patches merged 2x2, so a 32x32 area is one token; images become 4 to 16 tokens;
- expert: the text config with a narrower MLP (``expert_cfg``), without token embeddings;
- 48 trajectory bins (16 for the future tokenizer, then 32 for the ego history), all the special tokens;
- flow matching in 3 Euler steps; the action projection 2 layers x 32.

The config is written in the released layout (``_target_`` component dicts), with the backbone config
embedded (``vlm_config``) so nothing is read from the hub. Its trajectories are meaningless.
"""

from __future__ import annotations

from typing import Any

import torch

from core.tokenizers import qwen_image_processor_class, tiny_qwen_tokenizer
from vla.alpamayo.config import AlpamayoR1Config
from vla.alpamayo.processor import build_processor
from vla.alpamayo.tokens import TRAJ_TOKENS, extend_tokenizer

TINY_SOURCE = "tiny-random-alpamayo-r1"
TINY_SEED = 0
FUTURE_BINS, HISTORY_BINS = 16, 32
PATCH, MERGE = 16, 2
TINY_MIN_PIXELS = (PATCH * MERGE) ** 2 * 4
TINY_MAX_PIXELS = (PATCH * MERGE) ** 2 * 16
TINY_MAX_NEW_TOKENS = 16


def tiny_tokenizer() -> Any:
    return extend_tokenizer(tiny_qwen_tokenizer(), FUTURE_BINS + HISTORY_BINS, add_special_tokens=True)


def tiny_backbone_config(tokenizer: Any) -> dict[str, Any]:
    def tid(token: str) -> int:
        return int(tokenizer.convert_tokens_to_ids(token))

    return {
        "text_config": {
            "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 8192,
            "rope_parameters": {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [4, 2, 2],
                                "mrope_interleaved": True},
            "bos_token_id": None, "eos_token_id": tid("<|im_end|>"), "pad_token_id": tid("<|endoftext|>"),
        },
        "vision_config": {
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": PATCH,
            "spatial_merge_size": MERGE, "temporal_patch_size": 2, "out_hidden_size": 64,
            "num_position_embeddings": 64, "deepstack_visual_indexes": [0],
        },
        "image_token_id": tid("<|image_pad|>"), "video_token_id": tid("<|video_pad|>"),
        "vision_start_token_id": tid("<|vision_start|>"), "vision_end_token_id": tid("<|vision_end|>"),
        "tie_word_embeddings": False,
    }


def tiny_config(tokenizer: Any, vlm_name_or_path: str = TINY_SOURCE) -> AlpamayoR1Config:
    """The tiny model's config in the released layout (component dicts with their upstream ``_target_``)."""
    return AlpamayoR1Config(
        vlm_name_or_path=vlm_name_or_path, vlm_config=tiny_backbone_config(tokenizer),
        traj_vocab_size=FUTURE_BINS + HISTORY_BINS, add_special_tokens=True, vocab_size=len(tokenizer),
        traj_token_start_idx=int(tokenizer.convert_tokens_to_ids("<i0>")),
        traj_token_ids={k: int(tokenizer.convert_tokens_to_ids(v)) for k, v in TRAJ_TOKENS.items()},
        traj_tokenizer_cfg={"_target_": "alpamayo_r1.action_space.discrete_action_space.DiscreteTrajectoryTokenizer",
                            "num_bins": FUTURE_BINS},
        hist_traj_tokenizer_cfg={"_target_": "alpamayo_r1.models.delta_tokenizer.DeltaTrajectoryTokenizer",
                                 "num_bins": HISTORY_BINS},
        action_space_cfg={"_target_": "alpamayo_r1.action_space.unicycle_accel_curvature."
                                      "UnicycleAccelCurvatureActionSpace",
                          "accel_mean": 0.05, "accel_std": 1.2, "curvature_mean": 0.0, "curvature_std": 0.03,
                          "n_waypoints": 64, "dt": 0.1},
        action_in_proj_cfg={"_target_": "alpamayo_r1.models.action_in_proj.PerWaypointActionInProjV2",
                            "num_enc_layers": 2, "hidden_size": 32, "num_fourier_feats": 8, "max_freq": 100.0},
        action_out_proj_cfg={"_target_": "torch.nn.Linear"},
        diffusion_cfg={"_target_": "alpamayo_r1.diffusion.flow_matching.FlowMatching", "int_method": "euler",
                       "num_inference_steps": 3},
        expert_cfg={"intermediate_size": 96}, model_dtype="float32", attn_implementation="sdpa",
        architectures=["AlpamayoR1"],
    )


def tiny_processor(tokenizer: Any) -> Any:
    image_processor = qwen_image_processor_class()(
        patch_size=PATCH, merge_size=MERGE, temporal_patch_size=2, min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return build_processor(image_processor, tokenizer, None)


def build_tiny_alpamayo(seed: int = TINY_SEED) -> tuple[Any, Any]:
    """(model in eval mode on CPU, processor): seeded random weights, offline."""
    from vla.alpamayo.model import AlpamayoR1

    tokenizer = tiny_tokenizer()
    config = tiny_config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AlpamayoR1(config)
    return model.eval(), tiny_processor(tokenizer)
