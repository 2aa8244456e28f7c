"""``lanepaint dataset filter``: every flag, every validation reason, the distribution tables, the
output name, copy modes, and local / memory:// / gs:// storage. No models."""

import json
import os

import cv2
import numpy as np
import pytest

from core import storage
from orchestrator.cli import main
from training.dataset_config import DatasetFilterConfig
from training.dataset_filter import REPORT_JSON, filter_dataset
from training.lane_dataset import DatasetRow, LaneAttributes, read_rows, write_rows

GOOD = {  # name -> attributes (all with valid files)
    "a_dys": ("double", "yellow", "solid"),
    "b_dyd": ("double", "yellow", "dashed"),
    "c_sws": ("single", "white", "solid"),
    "d_swd": ("single", "white", "dashed"),
    "e_dys": ("double", "yellow", "solid"),
    "f_uys": ("unknown", "yellow", "solid"),
    "g_dmm": ("double", "mixed", "mixed"),
}


def _png(array):
    return cv2.imencode(".png", array)[1].tobytes()


def _put(root, rel, array):
    storage.write_bytes(storage.join(root, *rel.split("/")), _png(array))


def make_dataset(root, with_bad=True):
    """Rows in a shuffled order; with_bad adds one row per validation reason (all 'double yellow solid')."""
    image, mask = np.full((12, 16, 3), 100, np.uint8), np.zeros((12, 16), np.uint8)
    mask[6:] = 255
    rows = []
    for name in ("e_dys", "c_sws", "a_dys", "g_dmm", "b_dyd", "f_uys", "d_swd"):
        _put(root, f"images/{name}.png", image + len(rows))
        _put(root, f"masks/{name}.png", mask)
        rows.append(DatasetRow(f"images/{name}.png", f"masks/{name}.png", LaneAttributes(*GOOD[name]).prompt,
                               LaneAttributes(*GOOD[name]).prompt))
    if with_bad:
        dys = LaneAttributes("double", "yellow", "solid").prompt
        _put(root, "images/bad_size.png", image)
        _put(root, "masks/bad_size.png", mask[:8])
        _put(root, "images/bad_empty.png", image)
        _put(root, "masks/bad_empty.png", np.zeros_like(mask))
        storage.write_bytes(storage.join(root, "images", "bad_corrupt.png"), b"garbage")
        _put(root, "masks/bad_corrupt.png", mask)
        _put(root, "images/bad_nomask.png", image)
        rows += [DatasetRow("images/bad_size.png", "masks/bad_size.png", dys),
                 DatasetRow("images/bad_empty.png", "masks/bad_empty.png", dys),
                 DatasetRow("images/bad_corrupt.png", "masks/bad_corrupt.png", dys),
                 DatasetRow("images/bad_noimage.png", "masks/bad_size.png", dys),
                 DatasetRow("images/bad_nomask.png", "masks/bad_nomask.png", dys),
                 DatasetRow("../escape.png", "masks/a_dys.png", dys),
                 DatasetRow("images/a_dys.png", "masks/a_dys.png", "double yellow solid road")]
    write_rows(root, rows)
    return rows


def _images(root):
    return [r.image for r in read_rows(root)]


def test_cli_attributes_reasons_tables_and_default_name(tmp_path, capsys):
    src = str(tmp_path / "lanes")
    make_dataset(src)
    assert main(["dataset", "filter", "--input", src, "--count", "double", "--color", "yellow"]) == 0
    out = capsys.readouterr().out
    dest = src + "__double_yellow_any"
    assert _images(dest) == ["images/e_dys.png", "images/a_dys.png", "images/b_dyd.png"]   # input order
    assert sorted(os.listdir(os.path.join(dest, "images"))) == ["a_dys.png", "b_dyd.png", "e_dys.png"]
    assert f"filter {src} -> {dest}: 14 row(s) in, 4 not matching, 7 invalid, 3 written (copy)" in out
    assert ("invalid rows by reason: bad path: 1, empty mask: 1, image missing: 1, image unreadable: 1, "
            "mask missing: 1, prompt not structured: 1, size mismatch: 1") in out
    assert "line 15 (images/a_dys.png): prompt 'double yellow solid road' is not" in out
    assert "image 16x12 but mask 16x8" in out and "contains '..'" in out
    input_table, output_table = out.split("input (14 rows)\n", 1)[1].split("output (3 rows)\n")
    assert [line.split() for line in input_table.splitlines()[1:7]] == [
        ["single", "white", "1", "1", "0", "0", "2"], ["double", "yellow", "8", "1", "0", "0", "9"],
        ["double", "mixed", "0", "0", "1", "0", "1"], ["unknown", "yellow", "1", "0", "0", "0", "1"],
        ["all", "10", "2", "1", "0", "13"], ["prompt", "not", "structured:", "1"]]
    assert [line.split() for line in output_table.splitlines()[1:3]] == [
        ["double", "yellow", "2", "1", "0", "0", "3"], ["all", "2", "1", "0", "0", "3"]]
    report = json.loads(storage.read_text(os.path.join(dest, REPORT_JSON)))
    assert report["rows_out"] == 3 and report["invalid_by_reason"]["size mismatch"] == 1
    assert len(report["invalid"]) == 7 and report["distribution_out"] == {"double yellow dashed": 1, "double yellow solid": 2}

    # the same output again needs --overwrite; the input is never the output; a bad input is usage
    assert main(["dataset", "filter", "--input", src, "--count", "double", "--color", "yellow"]) == 2
    assert main(["dataset", "filter", "--input", src, "--output", src + "/"]) == 2
    assert main(["dataset", "filter", "--input", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "already holds a dataset" in err and "is the input dataset" in err and "cannot read train.csv" in err
    assert main(["dataset", "filter", "--input", src, "--count", "double", "--color", "yellow", "--overwrite"]) == 0


@pytest.mark.parametrize("flags, expected", [
    ({"pattern": "solid"}, ["e_dys", "c_sws", "a_dys", "f_uys"]),
    ({"pattern": "solid", "require_clear_road": True}, ["e_dys", "c_sws", "a_dys"]),
    ({"count": "single", "sort": "image"}, ["c_sws", "d_swd"]),
    ({"sort": "prompt"}, ["g_dmm", "b_dyd", "a_dys", "e_dys", "d_swd", "c_sws", "f_uys"]),
    ({"color": "mixed", "pattern": "mixed"}, ["g_dmm"]),
    ({"count": "unknown"}, ["f_uys"]),
    ({"sort": "image", "limit": 2}, ["a_dys", "b_dyd"]),
])
def test_each_attribute_flag_sort_and_limit(tmp_path, flags, expected):
    src = str(tmp_path / "ds")
    make_dataset(src, with_bad=False)
    result = filter_dataset(DatasetFilterConfig(input=src, **flags))
    assert [os.path.basename(r.image)[:-4] for r in result.output_rows] == expected
    assert _images(result.output) == [f"images/{n}.png" for n in expected]
    assert result.output.endswith("__" + "_".join(flags.get(k, "any") for k in ("count", "color", "pattern"))
                                  + ("_clearroad" if flags.get("require_clear_road") else ""))


def test_limit_validates_in_output_order_until_enough(tmp_path):
    src = str(tmp_path / "ds")
    make_dataset(src)
    result = filter_dataset(DatasetFilterConfig(input=src, count="double", color="yellow", pattern="solid",
                                                sort="image", limit=1, workers=1))
    assert [r.image for r in result.output_rows] == ["images/a_dys.png"]
    # one batch of 4 rows in image order: ../escape, a_dys, bad_corrupt, bad_empty; the rest is never read
    assert result.validated == 4
    assert {c.row.image: c.reasons for c in result.failures} == {
        "../escape.png": ["bad path"], "images/bad_corrupt.png": ["image unreadable"],
        "images/bad_empty.png": ["empty mask"], "images/a_dys.png": ["prompt not structured"]}


def test_copy_modes_locally_and_remote_always_copies(tmp_path, caplog):
    src = str(tmp_path / "ds")
    make_dataset(src, with_bad=False)
    source_file = os.path.join(src, "images", "a_dys.png")
    hard = filter_dataset(DatasetFilterConfig(input=src, output=str(tmp_path / "hard"), copy_mode="hardlink"))
    soft = filter_dataset(DatasetFilterConfig(input=src, output=str(tmp_path / "soft"), copy_mode="symlink"))
    copy = filter_dataset(DatasetFilterConfig(input=src, output=str(tmp_path / "copy")))
    assert (hard.copy_mode, soft.copy_mode, copy.copy_mode) == ("hardlink", "symlink", "copy")
    assert os.path.samefile(os.path.join(hard.output, "images", "a_dys.png"), source_file)
    linked = os.path.join(soft.output, "images", "a_dys.png")
    assert os.path.islink(linked) and os.readlink(linked) == os.path.abspath(source_file)
    copied = os.path.join(copy.output, "images", "a_dys.png")
    assert not os.path.samefile(copied, source_file) and open(copied, "rb").read() == open(source_file, "rb").read()
    for result in (hard, soft, copy):
        assert len(read_rows(result.output)) == 7

    remote = filter_dataset(DatasetFilterConfig(input=src, output=f"memory://filt-{tmp_path.name}/out",
                                                copy_mode="symlink", count="single"))
    assert remote.copy_mode == "copy" and "remote storage: files are copied" in remote.notes[0]
    assert "remote storage: files are copied (--copy-mode symlink" in caplog.text
    assert storage.read_bytes(storage.join(remote.output, "images", "c_sws.png")) == \
        open(os.path.join(src, "images", "c_sws.png"), "rb").read()


def test_gs_to_gs_and_gs_to_local(gcs_emulator, tmp_path):
    from tests.conftest import BUCKET

    src = f"gs://{BUCKET}/filter-{tmp_path.name}/lanes"
    make_dataset(src)
    result = filter_dataset(DatasetFilterConfig(input=src, count="double", color="yellow", pattern="solid",
                                                copy_mode="hardlink"))
    assert result.output == src + "__double_yellow_solid" and result.copy_mode == "copy"
    assert _images(result.output) == ["images/e_dys.png", "images/a_dys.png"]
    assert len(result.failures) == 7
    assert storage.exists(storage.join(result.output, "masks", "a_dys.png"))
    assert not storage.exists(storage.join(result.output, "images", "bad_size.png"))
    local = filter_dataset(DatasetFilterConfig(input=result.output, output=str(tmp_path / "local"),
                                               require_clear_road=True))
    assert _images(local.output) == ["images/e_dys.png", "images/a_dys.png"] and not local.failures
    assert open(os.path.join(local.output, "masks", "a_dys.png"), "rb").read() == \
        storage.read_bytes(storage.join(src, "masks", "a_dys.png"))
