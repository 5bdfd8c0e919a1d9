"""``relayna.App``: a service's tasks declared with a decorator.

::

    app = relayna.App(name="reports")

    @app.task("report.render", retry=RetryPolicy(max_retries=2))
    async def render(ctx, payload):
        return {"pages": 3}

A thin layer over the explicit API (topology, ``TaskConsumer``,
``open_relayna_runtime``): see ``docs/app.md``.
"""

from relayna.app._app import App, Task, cluster_keys_from_env, replicas_from_env
from relayna.app._handle import StatusEvents, TaskFailed, TaskHandle

__all__ = [
    "App",
    "StatusEvents",
    "Task",
    "TaskFailed",
    "TaskHandle",
    "cluster_keys_from_env",
    "replicas_from_env",
]
