"""Federated execution graphs and workflows.

* ``GET /studio/services/{id}/executions/{task_id}/graph``: the service's graph
  with ``service_id`` and ``task_ref`` on the graph and on every node;
  ``?format=mermaid`` answers the Mermaid text (``text/vnd.mermaid``) and
  ``?format=view`` the execution view (:func:`build_execution_view`).
* ``GET /studio/services/{id}/workflow/topology``: the workflow graph.
* ``GET /studio/services/{id}/workflow/runs/{task_id}``: a workflow run
  (state, messages, lineage, diagnosis) with ``service_id`` and ``task_ref``.
* ``POST /studio/services/{id}/workflow/runs/{task_id}/replay`` (operator,
  audited): resume the run or replay one stage; the JSON body
  (``{stage?, payload?, reason?, force?}``) goes to the service unchanged and
  its 409/422 answers keep their status and code.

Each is gated on the service's capability document (``execution.graph``,
``workflow.topology``, ``workflow.runs``, ``workflow.replay``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from relayna_studio._execution_view import build_execution_view, graph_mermaid
from relayna_studio._federation import Federation, payload_aliases, task_path
from relayna_studio._http import (
    Ctx,
    HTTPProblem,
    JSONResponse,
    query_problem,
    read_json,
    studio_route,
)
from relayna_studio._models import validate_service_id
from relayna_studio._routes_federation import task_id_param
from relayna_studio._task_ref import build_task_ref

__all__ = ["MERMAID_MEDIA_TYPE", "graph_routes"]

MERMAID_MEDIA_TYPE = "text/vnd.mermaid"
_FORMATS = ("json", "mermaid", "view")
_REPLAY_SUFFIX = "/replay"


def _only(request: Request, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise query_problem(unknown[0], "unknown query parameter")


def graph_routes() -> list[BaseRoute]:
    async def graph(request: Request, ctx: Ctx) -> Response:
        """An execution graph (``?format=json|mermaid|view``)."""
        service_id = validate_service_id(request.path_params["service_id"])
        rest = str(request.path_params["rest"])
        if not rest.endswith("/graph"):
            raise HTTPProblem(404, "Not Found")
        task_id = task_id_param(rest[: -len("/graph")])
        _only(request, ("format",))
        fmt = request.query_params.get("format", "json")
        if fmt not in _FORMATS:
            raise query_problem("format", "one of json, mermaid, view")
        record, body = await Federation(ctx.runtime).fetch(
            service_id, "execution.graph", "GET", task_path("/executions/{task_id}/graph", task_id)
        )
        if fmt == "mermaid":
            return PlainTextResponse(graph_mermaid(body), media_type=MERMAID_MEDIA_TYPE)
        ref = build_task_ref(
            service_id, task_id, graph=body, aliases=payload_aliases(record.get("capabilities"))
        )
        body.update(service_id=service_id, task_ref=ref)
        for node in body.get("nodes") or []:
            if isinstance(node, dict):
                node["service_id"] = service_id
                node["task_ref"] = ref
        if fmt == "view":
            view = build_execution_view(body, task_id=task_id)
            view.update(service_id=service_id, task_ref=ref)
            return JSONResponse(view)
        return JSONResponse(body)

    async def topology(request: Request, ctx: Ctx) -> Response:
        """The service's workflow topology (stages, entry routes, edges)."""
        service_id = validate_service_id(request.path_params["service_id"])
        _only(request, ())
        body = await Federation(ctx.runtime).call(
            service_id, "workflow.topology", "GET", "/workflow/topology"
        )
        body["service_id"] = service_id
        return JSONResponse(body)

    async def _run_call(
        request: Request, ctx: Ctx, route: str, method: str, task_id: str, **kw: Any
    ) -> Response:
        service_id = validate_service_id(request.path_params["service_id"])
        suffix = _REPLAY_SUFFIX if route == "workflow.replay" else ""
        path = task_path("/workflow/runs/{task_id}", task_id) + suffix
        record, body = await Federation(ctx.runtime).fetch(service_id, route, method, path, **kw)
        body.update(
            service_id=service_id,
            task_ref=build_task_ref(
                service_id, task_id, aliases=payload_aliases(record.get("capabilities"))
            ),
        )
        return JSONResponse(body)

    async def run(request: Request, ctx: Ctx) -> Response:
        """A workflow run: state, messages, lineage and diagnosis."""
        _only(request, ())
        task_id = task_id_param(request.path_params["task_id"])
        return await _run_call(request, ctx, "workflow.runs", "GET", task_id)

    async def replay(request: Request, ctx: Ctx) -> Response:
        """Resume a workflow run, or replay one of its stages (operator)."""
        _only(request, ())
        task_id = task_id_param(request.path_params["task_id"])
        body: Any = None
        if request.headers.get("content-length", "0") != "0" or request.headers.get(
            "transfer-encoding"
        ):
            body = await read_json(request, ctx.runtime.settings.request_max_body_bytes)
            if not isinstance(body, dict):
                raise HTTPProblem(
                    422, [{"loc": ["body"], "msg": "expected a JSON object", "type": "value_error"}]
                )
        return await _run_call(
            request, ctx, "workflow.replay", "POST", task_id, json=body, keep=(409, 422)
        )

    one = "/studio/services/{service_id}"
    return [
        studio_route(
            f"{one}/executions/{{rest:path}}",
            graph,
            methods=["GET"],
            role="reader",
            query=("format",),
        ),
        studio_route(f"{one}/workflow/topology", topology, methods=["GET"], role="reader"),
        studio_route(
            f"{one}/workflow/runs/{{task_id:path}}{_REPLAY_SUFFIX}",
            replay,
            methods=["POST"],
            role="operator",
            action="workflow.replay",
        ),
        studio_route(f"{one}/workflow/runs/{{task_id:path}}", run, methods=["GET"], role="reader"),
    ]
