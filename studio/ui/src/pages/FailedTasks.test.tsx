import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { asRole, currentLocation, FakeStudio, renderApp } from "../test/server";

const failure = {
  failure_id: "f1",
  service_id: "svc",
  service_name: "Service",
  task_id: "t9",
  queue_name: "tasks",
  source_queue_name: "tasks",
  error_type: "ValueError",
  error_message: "bad input",
  attempt: 3,
  max_attempts: 3,
  failed_at: "2026-06-01T12:00:00Z",
  investigation_status: "unreviewed",
};

function studio(role: "reader" | "operator") {
  return asRole(new FakeStudio(), role)
    .on("GET", "/studio/failed-task-email-settings", { body: { configured: false, enabled: false, batch_wait_seconds: 0, max_batch_wait_seconds: 604800, receivers: [] } })
    .on("GET", "/studio/failed-tasks", (c) => ({
      body: c.query.get("cursor") ? { items: [{ ...failure, failure_id: "f2", task_id: "t10" }], next_cursor: null } : { items: [failure], next_cursor: "c1", errors: [{ service_id: "down", detail: "service down timed out" }] },
    }))
    .on("GET", "/studio/failed-tasks/svc/f1", { body: { ...failure, payload: { n: 1 } } });
}

describe("Failed tasks", () => {
  it("keeps filters in the URL, pages with the cursor and shows a dead service's error", async () => {
    const s = studio("reader");
    renderApp(s, "/failed-tasks?error_type=ValueError");
    expect(await screen.findByText("t9")).toBeInTheDocument();
    expect(s.requests("GET", "/studio/failed-tasks")[0]?.query.get("error_type")).toBe("ValueError");
    expect(screen.getByText(/service down timed out/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Load next page" }));
    expect(await screen.findByText("t10")).toBeInTheDocument();
    expect(s.requests("GET", "/studio/failed-tasks")[1]?.query.get("cursor")).toBe("c1");
    await userEvent.type(screen.getByLabelText("worker id"), "w-7");
    await userEvent.click(screen.getByRole("button", { name: "Apply" }));
    await waitFor(() => expect(currentLocation()).toContain("worker_id=w-7"));
    expect(currentLocation()).toContain("error_type=ValueError");
  });

  it("blocks an invalid JSON override in the browser and sends a valid one", async () => {
    const s = studio("operator").on("POST", "/studio/failed-tasks/svc/f1/retry", (c) => ({
      body: { failure_id: "f1", target_queue: (c.body as { target_queue: string }).target_queue, retry_status: "queued", retried_at: "2026-06-01T12:01:00Z", retried_task_id: "t9-r" },
    }));
    renderApp(s, "/failed-tasks");
    await userEvent.click(await screen.findByRole("button", { name: "Open failure f1" }));
    const box = await screen.findByLabelText(/Override payload/);
    await userEvent.type(box, "{{bad json");
    await userEvent.click(screen.getByRole("button", { name: "Retry task" }));
    expect(await screen.findByText(/not valid JSON/)).toBeInTheDocument();
    await userEvent.clear(box);
    await userEvent.type(box, "[[1, 2]");
    await userEvent.click(screen.getByRole("button", { name: "Retry task" }));
    expect(await screen.findByText(/must be a JSON object/)).toBeInTheDocument();
    expect(s.requests("POST", "/studio/failed-tasks/svc/f1/retry")).toHaveLength(0);

    await userEvent.clear(box);
    await userEvent.type(box, '{{"n": 2}');
    await userEvent.click(screen.getByRole("button", { name: "Retry task" }));
    expect(await screen.findByText(/as t9-r/)).toBeInTheDocument();
    expect(s.requests("POST", "/studio/failed-tasks/svc/f1/retry")[0]?.body).toEqual({ target_queue: "tasks", override_payload: { n: 2 } });
  });

  it("shows the backend's 422 when it refuses a retry", async () => {
    const s = studio("operator").on("POST", "/studio/failed-tasks/svc/f1/retry", { status: 422, body: { detail: [{ loc: ["body", "override_payload"], msg: "expected an object" }] } });
    renderApp(s, "/failed-tasks");
    await userEvent.click(await screen.findByRole("button", { name: "Open failure f1" }));
    await userEvent.click(await screen.findByRole("button", { name: "Retry task" }));
    expect(await screen.findByText(/override_payload: expected an object/)).toBeInTheDocument();
  });

  it("offers readers no retry, investigate or delete", async () => {
    renderApp(studio("reader"), "/failed-tasks");
    await userEvent.click(await screen.findByRole("button", { name: "Open failure f1" }));
    await screen.findByText("Download JSON");
    expect(screen.queryByRole("button", { name: "Retry task" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Mark investigated" })).toBeNull();
    expect(screen.queryByRole("button", { name: /Delete/ })).toBeNull();
  });
});
