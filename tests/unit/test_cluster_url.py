"""redis+cluster:// URLs: what open_store accepts, and the ambiguous forms it refuses."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.errors import ConfigurationError
from relayna.transport import open_store
from relayna.transport.resp import key_slot, parse_cluster_url


def test_seeds_credentials_and_options_reach_every_node() -> None:
    params = parse_cluster_url(
        "redis+cluster://u:secret@h1:7000,h2:7001/?connect_timeout=2&failover_timeout=3"
    )
    assert [(s.host, s.port) for s in params.seeds] == [("h1", 7000), ("h2", 7001)]
    assert all(s.password == "secret" and s.username == "u" for s in params.seeds)
    assert all(s.connect_timeout == 2 for s in params.seeds)
    assert params.failover_timeout == 3
    assert "secret" not in params.url
    other = params.node("10.0.0.9", 7005)
    assert (other.host, other.port, other.password, other.tls) == (
        "10.0.0.9",
        7005,
        "secret",
        False,
    )
    assert parse_cluster_url("rediss+cluster://h1:7000").node("h", 1).tls


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://",  # no host
        "redis+cluster://h1:7000,,h2:7001/",  # an empty host
        "redis+cluster://h1:7000/1",  # a cluster has only db 0
        "redis+cluster://h1:7000/?db=2",
        "redis+cluster://h1:notaport/",
        "redis+cluster://h1:7000/?bogus=1",
        "redis+cluster://h1:7000/?failover_timeout=-1",
        "unix+cluster:///tmp/redis.sock",
    ],
)
def test_bad_cluster_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_cluster_url(url)
    with pytest.raises(ConfigurationError):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://h1:7000,h2:7001/",  # several hosts without the cluster scheme
        "redis://u:p@h1:7000,h2:7001/0",
        "rediss://h1:7000,h2:7001/",
        "redis://h1:7000/?cluster=1",
        "redis://h1:7000/0?cluster=true",
    ],
)
def test_ambiguous_cluster_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"\+cluster://"):
        open_store(url)


def test_cluster_urls_need_the_native_adapter() -> None:
    with pytest.raises(ConfigurationError, match="native"):
        open_store("redis+cluster://h1:7000/", adapter="coredis")


@given(st.text(max_size=60))
def test_any_text_is_parsed_or_refused_with_a_configuration_error(text: str) -> None:
    try:
        parse_cluster_url(f"redis+cluster://{text}")
    except ConfigurationError:
        pass


@given(st.binary(max_size=40))
def test_key_slot_hashes_the_tag_when_there_is_one(key: bytes) -> None:
    start = key.find(b"{")
    end = key.find(b"}", start + 1) if start >= 0 else -1
    hashed = key[start + 1 : end] if start >= 0 and end > start + 1 else key
    assert key_slot(key) == binascii.crc_hqx(hashed, 0) % 16384
    tag = b"t" + key.replace(b"}", b"")
    assert key_slot(b"{" + tag + b"}x") == key_slot(b"a{" + tag + b"}y")


def test_key_slot_known_values() -> None:
    # From the Redis Cluster specification (CRC16-XMODEM of "123456789" is 0x31C3).
    assert key_slot("123456789") == 0x31C3 % 16384
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("foo{}{bar}") == key_slot("foo{}{bar}")  # empty tag: the whole key


def test_is_cluster_store_url() -> None:
    from relayna.transport import is_cluster_store_url

    assert is_cluster_store_url("redis+cluster://h1:7000/")
    assert is_cluster_store_url("rediss+cluster://h1:7000,h2:7001/")
    assert not is_cluster_store_url("redis://h1:7000/0")
    assert not is_cluster_store_url("memory://")
