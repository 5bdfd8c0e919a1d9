"""Input and authorization checks of the MCP server, as pure functions.

Order of the argument checks: size first (on the encoded JSON, before any
schema walk), then the tool's JSON schema, then the identifier rule on every
identifier-typed field (the rule the HTTP routes apply, including what a
JSON-schema pattern cannot say, such as ``..``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import attrs
import jsonschema
import orjson

from relayna.contracts import DEFAULT_LIMITS, validate_identifier
from relayna.errors import ConfigurationError, ContractError, EnvelopeTooLarge, ToolDenied
from relayna.mcp._catalog import IDENTIFIER_SCHEMA, ToolSpec

__all__ = ["MCPConfig", "bearer_token", "check_arguments", "check_operation", "token_matches"]


_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _origins(value: Any) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class MCPConfig:
    """How the MCP server behaves.

    Attributes:
        operations: enable the operational tools (``publish_task``,
            ``replay_dlq_message``, ``retry_failed_task``); off by default.
        token: the bearer token an HTTP caller must present
            (``Authorization: Bearer ...``) for an operational tool; required
            over HTTP when ``operations`` is on. Over stdio the process owner
            (who launched the server) is the caller, and no token is asked.
        allowed_origins: ``Origin`` values accepted over HTTP (``:*`` matches
            any port); a browser request from any other origin gets 403 (DNS
            rebinding protection). Requests without ``Origin`` (non-browser
            clients) pass.
        allowed_hosts: ``Host`` values accepted over HTTP (421 otherwise).
        max_argument_bytes: largest tool-argument object, as JSON.
        poll_interval: how often ``wait_for_task`` reads the latest status.
        server_name: the name the server reports at initialize.
    """

    operations: bool = False
    token: str | None = attrs.field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = attrs.field(
        default=tuple(f"http://{h}{p}" for h in _LOOPBACK for p in ("", ":*")), converter=_origins
    )
    allowed_hosts: tuple[str, ...] = attrs.field(
        default=tuple(f"{h}{p}" for h in _LOOPBACK for p in ("", ":*")), converter=_origins
    )
    max_argument_bytes: int = DEFAULT_LIMITS.max_body_bytes
    poll_interval: float = 0.25
    server_name: str = "relayna"

    def __attrs_post_init__(self) -> None:
        if self.token is not None and len(self.token) < 16:
            raise ConfigurationError("the MCP bearer token must be at least 16 characters")
        if self.max_argument_bytes < 1 or self.poll_interval <= 0:
            raise ConfigurationError("max_argument_bytes and poll_interval must be positive")


def check_arguments(spec: ToolSpec, arguments: Mapping[str, Any], max_bytes: int) -> None:
    """Raise :class:`ContractError` (or :class:`EnvelopeTooLarge`) for bad arguments."""
    try:
        size = len(orjson.dumps(arguments))
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
        raise ContractError("invalid arguments", errors=[("<arguments>", str(exc))]) from None
    if size > max_bytes:
        raise EnvelopeTooLarge(size, max_bytes)
    try:
        jsonschema.validate(instance=arguments, schema=spec.input_schema)
    except jsonschema.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path) or "<arguments>"
        raise ContractError("invalid arguments", errors=[(path, exc.message)]) from None
    for name, schema in spec.input_schema["properties"].items():
        if schema.get("pattern") == IDENTIFIER_SCHEMA["pattern"] and name in arguments:
            try:
                validate_identifier(arguments[name])
            except ContractError as exc:
                raise ContractError("invalid arguments", errors=[(name, str(exc))]) from None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def token_matches(presented: str | None, expected: str | None) -> bool:
    """Constant-time comparison; False when either side is missing."""
    if presented is None or expected is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def check_operation(config: MCPConfig, *, over_http: bool, authorization: str | None) -> None:
    """May this caller run an operational tool? Raises :class:`ToolDenied` when not."""
    if not config.operations:
        raise ToolDenied("operational tools are disabled on this server")
    if over_http and not token_matches(bearer_token(authorization), config.token):
        raise ToolDenied("this tool needs the server's bearer token (Authorization: Bearer ...)")
