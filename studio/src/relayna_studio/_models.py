"""Service records and their validation (pure: dicts in, normalised dicts out).

Wire shape of a record (ANCHOR §3.1; ``health`` is attached on read)::

    {"service_id", "name", "base_url", "environment", "tags", "auth_mode",
     "status", "capabilities", "last_seen_at", "log_config", "metrics_config",
     "trace_config"}

Every validation failure raises :class:`~relayna.errors.ContractError` with
*all* problems as ``(path, message)`` pairs; unknown fields are errors, not
silently dropped. Identifier rules are stricter than the original's (which
took any non-empty string): ``service_id`` follows relayna's identifier rule
without ``/`` (it is a URL path segment and part of Redis keys), and
``environment`` is 1..64 of ``A-Z a-z 0-9 . _ -`` (it is part of the
uniqueness key).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from relayna.contracts import is_valid_identifier
from relayna.errors import ContractError
from relayna_studio._urls import normalize_base_url

__all__ = [
    "SERVICE_STATUSES",
    "is_valid_service_id",
    "parse_create",
    "parse_update",
    "validate_service_id",
]

SERVICE_STATUSES = ("registered", "healthy", "unavailable", "disabled")
SERVICE_ID_MAX = 128
_ENVIRONMENT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_AUTH_MODE = re.compile(r"[a-z0-9_]{1,64}")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: Label names that would give one series per task/request/worker.
HIGH_CARDINALITY_LABELS = frozenset({"task_id", "correlation_id", "request_id", "worker_id"})
_POD_TEMPLATE_VARS = frozenset({"pod", "namespace", "service_id"})

_CREATE_FIELDS = (
    "service_id",
    "name",
    "base_url",
    "environment",
    "tags",
    "auth_mode",
    "log_config",
    "metrics_config",
    "trace_config",
)
_UPDATE_FIELDS = (*_CREATE_FIELDS[1:], "status")


def is_valid_service_id(value: object) -> bool:
    return is_valid_identifier(value) and "/" not in value and len(value) <= SERVICE_ID_MAX


def validate_service_id(value: object, field: str = "service_id") -> str:
    if is_valid_service_id(value):
        return str(value)
    raise ContractError(
        f"invalid {field}",
        errors=[(field, f"1..{SERVICE_ID_MAX} characters of A-Z a-z 0-9 . _ : @ + = -")],
    )


class _Reader:
    """Collects every problem of one body; :meth:`done` raises them together."""

    def __init__(self, data: object, path: str = "") -> None:
        self.errors: list[tuple[str, str]] = []
        self.path = path
        if not isinstance(data, Mapping):
            self.errors.append((path or "body", "expected a JSON object"))
            self.data: Mapping[str, Any] = {}
        else:
            self.data = data

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.errors.append((self.at(key), message))

    def unknown(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                self.error(str(key), "unknown field")

    def text(
        self,
        key: str,
        *,
        required: bool = False,
        default: str | None = None,
        pattern: re.Pattern[str] | None = None,
        max_length: int = 256,
        hint: str = "",
    ) -> str | None:
        if key not in self.data or self.data[key] is None:
            if required:
                self.error(key, "field required")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            self.error(key, "must be a string")
            return default
        value = value.strip()
        if not value:
            self.error(key, "must not be empty")
            return default
        if len(value) > max_length:
            self.error(key, f"longer than {max_length} characters")
            return default
        if pattern is not None and pattern.fullmatch(value) is None:
            self.error(key, hint or f"must match {pattern.pattern}")
            return default
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default=default)
        if value is not None and value not in choices:
            self.error(key, f"must be one of {', '.join(choices)}")
            return default
        return value or default

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.data.get(key, default)
        if value is None:
            return default
        if type(value) is not int or not low <= value <= high:
            self.error(key, f"must be an integer {low}..{high}")
            return default
        return value

    def url(self, key: str, *, required: bool) -> str | None:
        if key not in self.data or self.data[key] is None:
            if required:
                self.error(key, "field required")
            return None
        try:
            return normalize_base_url(self.data[key], self.at(key))
        except ContractError as exc:
            self.errors.extend(exc.errors)
            return None

    def labels(self, key: str, *, required: bool) -> dict[str, str]:
        value = self.data.get(key)
        if value is None:
            if required:
                self.error(key, "field required")
            return {}
        if not isinstance(value, Mapping) or not value:
            self.error(key, "must be a non-empty object of label name -> value")
            return {}
        if len(value) > 32:
            self.error(key, "at most 32 labels")
            return {}
        out: dict[str, str] = {}
        for name, label_value in value.items():
            if not isinstance(name, str) or _LABEL.fullmatch(name) is None:
                self.error(f"{key}.{name}", "label names match [A-Za-z_][A-Za-z0-9_]*")
            elif name in HIGH_CARDINALITY_LABELS:
                self.error(f"{key}.{name}", "high-cardinality label names are not allowed")
            elif not isinstance(label_value, str) or not label_value.strip():
                self.error(f"{key}.{name}", "label values must be non-empty strings")
            elif len(label_value) > 256:
                self.error(f"{key}.{name}", "label values are at most 256 characters")
            else:
                out[name] = label_value.strip()
        return out

    def label_name(self, key: str, default: str | None, *, low_cardinality: bool) -> str | None:
        value = self.text(key, default=default, pattern=_LABEL, hint="must be a label name")
        if low_cardinality and value in HIGH_CARDINALITY_LABELS:
            self.error(key, "high-cardinality label names are not allowed")
            return default
        return value

    def done(self, what: str) -> None:
        if self.errors:
            raise ContractError(f"invalid {what}", errors=self.errors)


def _tags(reader: _Reader) -> list[str]:
    value = reader.data.get("tags")
    if value is None:
        return []
    if not isinstance(value, list):
        reader.error("tags", "must be a list of strings")
        return []
    if len(value) > 64:
        reader.error("tags", "at most 64 tags")
        return []
    out: list[str] = []
    for index, tag in enumerate(value):
        if not isinstance(tag, str):
            reader.error(f"tags[{index}]", "must be a string")
            continue
        tag = tag.strip()
        if len(tag) > 64 or any(ord(ch) < 32 for ch in tag):
            reader.error(f"tags[{index}]", "at most 64 printable characters")
        elif tag and tag not in out:
            out.append(tag)
    return out


def _log_config(data: object, path: str) -> dict[str, Any]:
    r = _Reader(data, path)
    r.unknown(
        (
            "provider",
            "base_url",
            "tenant_id",
            "service_selector_labels",
            "source_label",
            "pod_label",
            "pod_match_mode",
            "pod_value_template",
            "task_id_label",
            "correlation_id_label",
            "level_label",
            "task_match_mode",
            "task_match_template",
        )
    )
    template = r.text("pod_value_template", default="{pod}")
    if template is not None:
        names = set(re.findall(r"{([^{}]*)}", template))
        if not names <= _POD_TEMPLATE_VARS:
            r.error("pod_value_template", "variables are {pod}, {namespace} and {service_id}")
    config = {
        "provider": r.choice("provider", ("loki",), "loki"),
        "base_url": r.url("base_url", required=True),
        "tenant_id": r.text("tenant_id"),
        "service_selector_labels": r.labels("service_selector_labels", required=True),
        "source_label": r.label_name("source_label", None, low_cardinality=True),
        "pod_label": r.label_name("pod_label", "pod", low_cardinality=True),
        "pod_match_mode": r.choice("pod_match_mode", ("exact", "regex"), "exact"),
        "pod_value_template": template,
        "task_id_label": r.label_name("task_id_label", None, low_cardinality=False),
        "correlation_id_label": r.label_name("correlation_id_label", None, low_cardinality=False),
        "level_label": r.label_name("level_label", None, low_cardinality=True),
        "task_match_mode": r.choice(
            "task_match_mode", ("label", "contains", "regex", "structured_metadata"), "label"
        ),
        "task_match_template": r.text("task_match_template", max_length=512),
    }
    r.done("log_config")
    return config


def _metrics_config(data: object, path: str) -> dict[str, Any]:
    r = _Reader(data, path)
    r.unknown(
        (
            "provider",
            "base_url",
            "namespace",
            "service_selector_labels",
            "runtime_service_label_value",
            "namespace_label",
            "pod_label",
            "container_label",
            "step_seconds",
            "task_window_padding_seconds",
            "rate_window_seconds",
        )
    )
    config = {
        "provider": r.choice("provider", ("prometheus",), "prometheus"),
        "base_url": r.url("base_url", required=True),
        "namespace": r.text("namespace"),
        "service_selector_labels": r.labels("service_selector_labels", required=True),
        "runtime_service_label_value": r.text("runtime_service_label_value"),
        "namespace_label": r.label_name("namespace_label", "namespace", low_cardinality=True),
        "pod_label": r.label_name("pod_label", "pod", low_cardinality=True),
        "container_label": r.label_name("container_label", "container", low_cardinality=True),
        "step_seconds": r.integer("step_seconds", 30, 5, 3600),
        "task_window_padding_seconds": r.integer("task_window_padding_seconds", 120, 0, 3600),
        # new: the range of rate()/increase(); 5m as in the original, shorter for fast scrapes
        "rate_window_seconds": r.integer("rate_window_seconds", 300, 2, 3600),
    }
    r.done("metrics_config")
    return config


def _trace_config(data: object, path: str) -> dict[str, Any]:
    r = _Reader(data, path)
    r.unknown(("provider", "base_url", "public_base_url", "tenant_id", "query_path"))
    query_path = r.text("query_path", default="/api/traces/{trace_id}", max_length=512)
    if query_path is not None:
        if "{trace_id}" not in query_path:
            r.error("query_path", "must contain {trace_id}")
        elif any(ch in query_path for ch in "?#\\ ") or "//" in query_path:
            r.error("query_path", "must be a plain path")
        elif not query_path.startswith("/"):
            query_path = "/" + query_path
    config = {
        "provider": r.choice("provider", ("tempo",), "tempo"),
        "base_url": r.url("base_url", required=True),
        "public_base_url": r.url("public_base_url", required=False),
        "tenant_id": r.text("tenant_id"),
        "query_path": query_path,
    }
    r.done("trace_config")
    return config


_CONFIGS: dict[str, Callable[[object, str], dict[str, Any]]] = {
    "log_config": _log_config,
    "metrics_config": _metrics_config,
    "trace_config": _trace_config,
}


def _configs(reader: _Reader, out: dict[str, Any]) -> None:
    for key, parse in _CONFIGS.items():
        if key not in reader.data:
            continue
        if reader.data[key] is None:
            out[key] = None
            continue
        try:
            out[key] = parse(reader.data[key], key)
        except ContractError as exc:
            reader.errors.extend(exc.errors)


def _common(reader: _Reader, out: dict[str, Any], *, required: bool) -> None:
    def put(key: str, value: Any) -> None:
        if value is not None or required:
            out[key] = value

    put("name", reader.text("name", required=required, max_length=200))
    put("base_url", reader.url("base_url", required=required))
    put(
        "environment",
        reader.text(
            "environment",
            required=required,
            pattern=_ENVIRONMENT,
            max_length=64,
            hint="1..64 characters of A-Z a-z 0-9 . _ -",
        ),
    )
    if "tags" in reader.data or required:
        out["tags"] = _tags(reader)
    put(
        "auth_mode",
        reader.text(
            "auth_mode",
            required=required,
            pattern=_AUTH_MODE,
            max_length=64,
            hint="lower-case letters, digits and _ (e.g. internal_network)",
        ),
    )
    _configs(reader, out)


def parse_create(data: object) -> dict[str, Any]:
    """A CreateServiceRequest → a new record (status ``registered``, no capabilities).

    Raises:
        ContractError: every problem of the body.
    """
    reader = _Reader(data)
    reader.unknown(_CREATE_FIELDS)
    service_id = reader.data.get("service_id")
    if isinstance(service_id, str):
        service_id = service_id.strip()
    if service_id is None:
        reader.error("service_id", "field required")
    elif not is_valid_service_id(service_id):
        reader.error("service_id", f"1..{SERVICE_ID_MAX} characters of A-Z a-z 0-9 . _ : @ + = -")
    out: dict[str, Any] = {"service_id": service_id}
    _common(reader, out, required=True)
    reader.done("service")
    record = {
        "service_id": out["service_id"],
        "name": out["name"],
        "base_url": out["base_url"],
        "environment": out["environment"],
        "tags": out["tags"],
        "auth_mode": out["auth_mode"],
        "status": "registered",
        "capabilities": None,
        "last_seen_at": None,
        "log_config": out.get("log_config"),
        "metrics_config": out.get("metrics_config"),
        "trace_config": out.get("trace_config"),
    }
    return record


def parse_update(data: object) -> dict[str, Any]:
    """An UpdateServiceRequest → the fields to change (at least one).

    Raises:
        ContractError: every problem of the body; ``status: healthy`` is one
            (only a refresh sets it).
    """
    reader = _Reader(data)
    reader.unknown(_UPDATE_FIELDS)
    changes: dict[str, Any] = {}
    _common(reader, changes, required=False)
    if "status" in reader.data:
        status = reader.data["status"]
        if status == "healthy":
            reader.error("status", "healthy can only be set by refresh")
        elif status not in SERVICE_STATUSES:
            reader.error("status", "must be one of registered, unavailable, disabled")
        else:
            changes["status"] = status
    for key in ("name", "base_url", "environment", "auth_mode", "tags"):
        if key in reader.data and reader.data[key] is None:
            reader.error(key, "must not be null")
    if not reader.errors and not changes:
        reader.error("body", "at least one field must be set")
    reader.done("service update")
    return changes


def apply_update(record: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    return {**record, **changes}


def config_urls(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(field path, URL)`` of every URL Studio will call for this record."""
    urls = [("base_url", str(record["base_url"]))]
    for key in ("log_config", "metrics_config", "trace_config"):
        config = record.get(key)
        if isinstance(config, Mapping) and config.get("base_url"):
            urls.append((f"{key}.base_url", str(config["base_url"])))
    return urls
