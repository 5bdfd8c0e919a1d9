"""The add path's cheaper record encoding writes the same bytes as before.

``_plain`` (under ``jsonable_headers``) answers str, bool, float, None and int
before the general rules, and must answer as they do; the body check under
``encode_record`` (``inspect_body``) rests on ``loads``, pinned to the stdlib
path in tests/unit/contracts/test_json_whitespace.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from _dlq_records import dlq_record  # tests/ is on sys.path (rootdir conftest)
from relayna.consumer._dlq import _converted, _plain
from relayna.dlq._codec import decode_record, encode_record


class Level(IntEnum):
    LOW = 1


SCALARS = st.one_of(
    st.text(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=-(2**63) - 2, max_value=-(2**63) + 2),
    st.binary(max_size=8),
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.decimals(allow_nan=False),
    st.just(Level.LOW),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=3)
    ),
    max_leaves=8,
)


def typed(value: Any) -> Any:
    """``value`` with its types (True and 1, 1 and 1.0, nan and nan compare as meant)."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


@given(VALUES)
def test_the_common_values_answer_as_the_general_rules(value: Any) -> None:
    assert typed(_plain(value)) == typed(_converted(value))


@given(
    headers=st.dictionaries(st.text(max_size=8), VALUES, max_size=6),
    body=st.sampled_from(
        [b'{"a": 1,\n "b": [1, 2]}', b'{"a":1}', b'{"a": 1, "a": 2}', b"text", b"\xff\x00", b""]
    ),
)
def test_encoded_records_decode_to_their_facts(headers: dict[str, Any], body: bytes) -> None:
    record = dlq_record(1, headers=headers, body=body, dead_lettered_at=datetime.now(UTC))
    fields, kept = encode_record(record, max_body_bytes=1 << 20)
    assert kept
    facts = orjson.loads(fields["facts"])
    assert facts["headers"] == orjson.loads(
        orjson.dumps({k: _converted(v) for k, v in headers.items()})
    )
    expected = {b'{"a": 1, "a": 2}': "text", b"text": "text", b"\xff\x00": "base64", b"": "text"}
    assert facts["body_encoding"] == expected.get(body, "json")
    decoded = decode_record(fields, fields.get("body"))
    assert decoded.body == body
    assert decoded.headers == facts["headers"]
