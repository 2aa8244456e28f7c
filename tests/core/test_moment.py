import numpy as np
import pytest

from core.errors import LanepaintError
from core.moment import Moment, frames_at, plan_moment


def test_a_20_s_clip_gets_one_window_ending_at_the_latest_moment_with_6_4_s_of_future():
    last = 599 / 30                       # a 20 s camera video at 30 fps
    m = plan_moment(last, fps=10, frames=49)
    assert (m.t0_s, m.fps, m.frames) == (pytest.approx(13.5), 10, 49)
    assert m.start_s == pytest.approx(13.5 - 4.8)
    assert last - m.t0_s >= 6.4
    times = m.frame_times()
    assert times[-1] == pytest.approx(m.t0_s) and len(times) == 49
    # the model's frame times t0 - 0.3 .. t0 are frames of the window
    assert np.allclose(times[frames_at(times, m.t0_s - 0.1 * np.arange(3, -1, -1))], m.t0_s - np.array([0.3, 0.2, 0.1, 0]))


def test_a_short_clip_fails_in_planning_with_the_seconds_it_has_and_needs():
    with pytest.raises(LanepaintError, match=r"^10\.00 s of video; the evaluated moment needs 11\.20 s"):
        plan_moment(10.0, fps=10, frames=49)
    # a window shorter than the history still needs 1.6 s before t0
    assert plan_moment(8.0, fps=10, frames=4).t0_s == pytest.approx(1.6)
    with pytest.raises(LanepaintError, match="needs 8.00 s"):
        plan_moment(7.9, fps=10, frames=4)


def test_a_whole_clip_edit_puts_t0_at_the_latest_edited_moment_with_enough_future():
    m = plan_moment(599 / 30, fps=8, frames=0, max_frames=150)
    assert (m.start_s, m.frames) == (0.0, 150)
    assert m.t0_s == pytest.approx(13.5) and m.t0_s <= m.end_s
    short = plan_moment(599 / 30, fps=8, frames=0, max_frames=100)      # edit ends at 12.375 s
    assert short.t0_s == pytest.approx(99 / 8)
    with pytest.raises(LanepaintError, match="needs 1.6 s of history"):
        plan_moment(599 / 30, fps=8, frames=0, max_frames=10)


def test_the_moment_round_trips_and_a_bad_one_is_a_one_line_error():
    m = plan_moment(19.9, fps=10)
    assert Moment.from_dict(m.as_dict()) == m
    with pytest.raises(LanepaintError, match="t0 must lie in the window"):
        Moment.from_dict({**m.as_dict(), "t0_s": m.end_s + 1})
    with pytest.raises(LanepaintError, match="bad evaluated moment"):
        Moment.from_dict({"t0_s": 1})


def test_frames_at_takes_the_frame_at_or_before():
    times = np.arange(10) / 8
    assert list(frames_at(times, np.array([0.0, 0.1, 0.125, 0.2499, 0.25, -0.1]))) == [0, 0, 1, 1, 2, -1]
