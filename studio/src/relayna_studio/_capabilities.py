"""Capability documents: fetch (through the egress client), check, legacy fallback.

``GET {base_url}/relayna/capabilities``: 200 with a valid document is used as
is; 404, 405 and 501 mean a service older than capability documents and
give the **legacy fallback document**; anything else (another status, a
redirect, non-JSON, a document of the wrong shape, a timeout, a transport
error, an egress refusal) is an :class:`UpstreamError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relayna.errors import ContractError
from relayna_studio._egress_http import EgressClient
from relayna_studio._errors import UpstreamError

__all__ = [
    "CAPABILITY_PATH",
    "LEGACY_CAPABILITY_DOCUMENT",
    "fetch_capabilities",
    "is_capabilities_v1",
    "supports_route",
]

CAPABILITY_PATH = "/relayna/capabilities"

LEGACY_CAPABILITY_DOCUMENT: dict[str, Any] = {
    "relayna_version": "unknown",
    "topology_kind": "unknown",
    "alias_config_summary": {"aliasing_enabled": False, "payload_aliases": {}, "http_aliases": {}},
    "supported_routes": [],
    "feature_flags": [],
    "service_metadata": {
        "service_title": None,
        "capability_path": CAPABILITY_PATH,
        "discovery_source": "fallback",
        "compatibility": "legacy_no_capabilities_endpoint",
    },
}


def is_capabilities_v1(document: object) -> bool:
    """A live document (not the legacy fallback) that lists its routes."""
    if not isinstance(document, Mapping):
        return False
    meta = document.get("service_metadata")
    compatibility = meta.get("compatibility") if isinstance(meta, Mapping) else None
    return compatibility != "legacy_no_capabilities_endpoint" and isinstance(
        document.get("supported_routes"), list
    )


def supports_route(document: object, route_id: str) -> bool | None:
    """True/False from a v1 document; ``None`` when unknown (legacy or no document)."""
    if not is_capabilities_v1(document):
        return None
    assert isinstance(document, Mapping)
    return route_id in document["supported_routes"]


def _check(document: object) -> dict[str, Any]:
    """The document as stored; ``feature_flags`` is always a list of names.

    relayna's own route serves ``feature_flags`` as ``{name: bool}``; the
    original (and Studio's readers) use the list of enabled names, so an
    object of booleans is read as the names that are ``true``.
    """
    if not isinstance(document, dict):
        raise ValueError("the capability document is not a JSON object")
    flags = document.get("feature_flags")
    if isinstance(flags, dict) and all(isinstance(v, bool) for v in flags.values()):
        document = {**document, "feature_flags": sorted(k for k, on in flags.items() if on)}
    for key in ("supported_routes", "feature_flags"):
        value = document.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a list of strings (feature_flags: or name -> bool)")
    for key in ("alias_config_summary", "service_metadata"):
        if key in document and not isinstance(document[key], dict | None):
            raise ValueError(f"{key} must be an object")
    return document


async def fetch_capabilities(
    egress: EgressClient, service_id: str, base_url: str
) -> dict[str, Any]:
    """The service's capability document, or the legacy fallback.

    Raises:
        UpstreamError: 502 ``capability_refresh_failed`` (or the egress
            client's own codes: timeout 504, transport, policy, too large).
    """
    response = await egress.request("GET", base_url + CAPABILITY_PATH, service_id=service_id)
    if response.status_code in (404, 405, 501):
        return dict(LEGACY_CAPABILITY_DOCUMENT)
    if response.status_code != 200:
        raise UpstreamError(
            f"capability document answered {response.status_code}",
            status=502,
            code="capability_refresh_failed",
            service_id=service_id,
            upstream_status=response.status_code,
        )
    try:
        return _check(response.json())
    except (ContractError, ValueError) as exc:
        raise UpstreamError(
            f"invalid capability document: {exc}",
            status=502,
            code="capability_refresh_failed",
            service_id=service_id,
            upstream_status=200,
        ) from None
