"""Load Alpamayo-R1: the tiny profile in memory, or a checkpoint (the released ``nvidia/Alpamayo-R1-10B``
or a folder in its layout) strictly: every tensor of the model comes from the checkpoint and every tensor
of the checkpoint has a place in the model (0 missing, 0 unexpected keys), else a one-line error.

Offline (``local_only``): the checkpoint, the backbone's config and tokenizer (``vlm_name_or_path``) and
the processor files come from local folders or the Hugging Face cache, never the network. The model runs
with SDPA attention (flash-attn is not used: the expert's 4D float mask needs SDPA).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from core.device import DevicePolicy
from core.errors import LanepaintError, brief

log = logging.getLogger(__name__)


@dataclass
class LoadedAlpamayo:
    model: Any
    processor: Any
    description: dict[str, Any]


def backbone_config(config: Any, local_only: bool, cache_dir: str | None = None) -> Any:
    """The Qwen3-VL config: embedded in the checkpoint, else read from ``vlm_name_or_path``."""
    from transformers import Qwen3VLConfig

    if config.vlm_config:
        return Qwen3VLConfig(**config.vlm_config)
    try:
        from core.model_lock import pinned_revision

        return Qwen3VLConfig.from_pretrained(config.vlm_name_or_path, local_files_only=local_only, cache_dir=cache_dir,
                                             revision=pinned_revision(config.vlm_name_or_path, cache_dir))
    except (OSError, ValueError) as exc:
        where = "the local cache (offline)" if local_only else "the hub"
        raise LanepaintError(f"cannot read the Alpamayo-R1 backbone config {config.vlm_name_or_path} from "
                             f"{where}: {brief(exc)}") from None


def check_loading(info: dict[str, Any], source: str) -> None:
    problems = {k: sorted(info.get(k) or ()) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {k: v for k, v in problems.items() if v}
    if problems or info.get("error_msgs"):
        detail = "; ".join(f"{len(v)} {k.replace('_', ' ')} (e.g. {', '.join(map(str, v[:3]))})"
                           for k, v in problems.items())
        raise LanepaintError(f"Alpamayo-R1 checkpoint {source} does not match the model: "
                             f"{detail or brief(' '.join(map(str, info['error_msgs'])))}")


def load_checkpoint(source: str, policy: DevicePolicy, *, local_only: bool, cache_dir: str | None = None,
                    revision: str | None = None) -> Any:
    """The model from a checkpoint, strictly, in the policy's dtype, in eval mode on its device."""
    from vla.alpamayo.config import AlpamayoR1Config
    from vla.alpamayo.model import AlpamayoR1

    common = {"local_files_only": local_only, "cache_dir": cache_dir, "revision": revision}
    try:
        config = AlpamayoR1Config.from_pretrained(source, **common)
    except (OSError, ValueError) as exc:
        raise LanepaintError(f"cannot read the Alpamayo-R1 config of {source}: {brief(exc)}") from None
    config.attn_implementation = "sdpa"
    vlm_config = backbone_config(config, local_only, cache_dir)
    try:
        model, info = AlpamayoR1.from_pretrained(source, config=config, vlm_config=vlm_config, dtype=policy.dtype,
                                                 attn_implementation="sdpa", output_loading_info=True, **common)
    except (OSError, ValueError, RuntimeError) as exc:
        raise LanepaintError(f"cannot load the Alpamayo-R1 checkpoint {source}: {brief(exc)}") from None
    check_loading(info, source)
    return model.to(policy.device).eval()


def load_alpamayo(profile: str, source: str, policy: DevicePolicy, *, local_only: bool = True,
                  processor_source: str | None = None, cache_dir: str | None = None,
                  revision: str | None = None) -> LoadedAlpamayo:
    """Model and processor for ``profile``; loaded once per stage run."""
    from vla.alpamayo.processor import load_processor
    from vla.config import PROCESSOR_SOURCE

    start = time.perf_counter()
    if profile == "tiny":
        from vla.alpamayo.tiny import TINY_SEED, TINY_SOURCE, build_tiny_alpamayo

        model, processor = build_tiny_alpamayo(TINY_SEED)
        model = model.to(device=policy.device, dtype=policy.dtype)
        description = {"source": TINY_SOURCE, "seed": TINY_SEED, "note": "random weights"}
    else:
        from core.model_lock import pinned_revision

        revision = revision or pinned_revision(source, cache_dir)
        model = load_checkpoint(source, policy, local_only=local_only, cache_dir=cache_dir, revision=revision)
        processor = load_processor(model.config, processor_source or PROCESSOR_SOURCE, local_only=local_only,
                                   cache_dir=cache_dir)
        description = {"source": source, "revision": revision, "backbone": model.config.vlm_name_or_path,
                       "processor": processor_source or PROCESSOR_SOURCE, "offline": local_only}
    parameters = sum(p.numel() for p in model.parameters())
    description |= {"class": "AlpamayoR1 (lanepaint port on transformers)", "parameters": parameters,
                    "dtype": policy.dtype_name, "device": policy.describe(), "attention": "sdpa",
                    "load_seconds": round(time.perf_counter() - start, 2)}
    log.info("Alpamayo-R1 %s loaded on %s (%s parameters) in %.1fs", description["source"], policy.describe(),
             f"{parameters:,}", description["load_seconds"])
    return LoadedAlpamayo(model, processor, description)
