"""The run manifest each stage writes at its run root: ``<run_root>/manifest.json``.

It holds the config, package and model versions, git revision, profile, and per-item status and
timings. Each finished item is also written on its own as ``<run_root>/_items/<item>.json`` at
the moment it finishes, so a crash keeps the record of finished items and several workers
(Flyte map shards) can share one run root; ``finalize`` merges every item record into
``manifest.json``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import json
import logging
import os
import platform
import re
import subprocess
import sys
from typing import Any

from core import storage
from core.config import config_to_dict
from core.errors import StorageError
from core.ids import item_file_name
from core.runner import CLAIMED, OK, SKIPPED, ItemResult, RunSummary

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
ITEMS_DIR = "_items"
TINY_NOTE = ("tiny profile: models have random weights; pixels, captions and trajectories are "
             "meaningless and only show that the pipeline code ran end to end")

_PACKAGES = ("lanepaint", "numpy", "av", "torch", "diffusers", "transformers", "accelerate", "peft",
             "sam2", "physical_ai_av", "flyte", "gcsfs", "fsspec", "opencv-python-headless")
_SECRET_ARG = re.compile(r"(token|secret|password|key)", re.IGNORECASE)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The commit of the checkout the code runs from, or None outside a git checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", rev) else None


def _redacted_argv(argv: list[str]) -> list[str]:
    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            out.append("<redacted>")
            hide_next = False
            continue
        if arg.startswith("--") and _SECRET_ARG.search(arg):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=<redacted>")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out


def read_item_records(run_root: str, listed: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every item record written under ``<run_root>/_items`` (item id -> record), finished or failed;
    unreadable ones are left out. Empty when the run root has none. ``listed``: every file under the run
    root, already listed by the caller (``storage.walk_files``), so that the folder is not listed again."""
    if listed is None:
        uris = [u for u in storage.ls(storage.join(run_root, ITEMS_DIR), dirs=False) if u.endswith(".json")]
    else:
        uris = [u for u in listed if u.replace("\\", "/").split("/")[-2:-1] == [ITEMS_DIR] and u.endswith(".json")]
    return {str(r["item_id"]): r for r in storage.read_json_records(uris) if "item_id" in r}


class RunManifest:
    """Collects what one stage invocation did and writes it next to its outputs."""

    def __init__(self, stage: str, run_root: str, run_id: str, config: Any, profile: str,
                 models: dict[str, Any] | None = None) -> None:
        self.stage = stage
        self.run_root = run_root
        self.run_id = run_id
        self.config = config_to_dict(config) if config is not None else {}
        self.profile = profile
        self.models: dict[str, Any] = dict(models or {})
        self.started_at = _now()
        self.results: list[ItemResult] = []

    def set_model(self, role: str, description: Any) -> None:
        self.models[role] = description

    def record(self, result: ItemResult) -> None:
        """Remember one item; finished and failed items are persisted at once. A skipped item's outputs are
        complete on disk: when its record is missing (a crash between the completion marker and the record)
        or says otherwise (an older failure), the record is rewritten from the disk, so the manifest and the
        reports never disagree with the outputs."""
        self.results.append(result)
        if result.status == CLAIMED:       # another invocation runs it and writes its record
            return
        uri = storage.join(self.run_root, ITEMS_DIR, item_file_name(result.item_id))
        if result.status == SKIPPED:
            stored = self._stored_item(uri)
            if stored is not None and stored.get("status") == OK:
                return
            payload = {"item_id": result.item_id, "status": OK, "recovered": "outputs found complete on disk; "
                       f"the record was {'missing' if stored is None else repr(stored.get('status'))}"}
        else:
            payload = result.as_dict()
        try:
            storage.write_text(uri, json.dumps(payload | {"finished_at": _now(), "profile": self.profile}, indent=2,
                                               default=str))
        except StorageError as exc:  # the output itself is written; a lost record must not fail it
            log.warning("could not write item record %s: %s", uri, exc)

    @staticmethod
    def _stored_item(uri: str) -> dict[str, Any] | None:
        try:
            if not storage.exists(uri):
                return None
            value = json.loads(storage.read_text(uri))
        except (StorageError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def _stored_items(self) -> dict[str, dict[str, Any]]:
        return read_item_records(self.run_root)

    def build(self, summary: RunSummary | None = None) -> dict[str, Any]:
        items = self._stored_items()
        for result in self.results:  # this invocation's view wins over older records
            if result.status not in (SKIPPED, CLAIMED):
                items[result.item_id] = result.as_dict() | {"profile": self.profile}
        counts: dict[str, int] = {}
        for record in items.values():
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        this_run = summary.results if summary is not None else self.results
        manifest: dict[str, Any] = {
            "stage": self.stage,
            "run_id": self.run_id,
            "run_root": self.run_root,
            "profile": self.profile,
            "updated_at": _now(),
            "command": _redacted_argv(list(sys.argv)),
            "config": self.config,
            "models": self.models,
            "versions": package_versions(),
            "git_revision": git_revision(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "last_invocation": {
                "started_at": self.started_at,
                "finished_at": _now(),
                "ok": sum(1 for r in this_run if r.status == OK),
                "skipped": sum(1 for r in this_run if r.status == SKIPPED),
                "failed": sum(1 for r in this_run if r.status not in (OK, SKIPPED, CLAIMED)),
                "claimed_by_another_run": sum(1 for r in this_run if r.status == CLAIMED),
            },
            "counts": counts,
            "items": dict(sorted(items.items())),
        }
        if self.profile == "tiny":
            manifest["profile_note"] = TINY_NOTE
        return manifest

    def finalize(self, summary: RunSummary | None = None) -> str:
        """Write ``manifest.json`` (atomically) and return its URI."""
        uri = storage.join(self.run_root, MANIFEST_NAME)
        storage.write_text(uri, json.dumps(self.build(summary), indent=2, default=str))
        return uri
