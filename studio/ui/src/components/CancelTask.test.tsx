import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { asRole, FakeStudio, renderApp } from "../test/server";

const T0 = "2026-06-01T12:00:00Z";

function studio(role: "reader" | "operator", { routes = ["tasks.cancel"], status = "processing" } = {}) {
  const event = { task_id: "t1", status, timestamp: T0, event_id: "e1" };
  return asRole(new FakeStudio(), role)
    .on("GET", "/studio/services/svc", { body: { service_id: "svc", name: "svc", environment: "dev", auth_mode: "internal_network", base_url: "http://svc.test", tags: [], status: "healthy", capabilities: { supported_routes: routes } } })
    .on("GET", "/studio/tasks/svc/t1", { body: { service_id: "svc", task_id: "t1", task_ref: { service_id: "svc", task_id: "t1" }, latest_status: event, history: [event], errors: [] } })
    .on("GET", "/studio/services/svc/executions/t1/graph", { status: 501, body: { detail: "no graph", code: "unsupported_route" } })
    .on("GET", /^\/studio\/tasks\/svc\/t1\/(logs|metrics|traces)/, { status: 501, body: { detail: "not configured", code: "not_configured" } })
    .on("POST", "/studio/services/svc/tasks/t1/cancel", { status: 202, body: { service_id: "svc", task_id: "t1", state: "requested", reason: "cancelled from Studio", status: null } })
    .stream("/studio/tasks/svc/t1/stream");
}

describe("Cancel a task", () => {
  it("asks for confirmation, posts the cancel, and goes away when the task ends cancelled", async () => {
    const s = studio("operator");
    renderApp(s, "/tasks/svc/t1");
    await userEvent.click(await screen.findByRole("button", { name: "Cancel task" }));
    const dialog = screen.getByRole("dialog", { name: "Cancel t1?" });
    await userEvent.click(within(dialog).getByRole("button", { name: "Cancel" }));  // dismissed: nothing sent
    expect(s.requests("POST", "/studio/services/svc/tasks/t1/cancel")).toHaveLength(0);

    await userEvent.click(screen.getByRole("button", { name: "Cancel task" }));
    await userEvent.click(screen.getByRole("button", { name: "Yes, cancel it" }));
    await waitFor(() => expect(s.requests("POST", "/studio/services/svc/tasks/t1/cancel")).toHaveLength(1));
    expect(s.requests("POST", "/studio/services/svc/tasks/t1/cancel")[0]?.body).toEqual({ reason: "cancelled from Studio" });
    expect(await screen.findByRole("button", { name: "Cancel requested…" })).toBeDisabled();

    await waitFor(() => expect(s.streams).toHaveLength(1));
    s.streams[0]!.status("e2", { task_id: "t1", status: "cancelled", timestamp: "2026-06-01T12:00:01Z" });
    const timeline = screen.getByTestId("timeline");
    await waitFor(() => expect(within(timeline).getAllByRole("listitem").map((li) => li.getAttribute("data-status"))).toEqual(["processing", "cancelled"]));
    expect(screen.queryByRole("button", { name: /Cancel/ })).toBeNull();
  });

  it("is absent for readers, for a service without the route, and for an ended task", async () => {
    for (const [s, operator] of [
      [studio("reader"), false],
      [studio("operator", { routes: [] }), true],
      [studio("operator", { status: "completed" }), true],
    ] as const) {
      const view = renderApp(s, "/tasks/svc/t1");
      await screen.findByTestId("timeline");
      // an operator's page reads the service's capabilities (a reader's never asks)
      if (operator) await waitFor(() => expect(s.requests("GET", "/studio/services/svc").length).toBeGreaterThan(0));
      await screen.findByText("Service");
      expect(screen.queryByRole("button", { name: "Cancel task" })).toBeNull();
      view.unmount();
    }
  });

  it("cancels the run of a workflow task through the workflow route", async () => {
    const event = { task_id: "w1", status: "processing", timestamp: T0, event_id: "e1" };
    const attempt = { id: "stage-attempt:w1:planner:1", kind: "stage_attempt", label: "planner attempt 1", annotations: { stage: "planner" } };
    const s = asRole(new FakeStudio(), "operator")
      .on("GET", "/studio/services/svc", { body: { service_id: "svc", name: "svc", environment: "dev", auth_mode: "internal_network", base_url: "http://svc.test", tags: [], status: "healthy", capabilities: { supported_routes: ["tasks.cancel", "workflow.cancel", "workflow.runs"] } } })
      .on("GET", "/studio/tasks/svc/w1", { body: { service_id: "svc", task_id: "w1", task_ref: { service_id: "svc", task_id: "w1" }, latest_status: event, history: [event], errors: [] } })
      .on("GET", "/studio/services/svc/executions/w1/graph", { body: { task_id: "w1", summary: { status: "processing", graph_completeness: "full" }, nodes: [{ id: "task:w1", kind: "task", label: "w1" }, attempt], edges: [{ source: "task:w1", target: attempt.id, kind: "received_by" }] } })
      .on("GET", "/studio/services/svc/workflow/runs/w1", { status: 404, body: { detail: "no run yet", code: "upstream_not_found" } })
      .on("GET", /^\/studio\/tasks\/svc\/w1\/(logs|metrics|traces)/, { status: 501, body: { detail: "not configured", code: "not_configured" } })
      .on("POST", "/studio/services/svc/workflow/runs/w1/cancel", { status: 202, body: { service_id: "svc", task_id: "w1", state: "requested", reason: "cancelled from Studio", status: null } })
      .stream("/studio/tasks/svc/w1/stream");
    renderApp(s, "/tasks/svc/w1");
    await userEvent.click(await screen.findByRole("button", { name: "Cancel run" }));
    await userEvent.click(screen.getByRole("button", { name: "Yes, cancel it" }));
    await waitFor(() => expect(s.requests("POST", "/studio/services/svc/workflow/runs/w1/cancel")).toHaveLength(1));
    expect(s.requests("POST", "/studio/services/svc/workflow/runs/w1/cancel")[0]?.body).toEqual({ reason: "cancelled from Studio" });
    expect(s.requests("POST", "/studio/services/svc/tasks/w1/cancel")).toHaveLength(0);
    expect(await screen.findByRole("button", { name: "Cancel requested…" })).toBeDisabled();
  });
});
