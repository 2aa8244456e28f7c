"""The lane dataset format, in one place. ``lanepaint dataset generate`` writes it, ``lanepaint dataset
filter`` curates it, and the FluxFill LoRA trainer reads it. No torch here.

A dataset is a folder URI (local path, ``file://``, ``gs://`` or ``memory://``)::

    <root>/train.csv                    columns image, mask, prompt, prompt_2
    <root>/images/<video>_frameNNN.png  RGB frame (8-bit, 3 channels)
    <root>/masks/<video>_frameNNN.png   8-bit grey, same size: 255 road (area to inpaint), 0 keep

``image`` and ``mask`` are paths relative to the root with ``/`` separators (no ``..``, no URIs).
``prompt`` is exactly ``road with {count} {color} {pattern} lane markings`` with count
single|double|unknown, color white|yellow|mixed|unknown, pattern solid|dashed|mixed|unknown;
``PROMPT_RE`` is the one pattern that parses it. ``prompt_2`` is the T5 prompt (the generator writes
the same sentence; a reader uses ``prompt`` when it is empty). Other files (``captions.jsonl``,
``manifest.json``, ``_records/``) are for people and for resuming; readers need only these.

Entry points: ``read_rows(root)`` (train.csv -> ``DatasetRow`` list, a one-line ``DatasetError`` for
a missing file or columns), ``check_rows(root, rows)`` (per-row validation with reasons),
``validate_dataset(root)`` (both, for a trainer), ``load_sample(root, row)`` (arrays),
``local_copy(root, cache_dir)`` (a remote dataset downloaded once, for many epochs) and
``distribution_table(rows)``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from core import lanes, storage
from core.errors import LanepaintError, StorageError
from core.lanes import MIXED, UNKNOWN

log = logging.getLogger(__name__)

# a caption's attributes: the lane vocabulary plus mixed (colour, pattern) and unknown
COUNTS = (*lanes.COUNTS, UNKNOWN)
COLORS = (*lanes.COLORS, MIXED, UNKNOWN)
PATTERNS = (*lanes.PATTERNS, MIXED, UNKNOWN)
PROMPT_TEMPLATE = "road with {count} {color} {pattern} lane markings"
# The one pattern of the structured prompt: fullmatch parses a prompt, search finds one in free text.
PROMPT_RE = re.compile(r"road with (?P<count>{}) (?P<color>{}) (?P<pattern>{}) lane markings".format(
    "|".join(COUNTS), "|".join(COLORS), "|".join(PATTERNS)))

COLUMNS = ("image", "mask", "prompt", "prompt_2")
TRAIN_CSV = "train.csv"
IMAGES_DIR = "images"
MASKS_DIR = "masks"
CAPTIONS_JSONL = "captions.jsonl"
MANIFEST_JSON = "manifest.json"

# validation reasons (counted by these names)
BAD_PATH = "bad path"
IMAGE_MISSING = "image missing"
IMAGE_UNREADABLE = "image unreadable"
MASK_MISSING = "mask missing"
MASK_UNREADABLE = "mask unreadable"
SIZE_MISMATCH = "size mismatch"
EMPTY_MASK = "empty mask"
PROMPT_UNSTRUCTURED = "prompt not structured"
REASONS = (BAD_PATH, IMAGE_MISSING, IMAGE_UNREADABLE, MASK_MISSING, MASK_UNREADABLE, SIZE_MISMATCH,
           EMPTY_MASK, PROMPT_UNSTRUCTURED)


class DatasetError(LanepaintError):
    """A dataset (or one of its rows) that cannot be read; the message names it and the reason."""


@dataclass(frozen=True, order=True)
class LaneAttributes:
    count: str = UNKNOWN
    color: str = UNKNOWN
    pattern: str = UNKNOWN

    def __post_init__(self) -> None:
        for name, value, allowed in (("count", self.count, COUNTS), ("color", self.color, COLORS),
                                     ("pattern", self.pattern, PATTERNS)):
            if value not in allowed:
                raise ValueError(f"lane {name} {value!r}: use one of {', '.join(allowed)}")

    @property
    def prompt(self) -> str:
        return PROMPT_TEMPLATE.format(count=self.count, color=self.color, pattern=self.pattern)

    @property
    def clear(self) -> bool:
        """True when no attribute is unknown."""
        return UNKNOWN not in (self.count, self.color, self.pattern)


def parse_prompt(text: object) -> LaneAttributes | None:
    """The attributes of a structured prompt, or None when ``text`` is not exactly that form."""
    if not isinstance(text, str):
        return None
    match = PROMPT_RE.fullmatch(text.strip())
    return LaneAttributes(**match.groupdict()) if match else None


def sample_name(video_id: str, frame: int) -> str:
    """``<video>_frameNNN`` (frame number zero-padded to 3 digits)."""
    return f"{video_id}_frame{int(frame):03d}"


def image_path(name: str) -> str:
    return f"{IMAGES_DIR}/{name}.png"


def mask_path(name: str) -> str:
    return f"{MASKS_DIR}/{name}.png"


@dataclass(frozen=True)
class DatasetRow:
    image: str
    mask: str
    prompt: str
    prompt_2: str = ""
    line: int = 0          # line number in train.csv (header is line 1); 0 when not read from a file

    @property
    def attributes(self) -> LaneAttributes | None:
        return parse_prompt(self.prompt)

    @property
    def text_2(self) -> str:
        """The T5 prompt: ``prompt_2``, or ``prompt`` when it is empty."""
        return self.prompt_2 or self.prompt

    def as_dict(self) -> dict[str, str]:
        return {"image": self.image, "mask": self.mask, "prompt": self.prompt, "prompt_2": self.prompt_2}


def read_rows(root: str) -> list[DatasetRow]:
    """The rows of ``<root>/train.csv``; a missing file or missing columns raise ``DatasetError``."""
    uri = storage.join(root, TRAIN_CSV)
    try:
        text = storage.read_text(uri)
    except StorageError as exc:
        raise DatasetError(f"dataset {root}: cannot read {TRAIN_CSV} ({exc})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"dataset {root}: {TRAIN_CSV} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DatasetError(f"dataset {root}: {TRAIN_CSV} lacks column(s) {', '.join(missing)} "
                           f"(needs {', '.join(COLUMNS)})")
    rows = []
    for record in reader:
        values = {c: (record.get(c) or "").strip() for c in COLUMNS}
        rows.append(DatasetRow(**values, line=reader.line_num))
    return rows


def write_rows(root: str, rows: Iterable[DatasetRow]) -> str:
    """Write ``<root>/train.csv`` atomically (columns ``COLUMNS``); returns its URI."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.as_dict())
    uri = storage.join(root, TRAIN_CSV)
    storage.write_text(uri, buffer.getvalue())
    return uri


def _path_problem(rel: str) -> str | None:
    if not rel:
        return "empty"
    if "://" in rel or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
        return "not relative to the dataset root"
    if ".." in re.split(r"[\\/]", rel):
        return "contains '..'"
    return None


def resolve(root: str, rel: str) -> str:
    """The URI of a row path; ``DatasetError`` for an absolute path, a URI or ``..``."""
    problem = _path_problem(rel)
    if problem:
        raise DatasetError(f"path {rel!r}: {problem}")
    return storage.join(root, *rel.replace("\\", "/").split("/"))


def _decode(data: bytes) -> np.ndarray | None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    return image if image is not None and image.size else None


@dataclass
class RowCheck:
    """The validation of one row: ``reasons`` (empty when valid) with a detail line per reason."""

    row: DatasetRow
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    size: tuple[int, int] | None = None            # (width, height) of the image when readable
    image_bytes: bytes | None = None               # kept with keep_bytes, for copying
    mask_bytes: bytes | None = None

    @property
    def ok(self) -> bool:
        return not self.reasons

    def fail(self, reason: str, detail: str) -> None:
        self.reasons.append(reason)
        self.details.append(detail)


def _read(root: str, rel: str, check: RowCheck, what: str) -> tuple[bytes | None, np.ndarray | None]:
    missing, unreadable = (IMAGE_MISSING, IMAGE_UNREADABLE) if what == "image" else (MASK_MISSING, MASK_UNREADABLE)
    try:
        uri = resolve(root, rel)
    except DatasetError as exc:
        check.fail(BAD_PATH, f"{what} {exc}")
        return None, None
    try:
        data = storage.read_bytes(uri)
    except StorageError as exc:
        check.fail(missing if "not found" in str(exc) else unreadable, f"{what} {rel}: {exc}")
        return None, None
    array = _decode(data)
    if array is None:
        check.fail(unreadable, f"{what} {rel}: not a readable image ({len(data)} bytes)")
        return data, None
    return data, array


def check_row(root: str, row: DatasetRow, keep_bytes: bool = False) -> RowCheck:
    """Validate one row: image and mask exist and open, same size, mask has non-zero pixels, prompt
    in the structured form. Never raises: every problem becomes a reason."""
    check = RowCheck(row)
    if parse_prompt(row.prompt) is None:
        check.fail(PROMPT_UNSTRUCTURED, f"prompt {row.prompt[:120]!r} is not {PROMPT_TEMPLATE!r}")
    image_bytes, image = _read(root, row.image, check, "image")
    mask_bytes, mask = _read(root, row.mask, check, "mask")
    if image is not None:
        check.size = (int(image.shape[1]), int(image.shape[0]))
    if image is not None and mask is not None:
        if image.shape[:2] != mask.shape[:2]:
            check.fail(SIZE_MISMATCH, f"image {image.shape[1]}x{image.shape[0]} but mask {mask.shape[1]}x{mask.shape[0]}")
        elif not np.any(mask):
            check.fail(EMPTY_MASK, f"mask {row.mask} has no non-zero pixels")
    if keep_bytes and check.ok:
        check.image_bytes, check.mask_bytes = image_bytes, mask_bytes
    return check


def check_rows(root: str, rows: Sequence[DatasetRow], workers: int = 8, keep_bytes: bool = False) -> list[RowCheck]:
    """``check_row`` for every row, in a thread pool (reads dominate), in row order."""
    if not rows:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(rows)))) as pool:
        return list(pool.map(lambda r: check_row(root, r, keep_bytes), rows))


@dataclass
class DatasetReport:
    root: str
    rows: list[DatasetRow]                  # the valid rows, in file order
    failures: list[RowCheck]

    @property
    def reason_counts(self) -> Counter[str]:
        return Counter(reason for check in self.failures for reason in check.reasons)

    def failure_lines(self, limit: int = 20) -> list[str]:
        lines = [f"  line {c.row.line} ({c.row.image}): {'; '.join(c.details)}" for c in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"  ... and {len(self.failures) - limit} more")
        return lines


def validate_dataset(root: str, workers: int = 8, require_all_valid: bool = False) -> DatasetReport:
    """Read and validate a whole dataset (what a trainer calls before loading any model).

    ``DatasetError`` when train.csv is unreadable, when no row is valid, or (``require_all_valid``)
    when any row fails; the message gives the counts by reason.
    """
    rows = read_rows(root)
    checks = check_rows(root, rows, workers)
    report = DatasetReport(root, [c.row for c in checks if c.ok], [c for c in checks if not c.ok])
    counts = ", ".join(f"{n} {reason}" for reason, n in sorted(report.reason_counts.items()))
    if not rows:
        raise DatasetError(f"dataset {root}: {TRAIN_CSV} has no rows")
    if not report.rows or (require_all_valid and report.failures):
        raise DatasetError(f"dataset {root}: {len(report.failures)} of {len(rows)} row(s) invalid ({counts})")
    if report.failures:
        log.warning("dataset %s: %d of %d row(s) invalid and skipped (%s)", root, len(report.failures), len(rows), counts)
    return report


def load_sample(root: str, row: DatasetRow) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 ``[H, W, 3]``, mask bool ``[H, W]``, True = inpaint) of a row; ``DatasetError`` if bad."""
    image = _decode(storage.read_bytes(resolve(root, row.image)))
    mask = _decode(storage.read_bytes(resolve(root, row.mask)))
    if image is None or mask is None:
        raise DatasetError(f"line {row.line}: {row.image if image is None else row.mask} is not a readable image")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.dtype != np.uint8:
        image = (image.astype(np.float32) * (255.0 / np.iinfo(image.dtype).max) + 0.5).astype(np.uint8)
    mask = mask.any(axis=2) if mask.ndim == 3 else mask > 0
    if image.shape[:2] != mask.shape:
        raise DatasetError(f"line {row.line}: image and mask sizes differ")
    return image, mask


def local_copy(root: str, cache_dir: str, workers: int = 8) -> str:
    """A local folder with ``root``'s train.csv and every file its rows name: ``root`` itself when it
    is local, else ``<cache_dir>/datasets/<hash of root>`` (train.csv fetched again each call, files
    already there reused; files that cannot be fetched are left for validation to report)."""
    if storage.is_local(root):
        return storage.local_path(root)
    dest = os.path.join(cache_dir, "datasets", hashlib.sha1(root.rstrip("/").encode()).hexdigest()[:16])
    try:
        storage.get(storage.join(root, TRAIN_CSV), os.path.join(dest, TRAIN_CSV))
    except StorageError as exc:
        raise DatasetError(f"dataset {root}: cannot read {TRAIN_CSV} ({exc})") from None
    paths = sorted({p for row in read_rows(dest) for p in (row.image, row.mask) if _path_problem(p) is None})

    def one(rel: str) -> None:
        target = os.path.join(dest, *rel.replace("\\", "/").split("/"))
        if not os.path.exists(target):
            try:
                storage.get(resolve(root, rel), target)
            except StorageError as exc:
                log.debug("not copied: %s", exc)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, paths))
    log.info("dataset %s: %d file(s) available locally in %s", root, len(paths), dest)
    return dest


def distribution(rows: Iterable[DatasetRow]) -> Counter[LaneAttributes | None]:
    """How many rows have each attribute combination (None: prompt not structured)."""
    return Counter(row.attributes for row in rows)


def distribution_table(rows: Iterable[DatasetRow], title: str = "") -> str:
    """A count x colour x pattern table: one line per (count, colour) present, a column per pattern."""
    counts = distribution(rows)
    unstructured = counts.pop(None, 0)
    total = sum(counts.values()) + unstructured
    head = f"{'count':<8} {'colour':<8}" + "".join(f" {p:>7}" for p in PATTERNS) + f" {'total':>7}"
    lines = [f"{title} ({total} rows)" if title else f"{total} rows", head]
    for count in COUNTS:
        for color in COLORS:
            cells = [counts.get(LaneAttributes(count, color, p), 0) for p in PATTERNS]
            if sum(cells):
                lines.append(f"{count:<8} {color:<8}" + "".join(f" {n:>7}" for n in cells) + f" {sum(cells):>7}")
    column_totals = [sum(n for a, n in counts.items() if a.pattern == p) for p in PATTERNS]
    lines.append(f"{'all':<8} {'':<8}" + "".join(f" {n:>7}" for n in column_totals) + f" {sum(column_totals):>7}")
    if unstructured:
        lines.append(f"prompt not structured: {unstructured}")
    return "\n".join(lines)
