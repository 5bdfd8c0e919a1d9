"""StudioSettings.from_env: every variable, its default, 'off' values, clear errors."""

from __future__ import annotations

import ipaddress

import pytest

from relayna.errors import ConfigurationError
from relayna_studio import DEFAULT_ALLOWED_HOSTS, StudioBackendSettings, StudioSettings


def env(**values: str) -> dict[str, str]:
    out = {"RELAYNA_STUDIO_REDIS_URL": "redis://127.0.0.1:6379/0"}
    out.update({f"RELAYNA_STUDIO_{k}": v for k, v in values.items()})
    return out


def test_defaults_are_the_originals() -> None:
    s = StudioSettings.from_env(env())
    assert StudioBackendSettings is StudioSettings
    assert (s.title, s.host, s.port, s.app_state_key) == (
        "Relayna Studio Backend",
        "0.0.0.0",
        8000,
        "studio",
    )
    assert s.federation_timeout_seconds == 5.0
    assert (s.registry_prefix, s.event_store_prefix, s.health_store_prefix) == (
        "studio:services",
        "studio:events",
        "studio:health",
    )
    assert s.task_search_index_prefix == "studio:search"
    assert s.allowed_hosts == DEFAULT_ALLOWED_HOSTS
    assert s.allowed_networks == ()
    assert s.capability_stale_after_seconds == 180
    assert s.event_store_ttl_seconds == 86400
    assert s.event_history_maxlen == 5000
    assert s.push_ingest_enabled is False
    assert s.pull_sync_interval_seconds == 5.0
    assert s.health_refresh_interval_seconds == 60.0
    assert s.observation_stale_after_seconds == 300
    assert s.worker_heartbeat_stale_after_seconds == 90
    assert s.task_index_ttl_seconds == 86400
    assert s.retention_prune_interval_seconds == 60.0
    assert s.auth_enabled is True  # auth is on unless explicitly off


@pytest.mark.parametrize("off", ["off", "none", "null", "", "OFF", " Null "])
def test_intervals_and_ttl_switch_off(off: str) -> None:
    s = StudioSettings.from_env(
        env(
            PULL_SYNC_INTERVAL_SECONDS=off,
            HEALTH_REFRESH_INTERVAL_SECONDS=off,
            RETENTION_PRUNE_INTERVAL_SECONDS=off,
            EVENT_STORE_TTL_SECONDS=off,
        )
    )
    assert s.pull_sync_interval_seconds is None
    assert s.health_refresh_interval_seconds is None
    assert s.retention_prune_interval_seconds is None
    assert s.event_store_ttl_seconds is None


def test_allowlists_replace_the_defaults_and_parse() -> None:
    s = StudioSettings.from_env(
        env(
            CAPABILITY_REFRESH_ALLOWED_HOSTS="*.svc.cluster.local, payments.internal",
            CAPABILITY_REFRESH_ALLOWED_NETWORKS="10.0.0.1/8,fd00::/8",
        )
    )
    assert s.allowed_hosts == (".svc.cluster.local", "payments.internal")
    assert s.allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_booleans_and_the_task_index_minimum() -> None:
    for text in ("1", "true", "YES", "on"):
        assert StudioSettings.from_env(env(PUSH_INGEST_ENABLED=text)).push_ingest_enabled
    assert StudioSettings.from_env(env(AUTH="off")).auth_enabled is False
    assert (
        StudioSettings.from_env(env(TASK_INDEX_TTL_SECONDS="5")).effective_task_index_ttl_seconds
        == 60
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FEDERATION_TIMEOUT_SECONDS", "soon"),
        ("FEDERATION_TIMEOUT_SECONDS", "-1"),
        ("FEDERATION_TIMEOUT_SECONDS", "off"),
        ("PULL_SYNC_INTERVAL_SECONDS", "0"),
        ("PULL_SYNC_INTERVAL_SECONDS", "inf"),
        ("EVENT_HISTORY_MAXLEN", "many"),
        ("EVENT_HISTORY_MAXLEN", "0"),
        ("PORT", "70000"),
        ("PUSH_INGEST_ENABLED", "maybe"),
        ("AUTH", "disabled"),
        ("CAPABILITY_REFRESH_ALLOWED_NETWORKS", "10.0.0.0/40"),
        ("CAPABILITY_REFRESH_ALLOWED_HOSTS", "http://evil/"),
        ("REGISTRY_PREFIX", "with space"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        StudioSettings.from_env(env(**{name: value}))
    message = str(info.value)
    assert name.lower() in message.lower() or value in message


def test_redis_url_is_required() -> None:
    with pytest.raises(ConfigurationError, match="RELAYNA_STUDIO_REDIS_URL"):
        StudioSettings.from_env({})
