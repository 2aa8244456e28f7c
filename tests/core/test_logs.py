"""Log lines: once each, and never written over a live progress bar."""

import io
import logging
import sys

from core.logs import progress, setup_logging


def test_a_hub_warning_is_printed_once(capsys):
    setup_logging("INFO")
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.get_logger("huggingface_hub.file_download").warning("weights are being downloaded")
    err = capsys.readouterr().err
    assert err.count("weights are being downloaded") == 1


def test_log_lines_go_above_live_bars(monkeypatch):
    """With a bar on the terminal, a log line clears the bar, prints, and the bar is drawn again below it."""
    buf = io.StringIO()
    buf.isatty = lambda: True   # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", buf)
    setup_logging("INFO")
    log = logging.getLogger("lanepaint.test.bars")
    for i in progress(range(3), desc="items"):
        log.info("item %d done", i)
    text = buf.getvalue()
    for i in range(3):
        line = next(part for part in text.replace("\r", "\n").split("\n") if f"item {i} done" in part)
        assert "items:" not in line and "%|" not in line     # the message stands on a line of its own
    assert "items:" in text                                   # and the bar was drawn
