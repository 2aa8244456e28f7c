"""The settings as a user meets them: every older variable name works or is refused, a config file drives a
run, `lanepaint config show` and `lanepaint env` tell where values come from, and --help explains."""

import dataclasses
import typing

import pytest

from core.config import (
    build_config,
    choices_of,
    default_of,
    env_of,
    resolve,
    setting_of,
    settings_fields,
    type_hints,
)
from core.errors import UsageError
from orchestrator.cli import COMMANDS, main
from orchestrator.settings_registry import env_sections, file_sections

# seed variable names named by the architecture issue: each works as an alias or is refused with a hint
SEED_NAMES = {
    "SAM2_MAX_FRAMES": ("segment", "max_frames"), "VP_STRENGTH": ("edit", "strength"),
    "VP_NUM_INFERENCE_STEPS": ("edit", "num_inference_steps"), "VP_INSTRUCTIONS": ("edit", "instructions"),
    "ALPAMAYO_VIDEO_NAME": ("evaluate", "video_name"), "VIDEO_EDITING_INSTRUCTIONS": ("edit", "instructions"),
    "TRAINED_FLUXFILL_GCS_PATH": ("edit", "img_inpainting_lora_path"), "ALPAMAYO_MODEL_ID": ("evaluate", "model_path"),
    "LLM_MODEL_SIZE": ("edit", "qwen_model"), "ALPAMAYO_NUM_TRAJ_SAMPLES": ("evaluate", "num_traj_samples"),
}
REFUSED = ("SAM2_CHUNK_START", "SAM2_CHUNK_END", "SAM2_FILES_PER_CHUNK")


def _other_value(cls, field):
    """A valid value of the field's type that differs from its default, as an environment string."""
    hint = type_hints(cls)[field.name]
    default = default_of(field)
    choices = choices_of(cls, field)
    if choices:
        return next(str(c) for c in choices if c != default)
    inner = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if typing.get_origin(hint) is tuple:
        inner = hint
    if typing.get_origin(inner) is tuple:
        return "camera_front_wide_120fov" if "camera" in field.name else "7,9"
    if inner is bool:
        return "false" if default else "true"
    if inner is int:
        return str((default or 0) + 3)
    if inner is float:
        return str((default or 0.0) / 2 + 0.25)
    return "org/some-model"


def _aliases():
    for cls in env_sections():
        for f in settings_fields(cls):
            for alias in setting_of(f).aliases:
                yield cls, f, alias


@pytest.mark.parametrize("cls, field, alias", list(_aliases()),
                         ids=[f"{c.SECTION}.{f.name}:{a}" for c, f, a in _aliases()])
def test_every_older_variable_name_changes_the_resolved_setting(cls, field, alias):
    value = _other_value(cls, field)
    values, sources = resolve(cls, environ={alias: value})
    assert sources[field.name] == f"env {alias}"
    assert values[field.name] != default_of(field)


def test_the_seed_names_are_aliases_or_refused():
    sections = {cls.SECTION: cls for cls in env_sections()}
    for name, (section, field_name) in SEED_NAMES.items():
        field = next(f for f in settings_fields(sections[section]) if f.name == field_name)
        assert name in setting_of(field).aliases, name
    for name in REFUSED:
        with pytest.raises(UsageError, match=rf"^{name} is no longer read: give the chunk range in the input URI"):
            build_config(sections["segment"], {"inputs": ("a.mp4",)}, environ={name: "3"})


def test_generic_names_are_not_read_by_the_library():
    names = {env_of(cls, f) for cls in env_sections() for f in settings_fields(cls)}
    names |= {a for cls in env_sections() for f in settings_fields(cls) for a in setting_of(f).aliases}
    assert not names & {"RUN_ID", "OUTPUT_ROOT", "DATA_RUN_ID", "PROFILE"}


def test_variable_names_are_unique_per_setting():
    seen = {}
    for cls in env_sections():
        for f in settings_fields(cls):
            for name in filter(None, (env_of(cls, f), *setting_of(f).aliases)):
                key = (cls.SECTION, f.name)
                assert seen.setdefault((cls.SECTION, name), key) == key, name


# ---- the commands ---------------------------------------------------------------------------------
def test_config_show_tells_where_each_value_comes_from(tmp_path, capsys, monkeypatch):
    config = tmp_path / "team.yaml"
    config.write_text("common:\n  profile: tiny\nsegment:\n  max-frames: 49\n  window: 0\n")
    monkeypatch.setenv("SAM2_FPS", "5")
    monkeypatch.setenv("LANEPAINT_SEGMENT_WINDOW", "80")
    assert main(["config", "show", "segment", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[segment]"
    line = {row.split("=")[0].strip(): row for row in out[1:]}
    assert line["max-frames"].endswith(f"= 49    (config file {config})")
    assert line["fps"].endswith("= 5.0    (env SAM2_FPS)")
    assert line["window"].endswith("= 80    (env LANEPAINT_SEGMENT_WINDOW)")     # environment over file
    assert line["profile"].endswith(f"= tiny    (config file {config})")
    assert line["model"].endswith("= large    (default)")


def test_config_show_errors(tmp_path, capsys):
    assert main(["config", "show", "segmnet"]) == 2
    assert "unknown section 'segmnet'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("segment:\n  max-frame: 3\n")
    assert main(["config", "show", "--config", str(bad)]) == 2
    assert "did you mean 'max-frames'?" in capsys.readouterr().err


def test_a_config_file_drives_a_command_and_flags_win(tmp_path, capsys):
    config = tmp_path / "run.toml"
    out_root = tmp_path / "from_file"
    config.write_text(f'[common]\noutput-root = "{out_root}"\nprofile = "tiny"\n[run]\nstages = "12"\n'
                      '[edit]\nseed = 11\ninstructions = "lane single white dashed"\n')
    assert main(["run", "--dry-run", "--config", str(config), "--run-id", "cf1", "--input", "x/clip_0001.mp4",
                 "--edit-seed", "12"]) == 0
    out = capsys.readouterr().out
    assert f"run cf1: stages 12, profile tiny, output root {out_root}" in out
    from core.config_file import load_config_file
    from orchestrator.run_cli import prepare

    _, resolved = prepare({"run_id": "cf1", "inputs": ["x/clip_0001.mp4"], "edit_seed": 12},
                          load_config_file(str(config)))
    assert resolved["edit_seed"] == 12 and resolved["edit_instructions"] == "lane single white dashed"
    assert resolved["stages"] == "12" and resolved["profile"] == "tiny"
    assert not out_root.exists()


def test_env_lists_every_variable_with_its_older_names(capsys, monkeypatch):
    monkeypatch.setenv("SAM2_MAX_FRAMES", "49")
    monkeypatch.setenv("LANEPAINT_GCS_TOKEN", "secret-value")
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "LANEPAINT_SEGMENT_MAX_FRAMES" in out and "(also SAM2_MAX_FRAMES) = 49 (as SAM2_MAX_FRAMES)" in out
    assert "secret-value" not in out and "<redacted>" in out
    assert main(["env", "--set-only"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("LANEPAINT_SEGMENT_MAX_FRAMES ") for line in lines)
    assert all(" = " in line for line in lines) and len(lines) < len(out.splitlines())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_explains_itself(name, capsys):
    assert main([*name.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: None)" not in out and "default: None" not in out
    assert "examples:" in out and f"lanepaint {name}" in out.split("examples:", 1)[1]
    assert "--config" in out and "--log-level" in out


def test_run_help_lists_every_stage_option(capsys):
    from orchestrator.plan import OPTIONS

    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for name in OPTIONS:
        assert "--" + name.replace("_", "-") in out, name


def test_help_states_each_default_once(capsys):
    assert main(["edit", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--num-inference-steps N video diffusion steps [default full 70, tiny 2; env " \
           "LANEPAINT_EDIT_NUM_INFERENCE_STEPS or VP_NUM_INFERENCE_STEPS]" in out
    assert "--seed N seed of both FluxFill and the video pass [default 42; env LANEPAINT_EDIT_SEED or VP_SEED]" in out


@pytest.mark.parametrize("where", ["before", "after"])
def test_log_level_before_or_after_the_command(where, tmp_path, capsys):
    import logging

    args = ["config", "show", "logging"]
    argv = ["--log-level", "warning", *args] if where == "before" else [*args, "--log-level", "warning"]
    assert main(argv) == 0
    assert logging.getLogger().level == logging.WARNING
    assert main(["config", "show", "logging"]) == 0
    assert logging.getLogger().level == logging.INFO


def test_bad_log_level_in_the_environment_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setenv("LANEPAINT_LOG_LEVEL", "LOUD")
    assert main(["config", "show", "logging"]) == 2
    assert "LANEPAINT_LOG_LEVEL='LOUD': expected one of DEBUG, INFO, WARNING, ERROR" in capsys.readouterr().err


def test_every_config_section_is_known_to_the_registry():
    sections = [cls.SECTION for cls in env_sections()]
    assert len(sections) == len(set(sections))
    assert {cls.SECTION for cls in file_sections()} >= {"run", "segment", "edit", "evaluate", "train-lora"}
    for cls in env_sections():
        assert dataclasses.is_dataclass(cls) and all(setting_of(f).help for f in settings_fields(cls)), cls
