"""Reading ahead (core.prefetch.ReadAhead): stage 1 and dataset generate read the next video while the current one
is on the device."""

import threading

import pytest

from core.prefetch import ReadAhead as _Prefetch
from segmentation.stage import VideoItem


def _items(n):
    return [VideoItem(f"/v/{i}.mp4", f"clip{i}.camera_front_wide_120fov", None) for i in range(n)]


def test_the_next_video_is_read_while_the_current_one_is_processed():
    items = _items(3)
    started = {item.item_id: threading.Event() for item in items}
    loaded_by = {}

    def load(item):
        started[item.item_id].set()
        loaded_by[item.item_id] = threading.current_thread().name
        return item.item_id

    prefetch = _Prefetch(load, items, enabled=True)
    try:
        assert prefetch.get(items[0]) == items[0].item_id
        # while "segmenting" item 0, item 1 is already being read on the background thread
        assert started[items[1].item_id].wait(timeout=10)
        assert prefetch.get(items[1]) == items[1].item_id and started[items[2].item_id].wait(timeout=10)
        assert prefetch.get(items[2]) == items[2].item_id
    finally:
        prefetch.close()
    assert all(name.startswith("lanepaint-prefetch") for name in loaded_by.values())


def test_a_read_error_belongs_to_its_own_video():
    items = _items(2)

    def load(item):
        if item is items[1]:
            raise ValueError("bad video")
        return "frames"

    prefetch = _Prefetch(load, items, enabled=True)
    try:
        assert prefetch.get(items[0]) == "frames"        # item 1's failure is not item 0's
        with pytest.raises(ValueError, match="bad video"):
            prefetch.get(items[1])
    finally:
        prefetch.close()


def test_a_video_skipped_after_it_was_read_ahead_is_dropped_and_off_means_inline():
    items = _items(3)
    calls = []
    prefetch = _Prefetch(lambda item: calls.append(item.item_id) or item.item_id, items, enabled=True)
    try:
        prefetch.get(items[0])
        assert prefetch.get(items[2]) == items[2].item_id    # item 1 was claimed elsewhere: never asked for
        assert prefetch.pending == {}
    finally:
        prefetch.close()
    inline = _Prefetch(lambda item: threading.current_thread().name, items, enabled=False)
    assert inline.get(items[0]) == threading.current_thread().name and inline.pool is None


def test_an_items_time_limit_lands_while_it_waits_for_a_slow_read():
    import time

    from core.runner import ItemTimeout, Watchdog

    release = threading.Event()
    items = _items(1)
    prefetch = _Prefetch(lambda item: release.wait(10) and item.item_id, items, enabled=True)
    start = time.perf_counter()
    try:
        dog = Watchdog(0.3)
        with pytest.raises(ItemTimeout):
            try:
                prefetch.get(items[0])
            finally:
                dog.disarm()
        assert time.perf_counter() - start < 2.0        # not when the read finally ends (10 s)
    finally:
        release.set()
        prefetch.close()
