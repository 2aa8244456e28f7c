"""The ``lanepaint`` command: one entry point, a subcommand per stage or tool.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
only the chosen one is imported, so ``lanepaint --help`` and the light commands never import torch.
Exit codes: 0 success, 1 some item failed (or the run failed), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from core import __version__
from core.config import read_env
from core.errors import LanepaintError, UsageError
from core.logs import setup_logging

log = logging.getLogger("lanepaint")

# name -> (module, one-line help). Add a row when a stage or tool lands.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("orchestrator.demo", "run the tiny pipeline end to end on a synthetic clip (CPU, about a minute)"),
    "synth": ("synthetic.cli", "write synthetic driving clips with exact ground-truth road masks"),
    "env": ("orchestrator.env_cli", "list the environment variables lanepaint reads"),
    "segment": ("segmentation.cli", "stage 1: SAM2 road masks for driving videos, in VideoPainter's input format"),
    "edit": ("generation.cli", "stage 2: repaint lane markings in a segmentation run's clips (FluxFill + VideoPainter)"),
    "dataset": ("training.dataset_cli", "lane datasets: generate (SAM2 masks + VLM lane captions) or filter by attributes"),
    "train-lora": ("training.train_cli", "fine-tune a FluxFill LoRA on a lane dataset (stage 2 loads it with --img-inpainting-lora-path)"),
    "evaluate": ("vla.cli", "stage 3: driving model (Alpamayo-R1 or baseline) on original vs edited clips, minADE"),
    "run": ("orchestrator.run_cli", "the pipeline as one Flyte DAG run in this process: stages 1-3, or 12, 23, ... (--stages)"),
    "render": ("vla.render_cli", "overlay and comparison videos from stage 3's *_vis_data.npz files"),
}

EPILOG = """exit codes: 0 success, 1 an item or the run failed (see the summary), 2 bad usage.
Run `lanepaint <command> --help` for the options of one command."""


_VALUE_OPTIONS = ("--log-level",)  # top-level options that take a value


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv: the first word that is neither an option nor an option's value."""
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
            continue
        if arg in _VALUE_OPTIONS:
            skip_next = True
            continue
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanepaint",
        description="Repaint lane markings in driving videos and measure how a driving model reacts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lanepaint {__version__}")
    parser.add_argument("--log-level", default=(read_env("LANEPAINT_LOG_LEVEL") or "INFO").upper(),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging verbosity (default INFO, or LANEPAINT_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    chosen = _command_in(argv)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text,
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    setup_logging(args.log_level)
    try:
        return int(args._module.run(args) or 0)
    except UsageError as exc:
        print(f"lanepaint {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except LanepaintError as exc:
        print(f"lanepaint {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lanepaint {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
