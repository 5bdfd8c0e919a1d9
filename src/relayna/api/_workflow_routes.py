"""Workflow routes: the topology graph, the stages, a run, and replay.

``GET {prefix}/topology`` (route id ``workflow.topology``) and
``GET {prefix}/stages`` (``workflow.stages``) answer the original's shapes;
``GET {prefix}/runs/{task_id}`` (``workflow.runs``) the run state, its
diagnosis and its lineage; ``POST {prefix}/runs/{task_id}/replay``
(``workflow.replay``) replays a stage (body ``{"stage", "payload"?,
"reason"?, "force"?}``) or, without ``stage``, resumes the run;
``POST {prefix}/runs/{task_id}/cancel`` (``workflow.cancel``, body
``{"reason"?}``) cancels the run (202 / 404 / 409 / 422, as the task cancel
route). The replay and cancel routes run ``authorize(request, route_id)``
first when one is given.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relayna.api._body import BodyError, read_json_body
from relayna.api._dlq_common import Authorize, check_authorized
from relayna.api._dlq_routes import guarded
from relayna.api._lifespan import RelaynaRuntime
from relayna.api._openapi import Operation, document
from relayna.api._route_ids import (
    WORKFLOW_CANCEL,
    WORKFLOW_REPLAY,
    WORKFLOW_RUNS,
    WORKFLOW_STAGES,
    WORKFLOW_TOPOLOGY,
)
from relayna.api._routes import JSONResponse, error_response, invalid_identifier
from relayna.api._workflow_docs import (
    cancel_operation,
    replay_operation,
    run_operation,
    stages_operation,
    topology_operation,
)
from relayna.contracts import ContractAliasConfig, is_valid_identifier
from relayna.errors import (
    ContractError,
    TopologyError,
    WorkflowConflict,
    WorkflowRunNotFound,
)
from relayna.rabbitmq import CancelStore
from relayna.topology import (
    SharedStatusWorkflowTopology,
    export_workflow_graph,
    serialize_workflow_stage,
)
from relayna.workflow import WorkflowRuns, WorkflowStoreConfig

__all__ = ["workflow_routes"]


def _body_error(loc: str, msg: str) -> Response:
    return error_response(422, [{"loc": ["body", loc], "msg": msg, "type": "value_error"}])


def workflow_routes(
    topology: SharedStatusWorkflowTopology | None = None,
    *,
    prefix: str = "/workflow",
    aliases: ContractAliasConfig | None = None,
    state: WorkflowStoreConfig | None = None,
    authorize: Authorize | None = None,
    replay: bool = True,
    state_key: str = "relayna",
) -> list[BaseRoute]:
    """The workflow routes.

    Args:
        topology: the workflow topology (default: the runtime's, when it is one;
            otherwise the routes answer 404).
        state: the stage workers' key prefix and TTLs (``WorkflowConsumer.state``).
        authorize: ``authorize(request, route_id)`` before every replay (as in
            :func:`dlq_routes`): ``None`` allows, a response (401/403) refuses.
        replay: ``False`` leaves out the replay and cancel routes (a read-only service).
    """
    id_name = (aliases.http_alias_for("task_id") if aliases else None) or "task_id"
    field = (aliases.payload_alias_for("task_id") if aliases else None) or "task_id"
    cache: list[tuple[RelaynaRuntime, WorkflowRuns]] = []

    def resolve(request: Request) -> tuple[RelaynaRuntime, SharedStatusWorkflowTopology] | Response:
        runtime = getattr(request.state, state_key, None)
        if not isinstance(runtime, RelaynaRuntime):
            return error_response(503, "relayna runtime is not running")
        found = topology if topology is not None else runtime.config.topology
        if not isinstance(found, SharedStatusWorkflowTopology):
            return error_response(404, "this service has no workflow topology")
        return runtime, found

    def runs_of(request: Request) -> WorkflowRuns | Response:
        resolved = resolve(request)
        if isinstance(resolved, Response):
            return resolved
        runtime, found = resolved
        if cache and cache[0][0] is runtime:
            return cache[0][1]
        cancels = CancelStore(
            runtime.store,
            prefix=runtime.status.config.prefix,
            cluster=runtime.status.config.cluster,
        )
        runs = WorkflowRuns(
            runtime.store, found, broker=runtime.broker, config=state, cancels=cancels
        )
        cache[:] = [(runtime, runs)]
        return runs

    def task_id_of(request: Request) -> str | Response:
        task_id = request.path_params.get(id_name)
        if not is_valid_identifier(task_id):
            return invalid_identifier(id_name)
        return str(task_id)

    def output(body: dict[str, Any]) -> dict[str, Any]:
        """``task_id`` under its payload alias, in the body and its run/diagnosis."""
        if field == "task_id":
            return body
        out = {}
        for key, value in body.items():
            if key == "task_id":
                key = field
            elif isinstance(value, dict) and "task_id" in value:
                value = {(field if k == "task_id" else k): v for k, v in value.items()}
            out[key] = value
        return out

    async def graph(request: Request) -> Response:
        resolved = resolve(request)
        if isinstance(resolved, Response):
            return resolved
        return JSONResponse(export_workflow_graph(resolved[1]))

    async def stages(request: Request) -> Response:
        resolved = resolve(request)
        if isinstance(resolved, Response):
            return resolved
        found = resolved[1]
        serialized = [
            serialize_workflow_stage(s, queue_arguments=found.workflow_queue_arguments(s.name))
            for s in found.stages
        ]
        return JSONResponse({"stages": serialized})

    async def run(request: Request) -> Response:
        task_id = task_id_of(request)
        if isinstance(task_id, Response):
            return task_id
        runs = runs_of(request)
        if isinstance(runs, Response):
            return runs
        body = await runs.describe(task_id)
        if body is None:
            return error_response(404, f"No workflow run found for {id_name} '{task_id}'")
        return JSONResponse(output(body))

    async def mutation(request: Request, route_id: str) -> tuple[str, dict[str, Any]] | Response:
        """A mutating route's task id (422), ``authorize`` (401/403) and JSON object body
        (``{}`` for none; 413/415/422)."""
        task_id = task_id_of(request)
        if isinstance(task_id, Response):
            return task_id
        refused = await check_authorized(authorize, request, route_id)
        if refused is not None:
            return refused
        try:
            body = await read_json_body(request, required=False)
        except BodyError as exc:
            return error_response(exc.status, exc.detail)
        body = {} if body is None else body
        if not isinstance(body, dict):
            return error_response(422, [{"loc": ["body"], "msg": "expected a JSON object"}])
        return str(task_id), body

    async def replay_run(request: Request) -> Response:
        begun = await mutation(request, WORKFLOW_REPLAY)
        if isinstance(begun, Response):
            return begun
        task_id, body = begun
        stage, payload = body.get("stage"), body.get("payload")
        reason, force = body.get("reason", "replay"), body.get("force", False)
        if stage is not None and not isinstance(stage, str):
            return _body_error("stage", "expected a stage name")
        if payload is not None and not isinstance(payload, dict):
            return _body_error("payload", "expected a JSON object")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 255:
            return _body_error("reason", "expected a non-empty string of at most 255 chars")
        if not isinstance(force, bool):
            return _body_error("force", "expected true or false")
        unknown = sorted(set(body) - {"stage", "payload", "reason", "force"})
        if unknown:
            return error_response(
                422, [{"loc": ["body", k], "msg": "unknown field"} for k in unknown]
            )
        runs = runs_of(request)
        if isinstance(runs, Response):
            return runs
        if runs.broker is None:
            return error_response(503, "replay needs the runtime's broker")
        try:
            if stage is None:
                if payload is not None or force:
                    return _body_error("stage", "payload and force need a stage")
                result = await runs.resume(task_id, reason=reason)
            else:
                result = await runs.replay_stage(
                    task_id, stage, payload, reason=reason, force=force
                )
        except WorkflowRunNotFound:
            return error_response(404, f"No workflow run found for {id_name} '{task_id}'")
        except WorkflowConflict as exc:
            return JSONResponse({"detail": str(exc), "error": exc.code}, status_code=409)
        except TopologyError as exc:
            return _body_error("stage", str(exc))
        except ContractError as exc:
            return error_response(
                422, [{"loc": ["body", "payload"], "msg": str(exc), "type": exc.reason}]
            )
        return JSONResponse(output(result.to_dict()))

    async def cancel_run(request: Request) -> Response:
        begun = await mutation(request, WORKFLOW_CANCEL)
        if isinstance(begun, Response):
            return begun
        task_id, body = begun
        if set(body) - {"reason"}:
            return _body_error("reason", 'expected {"reason": "..."} (or no body)')
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            return _body_error("reason", "must be a string")
        runs = runs_of(request)
        if isinstance(runs, Response):
            return runs
        if runs.broker is None:
            return error_response(503, "cancel needs the runtime's broker")
        try:
            result = await runs.cancel(task_id, reason)
        except WorkflowRunNotFound:
            return error_response(404, f"No workflow run found for {id_name} '{task_id}'")
        except WorkflowConflict as exc:
            conflict = {"detail": str(exc), "error": exc.code, field: task_id,
                        "state": "terminal", "status": exc.status or "completed"}  # fmt: skip
            return JSONResponse(conflict, status_code=409)
        except ContractError as exc:
            return _body_error("reason", str(exc))
        answer = result.as_dict()
        answer[field] = answer.pop("task_id")
        return JSONResponse(answer, status_code=202)

    def route(path: str, endpoint: Any, method: str, name: str, op: Operation) -> BaseRoute:
        handler = guarded(endpoint, "workflow store")
        return document(Route(path, handler, methods=[method], name=name), **{method.lower(): op})

    path = f"{prefix}/runs/{{{id_name}:relayna_id}}"
    routes = [
        route(f"{prefix}/topology", graph, "GET", WORKFLOW_TOPOLOGY, topology_operation()),
        route(f"{prefix}/stages", stages, "GET", WORKFLOW_STAGES, stages_operation()),
        route(path, run, "GET", WORKFLOW_RUNS, run_operation(id_name, field)),
    ]
    if replay:
        operation = replay_operation(id_name, field, authorized=authorize is not None)
        routes.append(route(f"{path}/replay", replay_run, "POST", WORKFLOW_REPLAY, operation))
        operation = cancel_operation(id_name, field, authorized=authorize is not None)
        routes.append(route(f"{path}/cancel", cancel_run, "POST", WORKFLOW_CANCEL, operation))
    return routes
