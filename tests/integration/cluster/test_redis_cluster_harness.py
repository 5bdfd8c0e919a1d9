"""The Redis Cluster harness (scripts/redis_cluster.py) on its six real nodes,
and relayna's key hashing against the servers'.

Other cluster tests trust the harness to name the primary of a slot, and the
store routes by ``key_slot``; these check both against what the servers answer.
"""

from __future__ import annotations

import subprocess

import pytest
from redis_cluster import RedisCluster

from relayna.transport.resp import key_slot

pytestmark = pytest.mark.slow_tier

KEYS = ["", "a", "relayna:history:t-1", "{t-1}:history", "x{}y", "{}{a}", "a{b}c{d}", "é{ü}", "{"]


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_key_slot_is_the_servers(redis_cluster: RedisCluster) -> None:
    port = redis_cluster.ports[0]
    for key in KEYS:
        assert key_slot(key) == int(_cli(port, "CLUSTER", "KEYSLOT", key)), key


def test_primary_of_serves_the_key_without_a_redirect(redis_cluster: RedisCluster) -> None:
    redis_cluster.wait_ok()
    for key in ("a", "b", "c", "{t-9}:x"):
        port = redis_cluster.primary_of(key)
        # Without -c redis-cli reports a MOVED instead of following it.
        assert _cli(port, "SET", key, "1") == "OK"
        assert _cli(port, "DEL", key) == "1"
