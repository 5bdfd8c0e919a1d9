"""The Gateway import catalog (seed 004 "Gateway Import Catalog"), a pure function.

Each exported ``name`` is the service id lower-cased, with runs of
characters outside ``a-z0-9`` replaced by ``-`` and edge dashes trimmed.
When several ids normalise to the same name, an id that already *is* that
name keeps it and every other gets ``-{first 8 hex of sha256(id)}``; an id
that normalises to nothing becomes ``service-{fingerprint}``. The result is
the same whatever order the registry lists the services in.

Never exported: log, metrics and trace configuration, health internals,
``last_seen_at``, credentials.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["build_gateway_catalog", "gateway_name"]

_RUNS = re.compile(r"[^a-z0-9]+")


def _fingerprint(service_id: str) -> str:
    return hashlib.sha256(service_id.encode()).hexdigest()[:8]


def gateway_name(service_id: str) -> str:
    """The normalised name, before collision handling."""
    return _RUNS.sub("-", service_id.lower()).strip("-")


def _names(ids: Sequence[str]) -> dict[str, str]:
    groups: dict[str, list[str]] = {}
    for service_id in ids:
        groups.setdefault(gateway_name(service_id), []).append(service_id)
    out: dict[str, str] = {}
    for base, members in groups.items():
        for service_id in members:
            if not base:
                out[service_id] = f"service-{_fingerprint(service_id)}"
            elif len(members) == 1 or service_id == base:
                out[service_id] = base
            else:
                out[service_id] = f"{base}-{_fingerprint(service_id)}"
    return out


def _capabilities(document: object) -> dict[str, Any]:
    if not isinstance(document, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key in ("supported_routes", "feature_flags"):
        value = document.get(key)
        if isinstance(value, list):
            out[key] = [v for v in value if isinstance(v, str)]
    return out


def build_gateway_catalog(
    records: Sequence[Mapping[str, Any]], overall_status: Mapping[str, str | None]
) -> dict[str, Any]:
    """``{count, services[GatewayServiceExport]}`` in the order of ``records``."""
    names = _names([str(r["service_id"]) for r in records])
    services = []
    for record in records:
        service_id = str(record["service_id"])
        name = names[service_id]
        services.append(
            {
                "studio_service_id": service_id,
                "name": name,
                "display_name": record["name"],
                "base_url": record["base_url"],
                "environment": record["environment"],
                "tags": list(record.get("tags") or []),
                "auth_mode": record["auth_mode"],
                "status": overall_status.get(service_id) or record["status"],
                "capabilities": _capabilities(record.get("capabilities")),
                "default_route_pattern": f"/services/{name}/*",
            }
        )
    return {"count": len(services), "services": services}
