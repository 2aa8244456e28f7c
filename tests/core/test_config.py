"""Settings declared on dataclass fields: resolution order, environment names and aliases, retired
variables, config files, coercion and one-line errors."""

from dataclasses import dataclass
from typing import ClassVar, Literal

import pytest

from core.config import (
    Settings,
    build_config,
    coerce,
    config_to_dict,
    env_rows,
    require,
    resolve,
    setting,
)
from core.config_file import load_config_file
from core.errors import UsageError


@dataclass(frozen=True)
class SegCfg(Settings):
    SECTION: ClassVar[str] = "seg"
    RETIRED_ENV: ClassVar[dict[str, str]] = {"OLD_CHUNKS": "use --input chunks://..."}

    max_frames: int = setting(150, help="frames", aliases=("OLD_MAX_FRAMES",))
    fps: float = setting(8.0, help="rate")
    model: Literal["tiny", "small", "base_plus", "large"] = setting("large", help="size")
    profile: str = setting("full", help="profile", env="LANEPAINT_PROFILE")
    overwrite: bool = setting(False, help="redo", env=None)
    inputs: tuple[str, ...] = setting((), help="videos", flag="--input", nargs="+")
    token: str | None = setting(None, help="a secret", secret=True)

    def validate(self) -> None:
        require([(self.max_frames >= 1, f"--max-frames must be >= 1, got {self.max_frames}")])


def test_defaults_when_nothing_is_set():
    assert build_config(SegCfg, environ={}) == SegCfg()


def test_priority_defaults_file_env_flags():
    file = {"max_frames": 10, "fps": 2.0, "model": "tiny"}
    env = {"LANEPAINT_SEG_MAX_FRAMES": "40", "LANEPAINT_SEG_FPS": "5", "LANEPAINT_PROFILE": "tiny"}
    values, sources = resolve(SegCfg, {"fps": 12.0, "max_frames": None}, file, env)
    assert values["model"] == "tiny" and sources["model"] == "config file"         # file over default
    assert values["max_frames"] == 40 and sources["max_frames"] == "env LANEPAINT_SEG_MAX_FRAMES"  # env over file
    assert values["fps"] == 12.0 and sources["fps"] == "flag"                      # flag over env; None = not given
    assert values["profile"] == "tiny" and sources["overwrite"] == "default"


def test_an_older_name_works_and_the_current_name_wins():
    assert build_config(SegCfg, environ={"OLD_MAX_FRAMES": "7"}).max_frames == 7
    both = {"OLD_MAX_FRAMES": "7", "LANEPAINT_SEG_MAX_FRAMES": "9"}
    assert resolve(SegCfg, environ=both)[1]["max_frames"] == "env LANEPAINT_SEG_MAX_FRAMES"
    assert build_config(SegCfg, environ=both).max_frames == 9


def test_a_retired_variable_is_refused_with_its_hint():
    with pytest.raises(UsageError, match=r"^OLD_CHUNKS is no longer read: use --input chunks://\.\.\.$"):
        build_config(SegCfg, environ={"OLD_CHUNKS": "3"})


def test_a_field_without_a_variable_ignores_the_environment():
    assert build_config(SegCfg, environ={"LANEPAINT_SEG_OVERWRITE": "1"}).overwrite is False


@pytest.mark.parametrize("env, message", [
    ({"LANEPAINT_SEG_MAX_FRAMES": "many"}, "LANEPAINT_SEG_MAX_FRAMES='many': expected int"),
    ({"OLD_MAX_FRAMES": "2.5"}, "OLD_MAX_FRAMES='2.5': expected int"),
    ({"LANEPAINT_SEG_FPS": "fast"}, "LANEPAINT_SEG_FPS='fast': expected float"),
    ({"LANEPAINT_SEG_MODEL": "huge"}, "LANEPAINT_SEG_MODEL='huge': expected one of tiny, small, base_plus, large"),
    ({"LANEPAINT_SEG_MAX_FRAMES": "0"}, "--max-frames must be >= 1, got 0"),
])
def test_bad_environment_values_are_one_line_usage_errors(env, message):
    with pytest.raises(UsageError) as info:
        build_config(SegCfg, environ=env)
    assert str(info.value) == message


def test_bad_flag_and_file_values_name_the_flag():
    with pytest.raises(UsageError, match=r"^--overwrite='maybe': expected true/false"):
        build_config(SegCfg, {"overwrite": "maybe"}, environ={})
    with pytest.raises(UsageError, match=r"^--max-frames=\[1, 2\]: expected int"):
        build_config(SegCfg, file={"max_frames": [1, 2]}, environ={})


def test_choices_are_checked_on_every_construction():
    with pytest.raises(UsageError, match=r"^--model 'huge': use one of tiny, small, base_plus, large$"):
        SegCfg(model="huge")  # type: ignore[arg-type]


def test_unknown_field_is_a_programming_error():
    with pytest.raises(TypeError):
        build_config(SegCfg, {"nope": 1}, environ={})


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        build_config(SegCfg, environ={}).fps = 3  # type: ignore[misc]


def test_coerce_types():
    assert coerce("yes", bool, "X") is True and coerce("0", bool, "X") is False
    assert coerce("a, b,,c", tuple[str, ...], "X") == ("a", "b", "c")
    assert coerce(["1", 2], tuple[int, ...], "X") == (1, 2)
    assert coerce("none", int | None, "X") is None and coerce("7", int | None, "X") == 7
    with pytest.raises(UsageError, match="expected an integer"):
        coerce(True, int, "X")


def test_secrets_are_redacted_and_listed_once():
    assert config_to_dict(SegCfg(token="hf_abc"))["token"] == "<redacted>"
    rows = env_rows([SegCfg])
    names = [r[0] for r in rows]
    assert len(names) == len(set(names)) and "LANEPAINT_SEG_OVERWRITE" not in names
    assert ("LANEPAINT_SEG_MAX_FRAMES", ("OLD_MAX_FRAMES",), "seg.max_frames", "frames") in rows


def test_require_raises_the_first_failed_check():
    require([(True, "never")])
    with pytest.raises(UsageError, match="^--rank must be >= 1$"):
        require([(True, "fine"), (False, "--rank must be >= 1"), (False, "later")])


# ---- config files --------------------------------------------------------------------------------
def test_yaml_and_toml_files_with_a_common_section(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("common:\n  profile: tiny\nseg:\n  max-frames: 12\n  input: [a.mp4, b.mp4]\n")
    toml_file = tmp_path / "run.toml"
    toml_file.write_text('[common]\nprofile = "tiny"\n[seg]\nmax_frames = 12\ninput = ["a.mp4", "b.mp4"]\n')
    for path in (yaml_file, toml_file):
        config = load_config_file(str(path))
        config.check_sections([SegCfg])
        cfg = build_config(SegCfg, file=config.values_for(SegCfg), environ={})
        assert (cfg.profile, cfg.max_frames) == ("tiny", 12)


def test_the_file_keys_are_the_flag_names(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("seg:\n  input: [a.mp4]\n")
    config = load_config_file(str(path))
    assert build_config(SegCfg, file=config.values_for(SegCfg), environ={}).inputs == ("a.mp4",)


@pytest.mark.parametrize("text, message", [
    ("seg:\n  max-frams: 3\n", "section 'seg' has no setting 'max-frams' (did you mean 'max-frames'?)"),
    ("sgement:\n  fps: 3\n", "unknown section 'sgement'"),
    ("common:\n  colour: red\n", "section 'common' has no setting 'colour'"),
    ("seg: 3\n", "section 'seg' must hold settings"),
    ("- a\n- b\n", "expected sections"),
    ("seg: [\n", "not valid YAML"),
])
def test_bad_files_are_one_line_usage_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_config_file(str(path)).check_sections([SegCfg])
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_or_unknown_kind_of_file(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_config_file(str(tmp_path / "nope.yaml"))
    (tmp_path / "x.ini").write_text("[seg]\n")
    with pytest.raises(UsageError, match="use a .yaml, .yml or .toml file"):
        load_config_file(str(tmp_path / "x.ini"))
