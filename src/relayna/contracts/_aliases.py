"""Field aliases: accept other names for top-level fields, and emit them on output.

Two sources, as in the original: ``payload`` aliases apply to message bodies
(AMQP) and always include the built-in compatibility alias
``task_id`` <-> ``documentId``; ``http`` aliases apply to HTTP query/path names
and fall back to the payload aliases. Aliases touch top-level keys only, never
keys inside ``payload``, ``meta`` or ``result``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "DOCUMENT_COMPAT_ALIASES",
    "AliasSource",
    "ContractAliasConfig",
    "alias_map",
    "denormalize_aliases",
    "normalize_aliases",
    "public_output_aliases",
]

AliasSource = Literal["payload", "http"]


def _clean(value: Mapping[str, str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for canonical, alias in value.items():
        if not isinstance(canonical, str) or not isinstance(alias, str):
            raise TypeError("aliases map field names (str) to alias names (str)")
        canonical, alias = canonical.strip(), alias.strip()
        if canonical and alias and canonical != alias:
            result[canonical] = alias
    return result


@attrs.frozen
class ContractAliasConfig:
    """Canonical field name -> alias, for message bodies and for HTTP names."""

    field_aliases: dict[str, str] = attrs.field(factory=dict, converter=_clean)
    http_aliases: dict[str, str] = attrs.field(factory=dict, converter=_clean)

    def payload_alias_for(self, field_name: str) -> str | None:
        return self.field_aliases.get(field_name)

    def http_alias_for(self, field_name: str) -> str | None:
        return self.http_aliases.get(field_name) or self.payload_alias_for(field_name)


DOCUMENT_COMPAT_ALIASES = ContractAliasConfig(field_aliases={"task_id": "documentId"})
_BUILTIN = DOCUMENT_COMPAT_ALIASES.field_aliases


def alias_map(
    config: ContractAliasConfig | None, *, source: AliasSource = "payload"
) -> dict[str, str]:
    """The effective canonical -> alias map for ``source``."""
    if source == "payload":
        if config is None or not config.field_aliases:
            return _BUILTIN
        return {**_BUILTIN, **config.field_aliases}
    if config is None:
        return {}
    return {**config.field_aliases, **config.http_aliases}


def normalize_aliases(
    data: Mapping[str, Any],
    config: ContractAliasConfig | None = None,
    *,
    source: AliasSource = "payload",
    drop_aliases: bool = False,
) -> Mapping[str, Any]:
    """Copy each alias into its canonical key when that key is absent.

    Returns ``data`` itself when no alias is present (no copy on the hot path).
    With ``drop_aliases`` the alias keys are removed once the canonical key exists.
    """
    if config is None and source == "payload" and "documentId" not in data:
        return data
    aliases = alias_map(config, source=source)
    result: dict[str, Any] | None = None
    for canonical, alias in aliases.items():
        if alias not in data:
            continue
        if result is None:
            result = dict(data)
        if canonical not in result:
            result[canonical] = result[alias]
        if drop_aliases:
            del result[alias]
    return data if result is None else result


def denormalize_aliases(
    data: Mapping[str, Any],
    config: ContractAliasConfig | None = None,
    *,
    source: AliasSource = "payload",
    alias_only: bool = False,
) -> dict[str, Any]:
    """Write each non-null canonical value under its alias too (or only, with
    ``alias_only``)."""
    result = dict(data)
    for canonical, alias in alias_map(config, source=source).items():
        value = result.get(canonical)
        if value is None:
            continue
        result[alias] = value
        if alias_only:
            del result[canonical]
    return result


def public_output_aliases(
    data: Mapping[str, Any],
    config: ContractAliasConfig | None = None,
    *,
    source: AliasSource = "payload",
) -> dict[str, Any]:
    """The public (client-facing) shape: aliases replace canonical keys, but
    only when a config is given (the original's rule)."""
    if config is None:
        return dict(data)
    return denormalize_aliases(data, config, source=source, alias_only=True)
