"""``python -m orchestrator.tool_worker CONFIG_CLASS RUN_FUNCTION CONFIG_JSON``: one process of a tool run under
``accelerate launch`` (``orchestrator.tool_tasks``): the config class and the run function come as
``module:name`` and the config as resolved JSON, so every process builds the same one."""

from __future__ import annotations

import json
import sys

from core.config import build_config
from core.logs import setup_logging
from core.stage_spec import load


def main(argv: list[str]) -> int:
    config_class, run_function, payload = argv
    setup_logging("INFO")
    load(run_function)(build_config(load(config_class), json.loads(payload), environ={}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
