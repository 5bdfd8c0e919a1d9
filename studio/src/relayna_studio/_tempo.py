"""Tempo traces (pure): trace ids, the query URL, OTLP JSON normalisation, discovery.

Tempo's ``GET /api/traces/<id>`` answers OTLP JSON in one of three shapes
(ANCHOR §3.7): ``{"batches": [...]}`` (Tempo 1.x/2.x), ``{"resourceSpans":
[...]}`` (OTLP/JSON) and ``{"resource_spans": [...]}`` (snake case); inside
each, spans sit under ``scopeSpans``, ``instrumentationLibrarySpans`` or
``scope_spans``. Ids are hex (OTLP/JSON) or base64 (protobuf's JSON mapping,
which Tempo uses); times are nanosecond strings or numbers. Every shape
becomes the same ``StudioTraceSpan``::

    {trace_id, span_id, parent_span_id, name, kind, service_name,
     start_time, end_time, duration_ms, status, status_message,
     attributes, resource_attributes, events}

Discovery: trace ids are 32 lower-case hex characters found under a
``trace_id``/``traceId`` key, or inside a ``traceparent`` value, anywhere
in a task's detail document (also inside JSON text values) and in its
log entries.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from relayna.errors import ContractError
from relayna_studio._querylang import format_ns

__all__ = [
    "MAX_TRACE_IDS",
    "discover_trace_ids",
    "normalize_trace",
    "trace_url",
    "validate_trace_id",
]

#: Traces fetched for one task page (more found → a warning).
MAX_TRACE_IDS = 10
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_NULL_TRACE = "0" * 32
_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}
_MAX_DEPTH = 32
_MAX_JSON_TEXT = 65536


def validate_trace_id(value: str) -> str:
    """Raises ContractError unless ``value`` is 32 lower-case hex characters, not all zero."""
    if _HEX32.fullmatch(value) is None or value == _NULL_TRACE:
        raise ContractError(
            "invalid trace id", errors=[("trace_id", "32 lower-case hex characters, not all zero")]
        )
    return value


def trace_url(config: Mapping[str, Any], trace_id: str) -> str:
    path = str(config.get("query_path") or "/api/traces/{trace_id}")
    return str(config["base_url"]) + path.replace("{trace_id}", validate_trace_id(trace_id))


def public_url(config: Mapping[str, Any]) -> str | None:
    """The browser's Tempo URL: ``public_base_url``, else the base URL with
    ``host.docker.internal`` replaced by ``localhost``."""
    if config.get("public_base_url"):
        return str(config["public_base_url"])
    base = config.get("base_url")
    return str(base).replace("host.docker.internal", "localhost") if base else None


def _id(value: object, size: int) -> str | None:
    """A hex id of ``size`` bytes from hex or base64 text; ``None`` when neither."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == size * 2 and _HEX.fullmatch(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None


def _ns(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    return None


def _any_value(value: object, depth: int = 0) -> Any:
    if not isinstance(value, dict) or depth > _MAX_DEPTH:
        return None
    for key in ("stringValue", "string_value", "boolValue", "bool_value", "doubleValue",
                "double_value"):  # fmt: skip
        if key in value:
            return value[key]
    for key in ("intValue", "int_value"):
        if key in value:
            try:
                return int(value[key])
            except (TypeError, ValueError):
                return value[key]
    for key in ("arrayValue", "array_value"):
        if key in value:
            items = value[key].get("values") if isinstance(value[key], dict) else None
            return [_any_value(v, depth + 1) for v in items or []]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            items = value[key].get("values") if isinstance(value[key], dict) else None
            return _attributes(items, depth + 1)
    for key in ("bytesValue", "bytes_value"):
        if key in value:
            return value[key]
    return None


def _attributes(items: object, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _any_value(item.get("value"), depth)
    return out


def _enum(value: object, names: dict[int, str], prefix: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, "unspecified")
    if isinstance(value, str):
        return value.removeprefix(prefix).lower() or "unspecified"
    return "unspecified"


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in mapping:
            return mapping[key]
    return None


def normalize_trace(body: object) -> tuple[list[dict[str, Any]], list[str]]:
    """(spans sorted by start time, warnings) from any of the three shapes.

    A span without valid ids is left out with a warning; a body in none of
    the shapes raises.

    Raises:
        ContractError: not a trace document.
    """
    if not isinstance(body, dict):
        raise ContractError("not a trace document", errors=[("tempo", "expected a JSON object")])
    resources = _first(body, "batches", "resourceSpans", "resource_spans")
    if not isinstance(resources, list):
        raise ContractError(
            "not a trace document", errors=[("tempo", "no batches/resourceSpans/resource_spans")]
        )
    spans: list[dict[str, Any]] = []
    skipped = 0
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        res = resource.get("resource")
        res_attrs = _attributes(res.get("attributes")) if isinstance(res, dict) else {}
        scopes = _first(resource, "scopeSpans", "instrumentationLibrarySpans", "scope_spans")
        for scope in scopes if isinstance(scopes, list) else []:
            raw_spans = scope.get("spans") if isinstance(scope, dict) else None
            for raw in raw_spans if isinstance(raw_spans, list) else []:
                span = _span(raw, res_attrs)
                if span is None:
                    skipped += 1
                else:
                    spans.append(span)
    spans.sort(key=lambda s: (s["start_time"] or "", s["span_id"]))
    warnings = [f"{skipped} span(s) without valid trace/span ids were left out"] if skipped else []
    return spans, warnings


def _span(raw: object, res_attrs: dict[str, Any]) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    trace_id = _id(_first(raw, "traceId", "trace_id"), 16)
    span_id = _id(_first(raw, "spanId", "span_id"), 8)
    if trace_id is None or span_id is None:
        return None
    start = _ns(_first(raw, "startTimeUnixNano", "start_time_unix_nano"))
    end = _ns(_first(raw, "endTimeUnixNano", "end_time_unix_nano"))
    raw_status = raw.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    events = []
    for event in raw.get("events") or [] if isinstance(raw.get("events"), list) else []:
        if isinstance(event, dict):
            at = _ns(_first(event, "timeUnixNano", "time_unix_nano"))
            events.append(
                {
                    "name": str(event.get("name") or ""),
                    "time": format_ns(at) if at is not None else None,
                    "attributes": _attributes(event.get("attributes")),
                }
            )
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": _id(_first(raw, "parentSpanId", "parent_span_id"), 8),
        "name": str(raw.get("name") or ""),
        "kind": _enum(raw.get("kind"), _KINDS, "SPAN_KIND_"),
        "service_name": res_attrs.get("service.name"),
        "start_time": format_ns(start) if start is not None else None,
        "end_time": format_ns(end) if end is not None else None,
        "duration_ms": (end - start) / 1e6 if start is not None and end is not None else None,
        "status": _enum(status.get("code"), _STATUS, "STATUS_CODE_"),
        "status_message": status.get("message") or None,
        "attributes": _attributes(raw.get("attributes")),
        "resource_attributes": res_attrs,
        "events": events,
    }


def _trace_in(key: str, value: object) -> str | None:
    if not isinstance(value, str):
        return None
    lowered = key.lower()
    if lowered in ("trace_id", "traceid", "trace-id", "relayna.trace_id"):
        candidate = value.strip().lower()
        if _HEX32.fullmatch(candidate) and candidate != _NULL_TRACE:
            return candidate
        return _id(value, 16) if len(value) == 24 else None
    if lowered == "traceparent":
        match = _TRACEPARENT.fullmatch(value.strip().lower())
        if match and match.group(1) != _NULL_TRACE:
            return match.group(1)
    return None


def discover_trace_ids(*documents: object) -> list[str]:
    """Every trace id in ``documents`` (dicts, lists, JSON text), first seen first."""
    found: list[str] = []

    def visit(value: object, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                hit = _trace_in(str(key), item)
                if hit is not None and hit not in found:
                    found.append(hit)
                visit(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                visit(item, depth + 1)
        elif isinstance(value, str) and value[:1] in "{[" and len(value) <= _MAX_JSON_TEXT:
            try:
                visit(orjson.loads(value), depth + 1)
            except orjson.JSONDecodeError:
                pass

    for document in documents:
        visit(document, 0)
    return found


def spans_of_task(spans: Iterable[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    """The spans whose ``relayna.task_id`` attribute is the task."""
    return [s for s in spans if s["attributes"].get("relayna.task_id") == task_id]
