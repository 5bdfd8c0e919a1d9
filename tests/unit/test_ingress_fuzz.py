"""Fuzz the small parsers at relayna's ingresses: typed answers only.

Stream offsets (the broker contract), the ``/history`` query parser, the SSE
``Last-Event-ID`` cursor and the W3C trace headers each get arbitrary input;
each must answer with a value, ``None``/a 422 message, or its typed error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.api import HistoryParams
from relayna.contracts import TerminalStatusSet
from relayna.errors import ConfigurationError
from relayna.observability import extract_trace
from relayna.status import Emit, ResumeCursor, Resync, clean_last_event_id
from relayna.transport import MAX_STREAM_OFFSET, check_stream_offset

EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None)

tzs = st.none() | st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
datetimes = st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=tzs)
anything = st.one_of(
    st.integers(),
    st.sampled_from([-1, 0, MAX_STREAM_OFFSET, MAX_STREAM_OFFSET + 1, True, False]),
    st.text(max_size=12),
    st.sampled_from(["first", "last", "next", "FIRST"]),
    datetimes,
    st.floats(),
    st.none(),
    st.binary(max_size=8),
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@FUZZ
@given(offset=anything)
def test_stream_offsets_are_valid_or_a_configuration_error(offset: Any) -> None:
    try:
        checked = check_stream_offset(offset)
    except ConfigurationError:
        return
    if isinstance(checked, datetime):
        assert checked.tzinfo is UTC
        assert checked >= EPOCH
    elif isinstance(checked, int):
        assert type(checked) is int
        assert 0 <= checked <= MAX_STREAM_OFFSET
    else:
        assert checked in ("first", "last", "next")


query_keys = st.sampled_from(
    ["task_id", "documentId", "start_offset", "max_seconds", "max_scan", "limit",
     "stop_on_terminal", "other"]
)  # fmt: skip
query_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["first", "last", "next", "-1", "0", "9" * 19, "9" * 20, "1e400", "nan",
                     "inf", "-0", "0x10", "١٢", " 5", "true", "FALSE", "1"]),
    datetimes.map(datetime.isoformat),
    st.integers().map(str),
)  # fmt: skip


@FUZZ
@given(query=st.dictionaries(query_keys, query_values, max_size=6))
def test_history_query_parses_or_explains(query: dict[str, str]) -> None:
    parsed = HistoryParams.parse(query)
    if isinstance(parsed, str):
        assert parsed  # the 422 detail
        return
    assert check_stream_offset(parsed.start_offset) == parsed.start_offset  # broker-safe
    assert 0 < parsed.max_seconds <= 30
    assert 1 <= parsed.max_scan <= 100_000
    assert 1 <= parsed.limit <= 1000


events = st.lists(
    st.builds(
        lambda i, status: {"task_id": "t", "event_id": f"e{i}", "status": status},
        st.integers(0, 30),
        st.sampled_from(["running", "completed"]),
    ),
    max_size=8,
    unique_by=lambda e: e["event_id"],
)


@FUZZ
@given(
    raw=st.none() | st.text(max_size=300) | st.sampled_from(["e1", "e1\x00", "\n", "x" * 257]),
    history=events,
    live=events,
)
def test_sse_cursor_accepts_any_last_event_id(
    raw: str | None, history: list[dict[str, Any]], live: list[dict[str, Any]]
) -> None:
    usable, garbage = clean_last_event_id(raw)
    if usable is not None:
        assert len(usable) <= 256
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in usable)
    cursor = ResumeCursor(raw, TerminalStatusSet())
    actions = cursor.on_history(history)
    for event in live:
        actions += cursor.on_live(event)
    sent = [a.event_id for a in actions if isinstance(a, Emit)]
    assert len(sent) == len(set(sent))  # never the same event twice
    assert sum(isinstance(a, Resync) for a in actions) <= 1
    if garbage:  # announced, then the whole history
        assert isinstance(actions[0], Resync)


trace_values = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=60),
    st.integers(),
    st.none(),
    st.just("00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
)


@FUZZ
@given(headers=st.dictionaries(st.sampled_from(["traceparent", "tracestate"]), trace_values))
def test_trace_headers_are_parsed_or_ignored(headers: dict[str, Any]) -> None:
    trace = extract_trace(headers)
    if trace is not None:
        assert len(trace.trace_id) == 32
        assert len(trace.parent_id) == 16
