"""The results table on its own: rows from records whose names are not PhysicalAI-AV video ids."""

from core import storage
from core.layout import Layout
from orchestrator.run_table import COLUMN_NAMES, build_table, table_csv


def test_a_video_name_without_a_camera_is_its_own_clip(tmp_path):
    layout = Layout(str(tmp_path))
    sidecar = layout.vp_sidecar("r1", "lane_x", "synth_clip_s0")
    storage.write_text(sidecar, '{"instruction": "x", "verdict": "PASS", "iterations": 1, "profile": "tiny"}')
    table = build_table(str(tmp_path), "r1")
    (row,) = table.rows
    assert (row["clip_id"], row["camera"], row["judge_passed"]) == ("synth_clip_s0", None, True)
    assert row["vla_status"] == "missing" and row["min_ade_delta_m"] is None
    header, line = table_csv(table).splitlines()
    assert header.split(",") == list(COLUMN_NAMES) and line.startswith("r1,synth_clip_s0,,synth_clip_s0,lane_x,x,ok")
