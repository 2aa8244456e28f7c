"""The lane dataset format (training.lane_dataset) and the parsing of VLM lane answers
(training.lane_caption): no models, no torch."""

import csv
import json
import os

import cv2
import numpy as np
import pytest

from core import storage
from training.lane_caption import parse_lane_answer, shrink
from training.lane_dataset import (
    BAD_PATH,
    EMPTY_MASK,
    IMAGE_MISSING,
    IMAGE_UNREADABLE,
    MASK_MISSING,
    MASK_UNREADABLE,
    PROMPT_UNSTRUCTURED,
    REASONS,
    SIZE_MISMATCH,
    DatasetError,
    DatasetRow,
    LaneAttributes,
    check_row,
    distribution_table,
    load_sample,
    local_copy,
    parse_prompt,
    read_rows,
    sample_name,
    validate_dataset,
    write_rows,
)


def _png(array):
    return cv2.imencode(".png", array)[1].tobytes()


def _dataset(root, rows):
    """rows: (name, image array or None, mask array or None, prompt)."""
    out = []
    for name, image, mask, prompt in rows:
        if image is not None:
            storage.write_bytes(storage.join(root, "images", f"{name}.png"), _png(image))
        if mask is not None:
            storage.write_bytes(storage.join(root, "masks", f"{name}.png"), _png(mask))
        out.append(DatasetRow(f"images/{name}.png", f"masks/{name}.png", prompt, prompt))
    write_rows(root, out)
    return out


def _image(h=24, w=32, value=90):
    img = np.full((h, w, 3), value, np.uint8)
    img[:, : w // 2, 2] = 200   # BGR on disk: red on the left half
    return img


def _mask(h=24, w=32):
    m = np.zeros((h, w), np.uint8)
    m[h // 2:, :] = 255
    return m


def test_prompt_form_round_trips_and_rejects_anything_else():
    a = LaneAttributes("double", "yellow", "solid")
    assert a.prompt == "road with double yellow solid lane markings" and a.clear
    assert parse_prompt(a.prompt) == a and parse_prompt(f"  {a.prompt}\n") == a
    assert not LaneAttributes("single", "unknown", "dashed").clear
    for bad in ("road with two yellow solid lane markings", "Road with double yellow solid lane markings",
                "road with double yellow solid lane markings please", "double yellow solid", "", None, 3):
        assert parse_prompt(bad) is None, bad
    with pytest.raises(ValueError, match="lane color 'red'"):
        LaneAttributes("single", "red", "solid")
    assert sample_name("clip.cam", 5) == "clip.cam_frame005" and sample_name("v", 1200) == "v_frame1200"


@pytest.mark.parametrize("raw, expected, source", [
    ('{"count": "double", "color": "yellow", "pattern": "solid"}', ("double", "yellow", "solid"), "json"),
    ('```json\n{"lane_count": "two", "colour": "White and Yellow", "style": "broken"}\n```',
     ("double", "mixed", "dashed"), "json"),
    ('{"count": 1, "color": "white", "pattern": "solid and dashed"}', ("single", "white", "mixed"), "json"),
    ('{"count": "single", "color": "purple", "pattern": "solid"}', ("single", "unknown", "solid"), "json"),
    ('{"count": "none", "color": null}', ("unknown", "unknown", "unknown"), "json"),
    ("I see road with single white dashed lane markings here.", ("single", "white", "dashed"), "sentence"),
    ('{"count": "double", "color": "yel', ("unknown", "unknown", "unknown"), "none"),
    ("y\x11\ufffd\u01a7(mark", ("unknown", "unknown", "unknown"), "none"),
    ("", ("unknown", "unknown", "unknown"), "none"),
    (None, ("unknown", "unknown", "unknown"), "none"),
])
def test_vlm_answers_normalise_to_the_prompt_vocabulary(raw, expected, source):
    parsed = parse_lane_answer(raw)
    a = parsed.attributes
    assert (a.count, a.color, a.pattern) == expected and parsed.source == source
    assert parse_prompt(parsed.as_dict()["prompt"]) == a
    if source == "none" or "purple" in str(raw) or "null" in str(raw):
        assert parsed.notes   # why it is unknown is recorded


def test_read_rows_names_missing_file_and_columns(tmp_path):
    root = str(tmp_path / "ds")
    with pytest.raises(DatasetError, match="cannot read train.csv"):
        read_rows(root)
    storage.write_text(storage.join(root, "train.csv"), "image,prompt\na.png,x\n")
    with pytest.raises(DatasetError, match="lacks column.s. mask, prompt_2"):
        read_rows(root)
    rows = _dataset(root, [("a", _image(), _mask(), "road with single white solid lane markings")])
    back = read_rows(root)
    assert [r.as_dict() for r in back] == [r.as_dict() for r in rows] and back[0].line == 2
    with open(storage.join(root, "train.csv"), newline="") as fh:
        assert next(csv.reader(fh)) == ["image", "mask", "prompt", "prompt_2"]


def test_every_validation_reason(tmp_path):
    root = str(tmp_path / "ds")
    good = "road with double yellow solid lane markings"
    rows = _dataset(root, [
        ("ok", _image(), _mask(), good),
        ("no_image", None, _mask(), good),
        ("no_mask", _image(), None, good),
        ("sizes", _image(24, 32), _mask(20, 32), good),
        ("empty", _image(), np.zeros((24, 32), np.uint8), good),
        ("free_text", _image(), _mask(), "a road with yellow lines"),
    ])
    storage.write_bytes(storage.join(root, "images", "broken.png"), b"not a png at all")
    storage.write_bytes(storage.join(root, "masks", "broken.png"), b"\x89PNG\r\n\x1a\n truncated")
    rows.append(DatasetRow("images/broken.png", "masks/broken.png", good))
    rows.append(DatasetRow("../outside.png", "/abs/mask.png", good))
    rows.append(DatasetRow("gs://bucket/x.png", "masks/ok.png", good))
    checks = {r.image: check_row(root, r) for r in rows}
    reasons = {k: c.reasons for k, c in checks.items()}
    assert reasons == {
        "images/ok.png": [],
        "images/no_image.png": [IMAGE_MISSING],
        "images/no_mask.png": [MASK_MISSING],
        "images/sizes.png": [SIZE_MISMATCH],
        "images/empty.png": [EMPTY_MASK],
        "images/free_text.png": [PROMPT_UNSTRUCTURED],
        "images/broken.png": [IMAGE_UNREADABLE, MASK_UNREADABLE],
        "../outside.png": [BAD_PATH, BAD_PATH],
        "gs://bucket/x.png": [BAD_PATH],
    }
    assert set(REASONS) == {r for rs in reasons.values() for r in rs}
    assert checks["images/ok.png"].size == (32, 24)
    assert "image 32x24 but mask 32x20" in checks["images/sizes.png"].details[0]
    assert "contains '..'" in checks["../outside.png"].details[0]

    write_rows(root, rows)
    report = validate_dataset(root)
    assert [r.image for r in report.rows] == ["images/ok.png"]
    assert report.reason_counts[BAD_PATH] == 3 and len(report.failures) == 8
    with pytest.raises(DatasetError, match=r"8 of 9 row\(s\) invalid \(3 bad path, 1 empty mask"):
        validate_dataset(root, require_all_valid=True)


def test_load_sample_gives_rgb_and_bool_mask(tmp_path):
    root = f"memory://lanefmt-{tmp_path.name}/ds"
    row = _dataset(root, [("a", _image(), _mask(), "road with single white solid lane markings")])[0]
    image, mask = load_sample(root, row)
    assert image.dtype == np.uint8 and image.shape == (24, 32, 3) and tuple(image[0, 0]) == (200, 90, 90)
    assert mask.dtype == bool and mask.sum() == 12 * 32 and mask[-1].all() and not mask[0].any()
    with pytest.raises(DatasetError, match="has no rows"):
        write_rows(root, [])
        validate_dataset(root)


def test_distribution_table_counts_every_combination():
    rows = [DatasetRow("i", "m", LaneAttributes(*a).prompt) for a in
            [("double", "yellow", "solid")] * 3 + [("double", "yellow", "dashed"), ("single", "white", "dashed"),
                                                   ("unknown", "unknown", "unknown")]]
    rows.append(DatasetRow("i", "m", "free text"))
    table = distribution_table(rows, "input").splitlines()
    assert table[0] == "input (7 rows)"
    assert table[1].split() == ["count", "colour", "solid", "dashed", "mixed", "unknown", "total"]
    body = {tuple(line.split()[:2]): line.split()[2:] for line in table[2:-2]}
    assert body == {("single", "white"): ["0", "1", "0", "0", "1"], ("double", "yellow"): ["3", "1", "0", "0", "4"],
                    ("unknown", "unknown"): ["0", "0", "0", "1", "1"]}
    assert table[-2].split() == ["all", "3", "2", "0", "1", "6"] and table[-1] == "prompt not structured: 1"
    assert json.dumps(table)  # plain text


def test_captioner_frames_are_scaled_down_to_max_side_only():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[:, 960:] = 255
    small = shrink(frame, 1024)
    assert small.shape == (576, 1024, 3) and small[:, 520:].min() == 255 and small[:, :500].max() == 0
    assert shrink(frame, 0) is frame and shrink(frame, 4096) is frame


def test_local_copy_downloads_a_remote_dataset_once(tmp_path, monkeypatch):
    root = f"memory://lanefmt-{tmp_path.name}/remote"
    rows = _dataset(root, [("a", _image(), _mask(), "road with single white solid lane markings"),
                           ("b", _image(), None, "road with double white solid lane markings")])
    local = local_copy(root, str(tmp_path / "cache"))
    assert local.startswith(str(tmp_path / "cache")) and sorted(os.listdir(os.path.join(local, "images"))) == ["a.png", "b.png"]
    report = validate_dataset(local)
    assert [r.image for r in report.rows] == [rows[0].image] and report.reason_counts == {MASK_MISSING: 1}
    assert np.array_equal(load_sample(local, rows[0])[0], load_sample(root, rows[0])[0])
    fetched = []
    real_get = storage.get
    monkeypatch.setattr(storage, "get", lambda uri, dest: fetched.append(uri) or real_get(uri, dest))
    assert local_copy(root, str(tmp_path / "cache")) == local
    assert fetched == [f"{root}/train.csv", f"{root}/masks/b.png"]       # only what is not there yet
    assert local_copy(str(tmp_path), "unused") == str(tmp_path)
