"""Item claims: two invocations on one run root never compute the same item at the same time.

Before an item runs, the invocation creates ``<run_root>/_claims/<item>.json`` with an exclusive create
(``storage.create_exclusive``: a hard link locally, ``ifGenerationMatch=0`` on gs://), refreshes it every
``HEARTBEAT_S`` while the item runs and removes it when the item ends. Another invocation that finds a
live claim leaves the item to its holder and reports it as claimed (one line naming the host, process and
age), so a second run on the same run id does the remaining work instead of all of it, and shards of one
run never collide. A claim is stale when its holder is gone: its heartbeat is older than ``ttl_s``, or it
was made on this host by a process that no longer exists (a kill -9); a stale claim is taken over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from core import storage
from core.errors import StorageError
from core.ids import item_file_name

log = logging.getLogger(__name__)

CLAIMS_DIR = "_claims"
HEARTBEAT_S = 60.0
TTL_S = 900.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Claim:
    """A claim held by this invocation; ``release`` when the item ends."""

    store: ClaimStore
    item_id: str
    uri: str

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"claim {self.item_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.store.heartbeat_s):
            try:
                storage.write_text(self.uri, self.store.payload(self.item_id))
            except StorageError as exc:
                log.warning("%s: could not refresh its claim (%s)", self.item_id, exc)

    def release(self) -> None:
        self.store._active.discard(self.item_id)
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            storage.rm(self.uri)
        except StorageError as exc:
            log.warning("%s: could not remove its claim %s (%s); it goes stale in %.0f s", self.item_id, self.uri,
                        exc, self.store.ttl_s)


class ClaimStore:
    """Claims under one run root, for one invocation."""

    def __init__(self, run_root: str, ttl_s: float = TTL_S, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.run_root, self.ttl_s, self.heartbeat_s = run_root, ttl_s, heartbeat_s
        self.host, self.pid, self.token = socket.gethostname(), os.getpid(), uuid.uuid4().hex[:12]
        self.started = time.time()
        self._reserved: dict[str, Claim] = {}
        self._active: set[str] = set()      # items this invocation holds now (reserved or acquired)
        self._lock = threading.RLock()      # a read-ahead thread reserves while the runner acquires

    def uri(self, item_id: str) -> str:
        return storage.join(self.run_root, CLAIMS_DIR, item_file_name(item_id))

    def payload(self, item_id: str) -> str:
        return json.dumps({"item_id": item_id, "host": self.host, "pid": self.pid, "token": self.token,
                           "started_at": self.started, "heartbeat_at": time.time()})

    def reserve(self, item_id: str) -> bool:
        """Claim an item ahead of its turn (work done for it early: a batch, a read-ahead); its ``acquire`` then
        returns this claim. True when this invocation holds it already; False when another one does."""
        with self._lock:
            if item_id in self._active:      # reserved or acquired by this invocation
                return True
            claim = self.acquire(item_id)
            if isinstance(claim, str):
                return False
            self._reserved[item_id] = claim
            return True

    def release_reserved(self) -> None:
        """Release the reservations whose items never came (a run that stopped early)."""
        with self._lock:
            reserved, self._reserved = list(self._reserved.values()), {}
        for claim in reserved:
            claim.release()

    def acquire(self, item_id: str) -> Claim | str:
        """A ``Claim`` for the item, or a one-line description of the live claim another invocation holds."""
        with self._lock:
            if item_id in self._reserved:
                return self._reserved.pop(item_id)
            return self._acquire(item_id)

    def _acquire(self, item_id: str) -> Claim | str:
        uri = self.uri(item_id)
        for _ in range(3):
            if storage.create_exclusive(uri, self.payload(item_id).encode()):
                self._active.add(item_id)
                return Claim(self, item_id, uri)
            holder = self._read(uri)
            if holder is None:            # removed in the meantime (or unreadable: treat as gone)
                storage.rm(uri)
                continue
            why = self._stale(holder)
            if why is None:
                age = time.time() - float(holder.get("started_at", time.time()))
                return (f"claimed by another run ({holder.get('host')} pid {holder.get('pid')}, running for "
                        f"{age:.0f} s)")
            log.warning("%s: taking over a stale claim (%s)", item_id, why)
            storage.rm(uri)
        return "claimed by another run (its claim could not be taken over)"

    @staticmethod
    def _read(uri: str) -> dict | None:
        try:
            value = json.loads(storage.read_text(uri))
        except (StorageError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def _stale(self, holder: dict) -> str | None:
        try:
            beat = float(holder["heartbeat_at"])
            pid = int(holder["pid"])
        except (KeyError, TypeError, ValueError):
            return "unreadable claim"
        if time.time() - beat > self.ttl_s:
            return f"no heartbeat for {time.time() - beat:.0f} s"
        if holder.get("host") == self.host and pid != self.pid and not _pid_alive(pid):
            return f"its process {pid} on this host is gone"
        return None
