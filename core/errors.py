"""Error types that carry a one-line, user-facing message.

- ``LanepaintError``: something about one item or one run is wrong; the message names the item and
  the reason. Per-item errors are caught by the item runner and recorded; the run goes on.
- ``UsageError``: the command line or configuration is wrong; the CLI exits with code 2 before
  anything is written.
"""

from __future__ import annotations


class LanepaintError(Exception):
    """An expected failure with a one-line message fit to show the user as is."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class UsageError(LanepaintError):
    """Bad command-line arguments or configuration (exit code 2, nothing written)."""


class InvalidIdError(UsageError):
    """A run id, video id or folder name that cannot be used as a path part."""


class StorageError(LanepaintError):
    """A URI that cannot be parsed, reached, read or written."""


class VideoError(LanepaintError):
    """A video file that is missing, empty, corrupt or has no video stream."""


def brief(exc: BaseException | str, limit: int = 300) -> str:
    """A library's message as one line of at most ``limit`` characters (its type name when empty), to put
    inside our own one-line messages."""
    text = " ".join(str(exc).split())[:limit]
    return text or (type(exc).__name__ if isinstance(exc, BaseException) else "")


def one_line(exc: BaseException) -> str:
    """Render any exception as a single line: ``LanepaintError`` as its message, others with type."""
    if isinstance(exc, LanepaintError):
        return str(exc)
    text = brief(exc, limit=10_000) if str(exc).strip() else "(no message)"
    return f"{type(exc).__name__}: {text}"
