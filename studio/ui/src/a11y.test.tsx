// axe-core on every page as rendered in jsdom: no serious or critical
// violation (contrast is left to the browser run, jsdom cannot compute it).
import { screen } from "@testing-library/react";
import axe from "axe-core";
import { describe, expect, it } from "vitest";
import { asRole, FakeStudio, renderApp } from "./test/server";

const T = "2026-06-01T12:00:00Z";
const service = {
  service_id: "svc",
  name: "Svc",
  environment: "dev",
  auth_mode: "none",
  base_url: "http://svc.test",
  tags: ["core"],
  status: "healthy",
  health: { overall_status: "degraded", last_checked_at: T, worker_health: { state: "stale", detail: "no heartbeat for 95 s" } },
  capabilities: { supported_routes: ["broker.dlq.messages"] },
};

function studio() {
  return asRole(new FakeStudio(), "admin")
    .on("GET", "/studio/services", { body: { count: 1, services: [service] } })
    .on("GET", "/studio/services/svc", { body: service })
    .on("GET", "/studio/services/svc/events", { body: { count: 0, items: [] } })
    .stream(/\/stream$/)
    .on("GET", "/studio/services/svc/pods", { body: { service_id: "svc", count: 1, pods: [{ name: "svc-a", phase: "Running" }] } })
    .on("GET", /\/metrics$/, { body: { service_id: "svc", from: T, to: T, step_seconds: 30, approximate: true, warnings: ["pod-level approximation"], series: [] } })
    .on("GET", /\/logs$/, { body: { count: 1, items: [{ service_id: "svc", timestamp: T, source: "api", level: "info", message: "\u001b[32mok\u001b[0m" }] } })
    .on("GET", "/studio/services/svc/workflow/topology", { body: { stages: [{ name: "plan", next_stages: ["write"] }, { name: "write", terminal: true }], entry_routes: [], edges: [] } })
    .on("GET", "/studio/services/svc/dlq/messages", { body: { items: [{ dlq_id: "d1", queue_name: "q.dlq", task_id: "t1", reason: "boom", state: "dead_lettered" }] } })
    .on("GET", "/studio/failed-task-email-settings", { body: { configured: true, enabled: false, batch_wait_seconds: 0, max_batch_wait_seconds: 604800, receivers: ["a@b.test"] } })
    .on("GET", "/studio/failed-tasks", { body: { items: [{ failure_id: "f1", service_id: "svc", task_id: "t1", error_type: "E", failed_at: T }] } })
    .on("GET", "/studio/tasks/search", { body: { items: [{ service_id: "svc", task_id: "t1", status: "completed" }] } })
    .on("GET", "/studio/tasks/svc/t1", { body: { service_id: "svc", task_id: "t1", history: { events: [{ task_id: "t1", status: "completed", timestamp: T, event_id: "e1" }] } } })
    .on("GET", "/studio/services/svc/executions/t1/graph", { body: { task_id: "t1", nodes: [{ id: "task:t1", kind: "task", label: "t1" }], edges: [] } })
    .on("GET", "/studio/tasks/svc/t1/traces", { body: { service_id: "svc", task_id: "t1", trace_ids: [], spans: [], warnings: [] } })
    .on("GET", "/studio/auth/tokens", { body: { count: 0, tokens: [] } })
    .on("GET", "/studio/audit", { body: { count: 0, items: [] } });
}

const PAGES: [string, string][] = [
  ["/", "What needs attention now"],
  ["/services", "Registered services"],
  ["/services/svc", "Recent activity"],
  ["/services/svc/topology", "Workflow topology"],
  ["/services/svc/dlq", "Indexed dead letters"],
  ["/failed-tasks", "Failures"],
  ["/tasks/search?task_id=t1", "Tasks"],
  ["/tasks/svc/t1", "Execution graph"],
  ["/admin", "Audit log"],
];

describe("accessibility", () => {
  it.each(PAGES)("%s has no serious or critical axe violation", async (url, heading) => {
    renderApp(studio(), url);
    await screen.findByRole("heading", { name: heading });
    const result = await axe.run(document.body, { rules: { "color-contrast": { enabled: false } } });
    const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    expect(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.html).join(" | ")}`)).toEqual([]);
  });
});
