"""Per-principal concurrent stream limit (bad input #33).

A principal is the client IP (``scope["client"][0]``) unless the app passes
its own ``principal`` function (an authenticated user id, a trusted
``X-Forwarded-For`` hop). Counting is per process and per route set.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

__all__ = ["StreamLimiter", "client_ip"]


def client_ip(request: Request) -> str:
    """The peer address of the connection (``"unknown"`` without one)."""
    client = request.client
    return client.host if client is not None else "unknown"


class StreamLimiter:
    """At most ``limit`` concurrent streams per principal (``None``: no limit)."""

    def __init__(self, limit: int | None, principal: Callable[[Request], str] = client_ip) -> None:
        if limit is not None and limit < 1:
            raise ValueError("max_streams_per_client must be >= 1 or None")
        self.limit = limit
        self.principal = principal
        self._open: dict[str, int] = {}
        self.rejected = 0

    def open_streams(self, key: str) -> int:
        return self._open.get(key, 0)

    def try_acquire(self, key: str) -> bool:
        count = self._open.get(key, 0)
        if self.limit is not None and count >= self.limit:
            self.rejected += 1
            return False
        self._open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)
