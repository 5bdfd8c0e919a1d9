"""relayna-studio: the control plane that federates relayna services.

``create_studio_app(settings)`` returns the Starlette app (``/studio/*``,
``/metrics`` and the web UI at every other path); ``StudioSettings.from_env()`` reads ``RELAYNA_STUDIO_*``.
See ``docs/studio.md``.
"""

__version__ = "0.1.0"

from relayna_studio._app import create_studio_app, run_studio_jobs, studio_app, studio_routes
from relayna_studio._audit import AuditLog
from relayna_studio._auth import ROLES, TOKEN_KINDS, Principal, TokenStore, role_allows
from relayna_studio._capabilities import LEGACY_CAPABILITY_DOCUMENT, fetch_capabilities
from relayna_studio._egress import EgressPolicy
from relayna_studio._egress_http import (
    EgressClient,
    EgressResponse,
    PinnedBackend,
    Resolver,
    SystemResolver,
    open_egress_client,
)
from relayna_studio._errors import (
    AccessDenied,
    EgressDenied,
    RegistryConflict,
    ServiceNotFound,
    StudioError,
    UpstreamError,
)
from relayna_studio._execution_view import build_execution_view
from relayna_studio._gateway import build_gateway_catalog, gateway_name
from relayna_studio._health import IngestFacts, Thresholds, materialize, overall_status
from relayna_studio._health_service import HealthService
from relayna_studio._leases import Leases
from relayna_studio._models import parse_create, parse_update, validate_service_id
from relayna_studio._registry import Registry
from relayna_studio._runtime import StudioRuntime, open_studio
from relayna_studio._settings import DEFAULT_ALLOWED_HOSTS, StudioBackendSettings, StudioSettings
from relayna_studio._ui import UI_DIST, ui_routes
from relayna_studio._urls import BaseUrl, normalize_base_url, parse_base_url

__all__ = [
    "UI_DIST",
    "DEFAULT_ALLOWED_HOSTS",
    "LEGACY_CAPABILITY_DOCUMENT",
    "ROLES",
    "TOKEN_KINDS",
    "AccessDenied",
    "AuditLog",
    "BaseUrl",
    "EgressClient",
    "EgressDenied",
    "EgressPolicy",
    "EgressResponse",
    "HealthService",
    "IngestFacts",
    "Leases",
    "PinnedBackend",
    "Principal",
    "Registry",
    "RegistryConflict",
    "Resolver",
    "ServiceNotFound",
    "StudioBackendSettings",
    "StudioError",
    "StudioRuntime",
    "StudioSettings",
    "SystemResolver",
    "Thresholds",
    "TokenStore",
    "UpstreamError",
    "__version__",
    "build_execution_view",
    "build_gateway_catalog",
    "create_studio_app",
    "fetch_capabilities",
    "gateway_name",
    "materialize",
    "normalize_base_url",
    "open_egress_client",
    "open_studio",
    "overall_status",
    "parse_base_url",
    "parse_create",
    "parse_update",
    "role_allows",
    "run_studio_jobs",
    "studio_app",
    "studio_routes",
    "ui_routes",
    "validate_service_id",
]
