"""A GCS emulator for tests: ``gcp-storage-emulator`` on 127.0.0.1, in its own process.

Two fixes from UPSTREAM_NOTES.md: the server's listen backlog is raised (its HTTPServer queue of
5 stalls under concurrent requests), and clients set ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``
before importing gcsfs (done in core.storage). Run as a script it serves until killed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from http import server as _http_server


class _BigBacklogServer(_http_server.HTTPServer):
    request_queue_size = 1024


def serve(port: int, buckets: list[str]) -> None:
    from gcp_storage_emulator import server as emulator

    emulator.server.HTTPServer = _BigBacklogServer  # the module's `server` is http.server
    srv = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket=buckets[0] if buckets else None)
    srv.start()
    if len(buckets) > 1:
        from gcp_storage_emulator.handlers import buckets as bucket_handlers

        for name in buckets[1:]:
            bucket_handlers.create_bucket(name, srv._storage)
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Emulator:
    """Start with ``Emulator(buckets).start()``; ``host`` is the value for STORAGE_EMULATOR_HOST."""

    def __init__(self, buckets: list[str]) -> None:
        self.buckets = buckets
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> Emulator:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(self.port), *self.buckets],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "ready" not in line:
            self.stop()
            raise RuntimeError(f"GCS emulator did not start (got {line!r})")
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("GCS emulator did not open its port")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:])
