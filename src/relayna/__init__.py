"""relayna: a Trio/AnyIO structured-concurrency runtime for RabbitMQ tasks and live status.

The root exports the version and the application object, :class:`relayna.App`
(imported on first use, so ``import relayna`` stays light); everything else
lives in its package (``relayna.consumer``, ``relayna.api``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["App", "RetryPolicy", "TaskContext", "__version__"]

if TYPE_CHECKING:
    from relayna.app import App
    from relayna.consumer import RetryPolicy, TaskContext

_LAZY = {
    "App": "relayna.app",
    "RetryPolicy": "relayna.consumer",
    "TaskContext": "relayna.consumer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'relayna' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
