"""``lanepaint env``: every environment variable lanepaint reads, the setting it fills, and its value here."""

from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  lanepaint env                 # every variable, with older names that still work
  lanepaint env --set-only      # only what this shell sets (secrets redacted)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set-only", action="store_true", help="show only variables set in this shell")


def run(args: argparse.Namespace) -> int:
    import os

    from core.config import env_rows, is_secret, settings_fields
    from orchestrator.settings_registry import env_sections

    classes = env_sections()
    secret_names = {f"{cls.SECTION}.{f.name}" for cls in classes for f in settings_fields(cls) if is_secret(f)}
    rows = env_rows(classes)
    width = max(len(r[0]) for r in rows)
    for name, aliases, target, help_line in rows:
        set_name = next((n for n in (name, *aliases) if n in os.environ), None)
        if args.set_only and set_name is None:
            continue
        value = os.environ.get(set_name) if set_name else None
        if value and set(target.split(",")) & secret_names:
            value = "<redacted>"
        state = f" = {value}" + (f" (as {set_name})" if set_name != name else "") if set_name else ""
        older = f" (also {', '.join(aliases)})" if aliases else ""
        print(f"{name:<{width}}  [{target}] {help_line}{older}{state}")
    return 0
