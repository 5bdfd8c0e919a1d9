import { fireEvent, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { asRole, currentLocation, FakeStudio, renderApp } from "../test/server";

function studio(role: "reader" | "operator", routes: string[] = ["tasks.submit"]) {
  return asRole(new FakeStudio(), role)
    .on("GET", "/studio/services/svc", { body: { service_id: "svc", name: "svc", environment: "dev", auth_mode: "internal_network", base_url: "http://svc.test", tags: [], status: "healthy", capabilities: { supported_routes: routes } } })
    .on("GET", "/studio/tasks/search", { body: { count: 0, items: [], next_cursor: null } })
    .on("POST", "/studio/services/svc/tasks", { body: { service_id: "svc", task_id: "t-new", task_type: "demo.process" } })
    .on("GET", /^\/studio\/tasks\/svc\/t-new/, { body: { service_id: "svc", task_id: "t-new", history: [], dlq_messages: [], errors: [] } });
}

describe("Submit a task", () => {
  it("refuses a payload that is not a JSON object before any request", async () => {
    const s = studio("operator");
    renderApp(s, "/tasks/search?service_id=svc");
    const box = await screen.findByLabelText("Payload (JSON object)");
    fireEvent.change(box, { target: { value: "{mode: ok" } });
    await userEvent.click(screen.getByRole("button", { name: "Submit task" }));
    expect(screen.getByRole("alert")).toHaveTextContent("not valid JSON");
    expect(box).toHaveAttribute("aria-invalid", "true");
    fireEvent.change(box, { target: { value: "[1, 2]" } });
    await userEvent.click(screen.getByRole("button", { name: "Submit task" }));
    expect(screen.getByRole("alert")).toHaveTextContent("the payload must be a JSON object");
    expect(s.requests("POST", "/studio/services/svc/tasks")).toHaveLength(0);
  });

  it("posts the payload and opens the new task", async () => {
    const s = studio("operator");
    renderApp(s, "/tasks/search?service_id=svc");
    await userEvent.click(await screen.findByRole("button", { name: "dead-lettered until replayed" }));
    await userEvent.click(screen.getByRole("button", { name: "Submit task" }));
    await waitFor(() => expect(s.requests("POST", "/studio/services/svc/tasks")).toHaveLength(1));
    expect(s.requests("POST", "/studio/services/svc/tasks")[0]?.body).toEqual({ payload: { mode: "fail_until_replayed", steps: 2 } });
    await waitFor(() => expect(currentLocation()).toBe("/tasks/svc/t-new"));
  });

  it("sets the task type of a workflow example, and clears it for the others", async () => {
    const s = studio("operator");
    renderApp(s, "/tasks/search?service_id=svc");
    await userEvent.click(await screen.findByRole("button", { name: "two-stage workflow" }));
    expect(screen.getByLabelText(/^Task type/)).toHaveValue("demo.workflow");
    await userEvent.click(screen.getByRole("button", { name: "aggregation fan-out, 3 children" }));
    expect(screen.getByLabelText(/^Task type/)).toHaveValue("");
    await userEvent.click(screen.getByRole("button", { name: "two-stage workflow" }));
    await userEvent.click(screen.getByRole("button", { name: "Submit task" }));
    await waitFor(() => expect(s.requests("POST", "/studio/services/svc/tasks")).toHaveLength(1));
    expect(s.requests("POST", "/studio/services/svc/tasks")[0]?.body).toEqual({ task_type: "demo.workflow", payload: { text: "plan then work", steps: 3 } });
  });

  it("is absent for readers", async () => {
    renderApp(studio("reader"), "/tasks/search?service_id=svc");
    await screen.findByText("No task matches.");
    expect(screen.queryByRole("form", { name: "Submit a task" })).toBeNull();
  });

  it("is absent when the service does not offer it", async () => {
    renderApp(studio("operator", []), "/tasks/search?service_id=svc");
    await screen.findByText("No task matches.");
    expect(screen.queryByRole("form", { name: "Submit a task" })).toBeNull();
  });
});
