from dataclasses import dataclass, field
from typing import Literal

import pytest

from core.config import ENV_TABLE, build_config, coerce, config_to_dict, read_env
from core.errors import UsageError


@dataclass(frozen=True)
class SegCfg:
    max_frames: int = 150
    fps: float = 8.0
    model: Literal["tiny", "small", "base_plus", "large"] = "large"
    profile: str = "full"
    overwrite: bool = False
    cache_dir: str | None = None
    inputs: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class EditCfg:
    strength: float = 1.0
    num_inference_steps: int = 70
    data_run_id: str | None = None
    hf_token: str | None = None


def test_defaults_when_nothing_set():
    cfg = build_config(SegCfg, "segment", {}, environ={})
    assert cfg == SegCfg()


def test_priority_defaults_env_cli():
    env = {"SAM2_MAX_FRAMES": "40", "SAM2_FPS": "5", "LANEPAINT_PROFILE": "tiny"}
    cfg = build_config(SegCfg, "segment", {"fps": 12.0, "max_frames": None}, environ=env)
    assert cfg.max_frames == 40          # env over default; CLI None means "not given"
    assert cfg.fps == 12.0               # CLI over env
    assert cfg.profile == "tiny"         # "*" section variables apply to every config with the field


def test_env_only_applies_to_its_section():
    cfg = build_config(EditCfg, "edit", {}, environ={"SAM2_MAX_FRAMES": "3", "VP_STRENGTH": "0.5",
                                                     "VP_NUM_INFERENCE_STEPS": "2", "DATA_RUN_ID": "r1"})
    assert (cfg.strength, cfg.num_inference_steps, cfg.data_run_id) == (0.5, 2, "r1")


def test_config_is_frozen():
    cfg = build_config(SegCfg, "segment", {}, environ={})
    with pytest.raises(AttributeError):
        cfg.fps = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SAM2_MAX_FRAMES": "many"}, "SAM2_MAX_FRAMES='many': expected int"),
        ({"SAM2_FPS": "fast"}, "SAM2_FPS='fast': expected float"),
        ({"SAM2_MODEL": "huge"}, "SAM2_MODEL='huge': expected one of tiny, small, base_plus, large"),
    ],
)
def test_bad_env_values_are_one_line_usage_errors(env, message):
    with pytest.raises(UsageError) as info:
        build_config(SegCfg, "segment", {}, environ=env)
    assert str(info.value) == message


def test_bad_cli_value_names_the_flag():
    with pytest.raises(UsageError, match="--overwrite='maybe'"):
        build_config(SegCfg, "segment", {"overwrite": "maybe"}, environ={})


def test_unknown_cli_field_is_a_programming_error():
    with pytest.raises(TypeError):
        build_config(SegCfg, "segment", {"nope": 1}, environ={})


def test_coerce_types():
    assert coerce("yes", bool, "X") is True and coerce("0", bool, "X") is False
    assert coerce("a, b,,c", tuple[str, ...], "X") == ("a", "b", "c")
    assert coerce("none", int | None, "X") is None
    assert coerce("7", int | None, "X") == 7


def test_secrets_redacted_in_config_dict():
    cfg = EditCfg(hf_token="hf_abc")
    assert config_to_dict(cfg)["hf_token"] == "<redacted>"
    assert config_to_dict(EditCfg())["hf_token"] is None


def test_read_env_only_for_registered_names():
    assert read_env("SAM2_FPS", {"SAM2_FPS": "4"}) == "4"
    with pytest.raises(KeyError):
        read_env("NOT_A_LANEPAINT_VAR", {})


def test_env_table_names_unique_and_seed_names_present():
    names = [v.name for v in ENV_TABLE]
    assert len(names) == len(set(names))
    for seed in ("SAM2_MAX_FRAMES", "VP_STRENGTH", "VP_NUM_INFERENCE_STEPS", "ALPAMAYO_NUM_TRAJ_SAMPLES", "DATA_RUN_ID"):
        assert seed in names


def test_require_raises_the_first_failed_check():
    from core.config import require

    require([(True, "never")])
    with pytest.raises(UsageError, match="^--rank must be >= 1$"):
        require([(True, "fine"), (False, "--rank must be >= 1"), (False, "later")])
