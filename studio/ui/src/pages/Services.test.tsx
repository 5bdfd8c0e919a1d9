import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { asRole, currentLocation, FakeStudio, renderApp } from "../test/server";
import type { ServiceRecord } from "../types";

const svc = (id: string, overall: string, extra: Partial<ServiceRecord> = {}): ServiceRecord => ({
  service_id: id,
  name: `${id} name`,
  environment: "prod",
  auth_mode: "internal_network",
  base_url: `http://${id}.svc.local`,
  tags: ["core"],
  status: "healthy",
  health: {
    overall_status: overall as never,
    last_checked_at: "2026-06-01T12:00:00Z",
    http_status: overall === "unreachable" ? { state: "unreachable", error_detail: "connection refused" } : { state: "ok" },
    observation_freshness: { state: overall === "stale" ? "stale" : "fresh" },
  },
  ...extra,
});

function studio(role: "reader" | "admin", services = [svc("pay", "healthy"), svc("mail", "unreachable"), svc("ship", "stale", { environment: "dev" })]) {
  return asRole(new FakeStudio(), role).on("GET", "/studio/services", { body: { count: services.length, services } });
}

describe("Overview", () => {
  it("lists what needs attention, worst first, and filters by environment", async () => {
    renderApp(studio("reader"), "/");
    const table = await screen.findByRole("table");
    const rows = within(table).getAllByRole("row").slice(1).map((r) => r.textContent);
    expect(rows[0]).toContain("mail name");
    expect(rows[0]).toContain("http unreachable: connection refused");
    expect(rows[1]).toContain("ship name");
    expect(rows[1]).toContain("observations stale");
    await userEvent.selectOptions(screen.getByLabelText(/Environment/), "dev");
    await waitFor(() => expect(within(screen.getByRole("table")).getAllByRole("row")).toHaveLength(2));
    expect(currentLocation()).toBe("/?environment=dev");
  });

  it("says so when nothing needs attention", async () => {
    renderApp(studio("reader", [svc("pay", "healthy")]), "/");
    expect(await screen.findByText(/Nothing needs attention/)).toBeInTheDocument();
  });
});

describe("Services", () => {
  it("deletes only after the service id is typed", async () => {
    const s = studio("admin").on("DELETE", "/studio/services/pay", { status: 204 });
    renderApp(s, "/services");
    await userEvent.click(await screen.findByRole("button", { name: "Delete pay" }));
    const confirm = screen.getByRole("button", { name: "Delete service" });
    expect(confirm).toBeDisabled();
    await userEvent.type(screen.getByLabelText(/Type/), "pa");
    expect(confirm).toBeDisabled();
    await userEvent.type(screen.getByLabelText(/Type/), "y");
    expect(confirm).toBeEnabled();
    await userEvent.click(confirm);
    await waitFor(() => expect(s.requests("DELETE", "/studio/services/pay")).toHaveLength(1));
  });

  it("registers a service with a Loki config and shows the backend's refusal (egress policy)", async () => {
    const s = studio("admin").on("POST", "/studio/services", { status: 422, body: { detail: "base_url host 127.0.0.1 is not in the egress allowlist" } });
    renderApp(s, "/services");
    await userEvent.click(await screen.findByRole("button", { name: "Register service" }));
    const form = screen.getByRole("form", { name: "Register a service" });
    await userEvent.type(within(form).getByLabelText("Service id"), "local");
    await userEvent.type(within(form).getByLabelText("Name"), "Local");
    await userEvent.type(within(form).getByLabelText("Base URL"), "http://127.0.0.1:9000");
    await userEvent.click(within(form).getByLabelText("Logs (Loki)"));
    await userEvent.type(within(form).getByLabelText("Loki URL"), "http://loki.svc.local:3100");
    await userEvent.click(within(form).getByRole("button", { name: "Register service" }));
    // The labels are required: refused in the browser, nothing sent.
    expect(await within(form).findByText(/at least one service selector label/)).toBeInTheDocument();
    expect(s.requests("POST", "/studio/services")).toHaveLength(0);
    await userEvent.type(within(form).getByLabelText("Service selector labels"), "service=local");
    await userEvent.click(within(form).getByRole("button", { name: "Register service" }));
    expect(await within(form).findByText(/not in the egress allowlist/)).toBeInTheDocument();
    expect(s.requests("POST", "/studio/services")[0]?.body).toMatchObject({
      service_id: "local",
      base_url: "http://127.0.0.1:9000",
      log_config: { provider: "loki", service_selector_labels: { service: "local" } },
      metrics_config: null,
    });
  });

  it("searches with filters kept in the URL", async () => {
    const s = studio("reader").on("GET", "/studio/services/search", { body: { count: 1, items: [svc("mail", "unreachable")], next_cursor: null } });
    renderApp(s, "/services");
    await userEvent.type(await screen.findByLabelText("Keyword"), "mail");
    await userEvent.click(screen.getByRole("button", { name: "Search" }));
    await screen.findByText("Matching services");
    expect(currentLocation()).toBe("/services?query=mail");
    expect(s.requests("GET", "/studio/services/search")[0]?.query.get("query")).toBe("mail");
    expect(screen.queryByRole("button", { name: "Register service" })).toBeNull();
  });
});

describe("Task search", () => {
  it("puts the filters in the URL and opens the task", async () => {
    const s = asRole(new FakeStudio(), "reader").on("GET", "/studio/tasks/search", {
      body: { count: 1, items: [{ service_id: "svc", task_id: "abc", status: "completed", updated_at: "2026-06-01T12:00:00Z" }], next_cursor: null },
    });
    renderApp(s, "/tasks/search");
    expect(screen.queryByRole("table")).toBeNull();
    await userEvent.type(await screen.findByLabelText("task id"), "abc");
    await userEvent.click(screen.getByRole("button", { name: "Search" }));
    expect(await screen.findByRole("link", { name: "abc" })).toHaveAttribute("href", "/tasks/svc/abc");
    expect(currentLocation()).toBe("/tasks/search?task_id=abc");
    expect(s.requests("GET", "/studio/tasks/search")[0]?.query.get("task_id")).toBe("abc");
  });
});

describe("Login", () => {
  it("asks for a token when auth is on, then sends it", async () => {
    const s = new FakeStudio().on("GET", "/studio/auth/whoami", (c) =>
      c.headers.authorization === "Bearer good" ? { body: { auth_enabled: true, actor: "ops", role: "reader" } } : { status: 401, body: { detail: "missing token" } },
    );
    s.on("GET", "/studio/services", { body: { count: 0, services: [] } });
    renderApp(s, "/");
    await userEvent.type(await screen.findByLabelText("API token"), "bad");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("That token was refused.")).toBeInTheDocument();
    await userEvent.clear(screen.getByLabelText("API token"));
    await userEvent.type(screen.getByLabelText("API token"), "good");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("ops · reader")).toBeInTheDocument();
    expect(s.requests("GET", "/studio/services")[0]?.headers.authorization).toBe("Bearer good");
    expect(screen.queryByRole("link", { name: /Audit/ })).toBeNull();
  });
});
