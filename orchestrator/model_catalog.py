"""Every checkpoint a full-profile run of the given stages needs, from the stage configs (no torch).

``checkpoints(stages, segment, edit, evaluate) -> list[Checkpoint]``. Each names its hub repository, the
files a loader reads (``patterns``, fnmatch; None: the whole repository) and the stage and role it serves.
Local folders and files given instead of hub ids are not listed: they are already where they are read.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.model_lock import is_hub_id
from generation.config import QWEN_SIZES
from segmentation.config import MODEL_HUB_IDS

WEIGHTS = ("*.json", "*.txt", "*.model", "*.safetensors", "*.jinja")   # configs, tokenizers, safetensors weights
PROCESSOR = ("*.json", "*.txt", "*.model", "*.jinja")                  # tokenizer / image processor / template
ALPAMAYO_BACKBONE = "Qwen/Qwen3-VL-8B-Instruct"    # AlpamayoR1Config's default vlm_name_or_path (its config only)


@dataclass(frozen=True)
class Checkpoint:
    stage: str
    role: str
    repo_id: str
    patterns: tuple[str, ...] | None = None

    def wants(self, name: str) -> bool:
        from fnmatch import fnmatch

        return self.patterns is None or any(fnmatch(name, p) for p in self.patterns)


def checkpoints(stages: str, segment: object | None = None, edit: object | None = None,
                evaluate: object | None = None) -> list[Checkpoint]:
    out: list[Checkpoint] = []

    def add(stage: str, role: str, repo: str | None, patterns: tuple[str, ...] | None) -> None:
        if is_hub_id(repo) and not any(c.repo_id == repo and c.patterns == patterns for c in out):
            out.append(Checkpoint(stage, role, str(repo), patterns))

    if "1" in stages and segment is not None and not getattr(segment, "checkpoint", None):
        add("segment", "sam2", MODEL_HUB_IDS[segment.model], None)
    if "2" in stages and edit is not None:
        add("edit", "video: CogVideoX-5B I2V", edit.cog_model, None)
        branch = f"{edit.branch_subfolder.strip('/')}/*" if edit.branch_subfolder else None
        add("edit", "video: VideoPainter branch", edit.branch_model, (branch,) if branch else None)
        add("edit", "first frame: FluxFill", edit.flux_model,
            ("model_index.json", "scheduler/*", "text_encoder/*", "text_encoder_2/*", "tokenizer/*",
             "tokenizer_2/*", "transformer/*", "vae/*"))        # the diffusers layout, not the single-file copy
        add("edit", "first frame: LoRA", edit.img_inpainting_lora_path, None)
        add("edit", "video: ID LoRA", edit.id_lora_path, None)
        if edit.judge:
            size = (edit.qwen_model or "").upper()
            add("edit", "judge: Qwen2.5-VL", QWEN_SIZES.get(size, edit.qwen_model), WEIGHTS)
        if edit.metrics:
            add("edit", "metrics: CLIP score", edit.clip_score_model, WEIGHTS)
            add("edit", "metrics: temporal consistency", edit.clip_temporal_model, WEIGHTS)
    if "3" in stages and evaluate is not None and evaluate.resolved_model == "alpamayo":
        add("evaluate", "driving model: Alpamayo-R1", evaluate.model_path, None)
        add("evaluate", "driving model: backbone config and tokenizer", ALPAMAYO_BACKBONE, PROCESSOR)
        add("evaluate", "driving model: processor", evaluate.processor_path, PROCESSOR)
    return out
