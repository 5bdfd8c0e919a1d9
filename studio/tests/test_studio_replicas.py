"""Several Studio replicas on one store: a job runs once per service per interval."""

from __future__ import annotations

import time
import uuid
from functools import partial
from typing import Any

import anyio
import pytest

from relayna.transport import open_store
from relayna_studio import Leases, UpstreamError, open_studio, parse_create
from relayna_studio._jobs import run_periodic
from studio_support import TableResolver, settings_for

pytestmark = pytest.mark.anyio

INTERVAL = 0.25


async def test_two_replicas_share_one_job_per_service_per_interval(store_url: str) -> None:
    prefix = f"replicas:{uuid.uuid4().hex[:8]}"
    runs: dict[str, list[tuple[float, str]]] = {}
    async with open_store(store_url) as store:
        settings = settings_for(store_url, prefix)
        async with (
            open_studio(settings, store=store, resolver=TableResolver()) as a,
            open_studio(settings, store=store, resolver=TableResolver()) as b,
        ):
            for i in range(5):
                await a.registry.create(
                    parse_create(
                        {
                            "service_id": f"s{i}",
                            "name": "n",
                            "base_url": f"http://s{i}.example.test",
                            "environment": "prod",
                            "auth_mode": "internal_network",
                        }
                    )
                )

            def job(replica: str) -> Any:
                async def run(service_id: str) -> None:
                    runs.setdefault(service_id, []).append((time.monotonic(), replica))

                return run

            started = time.monotonic()
            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    for name, runtime in (("a", a), ("b", b)):
                        leases = Leases(store, settings.lease_prefix, owner=name)
                        await tg.start(
                            partial(run_periodic, runtime, leases, "sync", INTERVAL, job(name))
                        )
                        await anyio.sleep(INTERVAL / 2)  # replicas out of phase
                    await anyio.sleep(INTERVAL * 6)
                    tg.cancel_scope.cancel()
            elapsed = time.monotonic() - started
    windows = int(elapsed / INTERVAL) + 1
    assert set(runs) == {f"s{i}" for i in range(5)}
    for service_id, times in runs.items():
        # the lease lives one interval: its acquisitions are at least an interval
        # apart, so a service runs at most once per interval across both replicas
        # (run *start* times can bunch up on a busy box; the count cannot grow)
        assert len(times) <= windows, (service_id, len(times), windows)
    # without leases each replica would run every service every interval: ~2x
    assert sum(len(t) for t in runs.values()) <= 5 * windows
    assert {r for times in runs.values() for _, r in times} <= {"a", "b"}


async def test_a_job_failing_inside_its_own_task_group_never_stops_the_loop() -> None:
    """pull_sync reads pages in its own task group: a dead service's error arrives as an
    exception group. It is logged like any failure; the other services keep running."""
    prefix = f"jobs:{uuid.uuid4().hex[:8]}"
    settings = settings_for("memory://", prefix)
    calls: list[str] = []
    again = anyio.Event()
    async with open_studio(settings, resolver=TableResolver()) as runtime:
        for sid in ("dead", "alive"):
            await runtime.registry.create(
                parse_create(
                    {
                        "service_id": sid,
                        "name": sid,
                        "base_url": f"http://{sid}.example.test",
                        "environment": "prod",
                        "auth_mode": "internal_network",
                    }
                )
            )

        async def job(service_id: str) -> None:
            calls.append(service_id)
            if calls.count("alive") >= 2 and calls.count("dead") >= 2:
                again.set()
            if service_id == "dead":
                async with anyio.create_task_group() as tg:

                    async def fetch() -> None:
                        raise UpstreamError("gone", status=502, code="upstream_transport_error")

                    tg.start_soon(fetch)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                leases = Leases(runtime.store, settings.lease_prefix)
                await tg.start(partial(run_periodic, runtime, leases, "sync", INTERVAL, job))
                await again.wait()  # both ran twice: the failure stopped nothing
                tg.cancel_scope.cancel()
