"""Where every stage reads and writes, under one output root URI (see ARCHITECTURE.md).

```
sam2/<run_id>/<video_id>/masks/00000.png ...      0 keep, 255 inpaint
sam2/<run_id>/<video_id>/visualizations/...  + <video_id>_segmented.mp4, <video_id>_stats.json
preprocessed_data_vp/<run_id>/<video_id>/meta.csv
preprocessed_data_vp/<run_id>/<video_id>/raw_videos/<video_id[:-3]>/<video_id>.0.mp4
preprocessed_data_vp/<run_id>/<video_id>/mask_root/<video_id>/all_masks.npz
vp/<run_id>/<instruction_folder>/<video_id>/<video_id>_vp_edit_sample0.mp4 (+ _generated.mp4 ...)
alpamayo/<run_id>/<instruction_folder>/<video_stem>/<video_stem>_inference.json ...
alpamayo/<run_id>/<run_id>_report.txt, inference_summary.json
reports/<run_id>/results.csv, results.parquet, report.html     (the run's table and report, all stages)
```

Every id that becomes a path part is validated here, so no stage can write outside its root.
Stage-3 outputs are grouped by instruction folder like stage 2's, so the same clip edited with
two instructions never shares (or overwrites) an output folder.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import storage
from core.edited_clips import edit_file_name, generated_file_name, sidecar_file_name
from core.errors import LanepaintError
from core.ids import validate_id

SAM2 = "sam2"
VP_DATA = "preprocessed_data_vp"
VP = "vp"
ALPAMAYO = "alpamayo"
REPORTS = "reports"
STAGE_FOLDERS = (SAM2, VP_DATA, VP, ALPAMAYO, REPORTS)

VP_MIN_VIDEO_ID_LEN = 4  # VideoPainter's folder name is video_id[:-3]


def _vid(video_id: str) -> str:
    return validate_id(video_id, "video id")


def _rid(run_id: str) -> str:
    return validate_id(run_id, "run id")


def _folder(name: str) -> str:
    return validate_id(name, "instruction folder")


@dataclass(frozen=True)
class Layout:
    root: str

    def path(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    # ---- stage 1: SAM2 -------------------------------------------------------------------
    def sam2_run(self, run_id: str) -> str:
        return self.path(SAM2, _rid(run_id))

    def sam2_video(self, run_id: str, video_id: str) -> str:
        return self.path(SAM2, _rid(run_id), _vid(video_id))

    def sam2_masks_dir(self, run_id: str, video_id: str) -> str:
        return storage.join(self.sam2_video(run_id, video_id), "masks")

    @staticmethod
    def mask_png_name(index: int) -> str:
        return f"{index:05d}.png"

    def sam2_visualizations_dir(self, run_id: str, video_id: str) -> str:
        return storage.join(self.sam2_video(run_id, video_id), "visualizations")

    @staticmethod
    def segmented_video_name(video_id: str) -> str:
        return f"{_vid(video_id)}_segmented.mp4"

    def sam2_segmented_video(self, run_id: str, video_id: str) -> str:
        return storage.join(self.sam2_video(run_id, video_id), self.segmented_video_name(video_id))

    def sam2_stats_json(self, run_id: str, video_id: str) -> str:
        """Per-video segmentation stats: per-frame coverage, consecutive IoU, flagged frames, timings."""
        return storage.join(self.sam2_video(run_id, video_id), f"{video_id}_stats.json")

    # ---- stage 1 -> 2 hand-off: VideoPainter data layout -------------------------------------
    def vp_data_run(self, run_id: str) -> str:
        return self.path(VP_DATA, _rid(run_id))

    def vp_data_video(self, run_id: str, video_id: str) -> str:
        return self.path(VP_DATA, _rid(run_id), _vid(video_id))

    def vp_meta_csv(self, run_id: str, video_id: str) -> str:
        return storage.join(self.vp_data_video(run_id, video_id), "meta.csv")

    @staticmethod
    def vp_video_filename(video_id: str) -> str:
        return f"{_vid(video_id)}.0.mp4"

    def vp_raw_video(self, run_id: str, video_id: str) -> str:
        if len(video_id) < VP_MIN_VIDEO_ID_LEN:
            raise LanepaintError(f"video id {video_id!r} is too short for VideoPainter's layout "
                                 f"(needs at least {VP_MIN_VIDEO_ID_LEN} characters)")
        return storage.join(self.vp_data_video(run_id, video_id), "raw_videos", video_id[:-3],
                            self.vp_video_filename(video_id))

    def vp_masks_npz(self, run_id: str, video_id: str) -> str:
        return storage.join(self.vp_data_video(run_id, video_id), "mask_root", video_id, "all_masks.npz")

    # ---- stage 2: editing ----------------------------------------------------------------
    def vp_run(self, run_id: str) -> str:
        return self.path(VP, _rid(run_id))

    def vp_instruction(self, run_id: str, folder: str) -> str:
        return self.path(VP, _rid(run_id), _folder(folder))

    def vp_item(self, run_id: str, folder: str, video_id: str) -> str:
        return self.path(VP, _rid(run_id), _folder(folder), _vid(video_id))

    def vp_edit_video(self, run_id: str, folder: str, video_id: str) -> str:
        return storage.join(self.vp_item(run_id, folder, video_id), edit_file_name(video_id))

    def vp_generated_video(self, run_id: str, folder: str, video_id: str) -> str:
        return storage.join(self.vp_item(run_id, folder, video_id), generated_file_name(video_id))

    def vp_sidecar(self, run_id: str, folder: str, video_id: str) -> str:
        return storage.join(self.vp_item(run_id, folder, video_id), sidecar_file_name(video_id))

    def vp_eval_txt(self, run_id: str, folder: str, video_id: str) -> str:
        return storage.join(self.vp_item(run_id, folder, video_id), f"eval_{video_id}.txt")

    def vp_eval_json(self, run_id: str, folder: str, video_id: str) -> str:
        return storage.join(self.vp_item(run_id, folder, video_id), f"eval_{video_id}.json")

    def vp_caption_refine_dir(self, run_id: str, folder: str, video_id: str) -> str:
        return storage.join(self.vp_item(run_id, folder, video_id), f"{video_id}_caption_refine")

    # ---- stage 3: driving VLA ------------------------------------------------------------
    def alpamayo_run(self, run_id: str) -> str:
        return self.path(ALPAMAYO, _rid(run_id))

    def alpamayo_item(self, run_id: str, folder: str, video_stem: str) -> str:
        return self.path(ALPAMAYO, _rid(run_id), _folder(folder), validate_id(video_stem, "video name"))

    def alpamayo_file(self, run_id: str, folder: str, video_stem: str, suffix: str) -> str:
        """``suffix`` is one of ``_inference.json``, ``_vis_data.npz``, ``_overlay.mp4``, ``_comparison.mp4``."""
        return storage.join(self.alpamayo_item(run_id, folder, video_stem), f"{video_stem}{suffix}")

    def alpamayo_report(self, run_id: str) -> str:
        return storage.join(self.alpamayo_run(run_id), f"{run_id}_report.txt")

    def alpamayo_summary(self, run_id: str) -> str:
        return storage.join(self.alpamayo_run(run_id), "inference_summary.json")

    # ---- the run's results, over every stage ---------------------------------------------
    def reports_run(self, run_id: str) -> str:
        return self.path(REPORTS, _rid(run_id))

    def results_table(self, run_id: str, extension: str) -> str:
        """``results.csv`` or ``results.parquet``."""
        return storage.join(self.reports_run(run_id), f"results.{extension}")

    def report_html(self, run_id: str) -> str:
        return storage.join(self.reports_run(run_id), "report.html")
