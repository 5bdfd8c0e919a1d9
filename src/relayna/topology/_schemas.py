"""Workflow action and payload schemas: declarative, checked on publish and consume."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = ["ActionSchema", "PayloadSchema"]


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen(kw_only=True)
class PayloadSchema:
    """Fields a payload must (``required_fields``) or may (``optional_fields``) hold.

    Any other top-level field is a violation.
    """

    name: str
    version: str = "v1"
    required_fields: tuple[str, ...] = attrs.field(default=(), converter=_names)
    optional_fields: tuple[str, ...] = attrs.field(default=(), converter=_names)

    def validate_payload(self, payload: Mapping[str, Any]) -> list[str]:
        """Readable violations (empty when the payload conforms)."""
        missing = [f for f in self.required_fields if f not in payload]
        allowed = set(self.required_fields) | set(self.optional_fields)
        unknown = sorted(str(k) for k in payload if k not in allowed)
        errors: list[str] = []
        if missing:
            errors.append(f"missing required fields: {', '.join(missing)}")
        if unknown:
            errors.append(f"unknown fields: {', '.join(unknown)}")
        return errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "required_fields": list(self.required_fields),
            "optional_fields": list(self.optional_fields),
        }


@attrs.frozen(kw_only=True)
class ActionSchema:
    """A named workflow action, optionally with a payload schema."""

    action: str
    description: str | None = None
    payload: PayloadSchema | None = None

    def validate_payload(self, payload: Mapping[str, Any]) -> list[str]:
        return [] if self.payload is None else self.payload.validate_payload(payload)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        if self.description is not None:
            out["description"] = self.description
        if self.payload is not None:
            out["payload"] = self.payload.to_dict()
        return out
