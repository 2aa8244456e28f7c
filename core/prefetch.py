"""Read ahead: ``ReadAhead(load, items, depth=1).get(item)`` returns ``load(item)``, while the next ``depth``
items are already being loaded on background threads (fetch and decode of the next videos while the current
one is on the device). An item's failure is raised when that item is asked for, never for another one; items
skipped in between (done already, claimed by another worker) are dropped, so at most ``depth`` loaded items
wait in memory. ``enabled=False`` loads in line. Items need an ``item_id``; one with an ``error`` is not
read ahead.

A long load can ask ``should_stop(item)`` as it goes: True once its consumer gave up on it (``get`` for that
item raised: its own failure, its time limit, an interrupt) or the read-ahead is closing, so it can stop
instead of running to the end on its thread."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

WAIT_SLICE_S = 0.1


class ReadAhead:
    def __init__(self, load: Callable[[Any], Any], items: Sequence[Any], depth: int = 1, enabled: bool = True) -> None:
        self.load, self.items, self.depth = load, list(items), max(1, depth)
        self.index = {item.item_id: i for i, item in enumerate(self.items)}
        self.pool = ThreadPoolExecutor(self.depth, thread_name_prefix="lanepaint-prefetch") if enabled else None
        self.pending: dict[str, Future] = {}
        self.given_up: set[str] = set()
        self.closing = False

    @property
    def enabled(self) -> bool:
        """False: ``get`` loads in line (a wait for it is then the work itself)."""
        return self.pool is not None

    def get(self, item: Any) -> Any:
        if self.pool is None:
            return self.load(item)
        future = self.pending.pop(item.item_id, None) or self.pool.submit(self.load, item)
        here = self.index.get(item.item_id, -1)
        for stale in [k for k in self.pending if self.index[k] < here]:
            self.pending.pop(stale).cancel()
        for upcoming in self.items[here + 1:here + 1 + self.depth] if here >= 0 else []:
            if upcoming.item_id not in self.pending and getattr(upcoming, "error", None) is None:
                self.pending[upcoming.item_id] = self.pool.submit(self.load, upcoming)
        try:
            while not future.done():   # in short waits: an item's time limit (an async exception) still lands here
                wait([future], timeout=WAIT_SLICE_S)
            return future.result()
        except BaseException:
            self.given_up.add(item.item_id)
            raise

    def should_stop(self, item: Any) -> bool:
        """For ``load``: whether the work for ``item`` is no longer wanted (see the module docstring)."""
        return self.closing or item.item_id in self.given_up

    def close(self) -> None:
        self.closing = True
        if self.pool is not None:
            for future in self.pending.values():
                future.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)
