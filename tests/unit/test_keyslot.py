"""key_slot against the Redis Cluster spec's vectors and a real cluster-mode
redis-server's CLUSTER KEYSLOT; hash_tag and the cluster prefix rule."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from _redis_server import redis_server
from relayna._validators import check_cluster_prefix
from relayna.errors import ConfigurationError, ContractError
from relayna.transport import CLUSTER_SLOTS, hash_tag, key_slot, tag_prefix


def test_spec_vectors() -> None:
    # The cluster spec's CRC16 check value: "123456789" -> 0x31C3.
    assert key_slot("123456789") == 0x31C3 == 12739
    assert key_slot(b"123456789") == 12739
    # Hash tags (the spec's examples): only the first {...} counts, when non-empty.
    assert (
        key_slot("{user1000}.following") == key_slot("{user1000}.followers") == key_slot("user1000")
    )
    assert key_slot("foo{}{bar}") != key_slot("bar")  # empty first tag: the whole key
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")
    assert key_slot("foo{bar}{zap}") == key_slot("bar")
    assert key_slot("{") == key_slot(b"{")
    assert key_slot("") == 0


@given(st.text(max_size=40))
def test_slot_in_range_and_tag_wins(value: str) -> None:
    assert 0 <= key_slot(value) < CLUSTER_SLOTS
    if value and "{" not in value and "}" not in value:
        tag = hash_tag(value)
        assert key_slot(f"a:{tag}:b") == key_slot(f"{tag}") == key_slot(value)


@pytest.mark.parametrize("bad", ["", "{", "}", "a{b", "a}b", "{a}"])
def test_hash_tag_refuses_what_would_not_be_the_tag(bad: str) -> None:
    with pytest.raises(ContractError) as info:
        hash_tag(bad)
    assert info.value.reason == "schema"


def test_cluster_prefix() -> None:
    assert tag_prefix("relayna-dlq", cluster=False) == "relayna-dlq"
    assert tag_prefix("relayna-dlq", cluster=True) == "{relayna-dlq}"
    assert tag_prefix("a{b}", cluster=False) == "a{b}"  # the default layout keeps its names
    for bad in ("a{b}", "x{", "}"):
        with pytest.raises(ConfigurationError):
            tag_prefix(bad, cluster=True)
        with pytest.raises(ConfigurationError):
            check_cluster_prefix(bad)


@pytest.fixture(scope="module")
def cluster_node() -> Iterator[redis.Redis]:
    """One redis-server in cluster mode: CLUSTER KEYSLOT needs cluster mode
    (it is answered without slots assigned). Its cluster bus gets its own free
    port (the default, port + 10000, may be taken or past 65535)."""
    port = free_port()
    bus = free_port()
    while bus == port:
        bus = free_port()
    with tempfile.TemporaryDirectory(prefix="redis-cluster-node-") as d:
        with redis_server(
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(bus),
            "--cluster-config-file",
            f"{d}/nodes.conf",
            port=port,
            directory=d,
        ):
            with redis.Redis(port=port, socket_timeout=5) as client:
                yield client


keys = st.one_of(
    st.binary(max_size=30),
    st.text(alphabet=st.sampled_from("ab{}:x\u00e9"), max_size=20).map(str.encode),
    st.builds(
        lambda a, b, c: f"{a}{{{b}}}{c}".encode(),
        st.text(max_size=6),
        st.text(max_size=6),
        st.text(max_size=6),
    ),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=keys)
def test_matches_cluster_keyslot(cluster_node: redis.Redis, key: bytes) -> None:
    assert key_slot(key) == cluster_node.execute_command("CLUSTER", "KEYSLOT", key)
