"""``python -m orchestrator.shard_worker STAGE CONFIG_FILE REPORT_FILE WORKER``: one shard of a stage in this
process, on the device ``CUDA_VISIBLE_DEVICES`` gives it (``orchestrator.workers`` starts it); the shard's
``StageReport`` is written to REPORT_FILE (whole, then moved into place). Exit 0 with a report (per-video
failures are inside it), 130/143 when stopped, 1 when the shard itself failed."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys

from core import storage
from core.errors import LanepaintError, one_line
from core.logs import setup_logging
from core.runner import Terminated, sigterm_raises

log = logging.getLogger("lanepaint.worker")


def main(argv: list[str]) -> int:
    stage, config_path, report_path, worker = argv
    setup_logging(os.environ.get("LANEPAINT_LOG_LEVEL", "INFO"))
    threads = os.environ.get("LANEPAINT_WORKER_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    from orchestrator.shards import run_shard

    with open(config_path, encoding="utf-8") as fh:
        config = fh.read()
    try:
        with sigterm_raises():
            report = run_shard(stage, config)
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    except LanepaintError as exc:
        log.error("worker %s: %s", worker, one_line(exc))
        return 1
    report.extra[f"worker_{worker.split('#')[-1]}"] = f"{worker.split('#')[0]} pid {os.getpid()}"
    storage.write_text(report_path, json.dumps(dataclasses.asdict(report)))   # temp name, then moved
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
