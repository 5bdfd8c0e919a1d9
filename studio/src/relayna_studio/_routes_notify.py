"""Failed-task notification settings (ANCHOR §2.2).

::

    GET   /studio/failed-task-email-settings   {configured, enabled, batch_wait_seconds,
                                                 max_batch_wait_seconds, receivers[], targets[],
                                                 updated_at}
    PATCH /studio/failed-task-email-settings   {enabled?, batch_wait_seconds? (0..604800)}

Reading needs the reader role, changing needs admin (and is audited).
Enabling while neither the email API nor a webhook is configured is 400;
``enabled`` reads ``false`` then whatever is stored.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from relayna.errors import ConfigurationError, ContractError
from relayna_studio._egress import EgressPolicy
from relayna_studio._errors import EgressDenied
from relayna_studio._http import Ctx, HTTPProblem, JSONResponse, read_json, studio_route
from relayna_studio._notify import Notifier
from relayna_studio._settings import MAX_BATCH_WAIT_SECONDS, StudioSettings
from relayna_studio._urls import parse_base_url

__all__ = ["check_notification_targets", "notify_routes"]

PATH = "/studio/failed-task-email-settings"


def check_notification_targets(settings: StudioSettings, policy: EgressPolicy) -> None:
    """Refuse, at startup, a notification URL the egress policy would refuse.

    Raises:
        ConfigurationError: naming the variable.
    """
    for name, url in (
        ("FAILED_TASK_EMAIL_SERVICE_URL", settings.failed_task_email_service_url),
        ("FAILED_TASK_WEBHOOK_URL", settings.failed_task_webhook_url),
    ):
        if not url:
            continue
        try:
            policy.check_target(parse_base_url(url, name))
        except (ContractError, EgressDenied) as exc:
            raise ConfigurationError(f"RELAYNA_STUDIO_{name}: {exc}") from None


def _changes(body: object) -> dict[str, Any]:
    errors: list[tuple[str, str]] = []
    if not isinstance(body, dict):
        raise ContractError("invalid settings", errors=[("body", "expected a JSON object")])
    for key in body:
        if key not in ("enabled", "batch_wait_seconds"):
            errors.append((str(key), "unknown field"))
    changes: dict[str, Any] = {}
    if "enabled" in body:
        if type(body["enabled"]) is not bool:
            errors.append(("enabled", "must be true or false"))
        else:
            changes["enabled"] = body["enabled"]
    if "batch_wait_seconds" in body:
        wait = body["batch_wait_seconds"]
        if type(wait) is not int or not 0 <= wait <= MAX_BATCH_WAIT_SECONDS:
            errors.append(("batch_wait_seconds", f"an integer 0..{MAX_BATCH_WAIT_SECONDS}"))
        else:
            changes["batch_wait_seconds"] = wait
    if not errors and not changes:
        errors.append(("body", "at least one of enabled, batch_wait_seconds"))
    if errors:
        raise ContractError("invalid settings", errors=errors)
    return changes


def notify_routes() -> list[BaseRoute]:
    async def read(request: Request, ctx: Ctx) -> Response:
        """Failed-task notification settings."""
        notifier = Notifier(ctx.runtime)
        return JSONResponse(notifier.document(await notifier.stored_settings()))

    async def update(request: Request, ctx: Ctx) -> Response:
        """Turn failed-task notifications on or off, or change the batch wait."""
        changes = _changes(await read_json(request, ctx.runtime.settings.request_max_body_bytes))
        notifier = Notifier(ctx.runtime)
        if changes.get("enabled") and not ctx.runtime.settings.notifications_configured:
            raise HTTPProblem(
                400,
                "failed-task notifications are not configured: set the "
                "RELAYNA_STUDIO_FAILED_TASK_EMAIL_* or RELAYNA_STUDIO_FAILED_TASK_WEBHOOK_* variables",
                code="notifications_not_configured",
            )
        return JSONResponse(notifier.document(await notifier.update_settings(changes)))

    return [
        studio_route(PATH, read, methods=["GET"], role="reader"),
        studio_route(
            PATH, update, methods=["PATCH"], role="admin", action="notifications.settings"
        ),
    ]
