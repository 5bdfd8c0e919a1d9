"""attrs validators shared by the store configurations."""

from __future__ import annotations

from typing import Any

import attrs

from relayna.errors import ConfigurationError

__all__ = ["check_cluster_prefix", "cluster_layout", "key_prefix", "positive"]


def positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """The value must be > 0."""
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def key_prefix(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """A non-empty store key prefix without whitespace or glob characters."""
    if not value or any(ch in value for ch in " \r\n\t*?[]"):
        raise ValueError(f"{attribute.name} must be a non-empty key prefix, got {value!r}")


def check_cluster_prefix(prefix: str, what: str = "prefix") -> str:
    """``prefix`` itself when it can head a cluster-layout key (no braces).

    Raises:
        ConfigurationError: the prefix contains ``{`` or ``}`` (its first ``{``
            would become the key's hash tag).
    """
    if "{" in prefix or "}" in prefix:
        raise ConfigurationError(
            f"{what} {prefix!r} contains a brace: with cluster=True the key layout "
            "places hash tags itself, so a prefix may contain neither '{' nor '}'"
        )
    return prefix


def cluster_layout(inst: Any, attribute: attrs.Attribute[Any], value: bool) -> None:
    """The ``cluster`` flag of a store configuration: a bool, and with ``True``
    the configuration's ``prefix`` must be brace-free."""
    if type(value) is not bool:
        raise ConfigurationError(f"{attribute.name} must be a bool, got {value!r}")
    if value:
        check_cluster_prefix(inst.prefix)
