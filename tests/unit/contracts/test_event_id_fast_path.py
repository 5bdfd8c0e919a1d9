"""compute_event_id's orjson fast path writes exactly the original's bytes.

The reference is the original's rule spelled out with the stdlib (``json.dumps``
with sorted keys, compact separators, non-ASCII kept, ``default=str``, then
sha256). Values are generated to hit every place where orjson and the stdlib
could disagree: floats of every magnitude (tiny, huge, negative zero, NaN,
infinities), integers beyond 64 bits, every code point class in strings and
keys, non-string keys, str/int/dict subclasses, enums and datetimes.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.contracts import compute_event_id


def reference(wire: dict[Any, Any]) -> str:
    canonical = {k: v for k, v in wire.items() if k != "event_id"}
    text = json.dumps(
        canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Tag(str):
    pass


class Count(int):
    pass


class Bag(dict[str, Any]):
    pass


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.floats(min_value=1e15, max_value=1e17),
    st.sampled_from([0.0, -0.0, 1e-4, 9.999999999999999e-5, 1e16, 9.999999999999998e15]),
)
texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "\u2028", "\x7f", "\x00", '"', "\\", "é", "\U0001f600", "\ufeff"]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    floats,
    texts,
    st.sampled_from([Colour.RED, Level.HIGH, Tag("t"), Count(5), datetime(2025, 1, 2, tzinfo=UTC)]),
)
keys = texts | st.sampled_from([Tag("k")])
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
        st.dictionaries(keys, inner, max_size=2).map(Bag),
    ),
    max_leaves=20,
)
wires = st.dictionaries(keys, values, max_size=8)


@settings(max_examples=400, deadline=None)
@given(wire=wires)
def test_same_id_as_the_original_rule(wire: dict[str, Any]) -> None:
    assert compute_event_id(wire) == reference(wire)


@settings(max_examples=100, deadline=None)
@given(wire=wires, event_id=texts)
def test_event_id_key_is_left_out(wire: dict[str, Any], event_id: str) -> None:
    assert compute_event_id({**wire, "event_id": event_id}) == reference(wire)


def test_each_known_disagreement_falls_back() -> None:
    # every case where orjson alone would write other bytes than the stdlib
    for value in (1e-5, 1e-7, -2.5e-5, float("nan"), float("inf"), Colour.RED, Tag("x"),
                  datetime(2025, 1, 2, tzinfo=UTC), 2**64, -(2**63) - 1):  # fmt: skip
        wire = {"task_id": "t", "meta": {"v": value}}
        assert compute_event_id(wire) == reference(wire), value
    mapping = OrderedDict(b=1, a=2)  # a Mapping that is not a dict: stdlib path
    assert compute_event_id(mapping) == reference(dict(mapping))


def test_mixed_key_types_raise_like_the_original() -> None:
    # json sorts the items before converting keys, so str and int keys side by
    # side raise TypeError there; the fast path must not turn that into an id
    wire: dict[Any, Any] = {"a": 1, 2: 3}
    with pytest.raises(TypeError):
        reference(wire)
    with pytest.raises(TypeError):
        compute_event_id(wire)
    only_ints: dict[Any, Any] = {10: "x", 9: "y"}  # sorted as ints, then written as strings
    assert compute_event_id(only_ints) == reference(only_ints)
