"""Health reads (materialised, batched) and refreshes (one service, or all with bounded parallelism)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from relayna.errors import ContractError
from relayna_studio._capabilities import fetch_capabilities, supports_route
from relayna_studio._errors import ServiceNotFound, UpstreamError
from relayna_studio._event_keys import EventKeys
from relayna_studio._health import (
    WORKER_HEALTH_ROUTE,
    HealthStore,
    IngestFacts,
    Thresholds,
    materialize,
)
from relayna_studio._runtime import StudioRuntime
from relayna_studio._timefmt import format_time, now_utc, parse_time_or_none

__all__ = ["HealthService"]

log = logging.getLogger("relayna_studio.health")

WORKERS_PATH = "/relayna/health/workers"
_MAX_WORKERS = 500


class HealthService:
    def __init__(self, runtime: StudioRuntime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.store = HealthStore(
            runtime.store, settings.global_prefix(settings.health_store_prefix)
        )
        self.keys = EventKeys(settings.event_store_prefix, settings.cluster_keys)
        self.thresholds = Thresholds(
            capability_stale_after=settings.capability_stale_after_seconds,
            observation_stale_after=settings.observation_stale_after_seconds,
            worker_heartbeat_stale_after=settings.worker_heartbeat_stale_after_seconds,
        )

    async def _read(self, per_service: list[list[str]]) -> list[bytes | None]:
        """The values of every service's keys, in order: one MGET in the default
        layout; one per service (one slot each, run concurrently) in the cluster layout."""
        store = self.runtime.store
        if not self.keys.cluster:
            return await store.mget([k for keys in per_service for k in keys])
        found: list[list[bytes | None]] = [[] for _ in per_service]
        limiter = anyio.CapacityLimiter(16)

        async def one(i: int) -> None:
            async with limiter:
                found[i] = await store.mget(per_service[i])

        async with anyio.create_task_group() as tg:
            for i in range(len(per_service)):
                tg.start_soon(one, i)
        return [v for part in found for v in part]

    async def ingest_facts(self, service_ids: Sequence[str]) -> list[IngestFacts]:
        if not service_ids:
            return []
        per_service = [
            [
                self.keys.latest_status(sid),
                self.keys.latest_observation(sid),
                self.keys.latest_ingested(sid),
                self.keys.events_skipped(sid),
            ]
            for sid in service_ids
        ]
        raws = await self._read(per_service)
        out = []
        for i in range(len(service_ids)):
            status, observation, ingested, skipped = raws[4 * i : 4 * i + 4]

            def when(raw: bytes | None) -> Any:
                return None if raw is None else parse_time_or_none(raw.decode(errors="replace"))

            out.append(
                IngestFacts(
                    latest_status=when(status),
                    latest_observation=when(observation),
                    latest_ingested=when(ingested),
                    events_skipped=int(skipped) if skipped and skipped.isdigit() else 0,
                )
            )
        return out

    async def documents(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Materialised health documents of ``records`` (two MGETs in all)."""
        ids = [str(r["service_id"]) for r in records]
        stored = await self.store.get_many(ids)
        facts = await self.ingest_facts(ids)
        now = now_utc()
        return [
            materialize(record, s, f, now, self.thresholds)
            for record, s, f in zip(records, stored, facts, strict=True)
        ]

    async def document(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return (await self.documents([record]))[0]

    async def refresh(self, service_id: str) -> dict[str, Any]:
        """Contact the service (unless disabled), store what was seen; the materialised document.

        Raises:
            ServiceNotFound: no such service.
        """
        record = await self.runtime.registry.require(service_id)
        now = format_time(now_utc())
        previous = await self.store.get(service_id) or {}
        facts: dict[str, Any] = {
            "registry_status": record["status"],
            "http_status": previous.get("http_status") or {"state": "unknown"},
            "capability_status": dict(previous.get("capability_status") or {}),
            "worker_health": previous.get("worker_health") or {},
            "last_checked_at": now,
        }
        if record["status"] != "disabled":
            await self._probe(record, facts, now)
        await self.store.put(service_id, facts)
        return await self.document(await self.runtime.registry.require(service_id))

    async def _probe(self, record: dict[str, Any], facts: dict[str, Any], now: str) -> None:
        service_id = str(record["service_id"])
        caps = facts["capability_status"]
        caps["checked_at"] = now
        try:
            document = await fetch_capabilities(
                self.runtime.egress, service_id, str(record["base_url"])
            )
        except UpstreamError as exc:
            facts["http_status"] = {
                "state": "unreachable",
                "checked_at": now,
                "error_detail": str(exc),
            }
            caps["error_detail"] = str(exc)
            return
        facts["http_status"] = {"state": "reachable", "checked_at": now, "error_detail": None}
        caps["last_successful_at"] = now
        caps["error_detail"] = None

        def store_caps(current: dict[str, Any]) -> dict[str, Any]:
            return {**current, "capabilities": document}

        try:
            record = (await self.runtime.registry.update(service_id, store_caps))[1]
        except ServiceNotFound:
            return
        if supports_route(document, WORKER_HEALTH_ROUTE):
            facts["worker_health"] = await self._workers(record, now)
        else:
            facts["worker_health"] = {}

    async def _workers(self, record: Mapping[str, Any], now: str) -> dict[str, Any]:
        service_id = str(record["service_id"])
        try:
            response = await self.runtime.egress.request(
                "GET", str(record["base_url"]) + WORKERS_PATH, service_id=service_id
            )
            if response.status_code != 200:
                raise ValueError(f"worker health answered {response.status_code}")
            body = response.json()
            workers = body.get("workers") if isinstance(body, dict) else None
            if not isinstance(workers, list):
                raise ValueError("worker health document has no workers list")
        except (UpstreamError, ContractError, ValueError) as exc:
            return {"reported_at": None, "workers": [], "detail": str(exc)}
        workers = [w for w in workers[:_MAX_WORKERS] if isinstance(w, dict)]
        beats = [
            t
            for t in (parse_time_or_none(w.get("last_heartbeat_at")) for w in workers)
            if t is not None
        ]
        return {
            "reported_at": body.get("reported_at") if isinstance(body, dict) else None,
            "latest_heartbeat_at": format_time(max(beats)) if beats else None,
            "workers": workers,
            "detail": None,
        }

    async def refresh_all(self, concurrency: int = 10) -> int:
        """Refresh every service, at most ``concurrency`` at a time; returns how many."""
        ids = await self.runtime.registry.ids()
        limiter = anyio.CapacityLimiter(concurrency)

        async def one(service_id: str) -> None:
            async with limiter:
                try:
                    await self.refresh(service_id)
                except ServiceNotFound:
                    pass

        async with anyio.create_task_group() as tg:
            for service_id in ids:
                tg.start_soon(one, service_id)
        return len(ids)
