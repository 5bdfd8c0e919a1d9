"""The health model (ANCHOR §3.4): stored facts, materialised states on every read.

Stored at ``{p}:{service_id}`` (``{p}`` = ``RELAYNA_STUDIO_HEALTH_STORE_PREFIX``,
default ``studio:health``): what the last refresh *saw* (HTTP reachability,
capability fetch times and errors, worker heartbeats). Ages are turned into
states only when a document is read, with :func:`materialize`, a pure
function of (record, stored facts, latest ingested event times, now,
thresholds), so a state can never be older than the read.

States and the overall status, in precedence order:
``disabled`` > ``unreachable`` > ``stale`` (capability, observation or
workers) > ``degraded`` (workers unhealthy or unknown, capability error) >
``healthy`` (capability fresh, observations fresh, workers healthy or
unsupported) > ``unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from relayna.contracts import dumps
from relayna.transport import Store
from relayna_studio._timefmt import format_time, load_object, parse_time_or_none

__all__ = ["HealthStore", "IngestFacts", "Thresholds", "materialize", "overall_status"]

WORKER_HEALTH_ROUTE = "health.workers"


@attrs.frozen
class Thresholds:
    capability_stale_after: float = 180.0
    observation_stale_after: float = 300.0
    worker_heartbeat_stale_after: float = 90.0


@attrs.frozen
class IngestFacts:
    """What the event store knows about a service's events (for observation freshness)."""

    latest_status: datetime | None = None
    latest_observation: datetime | None = None
    latest_ingested: datetime | None = None
    events_skipped: int = 0


def _older(value: datetime | None, now: datetime, seconds: float) -> bool:
    return value is None or now - value > timedelta(seconds=seconds)


def capability_state(facts: Mapping[str, Any], now: datetime, t: Thresholds) -> str:
    last_ok = parse_time_or_none(facts.get("last_successful_at"))
    if last_ok is None:
        return "error" if facts.get("error_detail") else "missing"
    return "stale" if _older(last_ok, now, t.capability_stale_after) else "fresh"


def observation_state(
    latest_status: datetime | None,
    latest_observation: datetime | None,
    now: datetime,
    t: Thresholds,
) -> str:
    times = [x for x in (latest_status, latest_observation) if x is not None]
    if not times:
        return "missing"
    return "stale" if _older(max(times), now, t.observation_stale_after) else "fresh"


def worker_state(
    capabilities: object, facts: Mapping[str, Any], now: datetime, t: Thresholds
) -> str:
    if not isinstance(capabilities, Mapping):
        return "unknown"
    routes = capabilities.get("supported_routes")
    if not isinstance(routes, list) or WORKER_HEALTH_ROUTE not in routes:
        return "unsupported"
    workers = facts.get("workers")
    if not isinstance(workers, list) or not workers:
        return "unknown"
    if any(not (isinstance(w, Mapping) and w.get("running") is True) for w in workers):
        return "unhealthy"
    for worker in workers:
        for lease in worker.get("active_leases") or []:
            expires = (
                parse_time_or_none(lease.get("expires_at")) if isinstance(lease, Mapping) else None
            )
            if expires is not None and expires < now:
                return "stale"
    latest = parse_time_or_none(facts.get("latest_heartbeat_at"))
    return "stale" if _older(latest, now, t.worker_heartbeat_stale_after) else "healthy"


def overall_status(
    registry_status: str, http: str, capability: str, observation: str, worker: str
) -> str:
    if registry_status == "disabled":
        return "disabled"
    if http == "unreachable":
        return "unreachable"
    if "stale" in (capability, observation, worker):
        return "stale"
    if worker in ("unhealthy", "unknown") or capability == "error":
        return "degraded"
    if capability == "fresh" and observation == "fresh" and worker in ("healthy", "unsupported"):
        return "healthy"
    return "unknown"


def materialize(
    record: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    ingest: IngestFacts,
    now: datetime,
    t: Thresholds,
) -> dict[str, Any]:
    """The ``StudioServiceHealthDocument`` for one read."""
    stored = stored or {}
    http = stored.get("http_status") or {}
    caps = stored.get("capability_status") or {}
    workers = stored.get("worker_health") or {}
    latest_status, latest_observation = ingest.latest_status, ingest.latest_observation
    http_state = (
        str(http["state"]) if http.get("state") in ("reachable", "unreachable") else "unknown"
    )
    cap_state = capability_state(caps, now, t)
    obs_state = observation_state(latest_status, latest_observation, now, t)
    w_state = worker_state(record.get("capabilities"), workers, now, t)
    registry_status = str(record.get("status"))

    def fmt(value: datetime | None) -> str | None:
        return None if value is None else format_time(value)

    return {
        "service_id": record["service_id"],
        "registry_status": registry_status,
        "http_status": {
            "state": http_state,
            "checked_at": http.get("checked_at"),
            "error_detail": http.get("error_detail"),
        },
        "capability_status": {
            "state": cap_state,
            "checked_at": caps.get("checked_at"),
            "last_successful_at": caps.get("last_successful_at"),
            "error_detail": caps.get("error_detail"),
        },
        "observation_freshness": {
            "state": obs_state,
            "latest_status_event_at": fmt(latest_status),
            "latest_observation_event_at": fmt(latest_observation),
            "latest_ingested_at": fmt(ingest.latest_ingested),
        },
        "worker_health": {
            "state": w_state,
            "reported_at": workers.get("reported_at"),
            "latest_heartbeat_at": workers.get("latest_heartbeat_at"),
            "workers": workers.get("workers") or [],
            "detail": workers.get("detail"),
        },
        "events_skipped": ingest.events_skipped,
        "last_checked_at": stored.get("last_checked_at"),
        "overall_status": overall_status(
            registry_status, http_state, cap_state, obs_state, w_state
        ),
    }


class HealthStore:
    """Stored health facts, one JSON string per service."""

    def __init__(self, store: Store, prefix: str = "studio:health") -> None:
        self.store = store
        self.prefix = prefix

    def key(self, service_id: str) -> str:
        return f"{self.prefix}:{service_id}"

    @staticmethod
    def _decode(raw: bytes | None) -> dict[str, Any] | None:
        return load_object(raw)

    async def get(self, service_id: str) -> dict[str, Any] | None:
        return self._decode(await self.store.get(self.key(service_id)))

    async def get_many(self, service_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        if not service_ids:
            return []
        raws = await self.store.mget([self.key(s) for s in service_ids])
        return [self._decode(raw) for raw in raws]

    async def put(self, service_id: str, facts: Mapping[str, Any]) -> None:
        await self.store.set(self.key(service_id), dumps(dict(facts)))

    async def delete(self, service_id: str) -> None:
        await self.store.delete(self.key(service_id))


def now_text(now: datetime) -> str:
    return format_time(now)
