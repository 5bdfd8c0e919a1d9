"""The ``relayna dev`` service: the whole runtime in one process, with a web page.

Broker, store, demo worker, status hub and a Starlette app (status routes,
``POST /tasks``, ``GET /``) share one task group; leaving it (Ctrl-C) drains
the worker and ends every SSE stream.
"""

from relayna.devserver._app import build_app, task_page_routes
from relayna.devserver._demo import DEMO_TASK_TYPES, demo_handler, demo_topology
from relayna.devserver._run import DevConfig, run_dev

__all__ = [
    "DEMO_TASK_TYPES",
    "DevConfig",
    "build_app",
    "demo_handler",
    "demo_topology",
    "run_dev",
    "task_page_routes",
]
