"""``lanepaint config show``: every setting as a command would resolve it here, and where it came from."""

from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  lanepaint config show --config run.yaml              # every section, resolved
  lanepaint config show --config run.yaml segment edit # two sections
  SAM2_MAX_FRAMES=49 lanepaint config show segment     # an older variable name, shown as its source
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help="sections to show (default: all): run, segment, edit, evaluate, render, "
                             "dataset-generate, dataset-filter, train-lora, synth, demo, logging")


def show_lines(cls: type, config_file) -> list[str]:
    """``[section]`` then one ``key = value  (source)`` line per setting."""
    from core.config import flag_of, is_secret, resolve, settings_fields

    values, sources = resolve(cls, file=config_file.values_for(cls) if config_file else None)
    fields = settings_fields(cls)
    keys = {f.name: flag_of(cls, f).lstrip("-").lower() for f in fields}
    width = max(len(k) for k in keys.values())
    lines = [f"[{cls.SECTION}]"]
    for f in fields:
        value = values[f.name]
        if is_secret(f) and value:
            value = "<redacted>"
        elif isinstance(value, tuple):
            value = ",".join(map(str, value))
        source = sources[f.name] if sources[f.name] != "config file" else f"config file {config_file.path}"
        lines.append(f"  {keys[f.name]:<{width}} = {value}    ({source})")
    return lines


def run(args: argparse.Namespace) -> int:
    from core.errors import UsageError
    from orchestrator.settings_registry import file_sections

    classes = {cls.SECTION: cls for cls in file_sections()}
    unknown = [s for s in args.sections if s not in classes]
    if unknown:
        raise UsageError(f"unknown section {unknown[0]!r} (sections: {', '.join(classes)})")
    for name in args.sections or list(classes):
        for line in show_lines(classes[name], args.config_file):
            print(line)
    return 0
