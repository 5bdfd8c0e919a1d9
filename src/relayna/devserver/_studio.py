"""Studio inside ``relayna dev``: started when the ``relayna-studio`` distribution is installed.

relayna does not depend on relayna-studio (Studio depends on relayna), so
this module imports ``relayna_studio`` only inside :func:`run_dev_studio`,
after :func:`studio_installed` said it is there; ``scripts/check_imports.py``
allows that import here and nowhere else in relayna.

Studio runs with auth off, bound to loopback only, its egress limited to
loopback, its store on ``--store-url`` (its own key prefixes), and the demo
service registered as ``demo`` through Studio's own HTTP API (so a service
left registered in a Redis store from an earlier run is pointed at this
run's URL). Its pull sync reads the service's event feed every second, so
the task list fills while tasks run.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
from functools import partial

import anyio
import attrs
import httpx
from anyio.abc import TaskStatus

from relayna.api import serve_asgi
from relayna.errors import ConfigurationError

__all__ = [
    "STUDIO_INSTALL_HINT",
    "DevStudioConfig",
    "run_dev_studio",
    "studio_installed",
    "studio_start_url",
]

logger = logging.getLogger("relayna.dev")

#: How to get Studio into the environment ``relayna dev`` runs in.
STUDIO_INSTALL_HINT = (
    "install it next to relayna to get the Studio UI: "
    "pip install -e ./studio (from a relayna clone) or pip install relayna-studio"
)


def studio_installed() -> bool:
    """Whether the ``relayna_studio`` package can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("relayna_studio") is not None
    except (ImportError, ValueError):  # a broken install, or sys.modules[...] = None
        return False


@attrs.frozen
class DevStudioConfig:
    """Studio's part of ``relayna dev`` (``--studio-port``, ``--no-studio``)."""

    port: int = 8001
    service_id: str = "demo"
    service_name: str = "relayna dev demo"
    pull_sync_interval_seconds: float = 1.0
    health_refresh_interval_seconds: float = 10.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def studio_start_url(studio_url: str, service_id: str) -> str:
    """The page ``relayna dev`` sends people to: the service's task list."""
    return f"{studio_url}/tasks/search?service_id={service_id}"


def _service_base_url(service_url: str) -> str:
    """The dev service's URL as Studio calls it: a wildcard bind is reached on loopback."""
    url = httpx.URL(service_url)
    host = url.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return str(url.copy_with(host=host, path="")).rstrip("/")


def _allowed_networks(base_url: str) -> tuple[str, ...]:
    networks = ["127.0.0.0/8", "::1/128"]
    host = httpx.URL(base_url).host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return tuple(networks)
    if not address.is_loopback:
        networks.append(f"{address}/{address.max_prefixlen}")
    return tuple(networks)


async def _register(client: httpx.AsyncClient, config: DevStudioConfig, base_url: str) -> None:
    """Register (or re-point) the demo service and read its capability document."""
    sid = config.service_id
    created = await client.post(
        "/studio/services",
        json={
            "service_id": sid,
            "name": config.service_name,
            "base_url": base_url,
            "environment": "dev",
            "auth_mode": "internal_network",
            "tags": ["relayna-dev"],
        },
    )
    if created.status_code == 409:  # kept in a Redis store from an earlier run
        created = await client.patch(f"/studio/services/{sid}", json={"base_url": base_url})
    if created.status_code not in (200, 201):
        raise ConfigurationError(f"Studio refused the demo service: {created.text}")
    refreshed = await client.post(f"/studio/services/{sid}/refresh")
    if refreshed.status_code != 200:
        raise ConfigurationError(f"Studio could not read the demo service: {refreshed.text}")


async def run_dev_studio(
    config: DevStudioConfig,
    *,
    store_url: str,
    service_url: str,
    shutdown: anyio.Event,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve Studio until ``shutdown`` is set; reports the task-list URL once the
    demo service is registered.

    Raises:
        ConfigurationError: relayna-studio is not installed, or Studio could
            not register the service.
    """
    if not studio_installed():
        raise ConfigurationError(f"relayna-studio is not installed: {STUDIO_INSTALL_HINT}")
    from relayna_studio import StudioSettings, open_studio, run_studio_jobs, studio_app

    base_url = _service_base_url(service_url)
    settings = StudioSettings(
        redis_url=store_url,
        host="127.0.0.1",
        port=config.port,
        allowed_hosts=(),
        allowed_networks=_allowed_networks(base_url),
        auth_enabled=False,
        pull_sync_interval_seconds=config.pull_sync_interval_seconds,
        health_refresh_interval_seconds=config.health_refresh_interval_seconds,
    )
    async with open_studio(settings) as runtime, anyio.create_task_group() as jobs:
        await jobs.start(run_studio_jobs, runtime)
        async with anyio.create_task_group() as web:
            url = await web.start(
                partial(
                    serve_asgi,
                    studio_app(runtime),
                    host="127.0.0.1",
                    port=config.port,
                    shutdown_trigger=shutdown.wait,
                )
            )
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                await _register(client, config, base_url)
            task_status.started(studio_start_url(url.rstrip("/"), config.service_id))
        # hypercorn returned on ``shutdown`` (streams closed); then the jobs stop.
        jobs.cancel_scope.cancel()
