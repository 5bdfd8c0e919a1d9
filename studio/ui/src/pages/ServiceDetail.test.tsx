import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { asRole, FakeStudio, renderApp } from "../test/server";
import { topologyGraph } from "./Topology";

const service = { service_id: "svc", name: "Svc", environment: "dev", auth_mode: "none", base_url: "http://svc.test", tags: [], status: "healthy", health: { overall_status: "degraded", worker_health: { state: "stale", detail: "heartbeat 95 s old" } } };

function studio(role: "reader" | "admin") {
  return asRole(new FakeStudio(), role)
    .on("GET", "/studio/services/svc", { body: service })
    .on("GET", "/studio/services/svc/events", { body: { count: 1, items: [{ service_id: "svc", task_id: "old", event_type: "status", dedupe_key: "k1", timestamp: "2026-06-01T12:00:00Z" }] } })
    .stream("/studio/services/svc/events/stream")
    .on("GET", "/studio/services/svc/pods", { body: { service_id: "svc", count: 2, pods: [{ name: "svc-a", phase: "Running" }, { name: "svc-b", phase: "Pending" }] } })
    .on("GET", "/studio/services/svc/metrics", (c) => ({
      body: {
        service_id: "svc",
        from: "2026-06-01T11:00:00Z",
        to: "2026-06-01T12:00:00Z",
        step_seconds: 30,
        approximate: false,
        warnings: [],
        series: [{ metric: "cpu_usage", unit: "cores", labels: { pod: c.query.getAll("pod").join("+") || "all" }, points: [{ timestamp: "2026-06-01T11:00:00Z", value: 0.2 }] }],
      },
    }))
    .on("GET", "/studio/services/svc/logs", { status: 501, body: { detail: "no log_config" } });
}

describe("Service detail", () => {
  it("merges live activity into the retained events by dedupe key", async () => {
    const s = studio("reader");
    renderApp(s, "/services/svc");
    expect(await screen.findByText("workers stale: heartbeat 95 s old")).toBeInTheDocument();
    await waitFor(() => expect(s.streams).toHaveLength(1));
    s.streams[0]!.send('id: k2\nevent: event\ndata: {"service_id":"svc","task_id":"new","event_type":"status","timestamp":"2026-06-01T12:00:05Z"}\n\n');
    s.streams[0]!.send('id: k1\nevent: event\ndata: {"service_id":"svc","task_id":"old","event_type":"status","dedupe_key":"k1"}\n\n');
    const list = await screen.findByRole("link", { name: "new" });
    const items = within(list.closest("ol") as HTMLElement).getAllByRole("listitem");
    expect(items.map((li) => li.textContent)).toEqual([expect.stringContaining("new"), expect.stringContaining("old")]);
    expect(screen.getByText(/Not configured: no log_config/)).toBeInTheDocument();
    // Readers get no registry actions.
    expect(screen.queryByRole("button", { name: "Disable" })).toBeNull();
  });

  it("asks metrics for the chosen pods; deselect all means no pods, not all", async () => {
    const s = studio("reader");
    renderApp(s, "/services/svc");
    await screen.findByText("svc-b");
    const metrics = () => s.requests("GET", "/studio/services/svc/metrics");
    await waitFor(() => expect(metrics()).toHaveLength(1));
    expect(metrics()[0]?.query.getAll("pod")).toEqual([]);
    await userEvent.click(screen.getByRole("checkbox", { name: "svc-b" }));
    await waitFor(() => expect(metrics().at(-1)?.query.getAll("pod")).toEqual(["svc-a"]));
    expect(metrics().at(-1)?.query.get("split_by_pod")).toBe("true");
    const before = metrics().length;
    await userEvent.click(screen.getByRole("button", { name: "Deselect all" }));
    expect(await screen.findByText("No pods selected.")).toBeInTheDocument();
    expect(metrics()).toHaveLength(before);
  });

  it("disables a service only after confirmation (admin)", async () => {
    const s = studio("admin").on("PATCH", "/studio/services/svc", (c) => ({ body: { ...service, ...(c.body as object) } }));
    renderApp(s, "/services/svc");
    await userEvent.click(await screen.findByRole("button", { name: "Disable" }));
    expect(s.requests("PATCH", "/studio/services/svc")).toHaveLength(0);
    await userEvent.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Disable" }));
    await waitFor(() => expect(s.requests("PATCH", "/studio/services/svc")[0]?.body).toEqual({ status: "disabled" }));
  });
});

describe("Topology graph", () => {
  it("turns stages, entry routes and transitions into one graph without duplicate edges", () => {
    const g = topologyGraph({
      stages: [{ name: "plan", next_stages: ["write"] }, { name: "write", terminal: true }],
      entry_routes: [{ route: "tasks.plan", stage: "plan" }],
      edges: [{ source: "plan", target: "write" }],
    });
    expect(g.nodes.map((n) => n.id)).toEqual(["stage:plan", "stage:write", "route:0"]);
    expect(g.edges.map((e) => `${e.source}>${e.target}`)).toEqual(["route:0>stage:plan", "stage:plan>stage:write"]);
  });
});

describe("Admin", () => {
  it("creates a token, shows it once, and keeps non-admins out", async () => {
    const s = asRole(new FakeStudio(), "admin")
      .on("GET", "/studio/auth/tokens", { body: { count: 1, tokens: [{ token_id: "t1", name: "ci", role: "reader", created_at: "2026-06-01T12:00:00Z" }] } })
      .on("POST", "/studio/auth/tokens", { status: 201, body: { token_id: "t2", name: "ops", role: "operator", token: "rst_secret" } })
      .on("GET", "/studio/audit", { body: { count: 1, items: [{ id: 1, at: "2026-06-01T12:00:00Z", actor: "root", action: "service.delete", target: "svc", outcome: "success" }], next_cursor: null } });
    renderApp(s, "/admin");
    expect(await screen.findByText("service.delete")).toBeInTheDocument();
    await userEvent.type(screen.getByLabelText("name"), "ops");
    await userEvent.selectOptions(screen.getByLabelText("role"), "operator");
    await userEvent.click(screen.getByRole("button", { name: "Create token" }));
    expect(await screen.findByText("rst_secret")).toBeInTheDocument();
    expect(s.requests("POST", "/studio/auth/tokens")[0]?.body).toEqual({ name: "ops", role: "operator" });
  });

  it("sends readers back to the overview", async () => {
    const s = asRole(new FakeStudio(), "reader").on("GET", "/studio/services", { body: { count: 0, services: [] } });
    renderApp(s, "/admin");
    expect(await screen.findByText("What needs attention now")).toBeInTheDocument();
    expect(s.requests("GET", "/studio/audit")).toHaveLength(0);
  });
});
