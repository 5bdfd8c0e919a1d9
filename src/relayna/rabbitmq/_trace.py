"""W3C trace-context propagation when ``opentelemetry-api`` is installed.

Without it (or without an installed SDK) both functions are no-ops. Only
``traceparent``/``tracestate`` (and whatever the global propagator adds) are
written; a malformed incoming context is ignored by the propagator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["extract_trace_context", "inject_trace_headers"]

try:  # optional dependency
    from opentelemetry import propagate as _propagate  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    _propagate = None  # type: ignore[assignment]


def inject_trace_headers(headers: dict[str, Any]) -> None:
    """Add the active span's context to ``headers`` (string values only)."""
    if _propagate is None:
        return
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    for key, value in carrier.items():
        headers.setdefault(key, value)


def extract_trace_context(headers: Mapping[str, Any] | None) -> Any:
    """The OpenTelemetry context carried by ``headers``, or None."""
    if _propagate is None or not headers:
        return None
    carrier = {k: v for k, v in headers.items() if isinstance(v, str)}
    return _propagate.extract(carrier)
