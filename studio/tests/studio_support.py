"""Helpers of the relayna-studio tests (imported by tests and by conftest.py)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

from relayna.transport import Store, open_store
from relayna_studio import StudioRuntime, StudioSettings, open_studio, studio_app


@asynccontextmanager
async def open_test_store(kind: str, redis: str | None) -> AsyncIterator[Store]:
    url = "memory://" if kind == "memory" else redis
    assert url is not None
    async with open_store(url) as store:
        yield store


class TableResolver:
    """Answers from a table; a list of answers is served in turn (DNS rebinding)."""

    def __init__(self, table: dict[str, Any] | None = None) -> None:
        self.table: dict[str, Any] = dict(table or {})
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[Any]:
        self.calls.append(host)
        answer = self.table.get(host)
        if answer is None:
            raise OSError(f"{host}: name not known")
        if callable(answer):
            answer = answer()
        return [ipaddress.ip_address(a) for a in answer]


class Canary:
    """A TCP listener that counts every connection it accepts (it answers nothing)."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self.hits = 0

    def drain(self) -> int:
        """Accept (and close) whatever connected; returns the total hit count."""
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return self.hits
            conn.close()
            self.hits += 1

    def close(self) -> None:
        self.sock.close()


def settings_for(url: str, prefix: str, **overrides: Any) -> StudioSettings:
    base: dict[str, Any] = {
        "redis_url": url,
        "registry_prefix": f"{prefix}:services",
        "event_store_prefix": f"{prefix}:events",
        "health_store_prefix": f"{prefix}:health",
        "task_search_index_prefix": f"{prefix}:search",
        "auth_prefix": f"{prefix}:auth",
        "audit_prefix": f"{prefix}:audit",
        "lease_prefix": f"{prefix}:leases",
        "federation_timeout_seconds": 2.0,
        "pull_sync_interval_seconds": None,
        "health_refresh_interval_seconds": None,
        "retention_prune_interval_seconds": None,
        "auth_enabled": False,
        # RELAYNA_TEST_STUDIO_CLUSTER_KEYS=1 runs the Studio suite in the Redis
        # Cluster key layout (docs/studio.md, "Redis Cluster")
        "store_cluster_keys": os.environ.get("RELAYNA_TEST_STUDIO_CLUSTER_KEYS") == "1" or None,
    }
    base.update(overrides)
    return StudioSettings(**base)


class Studio:
    """An open runtime plus an httpx client on its app (ASGI, no socket)."""

    def __init__(self, runtime: StudioRuntime, client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.client = client

    async def role_headers(self) -> dict[str, dict[str, str]]:
        """``{role: Authorization headers}`` for a fresh token of each role."""
        out = {}
        for role in ("reader", "operator", "admin"):
            token, _ = await self.runtime.tokens.create(
                name=f"t-{role}", role=role, created_by="test"
            )
            out[role] = self.headers(token)
        return out

    def headers(self, token: str | None) -> dict[str, str]:
        return {} if token is None else {"authorization": f"Bearer {token}"}

    async def register(
        self, service_id: str, url: str, headers: dict[str, str] | None = None
    ) -> None:
        """Register the service listening at ``url`` as ``service_id``, reached as
        ``{service_id}.test`` on that port (a :class:`TableResolver` maps the name)."""
        created = await self.client.post(
            "/studio/services",
            headers=headers or {},
            json={
                "service_id": service_id,
                "name": service_id,
                "base_url": f"http://{service_id}.test:{url.rsplit(':', 1)[1]}",
                "environment": "test",
                "auth_mode": "internal_network",
            },
        )
        assert created.status_code == 201, created.text


@asynccontextmanager
async def open_test_studio(
    settings: StudioSettings, *, resolver: Any = None, store: Store | None = None
) -> AsyncIterator[Studio]:
    async with open_studio(settings, resolver=resolver, store=store) as runtime:
        app = studio_app(runtime)
        app.state.studio_runtime = runtime
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://studio.test") as client:
            yield Studio(runtime, client)


async def wait_until(predicate: Callable[[], bool], *, limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - polling a test condition
            await anyio.sleep(0.005)
