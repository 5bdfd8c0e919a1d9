"""W3C trace-context parsing (pure; no OpenTelemetry needed): bad input #13/#14."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.observability import TraceContext, extract_trace, parse_traceparent, parse_tracestate

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_valid_traceparent() -> None:
    trace = parse_traceparent(VALID)
    assert trace == TraceContext(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", parent_id="00f067aa0ba902b7", flags=1
    )
    assert trace.sampled
    assert trace.traceparent == VALID
    assert parse_traceparent(VALID.encode()) == trace  # AMQP long strings arrive as bytes


@pytest.mark.parametrize(
    "value",
    [
        "00-zz" + VALID[5:],  # not hex
        VALID.upper(),  # hex must be lowercase
        "ff" + VALID[2:],  # version ff is invalid
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero parent id
        VALID[:-1],  # too short
        VALID + "-extra",  # version 00 has exactly four fields
        VALID.replace("-", "_"),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "",
        None,
        12345,
        b"\xff\xfe",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
    ],
)
def test_malformed_traceparent_is_ignored(value: object) -> None:
    assert parse_traceparent(value) is None


def test_future_version_may_append_fields() -> None:
    trace = parse_traceparent("cc" + VALID[2:] + "-what-ever")
    assert trace is not None
    assert trace.version == "cc"
    assert parse_traceparent("cc" + VALID[2:] + "what") is None


def test_tracestate_limits() -> None:
    assert parse_tracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE") == (
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )
    assert parse_tracestate("tenant@vendor=v1") == "tenant@vendor=v1"
    assert parse_tracestate("a=1,,b=2") == "a=1,b=2"
    members = ",".join(f"k{i}=v" for i in range(32))
    assert parse_tracestate(members) == members
    assert parse_tracestate(members + ",k32=v") is None  # > 32 members
    assert parse_tracestate("a=" + "x" * 600) is None  # > 512 chars
    assert parse_tracestate("a=1,a=2") is None  # duplicate key
    assert parse_tracestate("A=1") is None  # keys are lowercase
    assert parse_tracestate("a=x,y") is None  # member without '='
    assert parse_tracestate("a=in side ") == "a=in side"  # OWS around members is trimmed
    assert parse_tracestate("a=x\x01y") is None  # control character in value
    assert parse_tracestate("a=x=y") is None  # '=' in value
    assert parse_tracestate("") is None
    assert parse_tracestate(None) is None


def test_extract_trace_from_headers() -> None:
    assert extract_trace(None) is None
    assert extract_trace({"task_id": "t"}) is None
    trace = extract_trace({"traceparent": VALID, "tracestate": "a=1"})
    assert trace is not None
    assert trace.tracestate == "a=1"
    dropped = extract_trace({"traceparent": VALID, "tracestate": "a=1,a=2"})
    assert dropped is not None
    assert dropped.tracestate is None  # bad tracestate dropped, traceparent kept
    assert extract_trace({"traceparent": "00-zz", "tracestate": "a=1"}) is None


@given(st.one_of(st.text(max_size=80), st.binary(max_size=80)))
def test_parsers_never_raise(value: str | bytes) -> None:
    parse_traceparent(value)
    parse_tracestate(value)
