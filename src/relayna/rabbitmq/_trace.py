"""W3C trace context helpers: they live in :mod:`relayna.observability` (the
layer that owns tracing); re-exported here for existing imports."""

from relayna.observability import (
    TraceContext,
    extract_trace,
    extract_trace_context,
    inject_trace_headers,
    parse_traceparent,
    parse_tracestate,
)

__all__ = [
    "TraceContext",
    "extract_trace",
    "extract_trace_context",
    "inject_trace_headers",
    "parse_traceparent",
    "parse_tracestate",
]
