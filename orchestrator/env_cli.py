"""``lanepaint env``: the environment variables lanepaint reads, and where they go."""

from __future__ import annotations

import argparse

from core.config import env_table_rows, read_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set-only", action="store_true", help="show only variables set in this shell")


def run(args: argparse.Namespace) -> int:
    rows = env_table_rows()
    width = max(len(r[0]) for r in rows)
    for name, sections, field, help_text in rows:
        value = read_env(name)
        if args.set_only and value is None:
            continue
        shown = "<redacted>" if value and "TOKEN" in name else value
        state = f" = {shown}" if value is not None else ""
        print(f"{name:<{width}}  [{sections}.{field}] {help_text}{state}")
    return 0
