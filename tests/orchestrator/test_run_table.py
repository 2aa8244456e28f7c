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


def test_the_speed_levers_and_the_batch_of_an_item_are_columns(tmp_path):
    import json

    layout = Layout(str(tmp_path))
    base = {"step_cache_threshold": 0.0, "flux_step_cache_threshold": 0.0, "storage_dtype": "compute",
            "compile": "none"}
    levers = {"lane_a": base, "lane_b": {**base, "step_cache_threshold": 0.1, "storage_dtype": "float8",
                                          "compile": "regional"}, "lane_c": {}}
    for folder, parameters in levers.items():
        storage.write_text(layout.vp_sidecar("r1", folder, "synth_clip_s0"), json.dumps(
            {"instruction": folder, "parameters": parameters, "video_batch": 3}))
    rows = {row["instruction_folder"]: row for row in build_table(str(tmp_path), "r1").rows}
    assert rows["lane_a"]["speed_levers"] == "none" and rows["lane_a"]["video_batch"] == 3
    assert rows["lane_b"]["speed_levers"] == "video cache 0.1, float8 weights, compile regional"
    assert rows["lane_c"]["speed_levers"] is None          # a sidecar from before the levers existed
