"""Calls to registered services with the original's error model (ANCHOR §3.6).

:meth:`Federation.call` is the one way Studio reads a service's API:

* the service must exist (404 ``service_not_found``), not be disabled (503
  ``service_disabled``) and use ``auth_mode: internal_network`` (501
  ``unsupported_auth_mode``); Studio sends no credentials to services;
* a ``capabilities_v1`` document that does not list the route id answers
  501 ``unsupported_route`` without calling the service;
* query parameters are renamed with the service's advertised HTTP aliases;
* upstream answers map to ``FederatedError`` codes: 401/403 →
  ``upstream_auth_failure`` (502), 404 → ``upstream_not_found`` (or
  ``unsupported_route`` for a legacy service's bare 404), 405/501 →
  ``unsupported_route`` (501), 5xx → ``upstream_response_error`` (502,
  retryable), 3xx → ``upstream_redirect`` (502, never followed), other 4xx
  → ``upstream_client_error`` (502, with the upstream detail), non-JSON →
  ``invalid_json``, a non-object → ``invalid_response_shape``; 204 →
  ``{service_id}``. Timeouts, transport errors, egress refusals and
  oversized bodies come from the egress client.
* a route that keeps the service's own codes (``keep=(409, 422)`` for a DLQ
  replay) answers those statuses as they came: the upstream ``detail``, and
  the upstream ``error`` as the ``code`` (``already_replayed``, ``in_progress``
  ...; ``upstream_conflict`` / ``upstream_rejected`` when it has none).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from relayna.errors import ContractError
from relayna_studio._capabilities import is_capabilities_v1
from relayna_studio._egress_http import EgressResponse
from relayna_studio._errors import ServiceNotFound, UpstreamError
from relayna_studio._runtime import StudioRuntime

__all__ = ["ROUTE_IDS", "Federation", "task_path"]

#: Studio's route keys → the capability ids a service may advertise for them
#: (the original's spelling first; relayna's own where it differs).
ROUTE_IDS: dict[str, tuple[str, ...]] = {
    "status.latest": ("status.latest",),
    "status.events": ("status.events",),
    "status.history": ("status.history", "history.list"),
    "execution.graph": ("execution.graph", "executions.graph"),
    "events.feed": ("events.feed",),
    "health.workers": ("health.workers",),
    "runtime.backpressure": ("runtime.backpressure",),
    "workflow.topology": ("workflow.topology",),
    "workflow.runs": ("workflow.runs",),
    "workflow.replay": ("workflow.replay",),
    "workflow.cancel": ("workflow.cancel",),
    "dlq.messages": ("dlq.messages",),
    "dlq.replay": ("dlq.replay",),
    "tasks.submit": ("tasks.submit",),
    "tasks.cancel": ("tasks.cancel",),
    "broker.dlq.messages": ("broker.dlq.messages",),
    "failed_tasks.list": ("failed_tasks.list",),
    "failed_tasks.detail": ("failed_tasks.detail",),
    "failed_tasks.investigate": ("failed_tasks.investigate",),
    "failed_tasks.uninvestigate": ("failed_tasks.uninvestigate",),
    "failed_tasks.retry": ("failed_tasks.retry",),
    "failed_tasks.delete": ("failed_tasks.delete",),
}


def task_path(template: str, task_id: str) -> str:
    return template.format(task_id=quote(task_id, safe=""))


def advertised(document: object, route: str) -> bool | None:
    """True/False from a v1 document, ``None`` when unknown (legacy or none)."""
    if not is_capabilities_v1(document):
        return None
    assert isinstance(document, Mapping)
    listed = set(document["supported_routes"])
    return any(route_id in listed for route_id in ROUTE_IDS.get(route, (route,)))


def _aliases(document: object, kind: str) -> dict[str, str]:
    if not isinstance(document, Mapping):
        return {}
    summary = document.get("alias_config_summary")
    aliases = summary.get(kind) if isinstance(summary, Mapping) else None
    if not isinstance(aliases, Mapping):
        return {}
    return {str(k): str(v) for k, v in aliases.items() if isinstance(v, str) and v}


def http_aliases(document: object) -> dict[str, str]:
    """Canonical query/path name → the name the service's HTTP routes use."""
    return _aliases(document, "http_aliases")


def payload_aliases(document: object) -> dict[str, str]:
    """Canonical JSON field → the name the service's payloads use."""
    return _aliases(document, "payload_aliases")


def _detail(response: EgressResponse) -> str:
    try:
        body = response.json()
    except ContractError:
        return response.content[:200].decode(errors="replace")
    if isinstance(body, Mapping) and isinstance(body.get("detail"), str):
        return str(body["detail"])[:500]
    return ""


def _error_code(response: EgressResponse) -> str | None:
    """The upstream's machine-readable ``error`` (relayna's 409 body), when it is a short word."""
    try:
        body = response.json()
    except ContractError:
        return None
    code = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(code, str) and 0 < len(code) <= 64 and code.replace("_", "").isalnum():
        return code
    return None


def check_enabled(record: Mapping[str, Any]) -> None:
    """Raises UpstreamError 503 ``service_disabled``."""
    if record["status"] == "disabled":
        raise UpstreamError(
            f"service {record['service_id']!r} is disabled",
            status=503,
            code="service_disabled",
            service_id=str(record["service_id"]),
        )


def check_callable(record: Mapping[str, Any]) -> None:
    """Raises UpstreamError 503 ``service_disabled`` / 501 ``unsupported_auth_mode``."""
    service_id = str(record["service_id"])
    check_enabled(record)
    if record["auth_mode"] != "internal_network":
        raise UpstreamError(
            f"auth_mode {record['auth_mode']!r} is not supported for federation",
            status=501,
            code="unsupported_auth_mode",
            service_id=service_id,
        )


class Federation:
    def __init__(self, runtime: StudioRuntime) -> None:
        self.runtime = runtime

    async def service(self, service_id: str) -> dict[str, Any]:
        """The record of a service Studio may call.

        Raises:
            UpstreamError: 404/503/501 as in the module docs.
        """
        record = await self.record(service_id)
        check_callable(record)
        return record

    async def fetch(
        self, service_id: str, route: str, method: str, path: str, **options: Any
    ) -> tuple[dict[str, Any], Any]:
        """``(record, body)``: :meth:`service` then :meth:`call` with that record
        (for handlers that read the record's aliases too)."""
        record = await self.service(service_id)
        return record, await self.call(service_id, route, method, path, record=record, **options)

    async def record(self, service_id: str) -> dict[str, Any]:
        """The registered record, whatever its status or auth mode.

        Raises:
            UpstreamError: 404 ``service_not_found``.
        """
        record = await self.runtime.registry.cached(
            service_id, self.runtime.settings.registry_cache_seconds
        )
        if record is None:
            raise federated_not_found(ServiceNotFound(service_id))
        return record

    async def call(
        self,
        service_id: str,
        route: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        record: Mapping[str, Any] | None = None,
        keep: tuple[int, ...] = (),
    ) -> Any:
        """Call ``path`` of the service; the decoded JSON object (see the module docs).

        Raises:
            UpstreamError: every failure, as a FederatedError.
        """
        if record is None:
            record = await self.service(service_id)
        else:
            check_callable(record)
        document = record.get("capabilities")
        if advertised(document, route) is False:
            raise UpstreamError(
                f"service {service_id!r} does not advertise {route}",
                status=501,
                code="unsupported_route",
                service_id=service_id,
            )
        aliases = http_aliases(document)
        query = None
        if params:
            query = {aliases.get(k, k): v for k, v in params.items() if v is not None}
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self.runtime.egress.request(
                method,
                str(record["base_url"]) + path,
                params=query,
                json=json,
                service_id=service_id,
            )
            body = self._map(
                service_id, response, legacy=advertised(document, route) is None, keep=keep
            )
            outcome = "ok"
            return body
        except UpstreamError as exc:
            outcome = exc.code
            raise
        finally:
            metrics = self.runtime.metrics
            metrics.federation_requests.labels(route, outcome).inc()
            metrics.federation_latency.labels(route, outcome).observe(time.perf_counter() - started)

    def _map(
        self, service_id: str, response: EgressResponse, *, legacy: bool, keep: tuple[int, ...]
    ) -> Any:
        status = response.status_code

        def fail(detail: str, http: int, code: str, retryable: bool = False) -> UpstreamError:
            return UpstreamError(
                detail,
                status=http,
                code=code,
                service_id=service_id,
                upstream_status=status,
                retryable=retryable,
            )

        if status == 204:
            return {"service_id": service_id}
        if status in keep:
            code = _error_code(response) or (
                "upstream_conflict" if status == 409 else "upstream_rejected"
            )
            raise fail(_detail(response) or f"the service answered {status}", status, code)
        if 300 <= status < 400:
            raise fail(
                "the service answered with a redirect (not followed)", 502, "upstream_redirect"
            )
        if status in (401, 403):
            raise fail("the service refused Studio's request", 502, "upstream_auth_failure")
        if status == 404:
            detail = _detail(response)
            if legacy and detail in ("", "Not Found"):
                raise fail("the service does not have this route", 501, "unsupported_route")
            raise fail(detail or "not found", 404, "upstream_not_found")
        if status in (405, 501):
            raise fail("the service does not support this route", 501, "unsupported_route")
        if status >= 500:
            raise fail(f"the service answered {status}", 502, "upstream_response_error", True)
        if status >= 400:
            raise fail(
                _detail(response) or f"the service answered {status}", 502, "upstream_client_error"
            )
        try:
            body = response.json()
        except ContractError:
            raise fail("the service answered with invalid JSON", 502, "invalid_json") from None
        if not isinstance(body, dict):
            raise fail(
                "the service answered with a JSON value that is not an object",
                502,
                "invalid_response_shape",
            )
        return body


def federated_not_found(exc: ServiceNotFound) -> UpstreamError:
    return UpstreamError(str(exc), status=404, code="service_not_found", service_id=exc.service_id)
