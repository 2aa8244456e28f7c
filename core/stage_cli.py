"""Pieces every stage command shares: the common flags, and the end-of-run report and exit code."""

from __future__ import annotations

import argparse
import logging
import sys

from core.runner import StageResult

log = logging.getLogger(__name__)


def add_common_arguments(parser: argparse.ArgumentParser, run_id_help: str = "run id of this stage run") -> None:
    """--run-id, --output-root, --profile, --overwrite, --cache-dir, with None meaning "not given"
    so that environment variables (core.config.ENV_TABLE) can fill them."""
    parser.add_argument("--run-id", default=None, help=f"{run_id_help} (default run_YYYYMMDD_HHMMSS, or RUN_ID)")
    parser.add_argument("--output-root", default=None,
                        help="output root URI: local path or gs://bucket/prefix (default ./outputs, or OUTPUT_ROOT)")
    parser.add_argument("--profile", choices=["full", "tiny"], default=None,
                        help="full: real checkpoints on GPU; tiny: random-weight tiny models on CPU "
                             "(default full, or LANEPAINT_PROFILE)")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="redo videos whose outputs are already complete (default: skip them)")
    parser.add_argument("--cache-dir", default=None,
                        help="local cache for downloaded inputs (default ~/.cache/lanepaint, or LANEPAINT_CACHE_DIR)")


def report(result: StageResult, stream=None) -> int:
    """Print the summary (and the next command) and return the exit code: 1 if any item failed."""
    stream = stream or sys.stdout
    for line in result.lines():
        print(line, file=stream)
    print(f"manifest: {result.manifest_uri}", file=stream)
    if result.next_command:
        print(f"next: {result.next_command}", file=stream)
    return result.exit_code
