"""Studio's settings: one attrs class, read from ``RELAYNA_STUDIO_*`` in one place.

Every variable of the original backend keeps its name and default (seed 004,
ANCHOR §8.2); the variables this Studio adds (auth, audit, leases, egress
bounds, push-ingest limits) are marked *new* in ``docs/studio.md``.

Interval variables accept ``none``, ``null``, ``off`` or an empty value to
switch the job off; TTL variables accept the same to mean "no TTL". Every
bad value raises :class:`~relayna.errors.ConfigurationError` naming the
variable, so a deployment fails at startup with a readable message.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from relayna.errors import ConfigurationError
from relayna.transport import is_cluster_store_url, tag_prefix

__all__ = ["DEFAULT_ALLOWED_HOSTS", "StudioBackendSettings", "StudioSettings"]

#: Host suffixes allowed when ``RELAYNA_STUDIO_CAPABILITY_REFRESH_ALLOWED_HOSTS`` is unset.
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = (
    ".svc.local",
    ".svc.cluster.local",
    ".cluster.local",
    ".example.com",
    ".example.net",
    ".example.org",
    ".example.test",
    ".invalid",
    ".test",
)

#: The longest batch wait of failed-task notifications (7 days).
MAX_BATCH_WAIT_SECONDS = 604800

_OFF = {"", "none", "null", "off"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigurationError(f"{attribute.name} must be > 0, got {value!r}")


def _prefix(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or any(ch in value for ch in " \r\n\t*?[]{}"):
        raise ConfigurationError(f"{attribute.name} must be a non-empty key prefix, got {value!r}")


def normalize_host_pattern(pattern: str) -> str:
    """``*.x`` → ``.x``; lower-case; a pattern starting with ``.`` matches by suffix."""
    value = pattern.strip().lower()
    if value.startswith("*."):
        value = value[1:]
    if not value or value == "." or any(ch in value for ch in "/@:\\ *?"):
        raise ConfigurationError(f"invalid allowed host pattern {pattern!r}")
    return value


def host_patterns(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(normalize_host_pattern(p) for p in values)


def networks(values: Iterable[str | Network]) -> tuple[Network, ...]:
    return tuple(parse_network(n) if isinstance(n, str) else n for n in values)


def parse_network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise ConfigurationError(f"invalid allowed network {text!r}: {exc}") from None


@attrs.frozen
class StudioSettings:
    """Everything Studio reads from its environment (see ``docs/studio.md``).

    ``redis_url`` selects the store: ``redis://``/``rediss://`` for a
    deployment (replicas may share it), ``memory://`` for one embedded
    process. Intervals of ``None`` switch a background job off.
    """

    redis_url: str
    title: str = "Relayna Studio Backend"
    host: str = "0.0.0.0"
    port: int = 8000
    app_state_key: str = "studio"
    federation_timeout_seconds: float = attrs.field(default=5.0, validator=_positive)
    registry_prefix: str = attrs.field(default="studio:services", validator=_prefix)
    allowed_hosts: tuple[str, ...] = attrs.field(
        default=DEFAULT_ALLOWED_HOSTS, converter=host_patterns
    )
    allowed_networks: tuple[Network, ...] = attrs.field(default=(), converter=networks)
    capability_stale_after_seconds: float = attrs.field(default=180.0, validator=_positive)
    event_store_prefix: str = attrs.field(default="studio:events", validator=_prefix)
    event_store_ttl_seconds: float | None = attrs.field(default=86400.0, validator=_positive)
    event_history_maxlen: int = attrs.field(default=5000, validator=_positive)
    push_ingest_enabled: bool = False
    pull_sync_interval_seconds: float | None = attrs.field(default=5.0, validator=_positive)
    health_store_prefix: str = attrs.field(default="studio:health", validator=_prefix)
    health_refresh_interval_seconds: float | None = attrs.field(default=60.0, validator=_positive)
    observation_stale_after_seconds: float = attrs.field(default=300.0, validator=_positive)
    worker_heartbeat_stale_after_seconds: float = attrs.field(default=90.0, validator=_positive)
    task_search_index_prefix: str = attrs.field(default="studio:search", validator=_prefix)
    task_index_ttl_seconds: float = attrs.field(default=86400.0, validator=_positive)
    retention_prune_interval_seconds: float | None = attrs.field(default=60.0, validator=_positive)
    # -- new in this Studio ------------------------------------------------------
    auth_enabled: bool = True
    auth_prefix: str = attrs.field(default="studio:auth", validator=_prefix)
    audit_prefix: str = attrs.field(default="studio:audit", validator=_prefix)
    audit_maxlen: int = attrs.field(default=100_000, validator=_positive)
    lease_prefix: str = attrs.field(default="studio:leases", validator=_prefix)
    egress_max_response_bytes: int = attrs.field(default=8 * 1024 * 1024, validator=_positive)
    push_ingest_max_bytes: int = attrs.field(default=1024 * 1024, validator=_positive)
    push_ingest_max_events: int = attrs.field(default=500, validator=_positive)
    request_max_body_bytes: int = attrs.field(default=256 * 1024, validator=_positive)
    telemetry_timeout_seconds: float = attrs.field(default=5.0, validator=_positive)
    registry_cache_seconds: float | None = attrs.field(default=1.0, validator=_positive)
    #: The Redis Cluster key layout (``RELAYNA_STUDIO_STORE_CLUSTER_KEYS``):
    #: ``None`` = implied by the store URL (on for ``redis+cluster://``).
    store_cluster_keys: bool | None = None
    # -- failed-task notifications (the original's email variables, plus a webhook) --
    failed_task_email_enabled: bool = False
    failed_task_email_service_url: str | None = None
    failed_task_email_api_key: str | None = attrs.field(default=None, repr=False)
    failed_task_email_receivers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    failed_task_email_interval_seconds: float = attrs.field(default=30.0, validator=_positive)
    failed_task_email_timeout_seconds: float = attrs.field(default=5.0, validator=_positive)
    failed_task_email_dedupe_ttl_seconds: float = attrs.field(default=604800.0, validator=_positive)
    failed_task_email_title_prefix: str = "[Relayna] Failed task"
    failed_task_email_batch_wait_seconds: int = 0
    failed_task_email_prefix: str = attrs.field(
        default="studio:failed_task_email", validator=_prefix
    )
    failed_task_webhook_url: str | None = None
    failed_task_webhook_secret: str | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.store_cluster_keys is False and is_cluster_store_url(self.redis_url):
            raise ConfigurationError(
                "RELAYNA_STUDIO_REDIS_URL is a Redis Cluster (redis+cluster://) but "
                "RELAYNA_STUDIO_STORE_CLUSTER_KEYS chose the default key layout: every "
                "script must touch one slot there (leave it unset or set it to 1)"
            )
        if not 0 <= self.failed_task_email_batch_wait_seconds <= MAX_BATCH_WAIT_SECONDS:
            raise ConfigurationError(
                "RELAYNA_STUDIO_FAILED_TASK_EMAIL_BATCH_WAIT_SECONDS must be 0..604800"
            )
        if bool(self.failed_task_webhook_url) != bool(self.failed_task_webhook_secret):
            raise ConfigurationError(
                "RELAYNA_STUDIO_FAILED_TASK_WEBHOOK_URL and _WEBHOOK_SECRET go together"
            )
        if not self.failed_task_email_enabled:
            return
        missing = [
            name
            for name, value in (
                ("SERVICE_URL", self.failed_task_email_service_url),
                ("API_KEY", self.failed_task_email_api_key),
                ("RECEIVERS", self.failed_task_email_receivers),
            )
            if not value
        ]
        if missing and not self.failed_task_webhook_url:
            raise ConfigurationError(
                "RELAYNA_STUDIO_FAILED_TASK_EMAIL_ENABLED needs "
                + ", ".join(f"RELAYNA_STUDIO_FAILED_TASK_EMAIL_{m}" for m in missing)
                + " (or a webhook: RELAYNA_STUDIO_FAILED_TASK_WEBHOOK_URL and _SECRET)"
            )

    @property
    def cluster_keys(self) -> bool:
        """The Redis Cluster key layout: chosen, or implied by a ``redis+cluster://`` URL."""
        if self.store_cluster_keys is None:
            return is_cluster_store_url(self.redis_url)
        return self.store_cluster_keys

    def global_prefix(self, prefix: str) -> str:
        """A global key family's prefix: ``{prefix}`` (one hash tag, one slot) in the
        cluster layout, else unchanged."""
        return tag_prefix(prefix, self.cluster_keys)

    @property
    def email_configured(self) -> bool:
        return bool(
            self.failed_task_email_service_url
            and self.failed_task_email_api_key
            and self.failed_task_email_receivers
        )

    @property
    def notifications_configured(self) -> bool:
        return self.email_configured or bool(self.failed_task_webhook_url)

    @property
    def effective_task_index_ttl_seconds(self) -> float:
        """The task index TTL with the original's minimum of 60 s applied."""
        return max(60.0, self.task_index_ttl_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StudioSettings:
        """Read every ``RELAYNA_STUDIO_*`` variable (``environ`` defaults to ``os.environ``).

        Raises:
            ConfigurationError: ``RELAYNA_STUDIO_REDIS_URL`` is unset, or a
                value does not parse; the message names the variable.
        """
        env = _Env(os.environ if environ is None else environ)
        redis_url = env.text("REDIS_URL", "")
        if not redis_url:
            raise ConfigurationError(
                "RELAYNA_STUDIO_REDIS_URL is required (redis://host:port/db, or memory:// "
                "for a single embedded process)"
            )
        hosts = env.csv("CAPABILITY_REFRESH_ALLOWED_HOSTS")
        networks = env.csv("CAPABILITY_REFRESH_ALLOWED_NETWORKS")
        kwargs: dict[str, Any] = {
            "redis_url": redis_url,
            "title": env.text("TITLE", "Relayna Studio Backend"),
            "host": env.text("HOST", "0.0.0.0"),
            "port": env.integer("PORT", 8000, low=0, high=65535),
            "app_state_key": env.text("APP_STATE_KEY", "studio"),
            "federation_timeout_seconds": env.number("FEDERATION_TIMEOUT_SECONDS", 5.0),
            "registry_prefix": env.text("REGISTRY_PREFIX", "studio:services"),
            "allowed_hosts": DEFAULT_ALLOWED_HOSTS if hosts is None else hosts,
            "allowed_networks": () if networks is None else networks,
            "capability_stale_after_seconds": env.number("CAPABILITY_STALE_AFTER_SECONDS", 180.0),
            "event_store_prefix": env.text("EVENT_STORE_PREFIX", "studio:events"),
            "event_store_ttl_seconds": env.optional_number("EVENT_STORE_TTL_SECONDS", 86400.0),
            "event_history_maxlen": env.integer("EVENT_HISTORY_MAXLEN", 5000, low=1),
            "push_ingest_enabled": env.boolean("PUSH_INGEST_ENABLED", False),
            "pull_sync_interval_seconds": env.optional_number("PULL_SYNC_INTERVAL_SECONDS", 5.0),
            "health_store_prefix": env.text("HEALTH_STORE_PREFIX", "studio:health"),
            "health_refresh_interval_seconds": env.optional_number(
                "HEALTH_REFRESH_INTERVAL_SECONDS", 60.0
            ),
            "observation_stale_after_seconds": env.number("OBSERVATION_STALE_AFTER_SECONDS", 300.0),
            "worker_heartbeat_stale_after_seconds": env.number(
                "WORKER_HEARTBEAT_STALE_AFTER_SECONDS", 90.0
            ),
            "task_search_index_prefix": env.text("TASK_SEARCH_INDEX_PREFIX", "studio:search"),
            "task_index_ttl_seconds": env.number("TASK_INDEX_TTL_SECONDS", 86400.0),
            "retention_prune_interval_seconds": env.optional_number(
                "RETENTION_PRUNE_INTERVAL_SECONDS", 60.0
            ),
            "auth_enabled": env.auth(),
            "auth_prefix": env.text("AUTH_PREFIX", "studio:auth"),
            "audit_prefix": env.text("AUDIT_PREFIX", "studio:audit"),
            "audit_maxlen": env.integer("AUDIT_MAXLEN", 100_000, low=1),
            "lease_prefix": env.text("LEASE_PREFIX", "studio:leases"),
            "egress_max_response_bytes": env.integer(
                "EGRESS_MAX_RESPONSE_BYTES", 8 * 1024 * 1024, low=1
            ),
            "push_ingest_max_bytes": env.integer("PUSH_INGEST_MAX_BYTES", 1024 * 1024, low=1),
            "push_ingest_max_events": env.integer("PUSH_INGEST_MAX_EVENTS", 500, low=1),
            "request_max_body_bytes": env.integer("REQUEST_MAX_BODY_BYTES", 256 * 1024, low=1),
            "telemetry_timeout_seconds": env.number("TELEMETRY_TIMEOUT_SECONDS", 5.0),
            "registry_cache_seconds": env.optional_number("REGISTRY_CACHE_SECONDS", 1.0),
            "store_cluster_keys": env.optional_boolean("STORE_CLUSTER_KEYS"),
            "failed_task_email_enabled": env.boolean("FAILED_TASK_EMAIL_ENABLED", False),
            "failed_task_email_service_url": env.text("FAILED_TASK_EMAIL_SERVICE_URL", "") or None,
            "failed_task_email_api_key": env.text("FAILED_TASK_EMAIL_API_KEY", "") or None,
            "failed_task_email_receivers": tuple(env.csv("FAILED_TASK_EMAIL_RECEIVERS") or ()),
            "failed_task_email_interval_seconds": env.number(
                "FAILED_TASK_EMAIL_INTERVAL_SECONDS", 30.0
            ),
            "failed_task_email_timeout_seconds": env.number(
                "FAILED_TASK_EMAIL_TIMEOUT_SECONDS", 5.0
            ),
            "failed_task_email_dedupe_ttl_seconds": env.number(
                "FAILED_TASK_EMAIL_DEDUPE_TTL_SECONDS", 604800.0
            ),
            "failed_task_email_title_prefix": env.text(
                "FAILED_TASK_EMAIL_TITLE_PREFIX", "[Relayna] Failed task"
            ),
            "failed_task_email_batch_wait_seconds": env.integer(
                "FAILED_TASK_EMAIL_BATCH_WAIT_SECONDS", 0, low=0, high=MAX_BATCH_WAIT_SECONDS
            ),
            "failed_task_email_prefix": env.text(
                "FAILED_TASK_EMAIL_PREFIX", "studio:failed_task_email"
            ),
            "failed_task_webhook_url": env.text("FAILED_TASK_WEBHOOK_URL", "") or None,
            "failed_task_webhook_secret": env.text("FAILED_TASK_WEBHOOK_SECRET", "") or None,
        }
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # attrs converters (host patterns, networks)
            raise ConfigurationError(str(exc)) from None


#: The original's class name, for code that imports it.
StudioBackendSettings = StudioSettings


class _Env:
    """Typed reads of ``RELAYNA_STUDIO_<NAME>`` with errors that name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def _raw(self, name: str) -> str | None:
        return self.environ.get(f"RELAYNA_STUDIO_{name}")

    def _bad(self, name: str, value: str, expected: str) -> ConfigurationError:
        return ConfigurationError(f"RELAYNA_STUDIO_{name}={value!r}: expected {expected}")

    def text(self, name: str, default: str) -> str:
        value = self._raw(name)
        return default if value is None else value.strip()

    def number(self, name: str, default: float) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value.strip())
        except ValueError:
            raise self._bad(name, value, "a number of seconds > 0") from None
        if not number > 0 or number == float("inf"):
            raise self._bad(name, value, "a number of seconds > 0")
        return number

    def optional_number(self, name: str, default: float) -> float | None:
        value = self._raw(name)
        if value is not None and value.strip().lower() in _OFF:
            return None
        return self.number(name, default)

    def integer(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        value = self._raw(name)
        if value is None:
            return default
        expected = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        try:
            number = int(value.strip())
        except ValueError:
            raise self._bad(name, value, expected) from None
        if number < low or (high is not None and number > high):
            raise self._bad(name, value, expected)
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE or lowered == "":
            return False
        raise self._bad(name, value, "one of 1/true/yes/on or 0/false/no/off")

    def optional_boolean(self, name: str) -> bool | None:
        """Unset or empty: ``None`` (decided elsewhere); else :meth:`boolean`."""
        value = self._raw(name)
        if value is None or not value.strip():
            return None
        return self.boolean(name, False)

    def csv(self, name: str) -> list[str] | None:
        value = self._raw(name)
        if value is None:
            return None
        return [item.strip() for item in value.split(",") if item.strip()]

    def auth(self) -> bool:
        value = self._raw("AUTH")
        if value is None:
            return True
        lowered = value.strip().lower()
        if lowered == "on":
            return True
        if lowered == "off":
            return False
        raise self._bad("AUTH", value, "'on' (the default) or 'off' (local development only)")
