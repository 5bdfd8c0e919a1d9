"""Calls to Loki, Prometheus and Tempo: the egress client, a per-call deadline, typed errors.

Every call goes through Studio's shared egress client (the policy is
checked again at connect time, redirects are answers, bodies are bounded)
with ``RELAYNA_STUDIO_TELEMETRY_TIMEOUT_SECONDS`` as its whole deadline, so
a slow provider costs one panel that deadline and never hangs a page.

Failures are :class:`~relayna_studio._errors.UpstreamError` (a
FederatedError on the wire): ``upstream_timeout`` (504),
``upstream_transport_error``, ``upstream_policy_violation``,
``upstream_response_too_large``, ``provider_error`` (the provider answered
non-2xx; its message — Prometheus' ``errorType: error`` — with control
characters removed and at most 1,000 characters), ``invalid_json`` and
``invalid_response_shape`` (502). The full query of a failed call is logged
once as a warning; it is never part of an answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from relayna.errors import ContractError
from relayna_studio._errors import UpstreamError
from relayna_studio._runtime import StudioRuntime

__all__ = ["PROVIDERS", "provider_get", "raise_first", "sanitize", "shape_error"]

log = logging.getLogger("relayna_studio.telemetry")

PROVIDERS = ("loki", "prometheus", "tempo")
_DETAIL_MAX = 1000


def sanitize(text: str) -> str:
    """Control characters removed, at most 1,000 characters."""
    cleaned = "".join(ch for ch in text if ch.isprintable() or ch == " ")
    return cleaned[:_DETAIL_MAX]


def _provider_detail(provider: str, content: bytes) -> str:
    from relayna.contracts import loads

    try:
        body = loads(content)
    except ContractError:
        return sanitize(content[: _DETAIL_MAX * 4].decode(errors="replace").strip())
    if isinstance(body, dict):
        kind = body.get("errorType")
        message = body.get("error") or body.get("message") or body.get("detail")
        if isinstance(message, str):
            return sanitize(f"{kind}: {message}" if isinstance(kind, str) else message)
    return ""


async def provider_get(
    runtime: StudioRuntime,
    provider: str,
    service_id: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    tenant_id: str | None = None,
    allow_404: bool = False,
) -> Any:
    """GET ``url`` and decode the JSON answer (``None`` for a 404 when ``allow_404``).

    Raises:
        UpstreamError: every failure, see the module docs.
    """
    headers = {"accept": "application/json"}
    if tenant_id:
        headers["x-scope-orgid"] = tenant_id
    started = time.perf_counter()
    outcome = "error"
    try:
        response = await runtime.egress.request(
            "GET",
            url,
            params=params,
            headers=headers,
            service_id=service_id,
            deadline=runtime.settings.telemetry_timeout_seconds,
        )
        status = response.status_code
        if status == 404 and allow_404:
            outcome = "ok"
            return None
        if not 200 <= status < 300:
            detail = _provider_detail(provider, response.content)
            log.warning(
                "%s answered %s for service %s: %s (params %s)",
                provider, status, service_id, detail, dict(params or {}),
            )  # fmt: skip
            raise UpstreamError(
                f"{provider} answered {status}" + (f": {detail}" if detail else ""),
                status=502,
                code="provider_error",
                service_id=service_id,
                upstream_status=status,
                retryable=status >= 500 or status == 429,
            )
        try:
            body = response.json()
        except ContractError:
            raise UpstreamError(
                f"{provider} answered with invalid JSON",
                status=502,
                code="invalid_json",
                service_id=service_id,
                upstream_status=status,
            ) from None
        outcome = "ok"
        return body
    except UpstreamError as exc:
        outcome = exc.code
        raise
    finally:
        metrics = runtime.metrics
        metrics.provider_requests.labels(provider, outcome).inc()
        metrics.provider_latency.labels(provider, outcome).observe(time.perf_counter() - started)


def shape_error(provider: str, service_id: str, exc: ContractError) -> UpstreamError:
    """A provider's 2xx answer that is not what its API documents."""
    where = "; ".join(message for _, message in exc.errors) or str(exc)
    return UpstreamError(
        f"{provider} answered with an unexpected shape: {sanitize(where)}",
        status=502,
        code="invalid_response_shape",
        service_id=service_id,
    )


def raise_first(errors: list[dict[str, Any]], service_id: str) -> None:
    """Every section failed: answer with the first section's error (504 for a timeout)."""
    first = errors[0]
    raise UpstreamError(
        str(first["detail"]),
        status=504 if first["code"] == "upstream_timeout" else 502,
        code=str(first["code"]),
        service_id=service_id,
        upstream_status=first["upstream_status"],
        retryable=bool(first["retryable"]),
    )
