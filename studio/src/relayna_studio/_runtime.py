"""The Studio runtime: store, shared HTTP client, registry, auth, audit, metrics.

``async with open_studio(settings) as runtime:`` opens everything in one
owner; leaving the block closes the HTTP client and the store (shielded,
bounded). Background jobs are started by :mod:`relayna_studio._app` in the
same task group as the app's lifespan, or by an embedding process in its own
task group (``relayna dev``), via :meth:`StudioRuntime.run_jobs`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import attrs

from relayna.transport import Store, open_store
from relayna_studio._audit import AuditLog
from relayna_studio._auth import TokenStore
from relayna_studio._egress import EgressPolicy
from relayna_studio._egress_http import EgressClient, Resolver, open_egress_client
from relayna_studio._metrics import StudioMetrics
from relayna_studio._registry import Registry
from relayna_studio._settings import StudioSettings

__all__ = ["StudioRuntime", "open_studio"]


@attrs.define
class StudioRuntime:
    settings: StudioSettings
    store: Store
    egress: EgressClient
    registry: Registry
    tokens: TokenStore
    audit: AuditLog
    metrics: StudioMetrics
    shutdown_event: anyio.Event = attrs.field(factory=anyio.Event)
    #: Called with the id after a service was deleted (search index, event cleanup).
    on_service_deleted: list[Callable[[str], Awaitable[None]]] = attrs.field(factory=list)
    #: Called with (service id, newly stored events) after every insert batch.
    on_events_stored: list[Callable[[str, list[dict[str, Any]]], Awaitable[None]]] = attrs.field(
        factory=list
    )

    @property
    def policy(self) -> EgressPolicy:
        return self.egress.policy


def policy_of(settings: StudioSettings) -> EgressPolicy:
    return EgressPolicy(
        allowed_hosts=settings.allowed_hosts, allowed_networks=settings.allowed_networks
    )


@asynccontextmanager
async def open_studio(
    settings: StudioSettings,
    *,
    store: Store | None = None,
    resolver: Resolver | None = None,
) -> AsyncIterator[StudioRuntime]:
    """Open Studio's store (unless given) and its HTTP client; yield the runtime.

    Args:
        store: an already-open store to use (its owner closes it), e.g. the
            ``memory://`` store of an embedding ``relayna dev``.
        resolver: the hostname resolver of the egress policy (tests pass a
            table; the default is the system resolver).

    Raises:
        ConfigurationError / TransportError: the store URL is bad or unreachable.
    """
    from relayna_studio._routes_notify import check_notification_targets

    check_notification_targets(settings, policy_of(settings))
    async with AsyncExitStack() as stack:
        if store is None:
            store = await stack.enter_async_context(open_store(settings.redis_url))
            await store.ping()
        egress = await stack.enter_async_context(
            open_egress_client(
                policy_of(settings),
                deadline=settings.federation_timeout_seconds,
                max_response_bytes=settings.egress_max_response_bytes,
                resolver=resolver,
            )
        )
        runtime = StudioRuntime(
            settings=settings,
            store=store,
            egress=egress,
            registry=Registry(store, settings.global_prefix(settings.registry_prefix)),
            tokens=TokenStore(store, settings.global_prefix(settings.auth_prefix)),
            audit=AuditLog(
                store, settings.global_prefix(settings.audit_prefix), settings.audit_maxlen
            ),
            metrics=StudioMetrics(),
        )
        from relayna_studio._search_hooks import install_search_hooks

        install_search_hooks(runtime)
        try:
            yield runtime
        finally:
            runtime.shutdown_event.set()
