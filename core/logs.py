"""Logging setup and progress bars (tqdm, silent when stderr is not a terminal)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from core.config import Settings, setting

T = TypeVar("T")

_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"
_NOISY = ("urllib3", "fsspec", "gcsfs", "google", "asyncio", "httpx", "httpx2", "httpcore", "filelock",
          "PIL", "matplotlib", "aiohttp", "flyte", "hydra")


@dataclass(frozen=True)
class LogSettings(Settings):
    SECTION: ClassVar[str] = "logging"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "INFO", help="logging verbosity (before or after the command)", env="LANEPAINT_LOG_LEVEL", pipeline=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (not the one at setup), so a handler set up
    by one CLI call keeps working after stderr is swapped (tests capturing output, notebooks). While a
    progress bar is live, a line goes through ``tqdm.write``, which clears the bars, prints the line and
    draws them again below it: bars and log lines never overwrite each other."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            if getattr(tqdm, "_instances", None):
                tqdm.write(self.format(record), file=sys.stderr)
                return
        except Exception:   # never lose a log line to the progress machinery
            pass
        super().emit(record)

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _adopt_hub_logger() -> None:
    """huggingface_hub adds its own stderr handler to a logger that also propagates to ours, so every hub
    warning would print twice; its lines go through our handler only (importing its logging is cheap)."""
    try:
        import huggingface_hub.utils.logging  # noqa: F401 - its import adds the handler
    except ImportError:
        return
    hub = logging.getLogger("huggingface_hub")
    for handler in list(hub.handlers):
        if type(handler) is logging.StreamHandler:
            hub.removeHandler(handler)


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the root logger once for a command-line run (library code only uses loggers)."""
    if isinstance(level, str):
        level = logging.getLevelNamesMapping()[level.upper()]
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    _adopt_hub_logger()


def progress_enabled() -> bool:
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, unit: str = "it",
             **kwargs: Any) -> Iterator[T]:
    """tqdm over ``iterable`` when stderr is a terminal, the bare iterable otherwise."""
    if not progress_enabled():
        yield from iterable
        return
    from tqdm import tqdm

    yield from tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True, **kwargs)
