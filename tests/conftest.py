"""Shared fixtures: storage roots on local disk, memory:// and gs:// (GCS emulator)."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.fixtures.gcs_emulator import Emulator

BUCKET = "lanepaint-test"


def pytest_collection_modifyitems(config, items):
    """Skip tests marked `gpu` when CUDA is absent (without importing torch when none are marked)."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gcs_emulator():
    """A GCS emulator on a free loopback port for the whole session, with bucket BUCKET."""
    from core import storage

    emulator = Emulator([BUCKET]).start()
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
    storage.reset_filesystems()
    try:
        yield emulator
    finally:
        emulator.stop()
        if old is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = old
        storage.reset_filesystems()


@pytest.fixture(params=["local", "memory", "gs"])
def storage_root(request, tmp_path):
    """A fresh, empty root URI on each storage backend."""
    unique = uuid.uuid4().hex[:8]
    if request.param == "local":
        return str(tmp_path / "root")
    if request.param == "memory":
        return f"memory://lanepaint-{unique}/root"
    request.getfixturevalue("gcs_emulator")
    return f"gs://{BUCKET}/{unique}/root"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny-model tests: one torch intra-op thread (core.device.TINY_CPU_THREADS), restored after."""
    from core.device import TINY_CPU_THREADS, torch_threads

    with torch_threads(TINY_CPU_THREADS):
        yield
