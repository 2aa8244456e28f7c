import os
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from core import videoio
from core.errors import VideoError
from tests.fixtures import REPO_ROOT, processes


def _ramp_frames(n: int, w: int = 64, h: int = 48) -> np.ndarray:
    """Frame k is a flat grey of value 8*k (distinguishable after lossy coding)."""
    return np.stack([np.full((h, w, 3), min(8 * k, 255), np.uint8) for k in range(n)])


@pytest.fixture
def clip10(tmp_path):
    path = str(tmp_path / "clip10.mp4")
    videoio.encode(_ramp_frames(30), path, fps=10, crf=0, preset="ultrafast")
    return path


def test_probe(clip10):
    info = videoio.probe(clip10)
    assert (info.fps, info.frame_count, info.width, info.height) == (10.0, 30, 64, 48)
    assert info.duration == pytest.approx(3.0, abs=0.05)


def test_decode_native_rate_keeps_all_frames(clip10):
    frames = videoio.decode(clip10, fps=None)
    assert frames.shape == (30, 48, 64, 3) and frames.dtype == np.uint8
    assert np.abs(frames[:, 0, 0, 0].astype(int) - 8 * np.arange(30)).max() <= 2


def test_decode_resamples_to_8fps_by_nearest_time(clip10):
    frames = videoio.decode(clip10, fps=8)
    assert frames.shape[0] == 24  # 3 s at 8 fps
    expected_src = np.round(np.arange(24) / 8 * 10).astype(int)  # nearest source frame in time
    got_src = np.round(frames[:, 0, 0, 0] / 8.0).astype(int)
    assert np.abs(got_src - expected_src).max() <= 1
    assert got_src[0] == 0 and np.all(np.diff(got_src) >= 0)


def test_decode_upsampling_repeats_frames(tmp_path):
    path = str(tmp_path / "slow.mp4")
    videoio.encode(_ramp_frames(8), path, fps=4, crf=0, preset="ultrafast")
    frames = videoio.decode(path, fps=8)
    assert frames.shape[0] == 16


def test_decode_max_frames_and_size(clip10):
    frames = videoio.decode(clip10, fps=8, max_frames=5, size=(32, 24))
    assert frames.shape == (5, 24, 32, 3)


def test_decode_at_seeks_to_frame_numbers(clip10):
    got = videoio.decode_at(clip10, [0, 17, 29, 30, 100])
    assert sorted(got) == [0, 17, 29]  # past the end: absent
    for k, frame in got.items():
        assert abs(int(frame[0, 0, 0]) - 8 * k) <= 2


def test_encode_roundtrip_odd_size_is_padded(tmp_path):
    path = str(tmp_path / "odd.mp4")
    frames = np.random.default_rng(0).integers(0, 255, (3, 33, 41, 3), dtype=np.uint8)
    videoio.encode(frames, path, fps=8)
    info = videoio.probe(path)
    assert (info.width, info.height, info.frame_count) == (42, 34, 3)
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"


_ENCODE_ONCE = """
import sys, numpy as np
from core import videoio
source, path = sys.argv[1], sys.argv[2]
videoio.encode(np.load(source), path, fps=10)
"""


def _demo_like_frames(height: int, width: int) -> np.ndarray:
    """A lane scene panned over 33 frames: the kind of content on which the encoder's lookahead went astray."""
    from synthetic.scenes import SceneSpec, render_scene

    return render_scene(SceneSpec(width=width, height=height, fps=10.0, seconds=3.3))[0]


@pytest.mark.parametrize("height, width, content", [(180, 320, "scene"), (180, 322, "noise"), (720, 1282, "noise")])
def test_encode_gives_the_same_bytes_whatever_the_heap_holds(tmp_path, height, width, content):
    """glibc fills fresh memory with a different byte under each MALLOC_PERTURB_: an encoder that reads memory
    no one wrote gives different bytes. Without the zero fill, each case gave 2 or 3 bitstreams from 3 fills."""
    if content == "noise":
        base = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
        frames = np.stack([np.roll(base, k, axis=1) for k in range(12)])
    else:
        frames = _demo_like_frames(height, width)
    np.save(tmp_path / "frames.npy", frames)
    outputs = []
    for fill in (1, 77, 200):
        path = tmp_path / f"{fill}.mp4"
        env = {**os.environ, "MALLOC_PERTURB_": str(fill)}
        result = processes.run([sys.executable, "-c", _ENCODE_ONCE, str(tmp_path / "frames.npy"), str(path)],
                               timeout=120, env=env, cwd=REPO_ROOT)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_encode_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        videoio.encode(np.zeros((2, 8, 8, 3), np.float32), str(tmp_path / "x.mp4"), fps=8)
    with pytest.raises(ValueError, match="no frames"):
        videoio.encode([], str(tmp_path / "y.mp4"), fps=8)


def _audio_only(path: str) -> None:
    with av.open(path, "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize("fn", [videoio.probe, videoio.decode])
@pytest.mark.parametrize(
    "kind, reason",
    [("missing", "file not found"), ("empty", "empty file (0 bytes)"), ("garbage", "not a readable video"),
     ("audio", "no video stream"), ("truncated", "")],
)
def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path, clip10, fn, kind, reason):
    path = str(tmp_path / f"{kind}.mp4")
    if kind == "empty":
        open(path, "wb").close()
    elif kind == "garbage":
        with open(path, "wb") as fh:
            fh.write(os.urandom(4096))
    elif kind == "audio":
        _audio_only(path)
    elif kind == "truncated":
        data = open(clip10, "rb").read()
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 3])
    if kind == "truncated":
        # a cut file may still probe or decode partly; whatever happens is a VideoError or frames
        try:
            fn(path)
        except VideoError as exc:
            assert str(exc).startswith(path) and "\n" not in str(exc)
        return
    with pytest.raises(VideoError) as info:
        fn(path)
    assert str(info.value).startswith(path)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def test_decode_copes_with_a_container_that_understates_its_length(clip10, monkeypatch):
    """The output array is sized from the probe; a short estimate grows it, nothing is lost."""
    real = videoio.probe

    def lying_probe(path):
        info = real(path)
        return videoio.VideoInfo(info.path, info.fps, 3, info.width, info.height, 0.3)

    monkeypatch.setattr(videoio, "probe", lying_probe)
    frames = videoio.decode(clip10, fps=None)
    assert frames.shape == (30, 48, 64, 3)
    assert np.abs(frames[:, 0, 0, 0].astype(int) - 8 * np.arange(30)).max() <= 2


def _grey_index(frames: np.ndarray) -> np.ndarray:
    return np.round(frames[:, 0, 0, 0] / 8.0).astype(int)


def test_decode_times_picks_the_frame_at_or_before_each_time(clip10):
    # frames at 0.0, 0.1, ... 2.9 s; 0.25 s -> frame 2 (not the nearer 3), 0.3 -> frame 3 exactly
    times = [2.9, 0.0, 0.25, 0.3, 0.299, 1.96, 2.95]
    got = videoio.decode_times(clip10, times)
    assert got.shape == (7, 48, 64, 3)
    assert list(_grey_index(got)) == [29, 0, 2, 3, 2, 19, 29]


def test_decode_times_seeks_into_a_long_clip_and_matches_a_full_decode(tmp_path):
    path = str(tmp_path / "long.mp4")
    frames = np.stack([np.full((32, 48, 3), (7 * k) % 250, np.uint8) for k in range(300)])   # 10 s at 30 fps
    videoio.encode(frames, path, fps=30, crf=0, preset="ultrafast")
    full = videoio.decode(path, fps=None)
    times = 8.0 + np.array([-0.3, -0.2, -0.1, 0.0])
    got = videoio.decode_times(path, times, size=(48, 32))
    expected = np.floor(times * 30 + 1e-6).astype(int)      # 7.7 s -> frame 231, 8.0 s -> 240
    assert np.array_equal(got, full[expected])


@pytest.mark.parametrize("times, reason", [([-0.5], "before the first frame"), ([3.5], "past the video's end")])
def test_decode_times_outside_the_video_is_a_one_line_error(clip10, times, reason):
    with pytest.raises(VideoError, match=reason):
        videoio.decode_times(clip10, times)


def _jumping_clip(path: str, jump_s: float) -> str:
    """10 frames at 10 fps, then 5 frames ``jump_s`` seconds later (corrupt timing)."""
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 10)
        for k in range(15):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * k, np.uint8), format="rgb24")
            frame.pts = k + (int(jump_s * 10) if k >= 10 else 0)
            frame.time_base = Fraction(1, 10)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_timestamp_jump_fails_at_once_instead_of_looping(tmp_path):
    """Defect: a large timestamp jump made the resampling loop run for minutes to forever before max_frames."""
    import time

    path = _jumping_clip(str(tmp_path / "jump.mkv"), 1e9)
    start = time.monotonic()
    with pytest.raises(VideoError, match=r"jump\.mkv: frame 10 is 1e\+09 s after the one before it"):
        videoio.decode(path, fps=8, max_frames=150)
    assert time.monotonic() - start < 5
    small = videoio.decode(_jumping_clip(str(tmp_path / "small.mkv"), 2.0), fps=8)   # a short gap is held
    assert 24 <= len(small) <= 34


def test_a_video_below_one_frame_per_second_is_not_resampled_into_many(tmp_path):
    """Defect: a 3-frame clip at 1/1000 fps became a 150-frame clip marked ready for VideoPainter."""
    path = str(tmp_path / "slow.mp4")
    videoio.encode(_ramp_frames(3), path, fps=0.001, crf=0, preset="ultrafast")
    with pytest.raises(VideoError, match=r"slow\.mp4: frame rate 0\.001 fps is below 1 fps"):
        videoio.decode(path, fps=8, max_frames=150)


def test_remux_copies_the_video_stream_frame_for_frame(clip10, tmp_path):
    rng = np.random.default_rng(0)
    noisy = str(tmp_path / "noisy.mp4")       # lossy and with B-frames: a copy must not decode and encode
    videoio.encode(rng.integers(0, 256, (12, 48, 64, 3), dtype=np.uint8), noisy, fps=8)
    for source in (clip10, noisy):
        copy = videoio.remux_video(source, str(tmp_path / "copy.mp4"))
        original = videoio.decode(source, fps=None)
        assert np.array_equal(videoio.decode(copy, fps=None), original)
        info = videoio.probe(copy)
        assert info.frame_count == len(original) and info.fps == videoio.probe(source).fps
    frames = videoio.decode(noisy, fps=8)
    assert videoio.copies_frames(noisy, 8, frames)
    assert not videoio.copies_frames(noisy, 8, frames[:10])          # not every frame kept
    assert not videoio.copies_frames(clip10, 8, videoio.decode(clip10, fps=8))    # resampled


def test_a_codec_that_is_not_h264_is_not_copied(tmp_path):
    path = str(tmp_path / "mpeg4.mp4")
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in _ramp_frames(4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    assert not videoio.copies_frames(path, 8, videoio.decode(path, fps=None))
    with pytest.raises(VideoError, match=r"mpeg4\.mp4: mpeg4 video is not copied \(only h264\)"):
        videoio.remux_video(path, str(tmp_path / "copy.mp4"))


def test_a_stream_with_uneven_timestamps_is_not_copied(tmp_path):
    """Eight frames but a gap and a doubled interval in their timestamps: a decode at 8 fps would repeat a frame and
    skip another, so the frames SAM2 saw would not be the stream's. The same frames evenly timed are copied."""
    def write(name, stamps):
        path = str(tmp_path / name)
        with av.open(path, "w") as container:
            stream = container.add_stream("libx264", rate=8)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.codec_context.time_base = Fraction(1, 8)
            for frame, pts in zip(_ramp_frames(8), stamps, strict=True):
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = pts
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode())
        return path

    eight = np.zeros((8, 48, 64, 3), np.uint8)
    assert videoio.copies_frames(write("even.mp4", range(8)), 8, eight)
    assert not videoio.copies_frames(write("uneven.mp4", [0, 1, 2, 4, 5, 6, 8, 9]), 8, eight)
