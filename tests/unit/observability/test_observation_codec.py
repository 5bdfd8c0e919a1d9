"""Encoding an observation once: the token, the stored entry and the feed item
are the same as when each was encoded on its own (the previous code path), so
dedupe markers and feed event ids written before stay valid."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from relayna.observability import (
    ConsumerRetryScheduled,
    Observation,
    TaskHandlerFailed,
    TaskMessageReceived,
    encode_observation,
    observation_feed_item,
    observation_record,
    observation_token,
)
from relayna.observability._observation_codec import encode_observation_feed_item

ids = st.from_regex(r"[A-Za-z0-9_:@/+=\-]{1,40}", fullmatch=True)
text = st.text(max_size=40)
maybe = st.one_of(st.none(), text)
when = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def _common() -> dict[str, Any]:
    return {
        "consumer_name": text,
        "queue_name": text,
        "task_id": st.one_of(ids, st.none(), text),
        "correlation_id": maybe,
        "retry_attempt": st.integers(0, 10**6),
        "task_type": maybe,
        "trace_id": maybe,
        "span_id": maybe,
        "timestamp": when,
    }


observations = st.one_of(
    st.builds(TaskMessageReceived, redelivered=st.booleans(), **_common()),
    st.builds(TaskHandlerFailed, exception_type=text, exception_message=text, **_common()),
    st.builds(
        ConsumerRetryScheduled,
        next_attempt=st.integers(0, 99),
        max_retries=st.integers(0, 99),
        retry_queue_name=text,
        delay_ms=st.integers(0, 10**9),
        **_common(),
    ),
)


def _old_token(event: Observation) -> str:
    """The token as the store and the feed each computed it before."""
    record = observation_record(event)
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _old_feed_item(event: Observation) -> dict[str, Any]:
    record = observation_record(event)
    return {
        "task_id": record["task_id"],
        "event_type": record.get("event_type"),
        "source_kind": "observation",
        "component": record.get("component"),
        "timestamp": record.get("timestamp"),
        "event_id": _old_token(event),
        "correlation_id": record.get("correlation_id"),
        "parent_task_id": record.get("parent_task_id"),
        "payload": record,
    }


@given(observations)
def test_one_encoding_gives_the_old_token_entry_and_feed_item(event: Observation) -> None:
    encoded = encode_observation(event)
    if encoded is None:  # no valid task id: neither stored nor fed, as before
        assert observation_feed_item(event) is None
        return
    token = _old_token(event)
    assert encoded.token == token == observation_token(observation_record(event))
    assert encoded.payload == orjson.dumps(observation_record(event), option=orjson.OPT_SORT_KEYS)
    key, item = encode_observation_feed_item(encoded)
    assert key == f"observation:{token}"
    assert orjson.loads(item) == _old_feed_item(event)
    assert observation_feed_item(event) == (key, _old_feed_item(event))
