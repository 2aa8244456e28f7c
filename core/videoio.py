"""Video I/O with PyAV: probe, decode to uint8 RGB arrays (resampled in time), encode H.264, and copy a
video stream without re-encoding it (``remux_video``).

Frames stay in memory as ``numpy`` arrays ``[T, H, W, 3]`` uint8; nothing goes through temp
image files. Every failure on a bad file raises ``VideoError`` with one line naming the file.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from core.errors import VideoError, brief

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    frame_count: int
    width: int
    height: int
    duration: float  # seconds

    @property
    def last_frame_s(self) -> float:
        """Time of the last frame after the first (the frame count at the stream's rate, capped by the
        duration when the container announces more frames than fit)."""
        by_count = (self.frame_count - 1) / self.fps
        return min(by_count, self.duration - 1.0 / self.fps) if self.duration > 0 else by_count


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoError(f"{path}: file not found")
    if os.path.isdir(path):
        raise VideoError(f"{path}: is a folder, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")


def _open(path: str) -> av.container.InputContainer:
    _check_file(path)
    try:
        container = av.open(path, mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(f"{path}: not a readable video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream")
    return container


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return brief(text, 160)


INITIAL_FRAMES = 1024    # frames allocated before decoding (more are added as they arrive)
MIN_SOURCE_FPS = 1.0     # below this a file is not a camera video (and resampling would invent frames)
MAX_GAP_S = 5.0          # a longer jump between consecutive frames' timestamps is corrupt timing


def _stream_fps(stream: av.video.stream.VideoStream, frames: int, duration: float) -> float:
    fps = 0.0
    for rate in (stream.average_rate, stream.base_rate, stream.guessed_rate):
        if rate and float(rate) > 0:
            fps = float(rate)
            break
    else:
        if frames > 0 and duration > 0:
            fps = frames / duration
    if not fps or not math.isfinite(fps):
        raise VideoError(f"{stream.container.name}: cannot determine the frame rate")
    if fps < MIN_SOURCE_FPS:
        raise VideoError(f"{stream.container.name}: frame rate {fps:.4g} fps is below {MIN_SOURCE_FPS:g} fps "
                         "(not a camera video)")
    return fps


def _targets_before(t: float, fps: float) -> int:
    """How many output times k / fps (k = 0, 1, ...) lie before ``t``: the smallest k with k / fps >= t."""
    k = max(0, math.ceil(t * fps))
    while k > 0 and (k - 1) / fps >= t:
        k -= 1
    while k / fps < t:
        k += 1
    return k


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame rate, frame count, size and duration of the first video stream."""
    path = os.fspath(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        frames = int(stream.frames or 0)
        fps = _stream_fps(stream, frames, duration)
        if frames <= 0 and duration > 0:
            frames = int(round(duration * fps))
        if frames <= 0:  # no index and no duration: count by decoding
            frames = sum(1 for _ in container.decode(stream))
            container.seek(0)
        if duration <= 0 and fps > 0:
            duration = frames / fps
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise VideoError(f"{path}: video stream has no frame size")
        return VideoInfo(path, fps, frames, int(width), int(height), duration)
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: corrupt video ({_reason(exc)})") from None
    finally:
        container.close()


def iter_frames(
    path: str | os.PathLike[str],
    fps: float | None = 8.0,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Yield RGB frames ``[H, W, 3]`` uint8 resampled to ``fps`` (nearest frame in time).

    ``fps=None`` keeps every decoded frame. ``size=(width, height)`` scales while converting.
    Stops decoding as soon as ``max_frames`` frames were produced.
    """
    path = os.fspath(path)
    container = _open(path)
    produced = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        src_fps = _stream_fps(stream, int(stream.frames or 0), 0.0)
        half = 0.5 / src_fps
        t_first = None
        index = 0
        last_rgb, t_last = None, 0.0
        for frame in container.decode(stream):
            if max_frames is not None and produced >= max_frames:
                break
            if frame.pts is not None and frame.time_base is not None:
                t = float(frame.pts * frame.time_base)
            else:
                t = index / src_fps
            t_first = t if t_first is None else t_first
            t -= t_first
            if index and abs(t - t_last) > MAX_GAP_S:
                raise VideoError(f"{path}: frame {index} is {t - t_last:.4g} s after the one before it (corrupt "
                                 f"timestamps; at most {MAX_GAP_S:g} s)")
            index += 1
            repeat = 1
            if fps is not None:
                # emit this frame for every target time k/fps within its half-frame window (counted, not looped)
                repeat = max(0, _targets_before(t + half, fps) - produced)
                if max_frames is not None:
                    repeat = min(repeat, max_frames - produced)
            t_last = t
            if repeat <= 0:
                last_rgb = frame  # converted only if the tail below needs it
                continue
            rgb = _rgb(frame, size)
            last_rgb = rgb
            for _ in range(repeat):
                yield rgb
            produced += repeat
        if fps is not None and last_rgb is not None:
            # the last frame is shown until t_last + 1/src_fps: cover the targets in that span
            tail = max(0, _targets_before(t_last + 1.0 / src_fps - 1e-9, fps) - produced)
            if max_frames is not None:
                tail = min(tail, max_frames - produced)
            if tail > 0:
                rgb = last_rgb if isinstance(last_rgb, np.ndarray) else _rgb(last_rgb, size)
                for _ in range(tail):
                    yield rgb
                produced += tail
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: corrupt video ({_reason(exc)})") from None
    finally:
        container.close()
    if produced == 0:
        raise VideoError(f"{path}: no decodable frames")


def _rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    if size is not None:
        return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
    return frame.to_ndarray(format="rgb24")


def decode(
    path: str | os.PathLike[str],
    fps: float | None = 8.0,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """All frames as one array ``[T, H, W, 3]`` uint8 (see ``iter_frames``).

    The array is allocated once from the probed length and each frame is copied into it as it is
    decoded: one pass over the clip's memory instead of a list of frames plus a stacked copy (half
    the peak memory of a long clip, and measurably faster: see bench/segmentation.py).
    """
    info = probe(path)
    expected = info.frame_count if fps is None else int(info.duration * fps) + 1
    if max_frames is not None:
        expected = min(expected, max_frames)
    expected = min(expected, INITIAL_FRAMES)     # a container may announce anything: grow as frames arrive
    frames = iter_frames(path, fps=fps, max_frames=max_frames, size=size)
    first = next(frames)
    out = np.empty((max(expected, 1) + 1, *first.shape), dtype=np.uint8)
    out[0] = first
    count = 1
    for frame in frames:
        if count == len(out):   # the container's length was an underestimate: grow by half
            out = np.concatenate([out, np.empty((len(out) // 2 + 1, *first.shape), dtype=np.uint8)])
        out[count] = frame
        count += 1
    if count < len(out) // 2:   # far fewer frames than the container announced: drop the spare memory
        return out[:count].copy()
    return out[:count]


def decode_times(path: str | os.PathLike[str], times_s: Sequence[float],
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """The frame at or before each time (seconds after the video's first frame): ``[len(times), H, W, 3]``.

    This is the driving model's rule (PhysicalAI-AV's reader picks the frame at or before a timestamp), not
    ``iter_frames``' nearest frame. Decoding seeks to the keyframe before the earliest time and stops after
    the first frame past the latest one, so a window at the end of a 20 s clip does not decode the whole
    clip. A time before the first frame or more than one frame period past the last is a ``VideoError``.
    """
    path = os.fspath(path)
    targets = np.asarray(times_s, dtype=np.float64)
    if targets.ndim != 1 or not len(targets) or not np.isfinite(targets).all():
        raise ValueError(f"times must be a non-empty 1-D sequence of finite seconds, got {times_s!r}")
    if targets.min() < -1e-6:
        raise VideoError(f"{path}: frame time {targets.min():.3f} s is before the first frame")
    container = _open(path)
    out: list[np.ndarray | None] = [None] * len(targets)
    order = np.argsort(targets, kind="stable")
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        src_fps = _stream_fps(stream, int(stream.frames or 0), 0.0)
        tb = stream.time_base
        first = next(container.decode(stream), None)
        if first is None:
            raise VideoError(f"{path}: no decodable frames")
        t_first = float(first.pts * tb) if first.pts is not None and tb else 0.0
        start = targets.min() - 1.0          # a second of margin: the seek lands on a keyframe at or before it
        if start > 0 and tb:
            container.seek(int((t_first + start) / tb), stream=stream, backward=True, any_frame=False)
            decoded: Iterable[av.VideoFrame] = container.decode(stream)
        else:
            container.seek(0)
            decoded = container.decode(stream)
        previous, t_previous, index, pending = None, -np.inf, 0, 0
        for frame in decoded:
            t = float(frame.pts * tb) - t_first if frame.pts is not None and tb else index / src_fps
            index += 1
            # the previous frame holds every target in [t_previous, t)
            while pending < len(order) and targets[order[pending]] < t - 1e-6:
                if previous is None or targets[order[pending]] < t_previous - 1e-6:
                    raise VideoError(f"{path}: no frame at or before {targets[order[pending]]:.3f} s "
                                     "(the seek landed after it)")
                rgb = previous if isinstance(previous, np.ndarray) else _rgb(previous, size)
                previous = rgb
                out[order[pending]] = rgb
                pending += 1
            if pending == len(order):
                break
            previous, t_previous = frame, t
        if pending < len(order):             # the last frame holds until one frame period after it
            late = targets[order[pending:]]
            if previous is None or late.max() > t_previous + 1.0 / src_fps + 1e-6:
                raise VideoError(f"{path}: frame time {late.max():.3f} s is past the video's end "
                                 f"({t_previous + 1.0 / src_fps:.3f} s)")
            rgb = previous if isinstance(previous, np.ndarray) else _rgb(previous, size)
            for j in order[pending:]:
                out[j] = rgb
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: corrupt video ({_reason(exc)})") from None
    finally:
        container.close()
    return np.stack(out)   # type: ignore[arg-type]


def decode_at(path: str | os.PathLike[str], indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Frames at the given 0-based source frame numbers, found by seeking (not full decode).

    Frame numbers past the end are missing from the result; the caller decides what to say.
    """
    path = os.fspath(path)
    info = probe(path)
    wanted = sorted({int(i) for i in indices if 0 <= int(i) < info.frame_count})
    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    container = _open(path)
    try:
        stream = container.streams.video[0]
        tb = stream.time_base
        start = stream.start_time or 0
        for target in wanted:
            target_pts = start + int(round(target / info.fps / tb)) if tb else 0
            container.seek(target_pts, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                number = int(round(float((frame.pts - start) * tb) * info.fps))
                if number >= target:
                    out[target] = frame.to_ndarray(format="rgb24")
                    break
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: corrupt video ({_reason(exc)})") from None
    finally:
        container.close()
    return out


_M_PERTURB = -6          # glibc mallopt: fill each block malloc hands out with (value ^ 0xff), each freed one with value
_fill_lock = threading.Lock()
_fill_users = 0


@contextlib.contextmanager
def _zero_filled_heap() -> Iterator[None]:
    """While inside, glibc hands out heap memory filled with zeros.

    libx264's lookahead (macroblock-tree rate control, on in every preset but ultrafast) reads lowres buffers
    it never wrote, so the same frames encoded twice could give different bitstreams depending on what the
    heap held before. Measured on this machine: one 49-frame demo edit at 320x180 gave 3 bitstreams under 4
    ``MALLOC_PERTURB_`` fills (mbtree=0, bframes=0 or rc-lookahead=0 each made it 1 and so did this filling,
    which keeps the rate control as it is); tests/core/test_videoio.py repeats it. Without glibc this is a
    no-op. The setting is process-wide, so concurrent encodes share one counted fill.
    """
    global _fill_users
    libc = _glibc()
    if libc is None:
        yield
        return
    with _fill_lock:
        if _fill_users == 0:
            libc.mallopt(_M_PERTURB, 0xFF)
        _fill_users += 1
    try:
        yield
    finally:
        with _fill_lock:
            _fill_users -= 1
            if _fill_users == 0:   # back to what the environment asked for (0: off)
                libc.mallopt(_M_PERTURB, _env_perturb())


def _env_perturb() -> int:
    try:
        return int(os.environ.get("MALLOC_PERTURB_", "0")) & 0xFF
    except ValueError:
        return 0


@functools.lru_cache(maxsize=1)
def _glibc() -> Any:
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        return libc if libc.gnu_get_libc_version else None
    except (OSError, AttributeError):
        return None


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def encode(
    frames: np.ndarray | Iterable[np.ndarray],
    path: str | os.PathLike[str],
    fps: float,
    crf: int = 18,
    preset: str = "medium",
) -> str:
    """Write RGB uint8 frames as H.264 yuv420p mp4 (odd sizes are padded by one edge pixel). The same frames
    give the same bytes every time (see ``_zero_filled_heap``).

    ``path`` is written in place: wrap it in ``storage.atomic_path`` for a final output.
    """
    path = os.fspath(path)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    rate = Fraction(fps).limit_denominator(1001)
    with _zero_filled_heap():
        return _encode(frames, path, rate, crf, preset)


def _encode(frames: np.ndarray | Iterable[np.ndarray], path: str, rate: Fraction, crf: int, preset: str) -> str:
    container = av.open(path, mode="w")
    stream = None
    count = 0
    try:
        for frame in frames:
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
            frame = _even(frame)
            if stream is None:
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": preset}
            elif frame.shape[:2] != (stream.height, stream.width):
                raise ValueError(f"frame {count} has size {frame.shape[1]}x{frame.shape[0]}, "
                                 f"expected {stream.width}x{stream.height}")
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError("no frames to encode")
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    log.debug("encoded %d frames at %.3g fps to %s", count, float(rate), path)
    return path


COPYABLE_CODECS = ("h264",)


def copies_frames(path: str | os.PathLike[str], fps: float, frames: np.ndarray) -> bool:
    """Whether ``remux_video(path)`` gives ``frames`` (decoded from ``path`` at ``fps``): an H.264 stream of that
    frame size whose packets are exactly ``len(frames)`` frames evenly spaced at ``fps`` (read from the packet
    timestamps, nothing decoded), so the decode kept every frame of it once."""
    try:
        container = _open(os.fspath(path))
        try:
            stream = container.streams.video[0]
            codec, size = stream.codec_context.name, (stream.codec_context.height, stream.codec_context.width)
            base = stream.time_base
            if codec not in COPYABLE_CODECS or size != tuple(frames.shape[1:3]) or not base:
                return False                             # decided without reading the packets
            times = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
        finally:
            container.close()
    except (VideoError, av.error.FFmpegError):
        return False
    if len(times) != len(frames):
        return False
    step = 1.0 / (fps * float(base))                 # one frame in time-base ticks
    return all(abs((b - a) - step) <= 1.0 for a, b in zip(times, times[1:], strict=False))


def remux_video(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> str:
    """Copy the first video stream of ``src`` into the mp4 ``dst`` packet by packet: no decode, no encode, the
    same frames (other streams are dropped). Only H.264 (``COPYABLE_CODECS``, what ``encode`` writes); another
    codec is a ``VideoError``. ``dst`` is written in place: wrap it in ``storage.atomic_path``."""
    src, dst = os.fspath(src), os.fspath(dst)
    container = _open(src)
    try:
        stream = container.streams.video[0]
        if stream.codec_context.name not in COPYABLE_CODECS:
            raise VideoError(f"{src}: {stream.codec_context.name} video is not copied (only {', '.join(COPYABLE_CODECS)})")
        out = av.open(dst, mode="w", format="mp4")
        try:
            target = out.add_stream_from_template(stream)
            for packet in container.demux(stream):
                if packet.dts is None:          # the demuxer's flush packet
                    continue
                packet.stream = target
                out.mux(packet)
        finally:
            out.close()
    except VideoError:
        raise
    except Exception as exc:      # PyAV raises FFmpegError, and ValueError/TypeError for streams it cannot map
        raise VideoError(f"{src}: cannot copy its video stream ({_reason(exc)})") from None
    finally:
        container.close()
    return dst
