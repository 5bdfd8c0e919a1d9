"""Topologies imported by the CLI tests as ``_topo_fixture:NAME``."""

from relayna.topology import SharedTasksSharedStatusTopology, build_linear_workflow_topology

topology = SharedTasksSharedStatusTopology(
    tasks_exchange="cli.tasks",
    tasks_queue="cli.tasks.q",
    tasks_routing_key="cli",
    status_exchange="cli.status",
    status_queue="cli.status.q",
)
workflow = build_linear_workflow_topology(
    workflow_exchange="cli.wf",
    status_exchange="cli.status",
    status_queue="cli.status.q",
    stage_names=["plan", "write"],
)
not_a_topology = 42
