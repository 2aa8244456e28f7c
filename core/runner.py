"""Run one function over many items with per-item isolation, timings, progress and a summary.

A failing item is recorded with a one-line reason and the run goes on; ``RunSummary.exit_code``
is 1 when any item failed. Ctrl-C (``KeyboardInterrupt``) and SIGTERM (``Terminated``, under
``sigterm_raises``) stop the run at the item running, which is recorded as interrupted; the stage then
writes its manifest as usual and the exit code is 130 or 143.

An item that runs longer than ``timeout`` seconds fails with "timed out" and the run goes on: a watchdog
thread raises ``ItemTimeout`` in the item's thread (``PyThreadState_SetAsyncExc``), which takes effect the
next time that thread runs Python code, so a Python loop that never ends is stopped; a call that never
returns to Python (a stuck GPU kernel) is not. Redoing a complete item (``overwrite``) first removes its
completion marker (``invalidate``), so a redo that fails leaves the item incomplete, as the record says.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from core.errors import LanepaintError, one_line
from core.logs import progress

log = logging.getLogger(__name__)

T = TypeVar("T")

OK, FAILED, SKIPPED, CLAIMED = "ok", "failed", "skipped", "claimed"   # claimed: another run is doing it


class Terminated(BaseException):
    """SIGTERM, raised in the main thread by ``sigterm_raises`` (a BaseException, like KeyboardInterrupt)."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` in the main thread, so a run ends as it does on Ctrl-C:
    the item running is recorded as interrupted and the manifest is written (not a silent exit 143)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


INTERRUPTS = {KeyboardInterrupt: "SIGINT", Terminated: "SIGTERM"}
INTERRUPT_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class ItemTimeout(BaseException):
    """Raised in an item's thread when it exceeds its time limit (a BaseException: ``except Exception`` in
    the item's code does not swallow it)."""


class Watchdog:
    """Raises ``ItemTimeout`` in the calling thread after ``seconds`` unless disarmed first."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.thread_id = threading.get_ident()
        self.fired = False
        self._lock = threading.Lock()
        self._armed = seconds > 0
        self._timer = threading.Timer(seconds, self._fire) if self._armed else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self.fired = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), ctypes.py_object(ItemTimeout))

    def disarm(self) -> bool:
        """Stop the watchdog; True when it fired (any exception still pending in this thread is cleared)."""
        with self._lock:
            self._armed = False
            if self.fired:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), None)
        if self._timer is not None:
            self._timer.cancel()
        return self.fired


class Timings:
    """Named wall-clock phases of one item: ``with t.phase("decode"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.timed_out_in: str | None = None   # the innermost phase the time limit interrupted

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except ItemTimeout:
            self.timed_out_in = self.timed_out_in or name
            raise
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` measured elsewhere (e.g. this item's share of a batch) under phase ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

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
    interrupted: str = ""          # "SIGINT" or "SIGTERM" when the run was stopped before its last item

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
        claimed = f", {self.count(CLAIMED)} claimed by another run" if self.count(CLAIMED) else ""
        out = [f"{self.stage}: {len(self.results)} item(s): {self.count(OK)} ok, "
               f"{self.count(SKIPPED)} skipped (already done), {self.count(FAILED)} failed{claimed}"]
        out += [f"  FAILED {r.item_id}: {r.error}" for r in self.failures]
        return out


ItemFn = Callable[[T, Timings], "dict[str, Any] | None"]


@dataclass
class ItemRunner(Generic[T]):
    """Runs ``fn(item, timings)`` for each item; ``fn`` may return details for the manifest.

    ``is_done(item)`` says whether an item's outputs are already complete (skipped unless
    ``overwrite``; then ``invalidate(item)`` removes the completion marker before the redo).
    ``on_result`` is called after every item (the manifest records it there). ``timeout``: seconds one
    item may run (0: no limit).
    """

    stage: str
    item_id: Callable[[T], str]
    is_done: Callable[[T], bool] | None = None
    overwrite: bool = False
    on_result: Callable[[ItemResult], None] | None = None
    invalidate: Callable[[T], None] | None = None
    timeout: float = 0.0
    claims: Any = None          # a core.claims.ClaimStore: an item another invocation is running is left to it

    def run(self, items: Sequence[T], fn: ItemFn[T], summary: RunSummary | None = None) -> RunSummary:
        summary = summary or RunSummary(self.stage)
        total = len(items)
        for index, item in enumerate(progress(items, desc=self.stage, total=total, unit="video"), 1):
            try:
                result = self._one(item, fn, index, total)
            except (KeyboardInterrupt, Terminated) as exc:   # stop here; the stage still writes its manifest
                summary.interrupted = INTERRUPTS[type(exc)]
                result = ItemResult(self.item_id(item), FAILED, error=f"interrupted by {summary.interrupted} "
                                    "before it finished (rerun to resume)")
                log.error("%s: run interrupted by %s at item %d of %d; writing what finished",
                          self.stage, summary.interrupted, index, total)
            summary.results.append(result)
            if self.on_result is not None:
                self.on_result(result)
            if summary.interrupted:
                break
        return summary

    def _one(self, item: T, fn: ItemFn[T], index: int, total: int) -> ItemResult:
        item_id = self.item_id(item)
        prefix = f"[{index}/{total}] {item_id}"
        done = False
        if self.is_done is not None:
            try:
                done = self.is_done(item)
            except Exception as exc:  # a broken check must not hide the item: just rerun it
                log.debug("%s: completion check failed (%s); running it", prefix, one_line(exc))
        if done and not self.overwrite:
            log.info("%s: skipped, outputs already complete (use --overwrite to redo)", prefix)
            return ItemResult(item_id, SKIPPED)
        claim = None
        if self.claims is not None:
            try:
                claim = self.claims.acquire(item_id)
            except LanepaintError as exc:
                log.error("%s: FAILED could not claim it: %s", prefix, exc)
                return ItemResult(item_id, FAILED, error=f"could not claim it: {exc}")
            if isinstance(claim, str):
                log.warning("%s: %s; left to it", prefix, claim)
                return ItemResult(item_id, CLAIMED, error=claim)
        try:
            if not done and not self.overwrite and self._done(item):   # finished while we were claiming
                log.info("%s: skipped, finished by another run", prefix)
                return ItemResult(item_id, SKIPPED)
            return self._run(item, item_id, prefix, fn, done)
        finally:
            if claim is not None:
                claim.release()

    def _done(self, item: T) -> bool:
        try:
            return bool(self.is_done and self.is_done(item))
        except Exception:
            return False

    def _run(self, item: T, item_id: str, prefix: str, fn: ItemFn[T], done: bool) -> ItemResult:
        timings = Timings()
        start = time.perf_counter()
        try:
            if done and self.invalidate is not None:
                self.invalidate(item)           # a redo that fails must not leave the old marker behind
            details = self._timed(fn, item, timings) or {}
        except ItemTimeout:
            where = f" in phase {timings.timed_out_in}" if timings.timed_out_in else ""
            result = ItemResult(item_id, FAILED, time.perf_counter() - start,
                                f"timed out after {self.timeout:g} s{where} (--item-timeout)", timings.as_dict())
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

    def _timed(self, fn: ItemFn[T], item: T, timings: Timings) -> dict[str, Any] | None:
        """``fn(item, timings)`` under the watchdog; ``ItemTimeout`` when it ran out of time."""
        dog = Watchdog(self.timeout)
        try:
            details = fn(item, timings)
        finally:
            fired = dog.disarm()
        if fired:
            raise ItemTimeout
        return details


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
    interrupted: str = ""                      # "SIGINT"/"SIGTERM": stopped before its last item
    claimed: tuple[tuple[str, str], ...] = ()  # (item id, who holds it): left to another invocation

    @classmethod
    def from_summary(cls, summary: RunSummary, run_id: str, output_root: str, run_uri: str,
                     manifest_uri: str, next_command: str = "", **extra: str) -> StageResult:
        return cls(
            stage=summary.stage, run_id=run_id, output_root=output_root, run_uri=run_uri,
            manifest_uri=manifest_uri,
            ok=tuple(r.item_id for r in summary.results if r.status == OK),
            skipped=tuple(r.item_id for r in summary.results if r.status == SKIPPED),
            failed=tuple((r.item_id, r.error or "") for r in summary.results if r.status == FAILED),
            next_command=next_command, extra=tuple(sorted(extra.items())), interrupted=summary.interrupted,
            claimed=tuple((r.item_id, r.error or "") for r in summary.results if r.status == CLAIMED),
        )

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return INTERRUPT_EXIT_CODES[self.interrupted]
        return 1 if self.failed else 0

    def get(self, key: str, default: str = "") -> str:
        return dict(self.extra).get(key, default)

    def lines(self) -> list[str]:
        out = [f"{self.stage} {self.run_id}: {len(self.ok)} ok, {len(self.skipped)} skipped (already done), "
               f"{len(self.failed)} failed -> {self.run_uri}"]
        out += [f"  FAILED {item}: {reason}" for item, reason in self.failed]
        out += [f"  CLAIMED {item}: {holder}" for item, holder in self.claimed]
        if self.interrupted:
            out.append(f"  interrupted by {self.interrupted}: the manifest records what finished; rerun to resume")
        return out
