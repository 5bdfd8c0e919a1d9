"""Renamed and retired public names still work, with a DeprecationWarning that says what to use."""

from __future__ import annotations

import importlib
import warnings

import pytest

from relayna.transport import Script


def test_api_json_response_is_the_orjson_response() -> None:
    import relayna.api

    with pytest.warns(DeprecationWarning, match="ORJSONResponse"):
        old = relayna.api.JSONResponse
    assert old is relayna.api.ORJSONResponse


def test_the_conformance_suites_old_status_script_is_still_importable() -> None:
    import relayna.testing

    with pytest.warns(DeprecationWarning, match="WRITE_STATUS_SCRIPT"):
        script = relayna.testing.STATUS_WRITE_SCRIPT
    assert isinstance(script, Script)
    assert "LPUSH" in script.lua


def test_a_python_twin_is_accepted_and_ignored() -> None:
    with pytest.warns(DeprecationWarning, match="ignored"):
        script = Script(name="x", lua="return 1", python=lambda ops, keys, args: 1)
    assert script == Script(name="x", lua="return 1")


#: Each retired transport module and every name it still resolves.
_OLD_TRANSPORT_MODULES = {
    "relayna.transport.memory_store": ("MemoryStore", "open_memory_store"),
    "relayna.transport.coredis_store": ("CoredisStore", "open_coredis_store"),
    "relayna.transport.redispy_store": ("RedisPyStore", "open_redispy_store"),
    "relayna.transport.aiormq_broker": ("AiormqBroker", "open_aiormq_broker"),
    "relayna.transport.pubsub": (
        "DEFAULT_SUBSCRIBER_BUFFER",
        "PubSubMultiplexer",
        "RawEvent",
        "RawMessage",
        "RawPubSub",
        "RawPubSubConnector",
        "RawSubscribed",
    ),
}


@pytest.mark.parametrize(
    ("old", "name"),
    [(old, name) for old, names in _OLD_TRANSPORT_MODULES.items() for name in names],
)
def test_old_transport_module_names_resolve_to_the_facades_objects(old: str, name: str) -> None:
    import relayna.transport

    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{name} is deprecated: import it from relayna"):
        value = getattr(module, name)
    assert value is getattr(relayna.transport, name)


@pytest.mark.parametrize("old", sorted(_OLD_TRANSPORT_MODULES))
def test_an_unknown_name_in_an_old_module_is_still_an_attribute_error(old: str) -> None:
    module = importlib.import_module(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for a name that never existed
        with pytest.raises(AttributeError, match="nothing_here"):
            module.nothing_here  # noqa: B018


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("IDEMPOTENCY_SCRIPT", "Idempotency"),
        ("LEASE_ACQUIRE_SCRIPT", "LeaseStore"),
        ("LEASE_RENEW_SCRIPT", "LeaseStore"),
        ("LEASE_RELEASE_SCRIPT", "LeaseStore"),
        ("WORKER_HEARTBEAT_SCRIPT", "WorkerHeartbeats"),
    ],
)
def test_the_consumer_scripts_are_deprecated_names(name: str, owner: str) -> None:
    import relayna.consumer

    assert name not in relayna.consumer.__all__
    with pytest.warns(DeprecationWarning, match=f"use {owner}"):
        script = getattr(relayna.consumer, name)
    assert isinstance(script, Script)


@pytest.mark.parametrize("name", ["CLAIM_TASK_SCRIPT", "RELEASE_TASK_SCRIPT"])
def test_the_task_id_scripts_are_deprecated_names(name: str) -> None:
    import relayna.rabbitmq

    assert name not in relayna.rabbitmq.__all__
    with pytest.warns(DeprecationWarning, match="use TaskIds"):
        script = getattr(relayna.rabbitmq, name)
    assert isinstance(script, Script)
    assert script.name.startswith("relayna.task.")


@pytest.mark.parametrize(
    ("name", "script_name"),
    [
        ("FANIN_ARRIVE_SCRIPT", "relayna.workflow.fanin_arrive"),
        ("GUARD_RELEASE_SCRIPT", "relayna.workflow.guard_release"),
        ("GUARD_RENEW_SCRIPT", "relayna.workflow.guard_renew"),
        ("RUN_CANCEL_SCRIPT", "relayna.workflow.run_cancel"),
        ("RUN_REPLAY_SCRIPT", "relayna.workflow.run_replay"),
        ("STAGE_ENTER_SCRIPT", "relayna.workflow.stage_enter"),
        ("STAGE_SETTLE_SCRIPT", "relayna.workflow.stage_settle"),
    ],
)
def test_the_workflow_scripts_are_deprecated_names(name: str, script_name: str) -> None:
    import relayna.workflow
    from relayna.workflow import _scripts

    assert name not in relayna.workflow.__all__
    with pytest.warns(DeprecationWarning, match="use WorkflowStore"):
        script = getattr(relayna.workflow, name)
    assert script is getattr(_scripts, name)
    assert script.name == script_name


@pytest.mark.parametrize(
    "name",
    [
        "TraceContext",
        "extract_trace",
        "extract_trace_context",
        "inject_trace_headers",
        "parse_traceparent",
        "parse_tracestate",
    ],
)
def test_the_trace_helpers_moved_from_rabbitmq_to_observability(name: str) -> None:
    import relayna.observability
    import relayna.rabbitmq

    assert name not in relayna.rabbitmq.__all__
    with pytest.warns(DeprecationWarning, match="import it from relayna.observability"):
        value = getattr(relayna.rabbitmq, name)
    assert value is getattr(relayna.observability, name)


def test_adapters_with_optional_dependencies_stay_out_of_the_star_import() -> None:
    import relayna.transport

    assert "open_aiormq_broker" not in relayna.transport.__all__
    assert "RedisPyStore" not in relayna.transport.__all__
    assert {"MemoryStore", "open_memory_store", "PubSubMultiplexer"} <= set(
        relayna.transport.__all__
    )
    assert "open_aiormq_broker" in dir(relayna.transport)
    with pytest.raises(AttributeError, match="nothing_here"):
        relayna.transport.nothing_here  # noqa: B018
