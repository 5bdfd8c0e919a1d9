"""The OpenAPI document is generated from route declarations, and it is valid."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from starlette.responses import Response
from starlette.routing import Host, Mount, Route

from relayna.api import (
    Link,
    Operation,
    Parameter,
    ResponseSpec,
    document,
    json_content,
    openapi_document,
    openapi_route,
    status_routes,
    undocumented_routes,
)
from relayna.contracts import ContractAliasConfig
from relayna.devserver import build_app
from relayna.errors import ConfigurationError


async def _ok(_request: object) -> Response:
    return Response()


def _op(summary: str, schema: dict[str, object] | None = None) -> Operation:
    return Operation(
        summary=summary,
        parameters=[Parameter("name", "path")],
        responses={200: ResponseSpec("ok", json_content({"$ref": "#/components/schemas/Thing"}))},
        components={"Thing": schema or {"type": "object"}},
    )


def test_status_routes_document_themselves_and_the_document_is_valid() -> None:
    routes = [*status_routes(), openapi_route()]
    doc = openapi_document(routes, title="t", version="1")
    validate(doc)  # the OpenAPI 3.1 meta-schema
    assert set(doc["paths"]) == {"/status/{task_id}", "/events/{task_id}", "/history",
                                 "/openapi.json"}  # fmt: skip
    assert undocumented_routes(routes) == []
    history = doc["paths"]["/history"]["get"]
    assert {p["name"] for p in history["parameters"]} >= {"task_id", "start_offset", "limit"}
    assert (
        "stopped_by"
        in history["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    )


def test_aliases_rename_the_documented_parameter_and_fields() -> None:
    aliases = ContractAliasConfig(http_aliases={"task_id": "documentId"})
    doc = openapi_document(status_routes(aliases=aliases), title="t", version="1")
    validate(doc)
    assert "/status/{documentId}" in doc["paths"]


def test_mounts_and_hosts_are_walked_and_converters_dropped() -> None:
    inner = document(Route("/things/{name:str}", _ok), get=_op("a thing"))
    routes = [
        Mount("/api/{version:int}", routes=[inner]),
        Host("example.org", Mount("", routes=[])),
    ]
    doc = openapi_document(routes, title="t", version="1")
    assert list(doc["paths"]) == ["/api/{version}/things/{name}"]


def test_the_dev_app_documents_every_route() -> None:
    app = build_app(runtime=None, client=None)  # type: ignore[arg-type]
    assert undocumented_routes(app.routes) == []
    validate(openapi_document(app.routes, title="relayna dev", version="1"))


def test_an_accepted_task_links_to_where_it_is_followed() -> None:
    app = build_app(runtime=None, client=None)  # type: ignore[arg-type]
    doc = openapi_document(app.routes, title="relayna dev", version="1")
    links = doc["paths"]["/tasks"]["post"]["responses"]["202"]["links"]
    assert {name: link["operationId"] for name, link in links.items()} == {
        "status": "latest_status_task_id",
        "events": "status_events_task_id",
        "history": "status_history_task_id",
        "graph": "execution_graph_task_id",
    }  # no DLQ routes in this app: no link to them
    assert links["history"]["parameters"] == {"query.task_id": "$response.body#/task_id"}


def test_a_link_to_an_operation_the_app_does_not_serve_is_a_configuration_error() -> None:
    linking = Operation(
        summary="a",
        responses={200: ResponseSpec("ok", links={"next": Link("gone", {"path.x": "$url"})})},
    )
    with pytest.raises(ConfigurationError, match="'gone'"):
        openapi_document([document(Route("/a", _ok), get=linking)], title="t", version="1")


def test_a_route_without_a_declaration_is_reported() -> None:
    assert undocumented_routes([Route("/x", _ok, methods=["GET", "POST"])]) == ["GET /x", "POST /x"]


def test_conflicting_declarations_are_configuration_errors() -> None:
    a = document(Route("/a/{name}", _ok), get=_op("a"))
    b = document(Route("/b/{name}", _ok), get=_op("b", {"type": "string"}))
    with pytest.raises(ConfigurationError, match="Thing"):
        openapi_document([a, b], title="t", version="1")
    with pytest.raises(ConfigurationError, match="twice"):
        openapi_document([a, document(Route("/a/{name}", _ok), get=_op("a"))], title="t",
                         version="1")  # fmt: skip
    with pytest.raises(ConfigurationError, match="not HTTP methods"):
        document(Route("/c", _ok), fetch=_op("c"))
