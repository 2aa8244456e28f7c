"""What a stage (or one shard of it) and a whole pipeline run report: plain data a Flyte task returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageReport:
    """What one stage (or one shard of it) did."""

    stage: str
    run_id: str
    run_uri: str = ""
    manifest_uri: str = ""
    ok: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)     # item -> one-line reason
    extra: dict[str, str] = field(default_factory=dict)      # stage-specific URIs
    shards: int = 0
    seconds: float = 0.0
    note: str = ""                                           # why a stage did not run
    number: str = ""                                         # its place in the DAG

    @classmethod
    def from_result(cls, result: Any, seconds: float = 0.0, number: str = "") -> StageReport:
        """From a ``core.runner.StageResult``."""
        return cls(stage=result.stage, run_id=result.run_id, run_uri=result.run_uri,
                   manifest_uri=result.manifest_uri, ok=list(result.ok), skipped=list(result.skipped),
                   failed=dict(result.failed), extra=dict(result.extra), shards=1, seconds=round(seconds, 3),
                   number=number)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.note.startswith("failed") else 0

    def line(self) -> str:
        if self.note:
            return self.note
        return (f"{len(self.ok)} ok, {len(self.skipped)} skipped (already done), {len(self.failed)} failed "
                f"in {self.shards} shard(s) -> {self.run_uri}")


@dataclass
class PipelineResult:
    run_id: str
    stages: str
    output_root: str
    reports: list[StageReport] = field(default_factory=list)
    next_command: str = ""
    results: dict[str, str] = field(default_factory=dict)    # csv, parquet, html URIs of the run's results
    results_note: str = ""                                   # why there are none, or why they failed

    @property
    def exit_code(self) -> int:
        failed_results = 1 if self.results_note.startswith("failed") else 0
        return max([r.exit_code for r in self.reports] + [failed_results])

    def lines(self) -> list[str]:
        out = [f"run {self.run_id} (stages {self.stages}) -> {self.output_root}"]
        for report in self.reports:
            out.append(f"  {report.number} {report.stage:<8} {report.seconds:7.1f}s  {report.line()}")
            out += [f"      FAILED {item}: {reason}" for item, reason in sorted(report.failed.items())]
            if report.manifest_uri:
                out.append(f"      manifest: {report.manifest_uri}")
        if self.results:
            out.append("results (one row per clip x instruction, and the report to open):")
            out += [f"  {kind:<8} {uri}" for kind, uri in self.results.items()]
        elif self.results_note:
            out.append(f"results: {self.results_note}")
        if self.next_command:
            out.append(f"next: {self.next_command}")
        return out
