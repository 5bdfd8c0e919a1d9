"""What the DLQ and failed-task route factories share: route ids, the service
per runtime, the authorization hook, error answers."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeAlias

from starlette.requests import Request
from starlette.responses import Response

from relayna.api._lifespan import RelaynaRuntime
from relayna.api._routes import JSONResponse, error_response
from relayna.contracts import ContractAliasConfig, is_valid_identifier
from relayna.dlq import (
    BrokerDLQInspector,
    DLQService,
    DLQStore,
    DLQStoreConfig,
    PeekDLQInspector,
)
from relayna.errors import ContractError, DLQConflict
from relayna.transport import SupportsPeek

__all__ = [
    "Authorize",
    "DLQRouteContext",
    "check_authorized",
    "InspectorOption",
]

#: ``authorize(request, route_id)`` runs before every mutating route (replay,
#: mark-investigated/-uninvestigated, retry, delete). Return ``None`` to allow,
#: or a response (e.g. 401/403) to answer instead. It may be async.
Authorize: TypeAlias = Callable[[Request, str], Response | Awaitable[Response | None] | None]


async def check_authorized(
    authorize: Authorize | None, request: Request, route_id: str
) -> Response | None:
    """Run ``authorize`` (sync or async): ``None`` allows, a response refuses."""
    if authorize is None:
        return None
    answer = authorize(request, route_id)
    if inspect.isawaitable(answer):
        answer = await answer
    return answer


#: An inspector, ``"peek"`` (read through the runtime's broker connection), or None.
InspectorOption: TypeAlias = BrokerDLQInspector | Literal["peek"] | None


def _validation_error(exc: ContractError, where: str) -> Response:
    detail = [
        {"loc": [where, field], "msg": message, "type": "value_error"}
        for field, message in exc.errors
    ]
    return error_response(422, detail or str(exc))


class DLQRouteContext:
    """Per route set: finds the :class:`DLQService` of a request's runtime."""

    def __init__(
        self,
        *,
        service: DLQService | None,
        store_config: DLQStoreConfig | None,
        inspector: InspectorOption,
        broker_queue_names: Sequence[str] | None,
        authorize: Authorize | None,
        aliases: ContractAliasConfig | None,
        state_key: str,
        service_id: str | None,
    ) -> None:
        self._service = service
        self._store_config = store_config
        self._inspector = inspector
        self.broker_queue_names = None if broker_queue_names is None else tuple(broker_queue_names)
        self._authorize = authorize
        self._state_key = state_key
        self._service_id = service_id
        self._cached: tuple[RelaynaRuntime, DLQService] | None = None
        self.id_name = (aliases.http_alias_for("task_id") if aliases else None) or "task_id"

    @property
    def has_authorize(self) -> bool:
        return self._authorize is not None

    @property
    def has_inspector(self) -> bool:
        if self._service is not None:
            return self._service.inspector is not None
        return self._inspector is not None

    def service(self, request: Request) -> DLQService | Response:
        if self._service is not None:
            return self._service
        runtime = getattr(request.state, self._state_key, None)
        if not isinstance(runtime, RelaynaRuntime):
            return error_response(503, "relayna runtime is not running")
        cached = self._cached
        if cached is not None and cached[0] is runtime:
            return cached[1]
        if (
            runtime.dlq is not None
            and self._inspector is None
            and self.broker_queue_names is None
            and self._service_id is None
        ):
            self._cached = (runtime, runtime.dlq)
            return runtime.dlq
        inspector: BrokerDLQInspector | None
        if self._inspector == "peek":
            broker = runtime.broker
            inspector = PeekDLQInspector(broker) if isinstance(broker, SupportsPeek) else None
        else:
            inspector = self._inspector
        store = runtime.dlq.store if runtime.dlq is not None else None
        service = DLQService(
            store or DLQStore(runtime.store, self._store_config),
            runtime.broker,
            status=runtime.status,
            inspector=inspector,
            broker_queue_names=self.broker_queue_names or (),
            service_id=self._service_id,
        )
        self._cached = (runtime, service)
        return service

    async def authorize(self, request: Request, route_id: str) -> Response | None:
        return await check_authorized(self._authorize, request, route_id)

    async def mutating_service(self, request: Request, route_id: str) -> DLQService | Response:
        """The service for a mutating route, once ``authorize`` allowed it (else its answer)."""
        refused = await self.authorize(request, route_id)
        if refused is not None:
            return refused
        return self.service(request)

    def output(self, item: dict[str, Any]) -> dict[str, Any]:
        """Rename ``task_id`` to the HTTP alias (when one is configured)."""
        if self.id_name != "task_id" and "task_id" in item:
            item = dict(item)
            item[self.id_name] = item.pop("task_id")
        return item

    @staticmethod
    def path_id(request: Request, name: str) -> str | Response:
        value = request.path_params.get(name)
        if not is_valid_identifier(value):
            return error_response(
                422, [{"loc": ["path", name], "msg": "invalid identifier", "type": "value_error"}]
            )
        return str(value)

    @staticmethod
    def query_error(exc: ContractError) -> Response:
        return _validation_error(exc, "query")

    @staticmethod
    def body_error(exc: ContractError) -> Response:
        return _validation_error(exc, "body")

    @staticmethod
    def conflict(exc: DLQConflict, *, shape: Literal["detail", "error"]) -> Response:
        """409: ``{"detail", "error"}`` (DLQ routes) or ``{"error", "message"}`` (failed tasks)."""
        if shape == "error":
            body = {"error": exc.code, "message": str(exc), "detail": str(exc)}
        else:
            body = {"detail": str(exc), "error": exc.code}
        return JSONResponse(body, status_code=409)


def parse_bool(text: str | None, field: str) -> bool:
    """``true/false/1/0/yes/no`` (case-insensitive); absent = False."""
    if text is None:
        return False
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ContractError(f"invalid {field}", errors=[(field, "expected true or false")])
