"""A private redis-server (AOF on, fsync always) that a test may stop and restart.

Server-control tests (restarts, CLIENT KILL of every pubsub client) run on one
of these, never on the session's shared Redis, which other sessions use.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

__all__ = ["PrivateRedis"]


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.pidfile = directory / "redis.pid"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--daemonize", "yes", "--dir", str(self.directory),
                "--pidfile", str(self.pidfile), "--logfile", str(self.directory / "redis.log"),
            ],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        deadline = time.monotonic() + 10
        while not self.pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.pidfile.exists():
            return
        pid = int(self.pidfile.read_text().strip())
        os.kill(pid, 15)
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        self.pidfile.unlink(missing_ok=True)

    def restart(self, down_for: float = 0.3) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()
