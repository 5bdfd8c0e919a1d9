"""The Studio web UI: the built bundle (``ui_dist/``) served by the Studio app.

``/assets/*`` are content-hashed files: served with a year-long immutable
cache. Every other ``GET`` that is not an API path (``/studio/...``,
``/metrics``) answers the app's ``index.html`` (never cached), so a deep
link such as ``/tasks/svc/t1`` opens that page. The routes go after every
API route.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["UI_DIST", "ui_routes"]

#: The bundle built from ``studio/ui`` and shipped in the package.
UI_DIST = Path(str(resources.files("relayna_studio").joinpath("ui_dist")))

_API_PREFIXES = ("studio/", "metrics")


class _ImmutableFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


def ui_routes(dist: Path = UI_DIST) -> list[BaseRoute]:
    """Routes serving the UI from ``dist`` (must hold ``index.html``)."""
    index = dist / "index.html"

    async def page(request: Request) -> Response:
        path = request.path_params.get("path", "")
        if path == "studio" or path.startswith(_API_PREFIXES):
            raise HTTPException(404, "Not Found")
        if not index.is_file():
            raise HTTPException(404, "the Studio UI bundle is not installed")
        return FileResponse(index, media_type="text/html", headers={"cache-control": "no-cache"})

    return [
        Mount("/assets", app=_ImmutableFiles(directory=dist / "assets", check_dir=False)),
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/{path:path}", page, methods=["GET", "HEAD"]),
    ]
