"""attrs validators shared by the store configurations."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["key_prefix", "positive"]


def positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """The value must be > 0."""
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def key_prefix(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """A non-empty store key prefix without whitespace or glob characters."""
    if not value or any(ch in value for ch in " \r\n\t*?[]"):
        raise ValueError(f"{attribute.name} must be a non-empty key prefix, got {value!r}")
