"""OpenAPI 3.1 documents generated from the route definitions.

Theory of operation. A route declares its schema where it is defined:
:func:`document` attaches one :class:`Operation` per HTTP method to a Starlette
route (``document(Route(...), get=Operation(...))``). Nothing else is written
by hand: :func:`openapi_document` walks an app's routes (``Mount`` and ``Host``
included, path converters such as ``{task_id:relayna_id}`` reduced to
``{task_id}``), collects the operations and the component schemas they
reference, and builds the document; :func:`openapi_route` serves it as
``GET /openapi.json`` from ``request.app.routes``, so a route factory added
later (metrics, DLQ, workflow, health...) is documented by being added to the
app with its operations declared. :func:`undocumented_routes` lists routes
that declared nothing, for a test that keeps the document complete.

Why not a library: Starlette's own ``SchemaGenerator`` parses YAML out of
docstrings (untyped, unchecked, and it skips ASGI-app endpoints such as the
SSE route); apispec and spectree are built around marshmallow/pydantic
models, which relayna's attrs contracts are not. What remains is assembling a
dict, done here with typed, frozen declarations; the result is checked
against the OpenAPI 3.1 meta-schema in the tests (openapi-spec-validator) and
exercised by schemathesis against a live server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Host, Mount, Route

from relayna.errors import ConfigurationError

__all__ = [
    "ERROR_SCHEMA",
    "OPENAPI_VERSION",
    "Link",
    "Operation",
    "Parameter",
    "ResponseSpec",
    "document",
    "error_responses",
    "json_content",
    "openapi_document",
    "openapi_route",
    "operations_of",
    "undocumented_routes",
]

OPENAPI_VERSION = "3.1.0"
_ATTRIBUTE = "relayna_openapi"
_CONVERTER = re.compile(r"\{(\w+):[^}]+\}")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

JSONSchema = Mapping[str, Any]

#: ``{"detail": ...}``: every relayna error answer (a message, or a list of
#: ``{loc, msg, type}`` objects for validation errors).
ERROR_SCHEMA: JSONSchema = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "object"}},
            ]
        }
    },
}


@attrs.frozen
class Parameter:
    """A path, query or header parameter of an operation."""

    name: str
    location: Literal["path", "query", "header"]
    schema: JSONSchema = attrs.field(factory=lambda: {"type": "string"})
    required: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "in": self.location,
            "required": self.required or self.location == "path",
            "schema": dict(self.schema),
        }
        if self.description:
            out["description"] = self.description
        return out


@attrs.frozen
class Link:
    """An OpenAPI link: a value of this answer feeds a parameter of another operation.

    ``Link("latest_status_task_id", {"path.task_id": "$response.body#/task_id"})``
    says "the ``task_id`` of this answer is the ``task_id`` to ask next"; clients
    and stateful testers (schemathesis) follow it.
    """

    operation_id: str
    parameters: Mapping[str, str]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operationId": self.operation_id,
            "parameters": dict(self.parameters),
        }
        if self.description:
            out["description"] = self.description
        return out


@attrs.frozen
class ResponseSpec:
    """One documented answer: a description, a schema per media type, its links."""

    description: str
    content: Mapping[str, JSONSchema] = attrs.field(factory=dict)
    headers: Mapping[str, JSONSchema] = attrs.field(factory=dict)
    links: Mapping[str, Link] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description}
        if self.content:
            out["content"] = {media: {"schema": dict(s)} for media, s in self.content.items()}
        if self.headers:
            out["headers"] = {name: {"schema": dict(s)} for name, s in self.headers.items()}
        if self.links:
            out["links"] = {name: link.to_dict() for name, link in self.links.items()}
        return out


def json_content(schema: JSONSchema) -> dict[str, JSONSchema]:
    """``{"application/json": schema}`` for :class:`ResponseSpec` and request bodies."""
    return {"application/json": schema}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """The ``{"detail": ...}`` answers for ``codes`` (422, 404, 503 ...)."""
    reasons = {
        400: "Bad request",
        404: "Not found",
        409: "Conflict",
        413: "Body too large",
        415: "Unsupported media type",
        422: "Invalid input",
        429: "Too many requests",
        503: "Unavailable",
    }
    return {
        code: ResponseSpec(reasons.get(code, "Error"), json_content({"$ref": _ref("Error")}))
        for code in codes
    }


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"


@attrs.frozen
class Operation:
    """The documentation of one method of one route.

    Args:
        summary: one line.
        responses: status code -> :class:`ResponseSpec` (every code the
            route can answer; a test server checks this with schemathesis).
        parameters: path, query and header parameters.
        request_body: media type -> schema of the body (None: no body).
        components: schemas referenced as ``#/components/schemas/<name>``;
            the same name must mean the same schema in every operation.
        tags / description / operation_id: as in OpenAPI.
    """

    summary: str
    responses: Mapping[int, ResponseSpec]
    parameters: Sequence[Parameter] = ()
    request_body: Mapping[str, JSONSchema] | None = None
    components: Mapping[str, JSONSchema] = attrs.field(factory=dict)
    tags: Sequence[str] = ()
    description: str = ""
    operation_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary}
        if self.description:
            out["description"] = self.description
        if self.operation_id:
            out["operationId"] = self.operation_id
        if self.tags:
            out["tags"] = list(self.tags)
        if self.parameters:
            out["parameters"] = [p.to_dict() for p in self.parameters]
        if self.request_body is not None:
            out["requestBody"] = {
                "required": True,
                "content": {m: {"schema": dict(s)} for m, s in self.request_body.items()},
            }
        out["responses"] = {str(code): r.to_dict() for code, r in sorted(self.responses.items())}
        return out


def document(route: BaseRoute, **operations: Operation) -> BaseRoute:
    """Attach ``operations`` (by lower-case method: ``get=``, ``post=`` ...) to ``route``.

    Returns the route, so a factory can write ``document(Route(...), get=...)``.

    Raises:
        ConfigurationError: an unknown method name.
    """
    unknown = sorted(set(operations) - set(_METHODS))
    if unknown:
        raise ConfigurationError(f"not HTTP methods: {unknown}")
    existing = dict(operations_of(route))
    existing.update(operations)
    setattr(route, _ATTRIBUTE, existing)
    return route


def operations_of(route: BaseRoute) -> Mapping[str, Operation]:
    """The operations declared on ``route`` (empty when it declared none)."""
    found = getattr(route, _ATTRIBUTE, None)
    return found if isinstance(found, dict) else {}


def _walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, BaseRoute]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _walk(route.routes, prefix + _CONVERTER.sub(r"{\1}", route.path))
        elif isinstance(route, Host):
            yield from _walk(route.routes, prefix)
        else:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                yield prefix + _CONVERTER.sub(r"{\1}", path), route


def openapi_document(
    routes: Iterable[BaseRoute],
    *,
    title: str,
    version: str,
    description: str = "",
) -> dict[str, Any]:
    """The OpenAPI document of every documented route in ``routes``.

    Raises:
        ConfigurationError: two operations define one component name with
            different schemas, two routes document the same path + method, or
            a response links to an operation the routes do not include.
    """
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": dict(ERROR_SCHEMA)}
    for path, route in _walk(routes):
        for method, operation in operations_of(route).items():
            item = paths.setdefault(path, {})
            if method in item:
                raise ConfigurationError(f"{method.upper()} {path} is documented twice")
            item[method] = operation.to_dict()
            for name, schema in operation.components.items():
                if schemas.setdefault(name, dict(schema)) != dict(schema):
                    raise ConfigurationError(f"component schema {name!r} is defined twice")
    _check_links(paths)
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _check_links(paths: Mapping[str, Mapping[str, Any]]) -> None:
    """Every link names an operation of this document (routes are mounted per app)."""
    operations = [op for item in paths.values() for op in item.values()]
    ids = {op.get("operationId") for op in operations}
    for op in operations:
        for response in op["responses"].values():
            for name, link in response.get("links", {}).items():
                if link["operationId"] not in ids:
                    raise ConfigurationError(
                        f"link {name!r} of {op.get('operationId')} names "
                        f"{link['operationId']!r}, which this app does not serve"
                    )


def undocumented_routes(routes: Iterable[BaseRoute]) -> list[str]:
    """``"METHOD /path"`` for every route method that declared no operation."""
    missing: list[str] = []
    for path, route in _walk(routes):
        declared = operations_of(route)
        methods = getattr(route, "methods", None) or {"GET"}
        for method in sorted(m.lower() for m in methods if m != "HEAD"):
            if method not in declared:
                missing.append(f"{method.upper()} {path}")
    return missing


_OPENAPI_OPERATION = Operation(
    summary="This OpenAPI document",
    description="Generated from the route definitions of the running app.",
    responses={200: ResponseSpec("The OpenAPI 3.1 document", json_content({"type": "object"}))},
    tags=("meta",),
    operation_id="openapi",
)


def openapi_route(
    path: str = "/openapi.json", *, title: str = "relayna", version: str = "", description: str = ""
) -> BaseRoute:
    """``GET {path}``: the OpenAPI document of the app serving the request.

    Built from ``request.app.routes`` on the first request and kept (routes
    do not change while an app serves).
    """
    from relayna import __version__

    cache: dict[int, bytes] = {}

    async def endpoint(request: Request) -> Response:
        app = request.app
        body = cache.get(id(app))
        if body is None:
            doc = openapi_document(
                app.routes, title=title, version=version or __version__, description=description
            )
            body = cache[id(app)] = orjson.dumps(doc)
        return Response(body, media_type="application/json")

    return document(Route(path, endpoint, methods=["GET"]), get=_OPENAPI_OPERATION)
