"""The health state table (ANCHOR §3.4): each row built by construction, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relayna_studio import IngestFacts, Thresholds, materialize, overall_status

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
T = Thresholds(
    capability_stale_after=180, observation_stale_after=300, worker_heartbeat_stale_after=90
)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


CAPS = {"supported_routes": ["health.workers", "events.feed"]}


def record(status: str = "healthy", capabilities: Any = CAPS) -> dict[str, Any]:
    return {"service_id": "s", "status": status, "capabilities": capabilities}


def stored(
    *,
    http: str = "reachable",
    cap_ok: float | None = 10,
    cap_error: str | None = None,
    workers: list[dict[str, Any]] | None = None,
    beat: float | None = 5,
) -> dict[str, Any]:
    if workers is None:
        workers = [{"worker_name": "w", "running": True, "active_leases": []}]
    return {
        "http_status": {"state": http},
        "capability_status": {
            "last_successful_at": None if cap_ok is None else ago(cap_ok),
            "error_detail": cap_error,
        },
        "worker_health": {
            "workers": workers,
            "latest_heartbeat_at": None if beat is None else ago(beat),
        },
    }


FRESH = IngestFacts(latest_status=NOW - timedelta(seconds=30))


@pytest.mark.parametrize(
    ("name", "rec", "facts", "ingest", "expect"),
    [
        ("healthy", record(), stored(), FRESH, ("fresh", "fresh", "healthy", "healthy")),
        (
            "disabled wins",
            record("disabled"),
            stored(http="unreachable"),
            FRESH,
            (None, None, None, "disabled"),
        ),
        (
            "unreachable",
            record(),
            stored(http="unreachable"),
            FRESH,
            (None, None, None, "unreachable"),
        ),
        (
            "capability stale",
            record(),
            stored(cap_ok=181),
            FRESH,
            ("stale", "fresh", "healthy", "stale"),
        ),
        (
            "capability missing",
            record(),
            stored(cap_ok=None),
            FRESH,
            ("missing", "fresh", "healthy", "unknown"),
        ),
        (
            "capability error",
            record(),
            stored(cap_ok=None, cap_error="boom"),
            FRESH,
            ("error", "fresh", "healthy", "degraded"),
        ),
        (
            "observations stale",
            record(),
            stored(),
            IngestFacts(latest_observation=NOW - timedelta(seconds=301)),
            ("fresh", "stale", "healthy", "stale"),
        ),
        (
            "observations missing",
            record(),
            stored(),
            IngestFacts(),
            ("fresh", "missing", "healthy", "unknown"),
        ),
        (
            "no capability document",
            record(capabilities=None),
            stored(),
            FRESH,
            ("fresh", "fresh", "unknown", "degraded"),
        ),
        (
            "workers unsupported",
            record(capabilities={"supported_routes": []}),
            stored(),
            FRESH,
            ("fresh", "fresh", "unsupported", "healthy"),
        ),
        (
            "no workers",
            record(),
            stored(workers=[]),
            FRESH,
            ("fresh", "fresh", "unknown", "degraded"),
        ),
        (
            "worker not running",
            record(),
            stored(workers=[{"running": False}]),
            FRESH,
            ("fresh", "fresh", "unhealthy", "degraded"),
        ),
        (
            "expired lease",
            record(),
            stored(workers=[{"running": True, "active_leases": [{"expires_at": ago(1)}]}]),
            FRESH,
            ("fresh", "fresh", "stale", "stale"),
        ),
        ("heartbeat old", record(), stored(beat=91), FRESH, ("fresh", "fresh", "stale", "stale")),
        ("no heartbeat", record(), stored(beat=None), FRESH, ("fresh", "fresh", "stale", "stale")),
        (
            "never checked",
            record("registered", None),
            None,
            IngestFacts(),
            ("missing", "missing", "unknown", "degraded"),
        ),
    ],
)
def test_state_table(
    name: str, rec: Any, facts: Any, ingest: IngestFacts, expect: tuple[Any, ...]
) -> None:
    doc = materialize(rec, facts, ingest, NOW, T)
    cap, obs, worker, overall = expect
    if cap is not None:
        assert doc["capability_status"]["state"] == cap, name
        assert doc["observation_freshness"]["state"] == obs, name
        assert doc["worker_health"]["state"] == worker, name
    assert doc["overall_status"] == overall, name


def test_precedence_is_total() -> None:
    states = {
        "http": ["reachable", "unreachable", "unknown"],
        "cap": ["fresh", "stale", "missing", "error"],
        "obs": ["fresh", "stale", "missing"],
        "worker": ["healthy", "stale", "unhealthy", "unsupported", "unknown"],
    }
    for registry in ["registered", "healthy", "disabled"]:
        for http in states["http"]:
            for cap in states["cap"]:
                for obs in states["obs"]:
                    for worker in states["worker"]:
                        got = overall_status(registry, http, cap, obs, worker)
                        if registry == "disabled":
                            assert got == "disabled"
                        elif http == "unreachable":
                            assert got == "unreachable"
                        elif "stale" in (cap, obs, worker):
                            assert got == "stale"
                        elif worker in ("unhealthy", "unknown") or cap == "error":
                            assert got == "degraded"
                        elif cap == "fresh" and obs == "fresh":
                            assert got == "healthy"
                        else:
                            assert got == "unknown"
