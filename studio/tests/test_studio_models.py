"""Registry validation (pure): bodies, configs, high-cardinality labels, the gateway catalog."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.errors import ContractError
from relayna_studio import build_gateway_catalog, gateway_name, parse_create, parse_update

BASE = {
    "service_id": "payments-api",
    "name": " Payments API ",
    "base_url": "HTTPS://Payments.Example.Test/",
    "environment": "prod",
    "tags": [" core ", "payments", "core", ""],
    "auth_mode": "internal_network",
}


def test_create_normalises() -> None:
    record = parse_create(BASE)
    assert record["name"] == "Payments API"
    assert record["base_url"] == "https://payments.example.test"
    assert record["tags"] == ["core", "payments"]
    assert record["status"] == "registered"
    assert record["capabilities"] is None


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"service_id": "has space"}, "service_id"),
        ({"service_id": "a/b"}, "service_id"),
        ({"service_id": ""}, "service_id"),
        ({"service_id": 7}, "service_id"),
        ({"name": "  "}, "name"),
        ({"environment": "prod env"}, "environment"),
        ({"auth_mode": "Internal Network"}, "auth_mode"),
        ({"tags": "core"}, "tags"),
        ({"tags": [1]}, "tags[0]"),
        ({"status": "healthy"}, "status"),
        ({"extra": 1}, "extra"),
        ({"base_url": "http://u:p@x.test"}, "base_url"),
        (
            {"metrics_config": {"base_url": "http://p.test"}},
            "metrics_config.service_selector_labels",
        ),
        (
            {
                "metrics_config": {
                    "base_url": "http://p.test",
                    "service_selector_labels": {"task_id": "x"},
                }
            },
            "metrics_config.service_selector_labels.task_id",
        ),
        (
            {
                "metrics_config": {
                    "base_url": "http://p.test",
                    "service_selector_labels": {"service": "x"},
                    "pod_label": "worker_id",
                }
            },
            "metrics_config.pod_label",
        ),
        (
            {
                "metrics_config": {
                    "base_url": "http://p.test",
                    "service_selector_labels": {"service": "x"},
                    "step_seconds": 1,
                }
            },
            "metrics_config.step_seconds",
        ),
        (
            {
                "log_config": {
                    "base_url": "http://l.test",
                    "service_selector_labels": {"a": "b"},
                    "pod_value_template": "{host}",
                }
            },
            "log_config.pod_value_template",
        ),
        (
            {
                "log_config": {
                    "base_url": "http://l.test",
                    "service_selector_labels": {"request_id": "b"},
                }
            },
            "log_config.service_selector_labels.request_id",
        ),
        (
            {"trace_config": {"base_url": "http://t.test", "query_path": "/api/traces"}},
            "trace_config.query_path",
        ),
        ({"trace_config": {"base_url": "http://t.test", "bogus": 1}}, "trace_config.bogus"),
    ],
)
def test_create_rejects_with_a_path(patch: dict[str, Any], path: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_create({**BASE, **patch})
    assert path in info.value.fields


def test_configs_get_defaults() -> None:
    record = parse_create(
        {
            **BASE,
            "metrics_config": {
                "base_url": "http://prom.test",
                "service_selector_labels": {"service": "p"},
            },
            "trace_config": {"base_url": "http://tempo.test", "query_path": "api/t/{trace_id}"},
        }
    )
    assert record["metrics_config"]["step_seconds"] == 30
    assert record["metrics_config"]["task_window_padding_seconds"] == 120
    assert record["trace_config"]["query_path"] == "/api/t/{trace_id}"


def test_update_needs_a_field_and_forbids_healthy() -> None:
    with pytest.raises(ContractError, match="at least one"):
        parse_update({})
    with pytest.raises(ContractError, match="refresh"):
        parse_update({"status": "healthy"})
    assert parse_update({"status": "disabled", "log_config": None}) == {
        "status": "disabled",
        "log_config": None,
    }


@given(
    st.dictionaries(
        st.text(max_size=12), st.none() | st.text(max_size=20) | st.integers(), max_size=8
    )
)
def test_arbitrary_bodies_give_contract_errors_only(body: dict[str, Any]) -> None:
    for parse in (parse_create, parse_update):
        try:
            parse(body)
        except ContractError:
            pass


def _record(service_id: str, name: str, status: str = "registered") -> dict[str, Any]:
    return {
        "service_id": service_id,
        "name": name,
        "base_url": f"https://{gateway_name(service_id) or 'x'}.example.test",
        "environment": "prod",
        "tags": [],
        "auth_mode": "internal_network",
        "status": status,
        "capabilities": None,
        "log_config": {"base_url": "http://secret-loki.test"},
        "last_seen_at": "2026-01-01T00:00:00Z",
    }


def test_gateway_catalog_names_and_fingerprints() -> None:
    records = [
        _record("payments-api", "Payments API"),
        _record("Payments API", "Payments API Legacy"),
    ]
    records[0]["capabilities"] = {
        "supported_routes": ["status.latest", "history.list"],
        "feature_flags": ["execution_graphs"],
        "service_metadata": {"service_title": "x"},
    }
    catalog = build_gateway_catalog(records, {"payments-api": "healthy"})
    first, second = catalog["services"]
    assert catalog["count"] == 2
    assert first["name"] == "payments-api"
    assert first["status"] == "healthy"
    assert first["default_route_pattern"] == "/services/payments-api/*"
    assert first["capabilities"] == {
        "supported_routes": ["status.latest", "history.list"],
        "feature_flags": ["execution_graphs"],
    }
    fingerprint = hashlib.sha256(b"Payments API").hexdigest()[:8]
    assert second["name"] == f"payments-api-{fingerprint}"
    assert second["status"] == "registered"
    assert second["capabilities"] == {}
    for entry in catalog["services"]:
        assert set(entry) == {
            "studio_service_id",
            "name",
            "display_name",
            "base_url",
            "environment",
            "tags",
            "auth_mode",
            "status",
            "capabilities",
            "default_route_pattern",
        }
    empty = build_gateway_catalog([_record("@@@", "odd")], {})
    assert empty["services"][0]["name"].startswith("service-")


@given(
    st.lists(st.from_regex(r"[A-Za-z0-9._:@+=-]{1,12}", fullmatch=True), unique=True, max_size=8)
)
def test_gateway_names_unique_and_order_independent(ids: list[str]) -> None:
    records = [_record(i, i) for i in ids]
    names = [s["name"] for s in build_gateway_catalog(records, {})["services"]]
    assert len(set(names)) == len(names)
    reversed_names = [s["name"] for s in build_gateway_catalog(records[::-1], {})["services"]]
    assert names == reversed_names[::-1]
    assert all(n == n.lower() and n.strip("-") == n for n in names)
