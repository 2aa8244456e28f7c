"""Overlay and side-by-side comparison videos of predicted vs ground-truth trajectories.

Projection (pinhole, ego frame x forward / y left / z up, camera at the nominal mounting height):
the point is rotated by minus the camera's yaw, then ``x_cam = -y``, ``y_cam = -z``, ``z_cam = x``;
``f = (W/2) / tan(FOV/2)`` with the FOV from the camera name; points with ``z_cam <= 0.5`` are
dropped. Ground truth is red, samples cycle through 5 colours, history is grey. A 250x250
bird's-eye inset (forward up) sits bottom-left, a legend box top-right, a HUD (minADE, clip,
camera) top-left. The video shows the context frames, then reveals the trajectories waypoint by
waypoint on the t0 frame, then holds. Frames are RGB; videos are H.264 CRF 18 yuv420p (PyAV).
Small frames are upscaled to 480 px high (and large ones reduced to 1280 px wide) so the drawing
stays legible; the intrinsics follow the drawn size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from core import storage, videoio
from core.driving_dataset import camera_fov_deg
from vla.cameras import CAMERA_HEIGHT_M, camera_yaw
from vla.visdata import VisData

GT_COLOR = (235, 40, 40)
HISTORY_COLOR = (170, 170, 170)
SAMPLE_COLORS = ((40, 200, 255), (60, 230, 110), (255, 170, 30), (200, 90, 255), (255, 240, 70))
MIN_DEPTH_M = 0.5
INSET_PX = 250
MIN_HEIGHT, MAX_WIDTH = 480, 1280
REVEAL_FRAMES, HOLD_SECONDS = 32, 1.0
ENCODE_PRESET = "veryfast"     # x264 speed preset; quality is set by CRF 18


def focal_length(width: int, fov_deg: float) -> float:
    return (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def project_points(points: np.ndarray, camera: str, width: int, height: int,
                   mount_height_m: float = CAMERA_HEIGHT_M) -> tuple[np.ndarray, np.ndarray]:
    """Ego-frame points ``[N, 3]`` -> pixel coordinates ``[N, 2]`` and a visibility mask ``[N]``."""
    p = np.asarray(points, dtype=np.float64) - np.array([0.0, 0.0, mount_height_m])
    yaw = math.radians(camera_yaw(camera))
    c, s = math.cos(yaw), math.sin(yaw)
    x_rot = c * p[:, 0] + s * p[:, 1]
    y_rot = -s * p[:, 0] + c * p[:, 1]
    x_cam, y_cam, z_cam = -y_rot, -p[:, 2], x_rot
    f = focal_length(width, camera_fov_deg(camera))
    visible = z_cam > MIN_DEPTH_M
    safe = np.where(visible, z_cam, 1.0)
    uv = np.stack([width / 2.0 + f * x_cam / safe, height / 2.0 + f * y_cam / safe], axis=-1)
    return uv, visible


def _polyline(img: np.ndarray, uv: np.ndarray, ok: np.ndarray, color, thickness: int) -> None:
    pts = np.clip(uv, -1e4, 1e4).round().astype(np.int32)
    for a in range(len(pts) - 1):
        if ok[a] and ok[a + 1]:
            cv2.line(img, tuple(map(int, pts[a])), tuple(map(int, pts[a + 1])), color, thickness, cv2.LINE_AA)
    for a in np.flatnonzero(ok)[-1:]:
        cv2.circle(img, tuple(map(int, pts[a])), thickness + 1, color, -1, cv2.LINE_AA)


def canvas_size(width: int, height: int) -> tuple[int, int]:
    scale = max(1.0, MIN_HEIGHT / height)
    scale = min(scale, MAX_WIDTH / width) if width * scale > MAX_WIDTH else scale
    return int(round(width * scale / 2)) * 2, int(round(height * scale / 2)) * 2


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frame.shape[1::-1] == size:
        return frame.copy()
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def _bev_inset(img: np.ndarray, history: np.ndarray, gt: np.ndarray, preds: np.ndarray, shown: int) -> None:
    size = min(INSET_PX, img.shape[0] - 20, img.shape[1] // 2)
    everything = np.concatenate([history[:, :2], gt[:, :2], preds.reshape(-1, 3)[:, :2]])
    xmin, xmax = min(-5.0, everything[:, 0].min()), max(10.0, everything[:, 0].max())
    ymax = max(5.0, np.abs(everything[:, 1]).max())
    scale = (size - 20) / max(xmax - xmin, 2 * ymax)
    top = img.shape[0] - size - 10
    panel = img[top:top + size, 10:10 + size]
    panel[:] = (0.35 * panel).astype(np.uint8)

    def px(xy: np.ndarray) -> np.ndarray:
        col = size / 2.0 - xy[:, 1] * scale
        row = size - 10 - (xy[:, 0] - xmin) * scale
        return np.stack([col, row], axis=-1)

    for metres in np.arange(math.ceil(xmin / 10) * 10, xmax + 1e-6, 10.0):
        row = int(round(px(np.array([[metres, 0.0]]))[0, 1]))
        cv2.line(panel, (0, row), (size - 1, row), (70, 70, 70), 1)
    all_ok = np.ones(len(history), bool)
    _polyline(panel, px(history), all_ok, HISTORY_COLOR, 2)
    ok = np.arange(len(gt)) < shown
    _polyline(panel, px(gt), ok, GT_COLOR, 3)
    for k, pred in enumerate(preds):
        _polyline(panel, px(pred), ok, SAMPLE_COLORS[k % len(SAMPLE_COLORS)], 1)
    ego = px(np.zeros((1, 2)))[0].round().astype(int)
    tri = np.array([[ego[0], ego[1] - 7], [ego[0] - 5, ego[1] + 5], [ego[0] + 5, ego[1] + 5]], np.int32)
    cv2.fillPoly(panel, [tri], (255, 255, 255))
    cv2.rectangle(panel, (0, 0), (size - 1, size - 1), (200, 200, 200), 1)


def _text_box(img: np.ndarray, lines: list[tuple[str, tuple[int, int, int] | None]], right: bool) -> None:
    scale = max(0.4, img.shape[1] / 1800)
    thick = 1 if scale < 0.7 else 2
    line_h = int(22 * scale / 0.55)
    widths = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] + (28 if c else 0) for t, c in lines]
    box_w, box_h = max(widths) + 16, line_h * len(lines) + 10
    box_w = min(box_w, img.shape[1] - 20)
    x0 = img.shape[1] - box_w - 10 if right else 10
    region = img[10:10 + box_h, x0:x0 + box_w]
    region[:] = (0.3 * region).astype(np.uint8)
    for i, (text, color) in enumerate(lines):
        y = 10 + line_h * (i + 1)
        x = x0 + 8
        if color is not None:
            cv2.line(img, (x, y - line_h // 3), (x + 20, y - line_h // 3), color, 3, cv2.LINE_AA)
            x += 28
        cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def draw_panel(frame: np.ndarray, vis: VisData, preds: np.ndarray, ade: float, label: str,
               shown: int, context: str = "") -> np.ndarray:
    """One RGB frame with trajectories (first ``shown`` waypoints), inset, legend and HUD."""
    img = _fit(frame, canvas_size(frame.shape[1], frame.shape[0]))
    h, w = img.shape[:2]
    thick = max(2, w // 400)
    ok_n = np.arange(len(vis.gt_future_xyz)) < shown
    if shown:   # ground truth underneath and wider, so a perfect prediction still shows both
        uv, vis_ok = project_points(vis.gt_future_xyz, vis.camera_name, w, h)
        _polyline(img, uv, vis_ok & ok_n, GT_COLOR, thick + 2)
        for k, pred in enumerate(preds):
            uv, vis_ok = project_points(pred, vis.camera_name, w, h)
            _polyline(img, uv, vis_ok & ok_n, SAMPLE_COLORS[k % len(SAMPLE_COLORS)], thick)
    uv, vis_ok = project_points(vis.ego_history_xyz, vis.camera_name, w, h)
    _polyline(img, uv, vis_ok, HISTORY_COLOR, thick)
    _bev_inset(img, vis.ego_history_xyz, vis.gt_future_xyz, preds, shown)
    legend = [("ground truth", GT_COLOR)]
    legend += [(f"sample {k + 1}", SAMPLE_COLORS[k % len(SAMPLE_COLORS)]) for k in range(min(len(preds), 5))]
    legend += [("history", HISTORY_COLOR)]
    _text_box(img, legend, right=True)
    hud = [(f"{label}  minADE {ade:.2f} m", None), (f"clip {vis.clip_id}", None), (f"camera {vis.camera_name}", None)]
    if context:
        hud.append((context, None))
    _text_box(img, hud, right=False)
    return img


def _timeline(vis: VisData, fps: float) -> list[tuple[int, int, str]]:
    """(frame index, waypoints shown, context text) for every output frame."""
    n_frames = vis.image_frames.shape[1]
    horizon = len(vis.gt_future_xyz)
    per = max(1, int(round(fps / max(vis.frame_fps, 1e-6))))
    steps = [(i, 0, f"context frame {i + 1}/{n_frames}") for i in range(n_frames) for _ in range(per)]
    steps += [(n_frames - 1, math.ceil(horizon * (j + 1) / REVEAL_FRAMES), "t0: planned 6.4 s")
              for j in range(REVEAL_FRAMES)]
    steps += [(n_frames - 1, horizon, "t0: planned 6.4 s")] * max(1, int(round(HOLD_SECONDS * fps)))
    return steps


def overlay_frames(vis: VisData, fps: float = 10.0) -> list[np.ndarray]:
    frames = vis.edited_frames()
    return [draw_panel(frames[i], vis, vis.pred_xyz, vis.min_ade, "edited", shown, ctx)
            for i, shown, ctx in _timeline(vis, fps)]


def comparison_frames(vis: VisData, fps: float = 10.0) -> list[np.ndarray]:
    edited, original = vis.edited_frames(), vis.original_camera_frames()
    out = []
    for i, shown, ctx in _timeline(vis, fps):
        left = draw_panel(original[i], vis, vis.original_pred_xyz, vis.original_min_ade, "original", shown, ctx)
        right = draw_panel(edited[i], vis, vis.pred_xyz, vis.min_ade, "edited", shown, ctx)
        if right.shape != left.shape:
            right = _fit(right, left.shape[1::-1][:2])
        out.append(np.concatenate([left, np.full((left.shape[0], 4, 3), 255, np.uint8), right], axis=1))
    return out


def write_videos(vis: VisData, overlay_uri: str, comparison_uri: str, fps: float = 10.0) -> None:
    """Encode both videos (each written atomically)."""
    with storage.atomic_path(overlay_uri) as tmp:
        videoio.encode(overlay_frames(vis, fps), tmp, fps=fps, crf=18, preset=ENCODE_PRESET)
    with storage.atomic_path(comparison_uri) as tmp:
        videoio.encode(comparison_frames(vis, fps), tmp, fps=fps, crf=18, preset=ENCODE_PRESET)
