"""Pieces every stage command shares: the end-of-run report and exit code, and the command lines a
command prints for the next step."""

from __future__ import annotations

import shlex
import sys
from typing import Any

from core.runner import StageResult


def command_line(*words: str, **options: Any) -> str:
    """A shell-quoted command: ``command_line("lanepaint", "edit", data_run_id="r 1")`` ->
    ``lanepaint edit --data-run-id 'r 1'``. Options with a None or empty value are left out."""
    parts = [shlex.quote(w) for w in words]
    for name, value in options.items():
        if value is None or value == "":
            continue
        parts += ["--" + name.replace("_", "-"), shlex.quote(str(value))]
    return " ".join(parts)


def report(result: StageResult, stream=None) -> int:
    """Print the summary (and the next command) and return the exit code: 1 if any item failed."""
    stream = stream or sys.stdout
    for line in result.lines():
        print(line, file=stream)
    print(f"manifest: {result.manifest_uri}", file=stream)
    if result.next_command:
        print(f"next: {result.next_command}", file=stream)
    return result.exit_code
