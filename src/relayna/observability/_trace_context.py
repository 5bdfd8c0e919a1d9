"""W3C trace context: pure parsing of incoming headers, OpenTelemetry propagation.

:func:`parse_traceparent` / :func:`parse_tracestate` / :func:`extract_trace`
are pure functions (no OpenTelemetry needed) implementing the W3C Trace
Context rules for *incoming* values: a malformed ``traceparent`` (bad hex,
wrong length, version ``ff``, all-zero trace or parent id) is ignored and
so is any ``tracestate`` that came with it; a ``tracestate`` longer than 512
characters, with more than 32 members, a malformed member or a duplicate key
is dropped (bad input #13/#14). The message is processed normally either way.

When ``opentelemetry-api`` is installed, :func:`inject_trace_headers` adds
the active context to outgoing headers and :func:`extract_trace_context`
turns *validated* incoming values into an OpenTelemetry context; without it
both are no-ops.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

__all__ = [
    "TraceContext",
    "extract_trace",
    "extract_trace_context",
    "inject_trace_headers",
    "otel_propagate",
    "otel_trace",
    "parse_traceparent",
    "parse_tracestate",
]

if TYPE_CHECKING:  # the type checker runs with the dev extra, which has it
    from opentelemetry import propagate as otel_propagate
    from opentelemetry import trace as otel_trace
else:
    try:  # optional dependency (the one place relayna imports it)
        from opentelemetry import propagate as otel_propagate
        from opentelemetry import trace as otel_trace
    except ImportError:  # pragma: no cover - depends on the environment
        otel_propagate = otel_trace = None

_HEX = frozenset("0123456789abcdef")
_MAX_TRACESTATE_CHARS = 512
_MAX_TRACESTATE_MEMBERS = 32
_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


@attrs.frozen
class TraceContext:
    """A validated incoming W3C trace context."""

    trace_id: str
    parent_id: str
    flags: int
    version: str = "00"
    tracestate: str | None = None

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def traceparent(self) -> str:
        return f"{self.version}-{self.trace_id}-{self.parent_id}-{self.flags:02x}"


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and _HEX.issuperset(text)


def parse_traceparent(value: Any) -> TraceContext | None:
    """Validate a ``traceparent`` header value; None when it is malformed."""
    text = _text(value)
    if text is None or len(text) < 55:
        return None
    version = text[:2]
    if not _is_hex(version, 2) or version == "ff":
        return None
    if version == "00" and len(text) != 55:
        return None
    if len(text) > 55 and text[55] != "-":  # future versions may append fields
        return None
    parts = text[:55].split("-")
    if len(parts) != 4:
        return None
    _, trace_id, parent_id, flags = parts
    if not (_is_hex(trace_id, 32) and _is_hex(parent_id, 16) and _is_hex(flags, 2)):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return TraceContext(trace_id=trace_id, parent_id=parent_id, flags=int(flags, 16),
                        version=version)  # fmt: skip


def parse_tracestate(value: Any) -> str | None:
    """Validate a ``tracestate`` value; the normalised list, or None to drop it."""
    text = _text(value)
    if text is None or len(text) > _MAX_TRACESTATE_CHARS:
        return None
    members: list[str] = []
    keys: set[str] = set()
    for raw in text.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, sep, val = member.partition("=")
        if not sep or not _KEY.fullmatch(key) or not _VALUE.fullmatch(val) or key in keys:
            return None
        keys.add(key)
        members.append(member)
    if not members or len(members) > _MAX_TRACESTATE_MEMBERS:
        return None
    return ",".join(members)


def extract_trace(headers: Mapping[str, Any] | None) -> TraceContext | None:
    """The validated ``traceparent`` (+ ``tracestate``) of a message, or None."""
    if not headers:
        return None
    raw = headers.get("traceparent")
    if raw is None:
        return None
    parent = parse_traceparent(raw)
    if parent is None:
        return None
    state = headers.get("tracestate")
    if state is None:
        return parent
    return attrs.evolve(parent, tracestate=parse_tracestate(state))


def inject_trace_headers(headers: dict[str, Any]) -> None:
    """Add the active span's context to ``headers`` (string values only)."""
    if otel_propagate is None:
        return
    carrier: dict[str, str] = {}
    otel_propagate.inject(carrier)
    for key, value in carrier.items():
        headers.setdefault(key, value)


def extract_trace_context(headers: Mapping[str, Any] | None) -> Any:
    """The OpenTelemetry context of the *validated* trace headers, or None.

    Only a well-formed ``traceparent`` (and ``tracestate`` within the W3C
    limits) reach the propagator; anything else yields None (a new root).
    """
    if otel_propagate is None:
        return None
    trace = extract_trace(headers)
    if trace is None:
        return None
    carrier = {"traceparent": trace.traceparent}
    if trace.tracestate is not None:
        carrier["tracestate"] = trace.tracestate
    return otel_propagate.extract(carrier)
