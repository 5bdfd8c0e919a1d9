"""``relayna dev``: the whole system in one process.

Broker, store, demo worker (with its aggregation consumer and its two-stage
workflow), status hub and a Starlette app (status routes, workflow routes,
``POST /tasks``, ``GET /``) share one task group with Studio (when
relayna-studio is installed) and the demo service registered in it;
leaving it (Ctrl-C) drains the worker and ends every SSE stream.
"""

from relayna.devserver._app import build_app, task_page_routes
from relayna.devserver._demo import DEMO_TASK_TYPES, demo_handler, demo_topology
from relayna.devserver._run import DevComponent, DevConfig, DevUrls, run_dev, run_dev_system
from relayna.devserver._studio import (
    STUDIO_INSTALL_HINT,
    DevStudioConfig,
    studio_installed,
    studio_start_url,
)
from relayna.devserver._workflow import WORKFLOW_TASK_TYPE, demo_workflow_topology

__all__ = [
    "DEMO_TASK_TYPES",
    "STUDIO_INSTALL_HINT",
    "WORKFLOW_TASK_TYPE",
    "DevComponent",
    "DevConfig",
    "DevStudioConfig",
    "DevUrls",
    "build_app",
    "demo_handler",
    "demo_topology",
    "demo_workflow_topology",
    "run_dev",
    "run_dev_system",
    "studio_installed",
    "studio_start_url",
    "task_page_routes",
]
