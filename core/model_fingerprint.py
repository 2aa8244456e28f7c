"""Which weights a run used, for its manifest: ``weights_record(profile, objects, hub_ids)``.

- tiny profile: ``weights_sha256``, a sha256 over every parameter and buffer of the models (name, dtype,
  shape and bytes, in name order). The same seed gives the same hash; a change in a tiny config or in the
  seeding shows up as a different hash.
- full profile: ``revisions``, each hub id's resolved commit, read from the Hugging Face cache the weights
  were loaded from (``.../snapshots/<commit>/``; the commit ``lanepaint fetch-models`` pinned, else main's); hashing billions of parameters at every start would cost
  more than it tells, so full weights are identified by their commit.

``objects`` are torch modules, diffusers pipelines (their ``components``) or wrappers holding either under
``model``, ``pipe``, ``pipeline`` or ``predictor``. torch is imported only when a hash is computed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from core.model_lock import is_hub_id

_SNAPSHOT = re.compile(r"[/\\]snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)")
_WRAPPED = ("model", "pipe", "pipeline", "predictor", "net")


def modules_of(obj: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Every torch module reachable from ``obj`` (see the module docstring), by a dotted name."""
    import torch

    if obj is None or depth > 3:
        return {}
    if isinstance(obj, torch.nn.Module):
        return {prefix or "model": obj}
    found: dict[str, Any] = {}
    components = getattr(obj, "components", None)
    if isinstance(components, Mapping):
        for name, value in components.items():
            if isinstance(value, torch.nn.Module):
                found[f"{prefix}{name}"] = value
    for attr in _WRAPPED:
        value = getattr(obj, attr, None)
        if value is not None and value is not obj:
            found.update(modules_of(value, f"{prefix}{attr}.", depth + 1))
    return found


def weights_sha256(modules: Mapping[str, Any]) -> str:
    """sha256 over the named modules' state (parameters and buffers), in name order."""
    import torch

    digest = hashlib.sha256()
    seen: set[int] = set()
    for name in sorted(modules):
        module = modules[name]
        if id(module) in seen:           # one module reachable twice (a shared encoder) counts once
            continue
        seen.add(id(module))
        for key, tensor in sorted(module.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}.{key}:{t.dtype}:{tuple(t.shape)};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def snapshot_commit(path: str | None) -> str | None:
    """The commit of a file or folder inside a Hugging Face cache snapshot, else None."""
    match = _SNAPSHOT.search(path or "")
    return match.group(1) if match else None


def hub_commit(repo_id: str, cache_dir: str | None = None, revision: str | None = None,
               repo_type: str = "model") -> str | None:
    """The commit the cache holds for ``repo_id`` at ``revision`` (default main), without network."""
    if not is_hub_id(repo_id):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("config.json", "model_index.json", "preprocessor_config.json", "README.md"):
            found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision,
                                           repo_type=repo_type)
            if isinstance(found, str):
                return snapshot_commit(found)
    except Exception:    # no hub library or an unreadable cache: the record says unknown
        return None
    return None


def weights_record(profile: str, objects: Iterable[Any] = (), hub_ids: Iterable[str] = (),
                   cache_dir: str | None = None) -> dict[str, Any]:
    """What the manifest records about the weights (see the module docstring)."""
    if profile == "tiny":
        modules: dict[str, Any] = {}
        for index, obj in enumerate(objects):
            modules.update(modules_of(obj, f"{index}."))
        return {"weights_sha256": weights_sha256(modules) if modules else None}
    from core.model_lock import pinned_revision

    return {"revisions": {hub_id: hub_commit(hub_id, cache_dir, pinned_revision(hub_id, cache_dir))
                          or "unknown (not in the hub cache)" for hub_id in hub_ids if hub_id}}
