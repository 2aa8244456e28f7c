"""``filter_dataset(cfg) -> FilterResult``: a lane dataset curated by attributes into a new dataset.

Rows are kept when their structured prompt (``lane_dataset.parse_prompt``) matches ``--count``,
``--color`` and ``--pattern`` (``any`` matches everything) and, with ``--require-clear-road``, has no
``unknown`` attribute. Kept rows are sorted (``--sort``), then validated in that order
(``lane_dataset.check_rows``: files exist and open, same size, mask not empty) until ``--limit``
valid rows are found; invalid rows are counted by reason, listed, and not copied. Valid rows' files
keep their relative paths under the output, where ``train.csv`` is written last, with
``filter_report.json`` (counts, every failure, both attribute distributions).

Local to local, files are copied, hard-linked (a copy when linking fails, e.g. across devices) or
symlinked; whenever either side is remote (gs://, memory://) they are copied, bytes already read
for validation, so nothing is downloaded twice.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core import storage
from core.errors import UsageError
from training.dataset_config import ANY, DatasetFilterConfig
from training.lane_dataset import (
    PROMPT_TEMPLATE,
    PROMPT_UNSTRUCTURED,
    TRAIN_CSV,
    DatasetError,
    DatasetRow,
    LaneAttributes,
    RowCheck,
    check_rows,
    distribution_table,
    read_rows,
    resolve,
    write_rows,
)

log = logging.getLogger(__name__)

REPORT_JSON = "filter_report.json"


@dataclass
class FilterResult:
    input: str
    output: str
    copy_mode: str                     # the mode used (copy whenever a side is remote)
    input_rows: list[DatasetRow]
    output_rows: list[DatasetRow]
    filtered_out: int                  # structured rows whose attributes did not match
    validated: int                     # rows whose files were checked
    failures: list[RowCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def reason_counts(self) -> Counter[str]:
        return Counter(reason for check in self.failures for reason in check.reasons)

    def lines(self, max_failures: int = 20) -> list[str]:
        out = [f"filter {self.input} -> {self.output}: {len(self.input_rows)} row(s) in, {self.filtered_out} "
               f"not matching, {len(self.failures)} invalid, {len(self.output_rows)} written ({self.copy_mode})"]
        out += self.notes
        if self.failures:
            out.append("invalid rows by reason: " + ", ".join(f"{r}: {n}" for r, n in sorted(self.reason_counts.items())))
            out += [f"  line {c.row.line} ({c.row.image or '-'}): {'; '.join(c.details)}" for c in self.failures[:max_failures]]
            if len(self.failures) > max_failures:
                out.append(f"  ... and {len(self.failures) - max_failures} more (all in {REPORT_JSON})")
        out += ["", distribution_table(self.input_rows, "input"), "", distribution_table(self.output_rows, "output")]
        return out


def matches(attributes: LaneAttributes, cfg: DatasetFilterConfig) -> bool:
    return ((cfg.count == ANY or attributes.count == cfg.count)
            and (cfg.color == ANY or attributes.color == cfg.color)
            and (cfg.pattern == ANY or attributes.pattern == cfg.pattern)
            and (attributes.clear or not cfg.require_clear_road))


def _check_usage(cfg: DatasetFilterConfig, output: str) -> list[DatasetRow]:
    """Every run-level problem as a ``UsageError`` before anything is written; returns the input rows."""
    if storage.join(cfg.input, "x") == storage.join(output, "x"):
        raise UsageError(f"--output {output} is the input dataset: choose another folder")
    try:
        rows = read_rows(cfg.input)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    storage.check_output_root(output)
    if storage.exists(storage.join(output, TRAIN_CSV)) and not cfg.overwrite:
        raise UsageError(f"{output} already holds a dataset ({TRAIN_CSV}): use --overwrite or another --output")
    return rows


def _copy_mode(cfg: DatasetFilterConfig, output: str) -> tuple[str, list[str]]:
    if cfg.copy_mode == "copy" or (storage.is_local(cfg.input) and storage.is_local(output)):
        return cfg.copy_mode, []
    note = (f"remote storage: files are copied (--copy-mode {cfg.copy_mode} applies only between local folders)")
    log.warning(note)
    return "copy", [note]


class _Writer:
    """Puts one validated file at the output with the chosen mode (thread-safe, one call per path)."""

    def __init__(self, source_root: str, output: str, mode: str) -> None:
        self.source_root, self.output, self.mode = source_root, output, mode
        self.link_fallbacks = 0

    def __call__(self, rel: str, data: bytes | None) -> None:
        dest = resolve(self.output, rel)
        if self.mode == "copy":
            storage.write_bytes(dest, data if data is not None else storage.read_bytes(resolve(self.source_root, rel)))
            return
        src = os.path.abspath(storage.local_path(resolve(self.source_root, rel)))
        dest = os.path.abspath(storage.local_path(dest))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.tmp-link"
        if os.path.lexists(tmp):
            os.remove(tmp)
        if self.mode == "symlink":
            os.symlink(src, tmp)
        else:
            try:
                os.link(src, tmp)
            except OSError as exc:  # another filesystem, or links not allowed: copy instead
                self.link_fallbacks += 1
                log.debug("hard link %s failed (%s): copying", src, exc)
                shutil.copyfile(src, tmp)
        os.replace(tmp, dest)


def _sorted(rows: list[DatasetRow], key: str | None) -> list[DatasetRow]:
    if key == "prompt":
        return sorted(rows, key=lambda r: (r.prompt, r.image))
    if key == "image":
        return sorted(rows, key=lambda r: r.image)
    return rows


def filter_dataset(cfg: DatasetFilterConfig) -> FilterResult:
    """Select, validate and copy rows of ``cfg.input`` into ``cfg.output_uri()``; see the module docstring."""
    output = cfg.output_uri()
    rows = _check_usage(cfg, output)
    mode, notes = _copy_mode(cfg, output)
    failures: list[RowCheck] = []
    selected: list[DatasetRow] = []
    filtered_out = 0
    for row in rows:
        attributes = row.attributes
        if attributes is None:
            check = RowCheck(row)
            check.fail(PROMPT_UNSTRUCTURED, f"prompt {row.prompt[:120]!r} is not {PROMPT_TEMPLATE!r}")
            failures.append(check)
        elif matches(attributes, cfg):
            selected.append(row)
        else:
            filtered_out += 1
    selected = _sorted(selected, cfg.sort)
    valid: list[RowCheck] = []
    validated = 0
    step = cfg.workers * 4
    for start in range(0, len(selected), step):   # validate in output order until --limit rows are valid
        if cfg.limit is not None and len(valid) >= cfg.limit:
            break
        batch = selected[start:start + step]
        validated += len(batch)
        for check in check_rows(cfg.input, batch, cfg.workers, keep_bytes=(mode == "copy")):
            (valid if check.ok else failures).append(check)
    valid = valid[:cfg.limit] if cfg.limit is not None else valid
    failures.sort(key=lambda c: c.row.line)
    files: dict[str, bytes | None] = {}
    for check in valid:
        files.setdefault(check.row.image, check.image_bytes)
        files.setdefault(check.row.mask, check.mask_bytes)
    writer = _Writer(cfg.input, output, mode)
    if files:
        with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
            list(pool.map(lambda item: writer(*item), files.items()))
    if writer.link_fallbacks:
        notes.append(f"{writer.link_fallbacks} file(s) could not be hard-linked (another filesystem?) and were copied")
    out_rows = [DatasetRow(c.row.image, c.row.mask, c.row.prompt, c.row.prompt_2) for c in valid]
    result = FilterResult(cfg.input, output, mode, rows, out_rows, filtered_out, validated, failures, notes)
    storage.write_text(storage.join(output, REPORT_JSON), json.dumps(_report(cfg, result), indent=2))
    write_rows(output, out_rows)
    log.info("filter: %d of %d row(s) written to %s", len(out_rows), len(rows), output)
    return result


def _report(cfg: DatasetFilterConfig, result: FilterResult) -> dict[str, Any]:
    def dist(rows: list[DatasetRow]) -> dict[str, int]:
        counts = Counter(" ".join((a.count, a.color, a.pattern)) if a else "not structured"
                         for a in (r.attributes for r in rows))
        return dict(sorted(counts.items()))

    return {"input": result.input, "output": result.output, "copy_mode": result.copy_mode,
            "filters": {"count": cfg.count, "color": cfg.color, "pattern": cfg.pattern,
                        "require_clear_road": cfg.require_clear_road, "sort": cfg.sort, "limit": cfg.limit},
            "rows_in": len(result.input_rows), "rows_out": len(result.output_rows),
            "not_matching": result.filtered_out, "validated": result.validated,
            "invalid_by_reason": dict(sorted(result.reason_counts.items())),
            "invalid": [{"line": c.row.line, "image": c.row.image, "mask": c.row.mask, "reasons": c.reasons,
                         "details": c.details} for c in result.failures],
            "distribution_in": dist(result.input_rows), "distribution_out": dist(result.output_rows),
            "notes": result.notes}
