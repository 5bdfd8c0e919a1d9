import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { asRole, FakeStudio, renderApp } from "../test/server";
import type { ExecutionGraph } from "../types";
import { lifecycleWindow, workflowStages } from "./TaskDetail";

const T0 = "2026-06-01T12:00:00Z";

function studioWithTask() {
  const studio = asRole(new FakeStudio(), "reader", false);
  let graphVersion = 0;
  studio
    .on("GET", "/studio/tasks/svc/t1", {
      body: {
        service_id: "svc",
        task_id: "t1",
        task_ref: { service_id: "svc", task_id: "t1", parent_refs: [], child_refs: [{ service_id: "svc", task_id: "t1-child" }] },
        latest_status: { task_id: "t1", status: "queued", timestamp: T0, event_id: "e1" },
        history: [{ task_id: "t1", status: "queued", timestamp: T0, event_id: "e1" }],
        errors: [{ section: "dlq", detail: "DLQ index unavailable" }],
      },
    })
    .on("GET", "/studio/services/svc/executions/t1/graph", () => {
      graphVersion += 1;
      const nodes = [
        { id: "task:t1", kind: "task", label: "t1" },
        { id: "att:1", kind: "task_attempt", label: "t1 attempt 1" },
      ];
      const edges = [{ source: "task:t1", target: "att:1", kind: "received_by" }];
      if (graphVersion > 1) {
        nodes.push({ id: "retry:1", kind: "retry", label: "retry 1" }, { id: "att:2", kind: "task_attempt", label: "t1 attempt 2" });
        edges.push({ source: "att:1", target: "retry:1", kind: "retried_as" }, { source: "retry:1", target: "att:2", kind: "received_by" });
      }
      return { body: { task_id: "t1", summary: { status: "queued", graph_completeness: "full" }, nodes, edges } };
    })
    .on("GET", "/studio/tasks/svc/t1/logs", { status: 501, body: { detail: "no log_config for service svc", code: "not_configured" } })
    .on("GET", "/studio/tasks/svc/t1/metrics", { status: 502, body: { detail: "Prometheus answered 500" } })
    .on("GET", "/studio/tasks/svc/t1/traces", { body: { service_id: "svc", task_id: "t1", trace_ids: [], spans: [], warnings: [] } })
    .stream("/studio/tasks/svc/t1/stream");
  return studio;
}

const node = (id: string) => document.querySelector(`[data-node-id="${id}"]`);

describe("Task detail", () => {
  it("updates the timeline and the graph live, and shows each panel's error on its own", async () => {
    const studio = studioWithTask();
    renderApp(studio, "/tasks/svc/t1");
    await waitFor(() => expect(node("task:t1")).toHaveAttribute("data-status", "queued"));
    // The stream resumes after the last event the page already has.
    await waitFor(() => expect(studio.streams).toHaveLength(1));
    expect(studio.requests("GET", "/studio/tasks/svc/t1/stream")[0]?.headers["last-event-id"]).toBe("e1");
    await screen.findByText("live");

    const stream = studio.streams[0]!;
    stream.status("e2", { task_id: "t1", status: "processing", timestamp: "2026-06-01T12:00:01Z" });
    // The root node changes colour at once, before the graph is re-read.
    await waitFor(() => expect(node("task:t1")).toHaveAttribute("data-status", "processing"));
    stream.status("e3", { task_id: "t1", status: "retrying", timestamp: "2026-06-01T12:00:02Z" });
    // New nodes arrive from the re-read graph; the old ones keep their place.
    const before = node("att:1")?.closest(".react-flow__node")?.getAttribute("style");
    await waitFor(() => expect(node("att:2")).not.toBeNull());
    expect(node("retry:1")).toHaveAttribute("data-status", "retrying");
    expect(node("att:1")).toHaveAttribute("data-status", "retrying");
    expect(node("att:1")?.closest(".react-flow__node")?.getAttribute("style")).toBe(before);

    const timeline = screen.getByTestId("timeline");
    expect(within(timeline).getAllByRole("listitem").map((li) => li.getAttribute("data-status"))).toEqual(["queued", "processing", "retrying"]);
    // Sections fail alone.
    expect(await screen.findByText(/Not configured: no log_config for service svc/)).toBeInTheDocument();
    // Logs are asked for the task's lifecycle window.
    expect(studio.requests("GET", "/studio/tasks/svc/t1/logs")[0]?.query.get("from")).toBe("2026-06-01T11:59:00.000Z");
    expect(await screen.findByText(/Prometheus answered 500/)).toBeInTheDocument();
    expect(screen.getByText(/DLQ index unavailable/)).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "svc:t1-child" })).toHaveAttribute("href", "/tasks/svc/t1-child");
    expect(screen.getByText("No trace found for this task.")).toBeInTheDocument();
  });

  it("says reconnecting when the stream drops, resumes with Last-Event-ID and shows no row twice", async () => {
    const studio = studioWithTask();
    renderApp(studio, "/tasks/svc/t1");
    await waitFor(() => expect(studio.streams).toHaveLength(1));
    studio.streams[0]!.status("e2", { task_id: "t1", status: "processing", timestamp: "2026-06-01T12:00:01Z" });
    await waitFor(() => expect(screen.getByTestId("timeline").querySelectorAll("li")).toHaveLength(2));
    studio.streams[0]!.fail();
    await screen.findByText("reconnecting…");
    await waitFor(() => expect(studio.streams).toHaveLength(2), { timeout: 3000 });
    expect(studio.requests("GET", "/studio/tasks/svc/t1/stream")[1]?.headers["last-event-id"]).toBe("e2");
    // The server replays the last one again (an overlap): it is not shown twice.
    studio.streams[1]!.status("e2", { task_id: "t1", status: "processing", timestamp: "2026-06-01T12:00:01Z" });
    studio.streams[1]!.status("e4", { task_id: "t1", status: "completed", timestamp: "2026-06-01T12:00:03Z" });
    await waitFor(() => expect(node("task:t1")).toHaveAttribute("data-status", "completed"));
    expect(within(screen.getByTestId("timeline")).getAllByRole("listitem").map((li) => li.getAttribute("data-status"))).toEqual(["queued", "processing", "completed"]);
    await screen.findByText("live");
  });

  it("exports the graph as Mermaid", async () => {
    const studio = studioWithTask();
    renderApp(studio, "/tasks/svc/t1");
    const show = await screen.findByRole("button", { name: "Show" });
    show.click();
    expect(await screen.findByText(/flowchart LR/)).toHaveTextContent("n0 -->|received_by| n1");
  });
});

describe("lifecycleWindow", () => {
  it("spans the task's events, padded, and stays open until a terminal status", () => {
    const running = [
      { task_id: "t", status: "queued", timestamp: "2026-06-01T12:00:00Z" },
      { task_id: "t", status: "processing", timestamp: "2026-06-01T12:00:30Z" },
    ];
    expect(lifecycleWindow(running)).toEqual({ from: "2026-06-01T11:59:00.000Z", to: undefined });
    expect(lifecycleWindow([...running, { task_id: "t", status: "completed", timestamp: "2026-06-01T12:01:00Z" }])).toEqual({
      from: "2026-06-01T11:59:00.000Z",
      to: "2026-06-01T12:02:00.000Z",
    });
    expect(lifecycleWindow([])).toBeUndefined();
  });
});

describe("a panel that gets an answer of the wrong shape", () => {
  it("shows its own error and leaves the rest of the page working", async () => {
    const studio = studioWithTask()
      .on("GET", "/studio/tasks/svc/t1/metrics", { body: { unexpected: true } })
      .on("GET", "/studio/tasks/svc/t1/traces", { body: { service_id: "svc", task_id: "t1", trace_ids: [], spans: [null], warnings: [] } });
    renderApp(studio, "/tasks/svc/t1");
    // A shape check names what is missing...
    expect(await screen.findByText(/did not answer metrics/)).toBeInTheDocument();
    // ...and a render failure stays inside its panel.
    expect(await screen.findByText(/Trace could not be shown/)).toBeInTheDocument();
    await waitFor(() => expect(node("task:t1")).toHaveAttribute("data-status", "queued"));
    expect(screen.getByTestId("timeline")).toBeInTheDocument();
  });
});

describe("workflowStages", () => {
  it("lists a workflow task's stages in the order of their first attempt", () => {
    const attempt = (stage: string, n: number) => ({ id: `stage-attempt:t:${stage}:${n}`, kind: "stage_attempt", label: stage, annotations: { stage } });
    const graph = {
      task_id: "t",
      nodes: [{ id: "task:t", kind: "task", label: "t" }, attempt("planner", 1), attempt("worker", 1), { id: "retry:t:1", kind: "retry", label: "retry", annotations: { stage: "worker" } }, attempt("worker", 2)],
      edges: [],
    } as unknown as ExecutionGraph;
    expect(workflowStages(graph)).toEqual(["planner", "worker"]);
  });

  it("is empty for a task without stages", () => {
    expect(workflowStages({ task_id: "t", nodes: [{ id: "task:t", kind: "task", label: "t" }], edges: [] } as unknown as ExecutionGraph)).toEqual([]);
    expect(workflowStages(undefined)).toEqual([]);
  });
});

describe("Task detail of a workflow task", () => {
  function studioWithWorkflowTask() {
    const studio = asRole(new FakeStudio(), "reader", false);
    const attempt = (stage: string) => ({ id: `stage-attempt:w1:${stage}:1`, kind: "stage_attempt", label: `${stage} attempt 1`, annotations: { stage } });
    return studio
      .on("GET", "/studio/tasks/svc/w1", {
        body: {
          service_id: "svc",
          task_id: "w1",
          task_ref: { service_id: "svc", task_id: "w1", parent_refs: [], child_refs: [] },
          latest_status: { task_id: "w1", status: "completed", timestamp: T0, event_id: "e1" },
          history: [{ task_id: "w1", status: "completed", timestamp: T0, event_id: "e1" }],
          errors: [],
        },
      })
      .on("GET", "/studio/services/svc/executions/w1/graph", {
        body: {
          task_id: "w1",
          summary: { status: "completed", graph_completeness: "full" },
          nodes: [{ id: "task:w1", kind: "task", label: "w1" }, attempt("planner"), { id: "workflow-message:m2", kind: "workflow_message", label: "worker" }, attempt("worker")],
          edges: [
            { source: "task:w1", target: "stage-attempt:w1:planner:1", kind: "received_by" },
            { source: "stage-attempt:w1:planner:1", target: "workflow-message:m2", kind: "stage_transitioned_to" },
            { source: "workflow-message:m2", target: "stage-attempt:w1:worker:1", kind: "entered_stage" },
          ],
        },
      })
      .on("GET", "/studio/services/svc/workflow/runs/w1", {
        body: {
          service_id: "svc",
          run: { task_id: "w1", status: "completed", stages: [{ stage: "planner", status: "completed", attempts: 1, deliveries: 1 }, { stage: "worker", status: "completed", attempts: 2, deliveries: 2 }] },
        },
      })
      .on("GET", "/studio/tasks/svc/w1/logs", { status: 501, body: { detail: "no log_config", code: "not_configured" } })
      .on("GET", "/studio/tasks/svc/w1/metrics", { status: 501, body: { detail: "no metrics_config", code: "not_configured" } })
      .on("GET", "/studio/tasks/svc/w1/traces", { body: { service_id: "svc", task_id: "w1", trace_ids: [], spans: [], warnings: [] } })
      .stream("/studio/tasks/svc/w1/stream");
  }

  it("shows the stages from the graph and the run from Studio's federated run route", async () => {
    const studio = studioWithWorkflowTask();
    renderApp(studio, "/tasks/svc/w1");
    expect(await screen.findByTestId("workflow-stages")).toHaveTextContent("planner → worker");
    const run = await screen.findByTestId("workflow-run");
    expect(within(run).getAllByRole("row").slice(1).map((r) => [r.getAttribute("data-stage"), r.getAttribute("data-status"), (r as HTMLTableRowElement).cells[2]?.textContent])).toEqual([
      ["planner", "completed", "1"],
      ["worker", "completed", "2"],
    ]);
    expect(studio.requests("GET", "/studio/services/svc/workflow/runs/w1").length).toBeGreaterThan(0);
  });
});
