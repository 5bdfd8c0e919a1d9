"""The Starlette routes an :class:`~relayna.app.App` serves (``App.routes``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.routing import BaseRoute

from relayna.api import Authorize, cancel_routes, dlq_routes, health_routes, status_routes
from relayna.contracts import TaskEnvelope
from relayna.devserver import task_page_routes
from relayna.dlq import DLQStoreConfig
from relayna.errors import ConfigurationError

__all__ = ["build_routes"]


def build_routes(
    name: str,
    tasks: Mapping[str, Any],
    publish_from_page: Callable[[dict[str, Any]], Awaitable[TaskEnvelope]],
    *,
    page: bool,
    dlq: bool,
    dlq_config: DLQStoreConfig | None,
    authorize: Authorize | None,
) -> list[BaseRoute]:
    """Status, cancel and health routes; the task page with ``page``; the DLQ and
    failed-task routes with ``dlq`` (over ``dlq_config``)."""
    routes: list[BaseRoute] = [
        *status_routes(),
        *cancel_routes(authorize=authorize),
        *health_routes(),
    ]
    if page:
        types = list(tasks)
        routes += task_page_routes(
            publish_from_page, types, page={"title": name, "task_types": types}
        )
    if dlq:
        if dlq_config is None:
            raise ConfigurationError(f"app {name!r} has no dlq_config: no DLQ routes")
        routes += dlq_routes(store_config=dlq_config, authorize=authorize)
    return routes
