"""A config file a team can commit: ``--config run.yaml`` (or ``.toml``) on every command.

One section per command or stage, keyed like the flags (``max-frames`` or ``max_frames``)::

    common:                 # fields of any section that has them (output-root, profile, cache-dir, ...)
      output-root: gs://bucket/lanepaint
      profile: full
    run:
      concurrency: 8
    segment:
      max-frames: 49
      prompt: points9
    edit:
      instructions: "lane double yellow solid||lane single white dashed"

Values sit between the defaults and the environment: defaults < ``common`` < section < environment <
flags. An unknown section or key is a usage error naming the file, the section and the key.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.config import AUTO, setting_of, settings_fields
from core.errors import UsageError, brief

COMMON = "common"


def _key(text: str) -> str:
    return str(text).strip().replace("-", "_")


def file_keys(cls: type) -> dict[str, str]:
    """Key (a flag name or a field name, with underscores) -> field name, for the settings of ``cls``."""
    keys = {}
    for f in settings_fields(cls):
        keys[f.name] = f.name
        s = setting_of(f)
        if s.flag not in (None, AUTO) and not s.positional:
            keys[_key(s.flag.lstrip("-"))] = f.name
    return keys


def _parse(path: str, text: str) -> Any:
    if path.endswith(".toml"):
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"--config {path}: not valid TOML ({exc})") from None
    if not path.endswith((".yaml", ".yml")):
        raise UsageError(f"--config {path}: use a .yaml, .yml or .toml file")
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"--config {path}: not valid YAML ({brief(exc)})") from None


@dataclass(frozen=True)
class ConfigFile:
    path: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)   # section -> field -> value

    def values_for(self, cls: type) -> dict[str, Any]:
        """Field values of ``cls``: the ``common`` keys it has, then its own section's keys."""
        keys = file_keys(cls)
        out = {keys[k]: v for k, v in self.sections.get(COMMON, {}).items() if k in keys}
        own = self.sections.get(cls.SECTION, {})
        unknown = sorted(set(own) - set(keys))
        if unknown:
            hint = difflib.get_close_matches(unknown[0], sorted(keys), n=1)
            raise UsageError(f"--config {self.path}: section {cls.SECTION!r} has no setting "
                             f"{unknown[0].replace('_', '-')!r}" + (f" (did you mean {hint[0].replace('_', '-')!r}?)"
                                                                    if hint else ""))
        return out | {keys[k]: v for k, v in own.items()}

    def check_sections(self, classes: Iterable[type]) -> None:
        """Every section names a known config; every ``common`` key is a field of one of them."""
        known = {cls.SECTION: cls for cls in classes}
        for name in self.sections:
            if name != COMMON and name not in known:
                raise UsageError(f"--config {self.path}: unknown section {name!r} (sections: "
                                 f"{', '.join(sorted([COMMON, *known]))})")
        every = {key for cls in known.values() for key in file_keys(cls)}
        for key in self.sections.get(COMMON, {}):
            if key not in every:
                raise UsageError(f"--config {self.path}: section 'common' has no setting {key.replace('_', '-')!r}")
        for cls in known.values():
            self.values_for(cls)


def load_config_file(path: str) -> ConfigFile:
    """Read and shape-check a config file (a mapping of sections, each a mapping of settings)."""
    if not os.path.isfile(path):
        raise UsageError(f"--config {path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: unreadable ({exc})") from None
    data = _parse(path, text) or {}
    if not isinstance(data, Mapping):
        raise UsageError(f"--config {path}: expected sections (segment:, edit:, ...) at the top level")
    sections: dict[str, dict[str, Any]] = {}
    for name, body in data.items():
        if not isinstance(body, Mapping):
            raise UsageError(f"--config {path}: section {name!r} must hold settings (key: value)")
        sections[str(name)] = {_key(k): v for k, v in body.items()}
    return ConfigFile(path, sections)
