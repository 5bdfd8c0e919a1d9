"""Deadlines on the wire: the header's text, and what publish accepts (issue 27)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.contracts import MAX_TIMEOUT_SECONDS, deadline_from, format_deadline, parse_deadline
from relayna.errors import ContractError

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC).timestamp()


@given(st.floats(0, 4e9, allow_nan=False))
def test_the_header_round_trips_to_the_millisecond(epoch: float) -> None:
    text = format_deadline(epoch)
    assert text.endswith("Z")
    assert len(text) == 24
    parsed = parse_deadline(text)
    assert parsed is not None
    assert abs(parsed - epoch) < 0.001


@given(st.floats(0, 4e9, allow_nan=False), st.floats(0, 4e9, allow_nan=False))
def test_header_text_order_is_time_order(a: float, b: float) -> None:
    # ctx.publish keeps the earlier of two deadlines by comparing the texts
    if math.floor(a * 1000) < math.floor(b * 1000):
        assert format_deadline(a) <= format_deadline(b)


def test_timeout_and_deadline_become_one_absolute_instant() -> None:
    assert deadline_from(timeout=30, now=NOW) == NOW + 30
    later = datetime.fromtimestamp(NOW + 60, tz=timezone(timedelta(hours=5)))
    assert deadline_from(deadline=later, now=NOW) == pytest.approx(NOW + 60)
    assert deadline_from(now=NOW) is None


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"deadline": datetime.fromtimestamp(NOW - 1, tz=UTC)}, "deadline_passed"),
        ({"deadline": datetime.fromtimestamp(NOW, tz=UTC)}, "deadline_passed"),
        ({"deadline": datetime(2026, 12, 7, 11, 0)}, "invalid_deadline"),  # naive
        ({"deadline": "2026-12-07T11:00:00Z"}, "invalid_deadline"),
        ({"deadline": datetime.fromtimestamp(NOW + 2 * MAX_TIMEOUT_SECONDS, tz=UTC)},
         "invalid_deadline"),
        ({"timeout": 0}, "invalid_deadline"),
        ({"timeout": -5}, "invalid_deadline"),
        ({"timeout": math.nan}, "invalid_deadline"),
        ({"timeout": math.inf}, "invalid_deadline"),
        ({"timeout": 10**12}, "invalid_deadline"),
        ({"timeout": True}, "invalid_deadline"),
        ({"timeout": "30"}, "invalid_deadline"),
        ({"timeout": 5, "deadline": datetime.fromtimestamp(NOW + 9, tz=UTC)}, "invalid_deadline"),
    ],
)  # fmt: skip
def test_bad_deadlines_are_typed_errors(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ContractError) as caught:
        deadline_from(now=NOW, **kwargs)  # type: ignore[arg-type]
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "value",
    ["tomorrow", "2026-13-01T00:00:00Z", "2026-12-07T10:00:00", 1765101600, 1.5, b"\xff\xfe" * 8,
     "x" * 100, "2026-12-07", ["2026-12-07T10:00:00Z"]],
)  # fmt: skip
def test_a_header_that_is_not_an_aware_time_is_invalid(value: object) -> None:
    with pytest.raises(ContractError) as caught:
        parse_deadline(value)
    assert caught.value.reason == "invalid_header"


@given(st.text(max_size=60))
def test_any_header_text_parses_or_is_refused_with_a_reason(value: str) -> None:
    outcome: list[object] = []
    try:
        outcome.append(parse_deadline(value))
    except ContractError as exc:
        outcome.append(exc.reason)
    result = outcome[0]
    assert result == "invalid_header" or (isinstance(result, float) and math.isfinite(result))
