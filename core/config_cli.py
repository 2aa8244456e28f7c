"""Command-line flags generated from config fields (``core.config.setting``), and read back.

Each flag defaults to None ("not given"), so the config file and the environment can fill the field;
``--help`` states the real default once, with the environment variable that also sets it. Booleans get
``--x/--no-x``; choices come from ``Literal`` types; values are converted (and bad ones reported as one
line naming the flag) by ``core.config.build_config``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from core.config import (
    choices_of,
    default_of,
    env_of,
    flag_of,
    setting_of,
    settings_fields,
    strip_optional,
    type_hints,
)


def describe_default(field: Any) -> str:
    """The default as ``--help`` and ``lanepaint config show`` print it."""
    s = setting_of(field)
    value = default_of(field)
    if s.default_text is not None and value in (None, "", ()):
        return s.default_text
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    if value is None or value == "":
        return "none"
    return str(value)


def help_text(cls: type, field: Any, with_env: bool = True) -> str:
    s = setting_of(field)
    parts = [f"default {describe_default(field)}"]
    env = env_of(cls, field)
    if with_env and env:
        parts.append(f"env {env}" + (f" or {', '.join(s.aliases)}" if s.aliases else ""))
    return f"{s.help} [{'; '.join(parts)}]".replace("%", "%%")


def _groups(parser: argparse.ArgumentParser) -> dict[str, Any]:
    groups = getattr(parser, "_lanepaint_groups", None)
    if groups is None:
        groups = {}
        parser._lanepaint_groups = groups   # type: ignore[attr-defined]
    return groups


def add_settings_arguments(parser: argparse.ArgumentParser, cls: type, *, prefix: str = "",
                           pipeline_only: bool = False, skip: Iterable[str] = (),
                           group: str | None = None) -> list[str]:
    """Add a flag for every field of ``cls`` that has one; returns the dests added.

    ``prefix`` (e.g. ``"segment"``) makes ``--segment-max-frames`` with dest ``segment_max_frames`` (what
    ``lanepaint run`` does with stage options); ``pipeline_only`` keeps the fields the pipeline exposes.
    ``group`` puts every flag in one help group (else each field's own ``group``).
    """
    skipped = set(skip)
    hints = type_hints(cls)
    dests = []
    for f in settings_fields(cls):
        s = setting_of(f)
        if s.flag is None or f.name in skipped or (pipeline_only and not s.pipeline):
            continue
        title = group if group is not None else s.group
        target: Any = parser
        if title:
            target = _groups(parser).get(title) or _groups(parser).setdefault(title, parser.add_argument_group(title))
        dest = f"{prefix}_{f.name}" if prefix else f.name
        kwargs: dict[str, Any] = {"help": help_text(cls, f), "default": None}
        inner, _ = strip_optional(hints[f.name])
        choices = choices_of(cls, f)
        if s.positional:
            target.add_argument(dest, metavar=s.metavar or f.name.upper(), **kwargs)
            dests.append(dest)
            continue
        names = [flag_of(cls, f), *s.flag_aliases]
        if prefix:
            names = ["--" + prefix.replace("_", "-") + "-" + name[2:] for name in names]
        if inner is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            if choices:
                kwargs["choices"] = list(choices)
            if s.nargs:
                kwargs.update(nargs=s.nargs, action="extend")
            kwargs["metavar"] = s.metavar or (None if choices else _metavar(inner, f.name))
        target.add_argument(*names, dest=dest, **kwargs)
        dests.append(dest)
    return dests


def _metavar(tp: Any, name: str) -> str:
    if tp is int:
        return "N"
    if tp is float:
        return "X"
    return name.split("_")[-1].upper()


def cli_values(cls: type, args: argparse.Namespace | Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The values given for ``cls``'s flags (None where not given), keyed by field name."""
    get = args.get if isinstance(args, Mapping) else (lambda k, d=None: getattr(args, k, d))
    out = {}
    for f in settings_fields(cls):
        if setting_of(f).flag is None:
            continue
        value = get(f"{prefix}_{f.name}" if prefix else f.name, None)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def pipeline_fields(cls: type) -> list[Any]:
    """The fields ``lanepaint run`` and the Flyte entry points expose for a stage."""
    return [f for f in settings_fields(cls) if setting_of(f).pipeline and setting_of(f).flag is not None]



def config_from_args(cls: type, args: argparse.Namespace, prefix: str = "", **fixed: Any) -> Any:
    """``cls`` from parsed flags, the ``--config`` file the command was given (``args.config_file``, set
    by the ``lanepaint`` dispatcher) and the environment; ``fixed`` values win over all of them."""
    from core.config import build_config

    config_file = getattr(args, "config_file", None)
    file_values = config_file.values_for(cls) if config_file is not None else None
    return build_config(cls, cli_values(cls, args, prefix) | fixed, file=file_values)
