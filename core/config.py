"""Settings: every setting is declared once, on a field of a frozen config dataclass.

A field made with ``setting(default, help=...)`` carries its help text, its environment variable (by
default ``LANEPAINT_<SECTION>_<FIELD>``; older names as ``aliases``), its command-line flag (by default
``--<field-name>``) and whether ``lanepaint run`` and the Flyte entry points expose it. From these come
the env table (``lanepaint env``), the argparse flags (``core.config_cli``), the config-file keys
(``core.config_file``), ``lanepaint config show`` and the pipeline's options.

A config class subclasses ``Settings`` and names its ``SECTION``; ``build_config(cls, cli, file=...,
environ=...)`` resolves ``defaults < config file < environment < flags`` (a flag value of None means
"not given") and returns the frozen dataclass; ``resolve`` also says where each value came from. Choices
declared with ``Literal`` are checked on every construction. Stage code never reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

from core.errors import UsageError
from core.ids import validate_id

T = TypeVar("T")

AUTO = "auto"                     # Setting.env / Setting.flag: derived from the section and field name
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SECRET_MARKERS = ("token", "secret", "password", "credential", "api_key")

Profile = Literal["full", "tiny"]


@dataclass(frozen=True)
class Setting:
    """What a config field declares besides its type and default."""

    help: str
    env: str | None = AUTO                 # environment variable; None: not read from the environment
    aliases: tuple[str, ...] = ()          # older variable names read the same way (seed names)
    flag: str | None = AUTO                # command-line flag; None: the program sets it, not the user
    flag_aliases: tuple[str, ...] = ()     # other spellings of the flag
    pipeline: bool = True                  # an option of `lanepaint run` and the Flyte entry points
    group: str = ""                        # --help group
    default_text: str | None = None        # what --help says when the default is a placeholder (None)
    choices: tuple[Any, ...] = ()          # allowed values of a str field (Literal types declare their own)
    metavar: str | None = None
    nargs: str | None = None               # "+": several values after one flag (and repeated flags)
    positional: bool = False
    secret: bool = False                   # never shown or recorded
    check: Callable[[Any, str], None] | None = None   # (value, flag): raise UsageError when it cannot work
    blank_is_default: bool = True          # an empty value (or none/null) given for an optional field means
                                           # "the default"; False: it is an error (an explicit id or text)


def setting(default: Any = MISSING, *, help: str, default_factory: Any = MISSING, **declared: Any) -> Any:
    """A dataclass field that declares a setting (see ``Setting`` for the keywords)."""
    meta = {"setting": Setting(help=help, **declared)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def setting_group(group: str) -> Any:
    """``setting`` with a ``--help`` group filled in, for configs with many options."""
    return lambda default=MISSING, **declared: setting(default, group=group, **declared)


# ---- settings shared by many configs: declared once here --------------------------------------------
def _non_empty(value: Any, flag: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{flag} must not be empty")


def _run_id(value: Any, flag: str) -> None:
    if value is not None:
        validate_id(value, "run id")

def profile_setting(**declared: Any) -> Any:
    return setting("full", help="full: real checkpoints on GPU; tiny: the same classes with random weights, on CPU",
                   env="LANEPAINT_PROFILE", pipeline=False, **declared)


def output_root_setting(**declared: Any) -> Any:
    return setting("outputs", help="output root URI: a local path or gs://bucket/prefix",
                   env="LANEPAINT_OUTPUT_ROOT", pipeline=False, check=_non_empty, **declared)


def cache_dir_setting(**declared: Any) -> Any:
    return setting(None, help="local cache for downloaded inputs and checkpoints", env="LANEPAINT_CACHE_DIR",
                   default_text="~/.cache/lanepaint", pipeline=False, **declared)


def overwrite_setting(**declared: Any) -> Any:
    return setting(False, help="redo items whose outputs are already complete (default: skip them)", env=None,
                   pipeline=False, **declared)


DEFAULT_ITEM_TIMEOUT_S = 7200.0
MAX_SEED = 2**32 - 1        # what numpy's and torch's generators take everywhere


def check_seed(value: Any, flag: str) -> None:
    """A seed every generator accepts: 0 .. 2**32 - 1 (a larger one overflows inside numpy or torch)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise UsageError(f"{flag} {value!r}: a seed must be an integer in 0 .. {MAX_SEED}")


def _non_negative_finite(value: Any, flag: str) -> None:
    if not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise UsageError(f"{flag} {value!r}: must be a finite number >= 0")


def item_timeout_setting(**declared: Any) -> Any:
    return setting(DEFAULT_ITEM_TIMEOUT_S, help="seconds one item (a video, a video x instruction) may run before "
                   "it fails with 'timed out' and the run goes on (0: no limit)", env="LANEPAINT_ITEM_TIMEOUT",
                   pipeline=False, check=_non_negative_finite, **declared)


def run_id_setting(help: str = "run id of this run", **declared: Any) -> Any:
    return setting(None, help=help, env=None, default_text="run_YYYYMMDD_HHMMSS", pipeline=False, check=_run_id,
                   blank_is_default=False, **declared)


class Settings:
    """Base of every config dataclass: ``SECTION`` names it (env variables, config-file section);
    ``RETIRED_ENV`` maps variables that no longer work to a hint naming what replaces them."""

    SECTION: ClassVar[str] = ""
    RETIRED_ENV: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            choices = choices_of(type(self), f)
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise UsageError(f"{flag_of(type(self), f)} {value!r}: use one of {', '.join(map(str, choices))}")
            check = setting_of(f).check
            if check is not None:
                check(value, flag_of(type(self), f))
        self.validate()

    def validate(self) -> None:
        """Checks across fields; raise ``UsageError`` (one line naming the flag) when a value cannot work."""


@dataclass(frozen=True)
class StageSettings(Settings):
    """The settings every stage run has; a stage config subclasses this (the pipeline sets these from its
    request, ``orchestrator.plan``)."""

    run_id: str | None = run_id_setting("run id of this stage run (its outputs go under <stage folder>/<run id>)")
    output_root: str = output_root_setting()
    profile: Profile = profile_setting()
    overwrite: bool = overwrite_setting()
    cache_dir: str | None = cache_dir_setting()
    item_timeout: float = item_timeout_setting()


def require(checks: Iterable[tuple[bool, str]]) -> None:
    """Config validation: raise ``UsageError`` with the message of the first ``(ok, message)`` not ok."""
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


# ---- field introspection -------------------------------------------------------------------------------
@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def setting_of(field: dataclasses.Field) -> Setting:
    found = field.metadata.get("setting")
    return found if isinstance(found, Setting) else Setting(help="", env=None, flag=None, pipeline=False)


def settings_fields(cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def literal_choices(tp: Any) -> tuple[Any, ...]:
    inner, _ = strip_optional(tp)
    return get_args(inner) if get_origin(inner) is Literal else ()


def choices_of(cls: type, field: dataclasses.Field) -> tuple[Any, ...]:
    return literal_choices(type_hints(cls)[field.name]) or setting_of(field).choices


def default_of(field: dataclasses.Field) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return None


def flag_of(cls: type, field: dataclasses.Field) -> str:
    """The flag a user types for ``field`` (or its environment variable when it has no flag)."""
    s = setting_of(field)
    if s.flag is None:
        return env_of(cls, field) or field.name
    if s.positional:
        return field.name.upper()
    return "--" + field.name.replace("_", "-") if s.flag == AUTO else s.flag


def env_of(cls: type, field: dataclasses.Field) -> str | None:
    s = setting_of(field)
    if s.env != AUTO:
        return s.env
    section = getattr(cls, "SECTION", "") or cls.__name__
    return f"LANEPAINT_{section}_{field.name}".upper().replace("-", "_")


def coerce(value: Any, tp: Any, name: str, blank_is_default: bool = True) -> Any:
    """Convert ``value`` (often a string from the environment) to the annotated field type. An empty
    text (or none/null) for an optional field is None unless ``blank_is_default`` is off: then an empty
    text is a usage error and none/null are taken as they are."""
    inner, optional = strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise UsageError(f"{name}: a value is required")
    if isinstance(value, str) and not value.strip() and not blank_is_default:
        raise UsageError(f"{name} must not be empty (leave it out for the default)")
    if optional and blank_is_default and isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
        return None
    origin = get_origin(inner)
    try:
        if inner is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true/false (1/0, yes/no)")
        if inner is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if inner is float:
            return float(str(value).strip()) if isinstance(value, str) else float(value)
        if inner is str:
            if isinstance(value, (list, tuple, dict)):
                raise ValueError("expected a text value")
            return str(value)
        if origin is Literal:
            choices = get_args(inner)
            if value not in choices:
                raise ValueError(f"expected one of {', '.join(map(str, choices))}")
            return value
        if origin is tuple:
            item_tp = get_args(inner)[0] if get_args(inner) else str
            if isinstance(value, str):
                items = [p.strip() for p in value.split(",") if p.strip()]
            elif isinstance(value, (list, tuple)):
                items = list(value)
            else:
                items = [value]
            return tuple(coerce(item, item_tp, name) for item in items)
    except (TypeError, ValueError) as exc:
        reason = str(exc) if "expected" in str(exc) else f"expected {getattr(inner, '__name__', inner)}"
        raise UsageError(f"{name}={value!r}: {reason}") from None
    return value


# ---- resolution ----------------------------------------------------------------------------------------
def env_values(cls: type, environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, sources) for ``cls`` from the environment: a field's variable, else its first alias set.
    A retired variable of the section that is set is a ``UsageError`` with its hint."""
    env = os.environ if environ is None else environ
    for name, hint in getattr(cls, "RETIRED_ENV", {}).items():
        if env.get(name):
            raise UsageError(f"{name} is no longer read: {hint}")
    hints = type_hints(cls)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in settings_fields(cls):
        primary = env_of(cls, f)
        if primary is None:
            continue
        for name in (primary, *setting_of(f).aliases):
            if name in env:
                values[f.name] = coerce(env[name], hints[f.name], name, setting_of(f).blank_is_default)
                sources[f.name] = f"env {name}"
                break
    return values, sources


def resolve(cls: type, cli: Mapping[str, Any] | None = None, file: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, sources) for ``cls``: defaults < ``file`` (field -> value) < environment < ``cli``
    (a None value means "not given"). Values are coerced to the field types; nothing is validated."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = type_hints(cls)
    fields = {f.name: f for f in settings_fields(cls)}
    values = {name: default_of(f) for name, f in fields.items()}
    sources = dict.fromkeys(fields, "default")
    for key, value in (file or {}).items():
        if key not in fields:
            raise TypeError(f"{cls.__name__} has no field {key!r}")
        values[key] = coerce(value, hints[key], flag_of(cls, fields[key]), setting_of(fields[key]).blank_is_default)
        sources[key] = "config file"
    env_vals, env_sources = env_values(cls, environ)
    values.update(env_vals)
    sources.update(env_sources)
    for key, value in (cli or {}).items():
        if key not in fields:
            raise TypeError(f"{cls.__name__} has no field {key!r}")
        if value is not None:
            values[key] = coerce(value, hints[key], flag_of(cls, fields[key]),
                                 setting_of(fields[key]).blank_is_default)
            sources[key] = "flag"
    return values, sources


def build_config(cls: type[T], cli: Mapping[str, Any] | None = None, *, file: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> T:
    """``cls`` with priority defaults < config file < environment < ``cli`` (None: not given).
    ``environ={}`` ignores the environment (a config that already travelled resolved)."""
    values, _ = resolve(cls, cli, file, environ)
    return cls(**values)


def config_values(cfg: Any) -> dict[str, Any]:
    """A config's fields as JSON-able values (tuples become lists): what ``build_config`` rebuilds it from."""
    return {f.name: (list(v) if isinstance(v := getattr(cfg, f.name), tuple) else v)
            for f in dataclasses.fields(cfg)}


def is_secret(field: dataclasses.Field) -> bool:
    return setting_of(field).secret or any(marker in field.name.lower() for marker in _SECRET_MARKERS)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config with secret fields redacted (for manifests)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if is_secret(f) and value:
            value = "<redacted>"
        elif dataclasses.is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def env_rows(classes: Iterable[type]) -> list[tuple[str, tuple[str, ...], str, str]]:
    """(variable, aliases, "section.field", help) of every variable the classes read, once per variable."""
    rows: dict[str, tuple[str, tuple[str, ...], list[str], str]] = {}
    for cls in classes:
        for f in settings_fields(cls):
            name = env_of(cls, f)
            if name is None:
                continue
            s = setting_of(f)
            target = f"{cls.SECTION}.{f.name}"
            if name in rows:
                rows[name][2].append(target)
            else:
                rows[name] = (name, s.aliases, [target], s.help)
    return [(n, a, ",".join(t), h) for n, (_, a, t, h) in sorted(rows.items())]
