"""The ``alpamayo_r1`` model config, as the released checkpoint's ``config.json`` writes it.

Its components are hydra-style ``{"_target_": "alpamayo_r1....Class", ...kwargs}`` dicts; we read the
class name and the keyword arguments and build our own modules (no hydra, no ``alpamayo_r1`` package).
The Qwen3-VL backbone's config is read from ``vlm_name_or_path`` (a hub id or folder), unless the
checkpoint embeds it as ``vlm_config`` (our tiny checkpoints, or a copy made by the model fetcher), so
a node without network loads it from local files.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from core.errors import LanepaintError

# component -> the class names (last part of ``_target_``) this port implements
SUPPORTED = {
    "action_in_proj_cfg": ("PerWaypointActionInProjV2",),
    "action_space_cfg": ("UnicycleAccelCurvatureActionSpace",),
    "diffusion_cfg": ("FlowMatching",),
    "action_out_proj_cfg": ("Linear",),
    "hist_traj_tokenizer_cfg": ("DeltaTrajectoryTokenizer",),
}
DELTA_DEFAULTS = {"num_bins": 1000, "ego_xyz_min": (-4.0, -4.0, -10.0), "ego_xyz_max": (4.0, 4.0, 10.0)}


def component(cfg: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """The keyword arguments of a component dict, after checking its class is one we implement."""
    cfg = dict(cfg or {})
    target = str(cfg.pop("_target_", "")).rsplit(".", 1)[-1]
    cfg.pop("_recursive_", None)
    if target and target not in SUPPORTED.get(name, (target,)):
        raise LanepaintError(f"Alpamayo-R1 config: {name} is {target}, which this port does not implement "
                             f"(expected {', '.join(SUPPORTED[name])})")
    return cfg


class AlpamayoR1Config(PretrainedConfig):
    model_type = "alpamayo_r1"

    def __init__(self, vlm_name_or_path: str = "Qwen/Qwen3-VL-8B-Instruct", vlm_backend: str = "qwenvl3",
                 vlm_config: dict[str, Any] | None = None, traj_tokenizer_cfg: dict[str, Any] | None = None,
                 hist_traj_tokenizer_cfg: dict[str, Any] | None = None, traj_vocab_size: int = 768,
                 tokens_per_history_traj: int = 16, tokens_per_future_traj: int = 64, model_dtype: str = "bfloat16",
                 attn_implementation: str = "sdpa", min_pixels: int | None = None, max_pixels: int | None = None,
                 add_special_tokens: bool = False, diffusion_cfg: dict[str, Any] | None = None,
                 action_space_cfg: dict[str, Any] | None = None, action_in_proj_cfg: dict[str, Any] | None = None,
                 action_out_proj_cfg: dict[str, Any] | None = None, expert_cfg: dict[str, Any] | None = None,
                 keep_same_dtype: bool = True, expert_non_causal_attention: bool = True,
                 traj_token_start_idx: int | None = None, traj_token_ids: dict[str, int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vlm_name_or_path = vlm_name_or_path
        self.vlm_backend = vlm_backend
        self.vlm_config = vlm_config
        self.traj_tokenizer_cfg = traj_tokenizer_cfg
        self.hist_traj_tokenizer_cfg = hist_traj_tokenizer_cfg
        self.traj_vocab_size = traj_vocab_size
        self.tokens_per_history_traj = tokens_per_history_traj
        self.tokens_per_future_traj = tokens_per_future_traj
        self.model_dtype = model_dtype
        self.attn_implementation = attn_implementation
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.add_special_tokens = add_special_tokens
        self.diffusion_cfg = diffusion_cfg
        self.action_space_cfg = action_space_cfg
        self.action_in_proj_cfg = action_in_proj_cfg
        self.action_out_proj_cfg = action_out_proj_cfg
        self.expert_cfg = expert_cfg
        self.keep_same_dtype = keep_same_dtype
        self.expert_non_causal_attention = expert_non_causal_attention
        self.traj_token_start_idx = traj_token_start_idx
        self.traj_token_ids = traj_token_ids

    # ---- derived facts -------------------------------------------------------------------------------
    def history_tokenizer(self) -> dict[str, Any]:
        """num_bins, ego_xyz_min, ego_xyz_max of the ego-history delta tokenizer."""
        cfg = component(self.hist_traj_tokenizer_cfg or self.traj_tokenizer_cfg, "hist_traj_tokenizer_cfg")
        out = dict(DELTA_DEFAULTS)
        out.update({k: v for k, v in cfg.items() if k in DELTA_DEFAULTS})
        return out

    @property
    def history_token_start(self) -> int:
        """Vocabulary id of history bin 0: after the future-trajectory bins when both tokenizers exist."""
        if self.traj_token_start_idx is None:
            raise LanepaintError("Alpamayo-R1 config has no traj_token_start_idx (not a released checkpoint?)")
        start = int(self.traj_token_start_idx)
        if self.hist_traj_tokenizer_cfg is not None and self.traj_tokenizer_cfg is not None:
            start += int(self.traj_tokenizer_cfg.get("num_bins", 0))
        return start

    def token_id(self, name: str) -> int:
        ids = self.traj_token_ids or {}
        if name not in ids:
            raise LanepaintError(f"Alpamayo-R1 config has no traj_token_ids[{name!r}]")
        return int(ids[name])
