"""``lanepaint report RUN_URI``: rebuild a run's results table and HTML report from its per-item records."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

from core import storage
from core.config import Settings, setting
from core.config_cli import add_settings_arguments, config_from_args
from core.errors import UsageError
from core.ids import validate_id
from core.layout import STAGE_FOLDERS

EXAMPLES = """\
examples:
  lanepaint report outputs/reports/demo1                 # the folder the report goes to
  lanepaint report outputs/vp/demo1                      # or any stage folder of the run
  lanepaint report gs://bucket/lanepaint --run-id run7   # or the output root and the run id
  lanepaint report outputs/alpamayo/demo1 --samples 12   # more clips with thumbnails
"""


@dataclass(frozen=True)
class ReportConfig(Settings):
    """``lanepaint report``: the run's table (results.csv/.parquet) and report.html under reports/<run_id>."""

    SECTION: ClassVar[str] = "report"

    run_uri: str = setting("", help="the run: <root>/<stage folder>/<run_id> (reports, sam2, vp, alpamayo, ...) "
                           "or the output root with --run-id", positional=True, env=None, metavar="RUN_URI")
    run_id: str | None = setting(None, help="the run id when RUN_URI is the output root", env=None,
                                 blank_is_default=False)
    samples: int = setting(6, help="clips shown with thumbnails in the report (0: none)")

    def validate(self) -> None:
        if not self.run_uri:
            raise UsageError("a run is required: RUN_URI (e.g. outputs/reports/<run_id>) or the output root with "
                             "--run-id")
        if self.samples < 0:
            raise UsageError(f"--samples {self.samples}: must be >= 0")
        if self.run_id is not None:
            validate_id(self.run_id, "run id")

    def location(self) -> tuple[str, str]:
        """(output root, run id) named by ``run_uri`` and ``run_id``."""
        uri = self.run_uri.rstrip("/")
        if self.run_id is not None:
            return uri, self.run_id
        parent, run_id = uri.rsplit("/", 1) if "/" in uri else ("", uri)
        root, _, stage = parent.rpartition("/")
        if stage not in STAGE_FOLDERS:
            raise UsageError(f"{self.run_uri}: not a run folder <root>/<{'|'.join(STAGE_FOLDERS)}>/<run_id>; give "
                             "the output root with --run-id")
        return root or ".", validate_id(run_id, "run id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, ReportConfig)


def run(args: argparse.Namespace) -> int:
    from orchestrator.run_report import write_run_results

    cfg = config_from_args(ReportConfig, args)
    root, run_id = cfg.location()
    storage.check_output_root(root)
    results = write_run_results(root, run_id, cfg.samples)
    for line in results.lines():
        print(line)
    return 0
