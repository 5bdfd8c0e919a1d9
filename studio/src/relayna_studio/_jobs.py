"""Background jobs: a loop per job, a lease per (job, service) per interval.

Each job is ``async def run(service_id)``; :func:`run_periodic` calls it for
every registered service whose lease it wins, at most ``concurrency`` at a
time, then sleeps for the interval. A failure of one service's run is
counted and logged and never stops the loop; cancellation (shutdown) stops
it at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

from relayna.errors import RelaynaError
from relayna_studio._leases import Leases
from relayna_studio._runtime import StudioRuntime

__all__ = ["run_periodic"]

log = logging.getLogger("relayna_studio.jobs")


async def run_periodic(
    runtime: StudioRuntime,
    leases: Leases,
    job: str,
    interval: float,
    run: Callable[[str], Awaitable[object]],
    *,
    concurrency: int = 10,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    limiter = anyio.CapacityLimiter(concurrency)
    metrics = runtime.metrics

    async def one(service_id: str) -> None:
        async with limiter:
            try:
                if not await leases.acquire(job, service_id, interval):
                    return
            except RelaynaError as exc:
                log.warning("%s: lease for %s failed: %s", job, service_id, exc)
                return
            started = time.perf_counter()
            outcome = "ok"
            try:
                async with anyio.create_task_group() as tg:

                    async def keep_lease() -> None:
                        while True:
                            await anyio.sleep(interval / 2)
                            await leases.extend(job, service_id, interval)

                    tg.start_soon(keep_lease)
                    await run(service_id)
                    tg.cancel_scope.cancel()
            except* RelaynaError as failed:  # also from a job's own task group
                outcome = "error"
                for error in failed.exceptions:
                    log.warning("%s for %s failed: %s", job, service_id, error)
            finally:
                metrics.job_duration.labels(job, outcome).observe(time.perf_counter() - started)

    task_status.started()
    while True:
        try:
            ids = await runtime.registry.ids()
        except RelaynaError as exc:
            log.warning("%s: cannot list services: %s", job, exc)
            ids = []
        async with anyio.create_task_group() as tg:
            for service_id in ids:
                tg.start_soon(one, service_id)
        await anyio.sleep(interval)
