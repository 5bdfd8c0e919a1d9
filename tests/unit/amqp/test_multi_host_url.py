"""Several RabbitMQ nodes in one broker URL: parsing, redaction, the order the
client tries them in, and joining a list of single-node URLs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna._urls import join_urls, redact_url
from relayna.errors import ConfigurationError
from relayna.transport.amqp import parse_amqp_url
from relayna.transport.amqp._hosts import FailureMemory, connect_order, host_url

_label = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
_hostname = st.lists(_label, min_size=1, max_size=3).map(".".join)
_ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_host = st.one_of(_hostname, _ipv4, st.just("::1"))
_port = st.integers(1, 65535)
_nodes = st.lists(st.tuples(_host, _port), min_size=1, max_size=5, unique=True)


def _netloc(nodes: list[tuple[str, int]]) -> str:
    return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in nodes)


@given(nodes=_nodes, vhost=st.sampled_from(["", "/", "/prod", "/a%2Fb"]))
def test_host_list_round_trips(nodes: list[tuple[str, int]], vhost: str) -> None:
    params = parse_amqp_url(f"amqp://u:secret@{_netloc(nodes)}{vhost}?heartbeat=5")
    assert list(params.addresses) == nodes
    assert (params.host, params.port) == nodes[0]
    assert params.vhost == {"": "/", "/": "/", "/prod": "prod", "/a%2Fb": "a/b"}[vhost]
    assert params.heartbeat == 5
    assert "secret" not in params.url
    assert _netloc(nodes) in params.url  # the redacted URL still names every node
    # a list of single-node URLs joins into the same parameters
    joined = join_urls([f"amqp://u:secret@{_netloc([n])}{vhost}?heartbeat=5" for n in nodes])
    assert parse_amqp_url(joined) == params


@given(
    nodes=_nodes,
    index=st.integers(0, 4),
    bad=st.sampled_from(["x", "99999", "-1", "0", "1.5", ""]),
)
def test_bad_port_is_a_typed_error_naming_the_host(
    nodes: list[tuple[str, int]], index: int, bad: str
) -> None:
    index = min(index, len(nodes) - 1)
    items = _netloc(nodes).split(",")
    host = nodes[index][0]
    items[index] = (f"[{host}]" if ":" in host else host) + f":{bad}"
    with pytest.raises(ConfigurationError, match=rf"host #{index + 1}\b") as info:
        parse_amqp_url(f"amqp://u:secret@{','.join(items)}/")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("netloc", "message"),
    [
        ("h1,,h2", "empty host #2"),
        ("h1,", "empty host #2"),
        ("h1,:5672", "no host name in host #2"),
        ("h1,[::1", "IPv6"),
    ],
)
def test_bad_hosts_are_typed_errors(netloc: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_amqp_url(f"amqp://guest:guest@{netloc}/")


def test_defaults_duplicates_and_host_order() -> None:
    params = parse_amqp_url("amqps://a,b:6000,a/")
    assert params.addresses == (("a", 5671), ("b", 6000))  # repeated node kept once
    assert params.host_order == "ordered"
    assert parse_amqp_url("amqp://a,b/?host_order=shuffle").host_order == "shuffle"
    with pytest.raises(ConfigurationError, match="host_order='random'"):
        parse_amqp_url("amqp://a,b/?host_order=random")
    assert parse_amqp_url("amqp://h/").addresses == (("h", 5672),)


def test_redaction_keeps_every_node() -> None:
    assert redact_url("amqp://u:pw@h1:1,h2:2/v") == "amqp://u:***@h1:1,h2:2/v"


def test_join_refuses_urls_that_differ_beyond_the_host() -> None:
    assert join_urls("amqp://h/") == "amqp://h/"
    for other in ("amqps://u:p@b/", "amqp://u:x@b/", "amqp://u:p@b/other", "amqp://u:p@b/?x=1"):
        with pytest.raises(ConfigurationError, match="URL #2"):
            join_urls(["amqp://u:p@a/", other])
    with pytest.raises(ConfigurationError, match="empty"):
        join_urls([])


def test_connect_order_puts_recent_failures_last() -> None:
    hosts = [("a", 1), ("b", 2), ("c", 3)]
    assert connect_order(hosts, "ordered", {}) == hosts
    assert connect_order(hosts, "ordered", {("a", 1): 5.0}) == [("b", 2), ("c", 3), ("a", 1)]
    # two failures: the one that failed longest ago is retried first
    failed = {("a", 1): 9.0, ("b", 2): 5.0}
    assert connect_order(hosts, "ordered", failed) == [("c", 3), ("b", 2), ("a", 1)]
    shuffled = [tuple(connect_order(hosts, "shuffle", {}, rng=random.Random(s))) for s in range(40)]
    assert all(sorted(order) == hosts for order in shuffled)
    assert len(set(shuffled)) > 1  # shuffle spreads clients over the nodes
    assert all(
        connect_order(hosts, "shuffle", {("b", 2): 1.0}, rng=random.Random(s))[-1] == ("b", 2)
        for s in range(20)
    )


def test_failure_memory_forgets_on_success_and_after_its_window() -> None:
    memory = FailureMemory(window=60.0)
    memory.failed(("a", 1))
    memory.failed(("b", 2))
    memory.succeeded(("b", 2))
    assert set(memory.recent([("a", 1), ("b", 2)])) == {("a", 1)}
    assert FailureMemory(window=0.0).recent([("a", 1)]) == {}


def test_host_url_aims_a_url_at_one_node() -> None:
    url = "amqp://u:p@h1:1,h2:2/v?host_order=shuffle&heartbeat=5"
    assert host_url(url, ("h2", 2)) == "amqp://u:p@h2:2/v?heartbeat=5"
    assert host_url("amqp://h1,h2/", ("::1", 7)) == "amqp://[::1]:7/"
