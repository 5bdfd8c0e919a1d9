from __future__ import annotations

import pytest

from relayna.errors import TopologyError
from relayna.topology import (
    merge_queue_arguments,
    queue_builtin_arguments,
    status_builtin_arguments,
)


def test_merge_keeps_every_key_from_distinct_sources() -> None:
    merged = merge_queue_arguments(
        "task",
        ("built-in fields", {"x-message-ttl": 5}),
        ("overrides", {"x-a": 1}),
        ("kwargs", None),
    )
    assert merged == {"x-message-ttl": 5, "x-a": 1}


def test_merge_conflict_names_key_and_both_sources() -> None:
    with pytest.raises(TopologyError) as info:
        merge_queue_arguments(
            "task",
            ("built-in fields", {"x-message-ttl": 5}),
            ("task_queue_arguments_overrides", {"x-message-ttl": 6}),
        )
    message = str(info.value)
    assert "'x-message-ttl'" in message
    assert "built-in fields" in message
    assert "task_queue_arguments_overrides" in message


def test_merge_reports_every_conflict() -> None:
    with pytest.raises(TopologyError) as info:
        merge_queue_arguments("q", ("a", {"k1": 1, "k2": 2}), ("b", {"k1": 1}), ("c", {"k2": 3}))
    assert len(info.value.problems) == 2


def test_merge_same_value_twice_is_still_a_conflict() -> None:
    with pytest.raises(TopologyError):
        merge_queue_arguments("q", ("a", {"k": 1}), ("b", {"k": 1}))


@pytest.mark.parametrize("value", [0, 256, -1, "5", True])
def test_max_priority_from_overrides_is_validated(value: object) -> None:
    with pytest.raises(TopologyError, match="max priority"):
        merge_queue_arguments("task", ("overrides", {"x-max-priority": value}))


def test_builtin_arguments_map_typed_fields() -> None:
    args = queue_builtin_arguments(
        "task",
        message_ttl_ms=1000,
        dead_letter_exchange="dlx",
        consumer_timeout_ms=60_000,
        single_active_consumer=False,
        max_priority=10,
        queue_type="quorum",
    )
    assert args == {
        "x-message-ttl": 1000,
        "x-dead-letter-exchange": "dlx",
        "x-consumer-timeout": 60_000,
        "x-single-active-consumer": False,
        "x-max-priority": 10,
        "x-queue-type": "quorum",
    }


def test_builtin_arguments_empty_by_default() -> None:
    assert queue_builtin_arguments("task") == {}


def test_builtin_arguments_list_every_problem() -> None:
    with pytest.raises(TopologyError) as info:
        queue_builtin_arguments("task", message_ttl_ms=0, max_priority=300, queue_type="lazy")
    assert len(info.value.problems) == 3


def test_status_stream_arguments() -> None:
    args = status_builtin_arguments(
        use_streams=True,
        stream_max_length_gb=2,
        stream_max_segment_size_mb=100,
        stream_max_age="7D",
    )
    assert args == {
        "x-queue-type": "stream",
        "x-max-length-bytes": 2 * 1024**3,
        "x-stream-max-segment-size-bytes": 100 * 1024**2,
        "x-max-age": "7D",
    }


def test_status_classic_arguments() -> None:
    assert status_builtin_arguments(use_streams=False, queue_ttl_ms=5000) == {"x-expires": 5000}
    assert status_builtin_arguments(use_streams=False) == {}


@pytest.mark.parametrize("age", ["7", "D", "0D", "7w", "x7D"])
def test_status_max_age_is_checked(age: str) -> None:
    with pytest.raises(TopologyError, match="max age"):
        status_builtin_arguments(use_streams=True, stream_max_age=age)


def test_stream_retention_without_streams_is_an_error() -> None:
    with pytest.raises(TopologyError, match="status_use_streams"):
        status_builtin_arguments(use_streams=False, stream_max_length_gb=1)
