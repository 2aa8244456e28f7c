"""Run one function over many items with per-item isolation, timings, progress and a summary.

A failing item is recorded with a one-line reason and the run goes on; ``RunSummary.exit_code``
is 1 when any item failed. ``KeyboardInterrupt`` still stops the run.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from core.errors import LanepaintError, one_line
from core.logs import progress

log = logging.getLogger(__name__)

T = TypeVar("T")

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


class Timings:
    """Named wall-clock phases of one item: ``with t.phase("decode"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.seconds.items()}


@dataclass
class ItemResult:
    item_id: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": self.item_id, "status": self.status, "seconds": round(self.seconds, 4)}
        if self.error:
            out["error"] = self.error
        if self.timings:
            out["timings"] = self.timings
        if self.details:
            out["details"] = self.details
        return out


@dataclass
class RunSummary:
    stage: str
    results: list[ItemResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failures(self) -> list[ItemResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def add_failure(self, item_id: str, error: str) -> None:
        """Record an item that failed before it could be run (e.g. an unresolvable input)."""
        self.results.append(ItemResult(item_id, FAILED, error=error))
        log.error("%s: FAILED %s", item_id, error)

    def lines(self) -> list[str]:
        """A short human summary: counts, then one line per failure."""
        out = [f"{self.stage}: {len(self.results)} item(s): {self.count(OK)} ok, "
               f"{self.count(SKIPPED)} skipped (already done), {self.count(FAILED)} failed"]
        out += [f"  FAILED {r.item_id}: {r.error}" for r in self.failures]
        return out


ItemFn = Callable[[T, Timings], "dict[str, Any] | None"]


@dataclass
class ItemRunner(Generic[T]):
    """Runs ``fn(item, timings)`` for each item; ``fn`` may return details for the manifest.

    ``is_done(item)`` says whether an item's outputs are already complete (skipped unless
    ``overwrite``). ``on_result`` is called after every item (the manifest records it there).
    """

    stage: str
    item_id: Callable[[T], str]
    is_done: Callable[[T], bool] | None = None
    overwrite: bool = False
    on_result: Callable[[ItemResult], None] | None = None

    def run(self, items: Sequence[T], fn: ItemFn[T], summary: RunSummary | None = None) -> RunSummary:
        summary = summary or RunSummary(self.stage)
        total = len(items)
        for index, item in enumerate(progress(items, desc=self.stage, total=total, unit="video"), 1):
            result = self._one(item, fn, index, total)
            summary.results.append(result)
            if self.on_result is not None:
                self.on_result(result)
        return summary

    def _one(self, item: T, fn: ItemFn[T], index: int, total: int) -> ItemResult:
        item_id = self.item_id(item)
        prefix = f"[{index}/{total}] {item_id}"
        if not self.overwrite and self.is_done is not None:
            try:
                done = self.is_done(item)
            except Exception as exc:  # a broken check must not hide the item: just rerun it
                log.debug("%s: completion check failed (%s); running it", prefix, one_line(exc))
                done = False
            if done:
                log.info("%s: skipped, outputs already complete (use --overwrite to redo)", prefix)
                return ItemResult(item_id, SKIPPED)
        timings = Timings()
        start = time.perf_counter()
        try:
            details = fn(item, timings) or {}
        except LanepaintError as exc:
            result = ItemResult(item_id, FAILED, time.perf_counter() - start, str(exc), timings.as_dict())
        except Exception as exc:
            log.debug("%s: traceback\n%s", prefix, traceback.format_exc())
            result = ItemResult(item_id, FAILED, time.perf_counter() - start, one_line(exc), timings.as_dict())
        else:
            result = ItemResult(item_id, OK, time.perf_counter() - start, None, timings.as_dict(), details)
        if result.status == OK:
            phases = " ".join(f"{k}={v:.2f}s" for k, v in result.timings.items())
            log.info("%s: ok in %.2fs %s", prefix, result.seconds, phases)
        else:
            log.error("%s: FAILED %s", prefix, result.error)
        return result


def split_items(items: Sequence[T], parts: int = 1, size: int = 0) -> list[list[T]]:
    """Contiguous shares of ``items`` in order: ``size`` items each, or (size 0) ``parts`` near-equal
    ones; empty shares are dropped."""
    items = list(items)
    if not items:
        return []
    step = size or -(-len(items) // max(1, parts))
    return [items[i:i + step] for i in range(0, len(items), step)]


@dataclass(frozen=True)
class StageResult:
    """What a stage function returns: plain data (URIs, ids, counts), never model objects.

    JSON-serialisable with ``dataclasses.asdict``, so Flyte tasks and the CLI can pass it on.
    """

    stage: str
    run_id: str
    output_root: str
    run_uri: str                      # the stage's run root, e.g. <root>/sam2/<run_id>
    manifest_uri: str
    ok: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()   # (item id, one-line reason)
    next_command: str = ""
    extra: tuple[tuple[str, str], ...] = ()    # stage-specific URIs, e.g. ("vp_data_uri", ...)

    @classmethod
    def from_summary(cls, summary: RunSummary, run_id: str, output_root: str, run_uri: str,
                     manifest_uri: str, next_command: str = "", **extra: str) -> StageResult:
        return cls(
            stage=summary.stage, run_id=run_id, output_root=output_root, run_uri=run_uri,
            manifest_uri=manifest_uri,
            ok=tuple(r.item_id for r in summary.results if r.status == OK),
            skipped=tuple(r.item_id for r in summary.results if r.status == SKIPPED),
            failed=tuple((r.item_id, r.error or "") for r in summary.results if r.status == FAILED),
            next_command=next_command, extra=tuple(sorted(extra.items())),
        )

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def get(self, key: str, default: str = "") -> str:
        return dict(self.extra).get(key, default)

    def lines(self) -> list[str]:
        out = [f"{self.stage} {self.run_id}: {len(self.ok)} ok, {len(self.skipped)} skipped (already done), "
               f"{len(self.failed)} failed -> {self.run_uri}"]
        out += [f"  FAILED {item}: {reason}" for item, reason in self.failed]
        return out
