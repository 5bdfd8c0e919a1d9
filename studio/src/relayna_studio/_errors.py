"""Studio's errors, a branch of relayna's one hierarchy (:mod:`relayna.errors`).

::

    RelaynaError
    ├── ConfigurationError          bad settings (relayna's own class)
    ├── ContractError               bad request bodies / ids (relayna's own class)
    └── StudioError
        ├── EgressDenied            an outbound URL or address the policy forbids
        ├── RegistryConflict        duplicate service id, or (environment, base URL)
        ├── ServiceNotFound
        ├── UpstreamError           a federated call failed (code, upstream status, retryable)
        └── AccessDenied            401 (no or bad token) / 403 (role too low)

Each maps to one HTTP answer in :mod:`relayna_studio._http`; nothing else a
route raises may become a 500.
"""

from __future__ import annotations

from relayna.errors import RelaynaError

__all__ = [
    "AccessDenied",
    "EgressDenied",
    "RegistryConflict",
    "ServiceNotFound",
    "StudioError",
    "UpstreamError",
]


class StudioError(RelaynaError):
    """Base class of Studio's own errors."""


class EgressDenied(StudioError):
    """The egress policy forbids a URL, a hostname or a resolved address.

    ``reason`` is a short code (``scheme``, ``host_not_allowed``,
    ``address_not_allowed``, ``numeric_host``, ``resolution_failed`` ...);
    the message names the host (never credentials; URLs carry none).
    """

    def __init__(self, message: str, *, reason: str, host: str | None = None) -> None:
        self.reason = reason
        self.host = host
        super().__init__(message)


class RegistryConflict(StudioError):
    """A create or update would break uniqueness (``field``: ``service_id`` or ``base_url``)."""

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(message)


class ServiceNotFound(StudioError):
    def __init__(self, service_id: str) -> None:
        self.service_id = service_id
        super().__init__(f"service {service_id!r} is not registered")


class UpstreamError(StudioError):
    """A call to a registered service failed; the wire shape is ``FederatedError``.

    Attributes:
        status: the HTTP status Studio answers with.
        code: machine-readable (``upstream_timeout``, ``unsupported_route`` ...).
        service_id: the service called.
        upstream_status: what the service answered, when it answered.
        retryable: whether the same call may succeed later.
    """

    def __init__(
        self,
        detail: str,
        *,
        status: int,
        code: str,
        service_id: str | None = None,
        upstream_status: int | None = None,
        retryable: bool = False,
    ) -> None:
        self.detail = detail
        self.status = status
        self.code = code
        self.service_id = service_id
        self.upstream_status = upstream_status
        self.retryable = retryable
        super().__init__(detail)

    def to_json(self) -> dict[str, object]:
        return {
            "detail": self.detail,
            "code": self.code,
            "service_id": self.service_id,
            "upstream_status": self.upstream_status,
            "retryable": self.retryable,
        }


class AccessDenied(StudioError):
    """401 without a valid token, 403 when the token's role is too low."""

    def __init__(self, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(message)
