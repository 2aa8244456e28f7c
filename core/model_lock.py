"""The pinned model revisions: ``lanepaint-models.lock.json`` in the Hugging Face hub cache.

``lanepaint fetch-models`` resolves every checkpoint a config needs to a commit, downloads it into the cache
and writes this file; every loader then asks ``pinned_revision(repo_id)`` and passes the commit to
``from_pretrained`` (None without a lock, or for a local folder: the hub's default branch), so two runs a
week apart read the same weights. The lock lives next to the weights (``HF_HUB_CACHE``, or the folder
given), so a shared model cache carries its own pins.
"""

from __future__ import annotations

import json
import os
from typing import Any

from core import storage

LOCK_NAME = "lanepaint-models.lock.json"


def hub_cache_dir(cache_dir: str | None = None) -> str:
    """The hub cache folder: ``cache_dir``, else ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the default."""
    if cache_dir:
        return cache_dir
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "hub")


def lock_path(cache_dir: str | None = None) -> str:
    return os.path.join(hub_cache_dir(cache_dir), LOCK_NAME)


def read_lock(cache_dir: str | None = None) -> dict[str, Any]:
    """``{"repos": {repo_id: {"revision": commit, "requested": ..., "files": n, "bytes": n}}}`` or empty."""
    try:
        with open(lock_path(cache_dir), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {"repos": {}}
    return data if isinstance(data.get("repos"), dict) else {"repos": {}}


def is_hub_id(value: str | None) -> bool:
    """``org/name`` that is not an existing local path."""
    if not value or value.startswith(("/", ".", "~")) or "://" in value or os.path.exists(value):
        return False
    parts = value.split("/")
    return len(parts) == 2 and all(parts)


def pinned_revision(repo_id: str | None, cache_dir: str | None = None) -> str | None:
    """The commit the lock pins ``repo_id`` to, else None."""
    if not is_hub_id(repo_id):
        return None
    entry = read_lock(cache_dir)["repos"].get(repo_id)
    return entry.get("revision") if isinstance(entry, dict) else None


def write_lock(repos: dict[str, dict[str, Any]], cache_dir: str | None = None) -> str:
    """Merge ``repos`` into the lock (written whole under a temp name, then moved); its path."""
    path = lock_path(cache_dir)
    data = read_lock(cache_dir)
    data["repos"] = {**data["repos"], **repos}
    storage.write_text(path, json.dumps(data, indent=2, sort_keys=True))    # temp name, then moved
    return path
