import sys

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


