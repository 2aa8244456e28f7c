import csv
import io

import numpy as np
import pytest

from core import storage, videoio
from core.errors import InvalidIdError, LanepaintError
from core.layout import Layout
from core.vp_data import VP_COLUMNS, VP_MIN_FRAMES, list_vp_videos, load_masks, read_vp_clip, write_vp_clip


def test_paths_follow_the_architecture(tmp_path):
    lay = Layout(str(tmp_path))
    vid = "clip001.camera_front_wide_120fov"
    assert lay.sam2_masks_dir("r1", vid).endswith(f"sam2/r1/{vid}/masks")
    assert lay.sam2_segmented_video("r1", vid).endswith(f"sam2/r1/{vid}/{vid}_segmented.mp4")
    assert lay.sam2_stats_json("r1", vid).endswith(f"sam2/r1/{vid}/{vid}_stats.json")
    assert lay.vp_raw_video("r1", vid).endswith(f"preprocessed_data_vp/r1/{vid}/raw_videos/{vid[:-3]}/{vid}.0.mp4")
    assert lay.vp_masks_npz("r1", vid).endswith(f"preprocessed_data_vp/r1/{vid}/mask_root/{vid}/all_masks.npz")
    assert lay.vp_edit_video("r2", "single_solid_white", vid).endswith(
        f"vp/r2/single_solid_white/{vid}/{vid}_vp_edit_sample0.mp4")
    assert lay.vp_generated_video("r2", "f", vid).endswith(f"{vid}_vp_edit_sample0_generated.mp4")
    assert lay.alpamayo_report("r3").endswith("alpamayo/r3/r3_report.txt")
    assert lay.alpamayo_file("r3", "f", "stem", "_overlay.mp4").endswith("alpamayo/r3/f/stem/stem_overlay.mp4")
    assert Layout("gs://b/root").sam2_run("r1") == "gs://b/root/sam2/r1"


@pytest.mark.parametrize("call", [
    lambda lay: lay.sam2_run("../x"),
    lambda lay: lay.sam2_video("r", "a/b"),
    lambda lay: lay.vp_item("r", "bad folder", "vid1"),
])
def test_layout_rejects_unsafe_ids(tmp_path, call):
    with pytest.raises(InvalidIdError):
        call(Layout(str(tmp_path)))


def test_short_video_id_is_rejected_for_vp_layout(tmp_path):
    with pytest.raises(LanepaintError, match="too short"):
        Layout(str(tmp_path)).vp_raw_video("r", "abc")


def _clip(t: int, h: int = 32, w: int = 48):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    masks = np.zeros((t, h, w), bool)
    masks[:, h // 2:, :] = True
    return frames, masks


def test_write_then_read_vp_clip(storage_root):
    lay = Layout(storage_root)
    frames, masks = _clip(VP_MIN_FRAMES)
    written = write_vp_clip(lay, "r1", "video_0001", frames, masks, fps=8)
    assert written.vp_ready and written.coverage == pytest.approx(0.5)
    clip = read_vp_clip(lay, "r1", "video_0001")
    assert clip == written
    with storage.open(clip.meta_uri, "rb") as fh:
        header = next(csv.reader(io.StringIO(fh.read().decode())))
    assert tuple(header[:6]) == VP_COLUMNS
    with storage.open(clip.masks_uri, "rb") as fh:
        arr = np.load(io.BytesIO(fh.read()), allow_pickle=False)["arr_0"]
    assert arr.dtype == np.uint8 and arr.shape == masks.shape and set(np.unique(arr)) == {0, 1}
    assert np.array_equal(load_masks(clip), masks)
    local = storage.fetch(clip.video_uri, "/tmp/lanepaint-test-cache")
    assert videoio.probe(local).frame_count == VP_MIN_FRAMES
    assert list_vp_videos(lay, "r1") == ["video_0001"]


def test_short_clip_written_but_marked(tmp_path):
    lay = Layout(str(tmp_path))
    frames, masks = _clip(10)
    clip = write_vp_clip(lay, "r1", "short_0001", frames, masks, fps=8)
    assert not clip.vp_ready and "too short for VideoPainter" in clip.note
    assert not read_vp_clip(lay, "r1", "short_0001").vp_ready


def test_missing_pieces_are_one_line_errors(tmp_path):
    lay = Layout(str(tmp_path))
    with pytest.raises(LanepaintError, match="video_0002: missing meta.csv"):
        read_vp_clip(lay, "r1", "video_0002")
    frames, masks = _clip(3)
    write_vp_clip(lay, "r1", "video_0003", frames, masks, fps=8)
    storage.rm(lay.vp_masks_npz("r1", "video_0003"))
    with pytest.raises(LanepaintError, match="video_0003: missing masks"):
        read_vp_clip(lay, "r1", "video_0003")


def test_misaligned_masks_rejected(tmp_path):
    frames, masks = _clip(4)
    with pytest.raises(LanepaintError, match="do not align"):
        write_vp_clip(Layout(str(tmp_path)), "r1", "video_0004", frames, masks[:3], fps=8)
