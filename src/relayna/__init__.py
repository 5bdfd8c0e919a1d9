"""relayna: a Trio/AnyIO structured-concurrency runtime for RabbitMQ tasks and live status.

The root exports the version and the application object, :class:`relayna.App`
(``app = relayna.App(...)``, imported on first use so ``import relayna`` stays
light); everything else lives in its package (``relayna.consumer``,
``relayna.api``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["App", "__version__"]

if TYPE_CHECKING:
    from relayna.app import App


def __getattr__(name: str) -> Any:
    if name == "App":
        from relayna.app import App

        return App
    raise AttributeError(f"module 'relayna' has no attribute {name!r}")
