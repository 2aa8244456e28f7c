"""Alpamayo-R1's prompt and processor: the chat message of a driving sample, tokenised with images.

The message (as upstream's helper builds it): a system line; the user turn with every camera frame
(camera-major: camera 0's frames oldest first, then camera 1's, ...), then 48 ``<|traj_history|>``
placeholders between ``<|traj_history_start|>``/``<|traj_history_end|>`` and the request; an assistant
turn opened with ``<|cot_start|>`` that the model continues. The processor is Qwen3-VL's, images only:
the tokenizer of the backbone extended with Alpamayo's tokens, the image processor and chat template of
``Qwen/Qwen3-VL-2B-Instruct`` with ``min_pixels`` 163840 and ``max_pixels`` 196608.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from core.errors import LanepaintError, brief
from core.model_lock import pinned_revision
from core.tokenizers import QWEN_CHAT_TEMPLATE, image_only_processor, qwen_image_processor_class
from vla.alpamayo.config import AlpamayoR1Config
from vla.alpamayo.tokens import TRAJ_TOKENS, extend_tokenizer, special
from vla.config import PROCESSOR_SOURCE

MIN_PIXELS, MAX_PIXELS = 163840, 196608
HISTORY_PLACEHOLDERS = 48
SYSTEM = "You are a driving assistant that generates safe and accurate actions."
REQUEST = "output the chain-of-thought reasoning of the driving process, then output the future trajectory."


def message(num_images: int) -> list[dict[str, Any]]:
    history = special("traj_history_start") + special("traj_history") * HISTORY_PLACEHOLDERS + \
        special("traj_history_end")
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": [{"type": "image"}] * num_images + [{"type": "text", "text": history + REQUEST}]},
        {"role": "assistant", "content": [{"type": "text", "text": special("cot_start")}]},
    ]


def tokenize(processor: Any, frames: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """One prompt per entry of ``frames`` (each ``[N_images, H, W, 3]`` uint8, camera-major), as a batch."""
    text = processor.apply_chat_template(message(len(frames[0])), tokenize=False, add_generation_prompt=False,
                                         continue_final_message=True)
    images = [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1) for row in frames for f in row]
    return dict(processor(text=[text] * len(frames), images=images, return_tensors="pt", padding=True))


def _chat_template(source: str, local_only: bool, cache_dir: str | None) -> str | None:
    """The processor repository's chat template (``chat_template.jinja`` or ``.json``), if it has one."""
    from huggingface_hub import hf_hub_download

    for name in ("chat_template.jinja", "chat_template.json"):
        try:
            path = (os.path.join(source, name) if os.path.isdir(source)
                    else hf_hub_download(source, name, local_files_only=local_only, cache_dir=cache_dir,
                                         revision=pinned_revision(source, cache_dir)))
        except Exception:
            continue
        if os.path.isfile(path):
            text = open(path, encoding="utf-8").read()
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return None


def build_processor(image_processor: Any, tokenizer: Any, chat_template: str | None) -> Any:
    from transformers import Qwen3VLProcessor

    tokenizer.padding_side = "left"
    return image_only_processor(Qwen3VLProcessor)(image_processor=image_processor, tokenizer=tokenizer,
                                                  video_processor=None,
                                                  chat_template=chat_template or tokenizer.chat_template
                                                  or QWEN_CHAT_TEMPLATE)


def check_token_ids(config: AlpamayoR1Config, tokenizer: Any) -> None:
    """The extended tokenizer must give the ids the checkpoint was trained with."""
    got = {"<i0>": tokenizer.convert_tokens_to_ids("<i0>")} | {
        token: tokenizer.convert_tokens_to_ids(token) for token in TRAJ_TOKENS.values()}
    want = {"<i0>": config.traj_token_start_idx} | {
        TRAJ_TOKENS[k]: v for k, v in (config.traj_token_ids or {}).items() if k in TRAJ_TOKENS}
    wrong = {t: (got[t], v) for t, v in want.items() if v is not None and got[t] != v}
    if wrong or len(tokenizer) != config.vocab_size:
        raise LanepaintError(f"Alpamayo-R1 tokenizer of {config.vlm_name_or_path} does not match the checkpoint: "
                             f"token ids (got, expected) {wrong}, vocabulary {len(tokenizer)} vs {config.vocab_size}")


def load_processor(config: AlpamayoR1Config, processor_source: str = PROCESSOR_SOURCE, *, local_only: bool,
                   cache_dir: str | None = None) -> Any:
    """The full profile's processor, from local files when ``local_only`` (an offline node)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.vlm_name_or_path, local_files_only=local_only,
                                                  cache_dir=cache_dir,
                                                  revision=pinned_revision(config.vlm_name_or_path, cache_dir))
        image_processor = qwen_image_processor_class().from_pretrained(
            processor_source, min_pixels=config.min_pixels or MIN_PIXELS, max_pixels=config.max_pixels or MAX_PIXELS,
            local_files_only=local_only, cache_dir=cache_dir, revision=pinned_revision(processor_source, cache_dir))
    except (OSError, ValueError) as exc:
        where = "the local cache (offline)" if local_only else "the hub"
        raise LanepaintError(f"cannot load the Alpamayo-R1 processor ({config.vlm_name_or_path} tokenizer, "
                             f"{processor_source} image processor) from {where}: {brief(exc)}") from None
    extend_tokenizer(tokenizer, config.traj_vocab_size, config.add_special_tokens)
    check_token_ids(config, tokenizer)
    return build_processor(image_processor, tokenizer, _chat_template(processor_source, local_only, cache_dir))
