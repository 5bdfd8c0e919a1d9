"""The OpenAPI declarations of :func:`relayna.api.dlq_routes` (schemathesis checks
the answers of a live server against them)."""

from __future__ import annotations

from typing import Any

from relayna.api._openapi import (
    Link,
    Operation,
    Parameter,
    ResponseSpec,
    error_responses,
    json_content,
)
from relayna.contracts import IDENTIFIER_SCHEMA
from relayna.dlq import INVESTIGATION_STATES, MAX_LIMIT, STATES

__all__ = ["DLQDocs"]

_S = {"type": "string"}
_S_N = {"type": ["string", "null"]}
_I = {"type": "integer"}
_I_N = {"type": ["integer", "null"]}
_OBJ = {"type": "object"}
_OBJ_N = {"type": ["object", "null"]}
_FILTER = {"type": "string", "maxLength": 1024}
_CURSOR = {"type": "string", "pattern": r"^(\d{1,16}:[A-Za-z0-9_\-]{1,128})?$"}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}
#: What :func:`relayna.dlq.parse_datetime` takes: ISO-8601 date and time,
#: optional fraction and offset (none = UTC).
_TIME = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+ -]\d{2}:\d{2})?$",
}
_ANY: dict[str, Any] = {}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
    }


_UNCONFIRMED = {
    "anyOf": [
        _object({"kind": _S, "started_at": _S_N, "target_queue": _S_N}),
        {"type": "null"},
    ]
}
_BODY = {
    "body": _ANY,
    "body_encoding": _S,
    "raw_body_b64": _S_N,
    "body_size": _I,
    "body_omitted": _S_N,
}
_STATUSES = {
    "latest_status": _OBJ_N,
    "status_history": {"type": "array", "items": _OBJ},
}


class DLQDocs:
    """Operations and component schemas for one route set (``task_id`` may be aliased)."""

    def __init__(self, id_name: str, *, authorized: bool) -> None:
        self.id_name = id_name
        self.suffix = "" if id_name == "task_id" else f".{id_name}"
        self.mutating_errors = (401, 403) if authorized else ()
        summary = {
            "dlq_id": _S,
            "queue_name": _S,
            "source_queue_name": _S,
            "retry_queue_name": _S_N,
            id_name: _S_N,
            "correlation_id": _S_N,
            "reason": _S,
            "exception_type": _S_N,
            "retry_attempt": _I,
            "max_retries": _I_N,
            "content_type": _S_N,
            "body_encoding": _S,
            "dead_lettered_at": _S,
            "state": {"enum": list(STATES)},
            "replay_count": _I,
            "replayed_at": _S_N,
            "replay_target_queue_name": _S_N,
            "payload_available": {"type": "boolean"},
            "unconfirmed_republish": _UNCONFIRMED,
        }
        failed = {
            "failure_id": _S,
            "service_id": _S_N,
            "service_name": _S,
            id_name: _S_N,
            "correlation_id": _S_N,
            "queue_name": _S,
            "source_queue_name": _S,
            "retry_queue_name": _S_N,
            "dlq_name": _S,
            "status": _S,
            "attempt": _I,
            "max_attempts": _I_N,
            "failed_at": _S,
            "error_type": _S_N,
            "error_message": _S_N,
            "worker_id": _S_N,
            "runtime_name": _S,
            "runtime_version": _S_N,
            "investigation_status": {"enum": list(INVESTIGATION_STATES)},
            "investigated_at": _S_N,
            "investigated_by": _S_N,
            "retry_status": {"enum": ["not_retried", "retried"]},
            "retried_at": _S_N,
            "retried_by": _S_N,
            "retried_task_id": _S_N,
            "retry_target_queue": _S_N,
            "payload_available": {"type": "boolean"},
        }
        self.components: dict[str, Any] = {
            self.name("DLQMessageSummary"): _object(summary),
            self.name("DLQMessageDetail"): _object(
                {
                    **summary,
                    "headers": _OBJ,
                    **_BODY,
                    **_STATUSES,
                    "diagnosis": _OBJ,
                    "exception_message": _S_N,
                    "execution_graph_url": _S_N,
                }
            ),
            self.name("FailedTaskSummary"): _object(failed),
            self.name("FailedTaskDetail"): _object(
                {
                    **failed,
                    "dlq_id": _S,
                    "reason": _S,
                    "headers": _OBJ,
                    "content_type": _S_N,
                    **_BODY,
                    "traceback": _S_N,
                    "input_preview": _S_N,
                    "metadata": _OBJ,
                    "last_logs": {"type": "array"},
                    **_STATUSES,
                    "investigation_note": _S_N,
                    "retry_note": _S_N,
                    "diagnosis": _OBJ,
                    "unconfirmed_republish": _UNCONFIRMED,
                }
            ),
            self.name("BrokerDLQMessage"): _object(
                {
                    "queue_name": _S,
                    "message_key": _S,
                    id_name: _S_N,
                    "correlation_id": _S_N,
                    "reason": _S_N,
                    "source_queue_name": _S,
                    "content_type": _S_N,
                    "body_encoding": _S,
                    "dead_lettered_at": _S_N,
                    "headers": _OBJ,
                    "body": _ANY,
                    "raw_body_b64": _S,
                    "redelivered": {"type": ["boolean", "null"]},
                    "truncated": {"type": "boolean"},
                }
            ),
            "DLQQueueSummary": _object(
                {
                    "queue_name": _S,
                    "indexed_count": _I,
                    "last_indexed_at": _S_N,
                    "exists": {"type": "boolean"},
                    "message_count": _I_N,
                }
            ),
            "DLQReplayResult": _object(
                {
                    "dlq_id": _S,
                    "target_queue_name": _S,
                    "state": {"enum": list(STATES)},
                    "replayed_at": _S,
                    "replay_count": _I,
                    "forced": {"type": "boolean"},
                }
            ),
            "FailedTaskRetryResult": _object(
                {
                    "failure_id": _S,
                    "target_queue": _S,
                    "retry_status": _S,
                    "retried_at": _S,
                    "retried_by": _S,
                    "retried_task_id": _S_N,
                }
            ),
            "DLQConflict": _object({"detail": _S, "error": _S}),
            "FailedTaskConflict": _object({"error": _S, "message": _S, "detail": _S}),
        }

    def name(self, base: str) -> str:
        return base + self.suffix

    def _op(
        self,
        summary: str,
        operation_id: str,
        responses: dict[int, ResponseSpec],
        *,
        parameters: list[Parameter] | None = None,
        body: dict[str, Any] | None = None,
        tag: str = "dlq",
    ) -> Operation:
        return Operation(
            summary=summary,
            responses=responses,
            parameters=parameters or [],
            request_body=None if body is None else json_content(body),
            components=self.components,
            tags=(tag,),
            operation_id=operation_id + self.suffix.replace(".", "_"),
        )

    def _id(self, name: str) -> Parameter:
        return Parameter(name, "path", IDENTIFIER_SCHEMA)

    def _ok(self, description: str, schema: dict[str, Any]) -> dict[int, ResponseSpec]:
        return {200: ResponseSpec(description, json_content(schema))}

    def _list(self, item: str, *, errors: bool = False) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "items": {"type": "array", "items": _ref(self.name(item))},
            "next_cursor": _S_N,
        }
        if errors:
            properties["errors"] = {"type": "array", "items": _S}
        return _object(properties)

    def queues(self, *, broker: bool) -> Operation:
        shape = _object({"queues": {"type": "array", "items": _ref("DLQQueueSummary")}})
        return self._op(
            "DLQ queues with live broker depth" + (" (incl. allowlisted)" if broker else ""),
            "broker_dlq_queues" if broker else "dlq_queues",
            {**self._ok("Queues", shape), **error_responses(503)},
        )

    def messages(self) -> Operation:
        params = [
            Parameter("queue_name", "query", _FILTER),
            Parameter(self.id_name, "query", _FILTER),
            Parameter("reason", "query", _FILTER),
            Parameter("source_queue_name", "query", _FILTER),
            Parameter("state", "query", {"enum": list(STATES)}),
            Parameter("cursor", "query", _CURSOR),
            Parameter("limit", "query", _LIMIT),
        ]
        first = {"path.dlq_id": "$response.body#/items/0/dlq_id"}
        suffix = self.suffix.replace(".", "_")
        page = ResponseSpec(
            "A page",
            json_content(self._list("DLQMessageSummary")),
            links={
                "detail": Link("dlq_message_detail" + suffix, first),
                "replay": Link("dlq_replay" + suffix, first),
            },
        )
        return self._op(
            "DLQ records, newest first",
            "dlq_messages",
            {200: page, **error_responses(422, 503)},
            parameters=params,
        )

    def detail(self) -> Operation:
        return self._op(
            "One DLQ record with its body, statuses and diagnosis",
            "dlq_message_detail",
            {
                **self._ok("The record", _ref(self.name("DLQMessageDetail"))),
                **error_responses(404, 422, 503),
            },
            parameters=[self._id("dlq_id")],
        )

    def replay(self) -> Operation:
        params = [
            self._id("dlq_id"),
            Parameter("force", "query", {"type": "boolean"}, description="replay again"),
            Parameter("direct", "query", {"type": "boolean"}, description="to the source queue"),
            Parameter(
                "target_queue", "query", {"type": "string", "minLength": 1, "maxLength": 255}
            ),
        ]
        return self._op(
            "Replay a DLQ record (exactly one concurrent replay wins)",
            "dlq_replay",
            {
                **self._ok("Replayed", _ref("DLQReplayResult")),
                409: ResponseSpec("Refused", json_content(_ref("DLQConflict"))),
                **error_responses(404, 422, 503, *self.mutating_errors),
            },
            parameters=params,
        )

    def broker_messages(self) -> Operation:
        params = [
            Parameter("queue_name", "query", _FILTER),
            Parameter(self.id_name, "query", _FILTER),
            Parameter("limit", "query", _LIMIT),
        ]
        shape = _object({"items": {"type": "array", "items": _ref(self.name("BrokerDLQMessage"))}})
        return self._op(
            "Live messages of allowlisted DLQ queues (left in the queue)",
            "broker_dlq_messages",
            {**self._ok("Messages", shape), **error_responses(400, 422, 503)},
            parameters=params,
        )

    def broker_import(self) -> Operation:
        params = [
            Parameter("queue_name", "query", {**_FILTER, "minLength": 1}, required=True),
            Parameter("limit", "query", _LIMIT),
        ]
        shape = _object(
            {
                "queue_name": _S,
                "dlq_ids": {"type": "array", "items": _S},
                "added": {"type": "array", "items": _S},
                "count": _I,
            }
        )
        return self._op(
            "Index live messages of an allowlisted DLQ queue (left in the queue; idempotent)",
            "broker_dlq_import",
            {
                **self._ok("Indexed", shape),
                **error_responses(400, 422, 503, *self.mutating_errors),
            },
            parameters=params,
        )

    def failed_list(self) -> Operation:
        params = [
            Parameter(name, "query", _FILTER)
            for name in (
                "service_name",
                "queue_name",
                "dlq_name",
                "error_type",
                "status",
                self.id_name,
                "worker_id",
            )
        ]
        params += [
            Parameter("investigation_status", "query", {"enum": list(INVESTIGATION_STATES)}),
            Parameter("failed_from", "query", _TIME),
            Parameter("failed_to", "query", _TIME),
            Parameter("cursor", "query", _CURSOR),
            Parameter("limit", "query", _LIMIT),
        ]
        return self._op(
            "Failed tasks, newest first",
            "failed_tasks_list",
            {
                **self._ok("A page", self._list("FailedTaskSummary", errors=True)),
                **error_responses(422, 503),
            },
            parameters=params,
            tag="failed_tasks",
        )

    def failed_detail(self) -> Operation:
        return self._op(
            "One failed task",
            "failed_tasks_detail",
            {
                **self._ok("The task", _ref(self.name("FailedTaskDetail"))),
                **error_responses(404, 422, 503),
            },
            parameters=[self._id("failure_id")],
            tag="failed_tasks",
        )

    def investigate(self, *, investigated: bool) -> Operation:
        body = None
        if investigated:
            body = {
                "type": "object",
                "properties": {"investigated_by": _S_N, "note": _S_N},
                "additionalProperties": False,
            }
        return self._op(
            "Mark investigated" if investigated else "Mark not investigated",
            "failed_tasks_investigate" if investigated else "failed_tasks_uninvestigate",
            {
                **self._ok("The task", _ref(self.name("FailedTaskDetail"))),
                **error_responses(404, 413, 415, 422, 503, *self.mutating_errors),
            },
            parameters=[self._id("failure_id")],
            body=body,
            tag="failed_tasks",
        )

    def retry(self) -> Operation:
        body = {
            "type": "object",
            "properties": {
                "target_queue": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
                "override_payload": _ANY,
                "retried_by": _S_N,
                "note": _S_N,
                "force": {"type": "boolean"},
            },
            "additionalProperties": False,
        }
        return self._op(
            "Publish a failed task again (once, unless forced)",
            "failed_tasks_retry",
            {
                **self._ok("Published", _ref("FailedTaskRetryResult")),
                409: ResponseSpec("Refused", json_content(_ref("FailedTaskConflict"))),
                **error_responses(404, 413, 415, 422, 503, *self.mutating_errors),
            },
            parameters=[self._id("failure_id")],
            body=body,
            tag="failed_tasks",
        )

    def delete(self) -> Operation:
        return self._op(
            "Delete a failed task's record",
            "failed_tasks_delete",
            {
                204: ResponseSpec("Deleted"),
                409: ResponseSpec("In progress", json_content(_ref("FailedTaskConflict"))),
                **error_responses(404, 422, 503, *self.mutating_errors),
            },
            parameters=[self._id("failure_id")],
            tag="failed_tasks",
        )
