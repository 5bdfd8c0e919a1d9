from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.errors import ContractError, TopologyError
from relayna.topology import normalize_shards, shard_for_key, topic_matches


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
        ("*.b", "a.b", True),
        ("*", "a.b", False),
        ("#", "", True),
        ("#", "a.b.c", True),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#.c", "c", True),
        ("#.c", "a.b.c", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.#.c", "a.c", True),
        ("a.#.#.c", "a.x.c", True),
        ("*.#", "", False),
        ("*", "", False),
        ("", "", True),
        ("planner.in", "planner.in", True),
        ("agg.*", "agg.3", True),
    ],
)
def test_topic_matches_examples(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


word = st.sampled_from(["a", "b", "c"])
pattern_word = st.sampled_from(["a", "b", "*", "#"])


@given(st.lists(pattern_word, min_size=1, max_size=5), st.lists(word, min_size=1, max_size=5))
def test_topic_matches_agrees_with_a_brute_force_reference(
    pattern: list[str], key: list[str]
) -> None:
    p, k = ".".join(pattern), ".".join(key)
    assert topic_matches(p, k) is _brute(pattern, key), (p, k)


def _brute(pattern: list[str], key: list[str]) -> bool:
    if not pattern:
        return not key
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_brute(rest, key[i:]) for i in range(len(key) + 1))
    if not key:
        return False
    return (head in ("*", key[0])) and _brute(rest, key[1:])


def test_topic_matching_is_not_exponential() -> None:
    assert not topic_matches(".".join(["#"] * 30 + ["z"]), ".".join(["a"] * 60))


@given(st.text(min_size=1), st.integers(min_value=1, max_value=1000))
def test_shard_hash_is_the_original_wire_formula(key: str, count: int) -> None:
    expected = int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % count
    assert shard_for_key(key, count) == expected


def test_shard_known_values() -> None:
    # Pinned so a refactor cannot silently move work between shards.
    assert shard_for_key("parent-1", 8) == int(hashlib.sha256(b"parent-1").hexdigest(), 16) % 8
    assert shard_for_key("x", 1) == 0


def test_shard_errors() -> None:
    with pytest.raises(ContractError):
        shard_for_key("", 4)
    with pytest.raises(TopologyError):
        shard_for_key("a", 0)


def test_normalize_shards() -> None:
    assert normalize_shards([3, 1, 3], 4) == (1, 3)
    with pytest.raises(TopologyError):
        normalize_shards([], 4)
    with pytest.raises(TopologyError, match=r"0\.\.3"):
        normalize_shards([4], 4)
    with pytest.raises(TopologyError):
        normalize_shards([-1], 4)
