import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { asRole, FakeStudio, renderApp } from "../test/server";

function studio(role: "reader" | "operator", routes: string[] = []) {
  let replayed = false;
  return asRole(new FakeStudio(), role)
    .on("GET", "/studio/services/svc", { body: { service_id: "svc", name: "svc", environment: "dev", auth_mode: "none", base_url: "http://svc.test", tags: [], status: "healthy", capabilities: { supported_routes: routes } } })
    .on("GET", "/studio/services/svc/dlq/messages", () => ({
      body: { items: [{ dlq_id: "d1", queue_name: "tasks.dlq", source_queue_name: "tasks", task_id: "t1", reason: "handler_error", state: replayed ? "replayed" : "dead_lettered", replay_count: replayed ? 1 : 0 }], next_cursor: null },
    }))
    .on("POST", "/studio/services/svc/dlq/messages/d1/replay", () => {
      replayed = true;
      return { body: { dlq_id: "d1", target_queue_name: "tasks", state: "replayed", replayed_at: "2026-06-01T12:00:00Z", replay_count: 1, forced: false } };
    });
}

describe("DLQ explorer", () => {
  it("replays after confirmation and shows the new state", async () => {
    const s = studio("operator");
    renderApp(s, "/services/svc/dlq");
    await userEvent.click(await screen.findByRole("button", { name: "Replay d1" }));
    expect(screen.getByRole("dialog")).toHaveTextContent("goes back to tasks");
    expect(s.requests("POST", /replay$/)).toHaveLength(0);
    await userEvent.click(screen.getByRole("button", { name: "Replay" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
    await waitFor(() => expect(screen.getByRole("button", { name: "Replay d1" })).toHaveTextContent("Replay again"));
    expect(screen.getByRole("table")).toHaveTextContent("replayed ×1");
    expect(s.requests("POST", /replay$/)[0]?.query.get("force")).toBeNull();
  });

  it("gives readers no replay button", async () => {
    renderApp(studio("reader"), "/services/svc/dlq");
    expect(await screen.findByText("handler_error")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /Replay/ })).toBeNull();
  });

  it("enables broker mode only when the service offers it", async () => {
    renderApp(studio("reader"), "/services/svc/dlq");
    await screen.findByText("handler_error");
    expect(screen.getByRole("button", { name: "Broker" })).toBeDisabled();
  });

  it("reads a broker queue when offered", async () => {
    const s = studio("reader", ["broker.dlq.messages"]).on("GET", "/studio/services/svc/broker/dlq/messages", { body: { service_id: "svc", items: [{ queue_name: "tasks.dlq", task_id: "t5", reason: "rejected" }] } });
    renderApp(s, "/services/svc/dlq?mode=broker");
    await userEvent.type(await screen.findByLabelText("queue name"), "tasks.dlq");
    await userEvent.click(screen.getByRole("button", { name: "Read" }));
    expect(await screen.findByText("t5")).toBeInTheDocument();
    expect(s.requests("GET", "/studio/services/svc/broker/dlq/messages")[0]?.query.get("queue_name")).toBe("tasks.dlq");
  });
});
