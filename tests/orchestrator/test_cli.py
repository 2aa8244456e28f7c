import fnmatch
import json
import sys

import pytest

from core import videoio
from orchestrator.cli import main
from tests.fixtures import processes


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice: 'frobnicate'" in err and "(see lanepaint --help)" in err


def test_console_script_entry_point_runs():
    out = processes.run([sys.executable, "-m", "orchestrator.cli", "env"], timeout=60)
    assert out.returncode == 0 and "SAM2_MAX_FRAMES" in out.stdout


@pytest.mark.slow
def test_demo_runs_every_stage_end_to_end(tmp_path, capsys):
    """`lanepaint demo`: a synthetic clip through stages 1 -> 2 -> 3 with the tiny profile."""
    root = tmp_path / "out"
    assert main(["demo", "--output-root", str(root), "--run-id", "demo_t"]) == 0
    out = capsys.readouterr().out
    assert "lanepaint demo demo_t" in out and "failed" not in out.split("done in")[1].replace("0 failed", "")
    files = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]

    def count(pattern: str) -> int:
        return sum(1 for f in files if fnmatch.fnmatch(f, pattern))

    assert count("sam2/demo_t/*/masks/00000.png") == 1
    assert count("preprocessed_data_vp/demo_t/*/mask_root/*/all_masks.npz") == 1
    assert count("vp/demo_t/*/*/*_vp_edit_sample0.mp4") == 2          # two instructions
    assert count("vp/demo_t/*/*/*_vp_edit_sample0.json") == 2
    assert count("alpamayo/demo_t/*/*/*_overlay.mp4") == 2
    assert count("alpamayo/demo_t/*/*/*_comparison.mp4") == 2
    assert count("alpamayo/demo_t/demo_t_report.txt") == 1
    for stage in ("sam2", "vp", "alpamayo"):
        manifest = json.loads((root / stage / "demo_t" / "manifest.json").read_text())
        assert manifest["profile"] == "tiny" and "profile_note" in manifest
    # the input is the synthetic dataset's own front video: the whole 20 s clip at 30 fps
    (video,) = (root / "demo_inputs" / "demo_t").glob("*.camera_front_wide_120fov.mp4")
    info = videoio.probe(str(video))
    assert (info.fps, info.frame_count, info.width, info.height) == (30.0, 600, 320, 180)
    # stage 1 planned the moment (t0 6.4 s before the end), stage 3 evaluated there with the real architecture
    (record_file, *_) = root.glob("alpamayo/demo_t/*/*/*_inference.json")
    record = json.loads(record_file.read_text())
    assert record["model"] == "alpamayo" and record["temporal_config"]["moment"]["t0_s"] == 13.5
    assert record["temporal_config"]["moment_source"] == "stage 1 plan"
    assert record["baseline"]["model"] == "constant-velocity"
    report = (root / "alpamayo" / "demo_t" / "demo_t_report.txt").read_text()
    assert "plan moved (original vs edited plan, paired samples): ADE mean" in report
    assert "baseline constant-velocity: minADE" in report and "minADE (edited): average" in report


def test_top_level_option_value_is_not_taken_for_the_command(tmp_path):
    code = main(["--log-level", "WARNING", "synth", "--out", str(tmp_path), "--seconds", "0.2",
                 "--width", "64", "--height", "48"])
    assert code == 0 and any(p.suffix == ".mp4" for p in tmp_path.iterdir())


def test_log_handler_follows_current_stderr(capsys):
    import logging
    import sys

    from core.logs import setup_logging

    setup_logging("INFO")
    logging.getLogger("lanepaint.test").info("first message")
    assert "first message" in capsys.readouterr().err
    old = sys.stderr
    try:
        import io

        sys.stderr = buf = io.StringIO()
        logging.getLogger("lanepaint.test").info("second message")
    finally:
        sys.stderr = old
    assert "second message" in buf.getvalue()


