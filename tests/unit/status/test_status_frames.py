"""SSE frame encoding: single-line data, no forged frames, checked fields."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.status import KEEPALIVE, encode_comment, encode_frame, encode_retry

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def parse_sse(raw: bytes) -> list[dict[str, list[str]]]:
    """A minimal SSE parser following the WHATWG line rules (CR, LF, CRLF)."""
    events: list[dict[str, list[str]]] = []
    fields: dict[str, list[str]] = {}
    text = raw.decode().replace("\r\n", "\n").replace("\r", "\n")
    for line in text.split("\n"):
        if line == "":
            if fields:
                events.append(fields)
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))
    return events


def test_status_frame_layout() -> None:
    frame = encode_frame(id="e1", event="status", data={"status": "running"})
    assert frame == b'id: e1\nevent: status\ndata: {"status":"running"}\n\n'


def test_ready_with_retry() -> None:
    assert encode_frame(event="ready", data={}, retry_ms=2500) == (
        b"event: ready\nretry: 2500\ndata: {}\n\n"
    )
    assert encode_retry(10) == b"retry: 10\n\n"
    with pytest.raises(ValueError, match="retry"):
        encode_retry(-1)


def test_keepalive_and_comments() -> None:
    assert KEEPALIVE == b": keepalive\n\n"
    assert encode_comment("a\nb") == b": a\n: b\n\n"
    assert parse_sse(KEEPALIVE + encode_comment("x\r\ndata: forged")) == []


def test_text_with_newlines_cannot_forge_frames() -> None:
    evil = 'done\n\ndata: {"status":"completed"}\r\nid: 999\n\nevent: status\rdata: x'
    frame = encode_frame(id="e1", event="status", data={"message": evil})
    events = parse_sse(frame)
    assert len(events) == 1
    assert events[0]["id"] == ["e1"]
    assert orjson.loads(events[0]["data"][0]) == {"message": evil}
    assert frame.count(b"\n") == 4


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b"])
def test_fields_reject_line_breaks(bad: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_frame(id=bad, data={})
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_frame(event=bad, data={})


def test_preencoded_data_must_be_one_line() -> None:
    assert encode_frame(data=b'{"a":1}') == b'data: {"a":1}\n\n'
    with pytest.raises(ValueError, match="one line"):
        encode_frame(data=b'{"a":\n1}')


@given(value=json_values, event_id=st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True))
def test_any_json_round_trips_as_one_event(value: object, event_id: str) -> None:
    events = parse_sse(encode_frame(id=event_id, event="status", data=value))
    assert len(events) == 1
    assert events[0]["id"] == [event_id]
    assert len(events[0]["data"]) == 1
    assert orjson.loads(events[0]["data"][0]) == value
