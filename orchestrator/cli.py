"""The ``lanepaint`` command: one entry point, a subcommand per stage or tool.

Each subcommand lives in its own module exposing ``add_arguments(parser)``, ``run(args) -> int`` and
``EXAMPLES``; only the chosen one is imported, so ``lanepaint --help`` and the light commands never
import torch. Every subcommand takes ``--config FILE`` (a YAML or TOML file with one section per
command, ``core.config_file``) and ``--log-level`` (also before the subcommand).
Exit codes: 0 success, 1 some item failed (or the run failed), 2 bad usage, 130 Ctrl-C, 143 SIGTERM (the
manifest is written either way).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from core import __version__
from core.config_cli import help_text
from core.errors import LanepaintError, UsageError

log = logging.getLogger("lanepaint")

# command words -> (module, one-line help). Add a row when a stage or tool lands.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("orchestrator.demo", "run the tiny pipeline end to end on a synthetic clip (CPU, about a minute)"),
    "run": ("orchestrator.run_cli", "the pipeline as one Flyte DAG run in this process: stages 1-3, or 12, 23, "
                                    "... (--stages)"),
    "segment": ("segmentation.cli", "stage 1: SAM2 road masks for driving videos, in VideoPainter's input format"),
    "edit": ("generation.cli", "stage 2: repaint lane markings in a segmentation run's clips (FluxFill + "
                               "VideoPainter)"),
    "evaluate": ("vla.cli", "stage 3: driving model (Alpamayo-R1 or baseline) on original vs edited clips, minADE"),
    "report": ("orchestrator.report_cli", "rebuild a run's results table (CSV, Parquet) and its HTML report from "
                                          "the per-item records"),
    "render": ("vla.render_cli", "overlay and comparison videos from stage 3's *_vis_data.npz files"),
    "fetch-dataset": ("vla.fetch_cli", "download the PhysicalAI-AV files some clips need into a Hugging Face cache "
                                       "(stage 3 then reads them offline)"),
    "fetch-models": ("orchestrator.fetch_models_cli", "download every checkpoint a full run needs into a hub "
                                                      "cache, pinned to commits (stages then read the pins)"),
    "dataset generate": ("training.dataset_generate_cli", "lane dataset: images, SAM2 road masks and VLM lane "
                                                          "captions (train.csv)"),
    "dataset filter": ("training.dataset_filter_cli", "a new lane dataset with the rows matching lane attributes"),
    "train-lora": ("training.train_cli", "fine-tune a FluxFill LoRA on a lane dataset (stage 2 loads it with "
                                         "--img-inpainting-lora-path)"),
    "synth": ("synthetic.cli", "write synthetic driving clips with exact ground-truth road masks"),
    "config show": ("orchestrator.config_show", "print every resolved setting and where its value came from"),
    "env": ("orchestrator.env_cli", "list the environment variables lanepaint reads"),
}
GROUPS = {"dataset": "lane datasets: generate (SAM2 masks + VLM captions) or filter by lane attributes",
          "config": "the resolved settings (defaults < --config file < environment < flags)"}

EPILOG = """exit codes: 0 success, 1 an item or the run failed (see the summary), 2 bad usage (nothing written),
130/143 stopped by Ctrl-C/SIGTERM (the manifest records what finished; rerun to resume).
Run `lanepaint <command> --help` for the options of one command, with examples."""


def _command_in(argv: Sequence[str]) -> tuple[str, ...]:
    """The command words in argv (``("dataset", "generate")``), skipping options and option values."""
    words: list[str] = []
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
            continue
        if arg in ("--log-level", "--config"):
            skip_next = True
            continue
        if arg.startswith("-"):
            if words:
                break
            continue
        candidate = " ".join([*words, arg])
        if candidate in COMMANDS or any(name.startswith(candidate + " ") for name in COMMANDS):
            words.append(arg)
            if candidate in COMMANDS:
                break
        else:
            break
    return tuple(words)


def _add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    """--log-level (top level and every command; the command's copy does not reset the top one) and
    --config (every command)."""
    from core.logs import LogSettings

    field = next(f for f in LogSettings.__dataclass_fields__.values() if f.name == "log_level")
    parser.add_argument("--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        default=None if top else argparse.SUPPRESS, help=help_text(LogSettings, field))
    if not top:
        parser.add_argument("--config", metavar="FILE", default=None,
                            help="settings file (.yaml/.toml) with one section per command, e.g. segment:, "
                                 "edit:, run: (lanepaint config show --config FILE prints what it resolves to)")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (the usage is what --help is for); exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lanepaint", description="Repaint lane markings in driving videos and measure how a driving model "
        "reacts.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"lanepaint {__version__}")
    _add_common(parser, top=True)
    chosen = " ".join(_command_in(argv))
    subparsers = {(): parser.add_subparsers(dest="command", metavar="<command>", title="commands")}
    nodes: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for name, (module_name, help_line) in COMMANDS.items():
        words = tuple(name.split())
        for depth in range(1, len(words)):      # group parsers, e.g. `lanepaint dataset`
            group = words[:depth]
            if group not in nodes:
                nodes[group] = subparsers[group[:-1]].add_parser(
                    group[-1], help=GROUPS[" ".join(group)], description=GROUPS[" ".join(group)])
                subparsers[group] = nodes[group].add_subparsers(dest=f"command_{depth}", metavar="<subcommand>",
                                                                required=True)
        cmd = subparsers[words[:-1]].add_parser(words[-1], help=help_line, description=help_line,
                                                formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd.set_defaults(_command=name)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.epilog = getattr(module, "EXAMPLES", None)
            if len(cmd._actions) > 30:     # argparse would list every option in the usage line
                cmd.usage = f"lanepaint {name} [options]   (every option below; --config FILE for a settings file)"
            cmd.set_defaults(_module=module)
        _add_common(cmd, top=False)
    return parser


def _prepare(args: argparse.Namespace) -> None:
    """Load the --config file (every section checked), then set up logging from flag < env < file."""
    from core.config import build_config
    from core.config_file import load_config_file
    from core.logs import LogSettings, setup_logging

    config_file = None
    if getattr(args, "config", None):
        from orchestrator.settings_registry import file_sections

        config_file = load_config_file(args.config)
        config_file.check_sections(file_sections())
    args.config_file = config_file
    level = build_config(LogSettings, {"log_level": args.log_level},
                         file=config_file.values_for(LogSettings) if config_file else None).log_level
    setup_logging(level)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:          # --help, --version, or a usage error already printed
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 2
    name = getattr(args, "_command", None)
    if not name or not hasattr(args, "_module"):
        parser.print_help()
        return 2
    from core.runner import Terminated, sigterm_raises

    try:
        _prepare(args)
        with sigterm_raises():
            return int(args._module.run(args) or 0)
    except UsageError as exc:
        print(f"lanepaint {name}: error: {exc}", file=sys.stderr)
        return 2
    except LanepaintError as exc:
        print(f"lanepaint {name}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lanepaint {name}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"lanepaint {name}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except BrokenPipeError:   # `lanepaint env | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
