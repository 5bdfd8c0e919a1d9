import { describe, expect, it } from "vitest";
import { ApiError, createApi, errorMessage, normalizeTaskDetail, queryString } from "./api";
import { FakeStudio } from "./test/server";

describe("errorMessage", () => {
  it("reads every error shape the backend answers", () => {
    expect(errorMessage(502, { detail: "upstream timed out", code: "upstream_timeout", retryable: true })).toBe("upstream timed out");
    expect(errorMessage(422, { detail: [{ loc: ["body", "base_url"], msg: "host not allowed" }, { loc: ["query", "limit"], msg: "too big" }] })).toBe(
      "base_url: host not allowed; query.limit: too big",
    );
    expect(errorMessage(409, { error: "already_replayed", message: "replayed at 12:00" })).toBe("replayed at 12:00");
    expect(errorMessage(500, "<html>oops</html>")).toBe("<html>oops</html>");
    expect(errorMessage(500, null)).toBe("request failed (HTTP 500)");
  });
});

describe("queryString", () => {
  it("drops empty values and repeats arrays", () => {
    expect(queryString({ a: "x", b: "", c: undefined, d: null, group: ["cpu", "mem"], n: 0, f: false })).toBe("?a=x&group=cpu&group=mem&n=0&f=false");
    expect(queryString({})).toBe("");
  });
});

describe("createApi", () => {
  it("sends the token, encodes ids and turns error bodies into ApiError", async () => {
    const studio = new FakeStudio().on("GET", /^\/studio\/services\/.+/, { status: 502, body: { detail: "down", code: "upstream_unavailable", service_id: "a/b", retryable: true } });
    const api = createApi({ token: "tok", fetch: studio.fetch });
    const err = await api.getService("a/b").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 502, code: "upstream_unavailable", retryable: true, serviceId: "a/b", message: "down" });
    expect(studio.calls[0]?.path).toBe("/studio/services/a%2Fb");
    expect(studio.calls[0]?.headers.authorization).toBe("Bearer tok");
  });

  it("says the backend is unreachable when fetch itself fails", async () => {
    const api = createApi({ token: null, fetch: () => Promise.reject(new TypeError("failed to fetch")) });
    await expect(api.listServices()).rejects.toMatchObject({ status: 0, message: "the Studio backend cannot be reached" });
  });
});

describe("normalizeTaskDetail", () => {
  it("accepts the wrapped shapes too", () => {
    const d = normalizeTaskDetail({
      service_id: "s",
      task_id: "t",
      task_ref: "s:t",
      latest_status: { event: { task_id: "t", status: "completed" } },
      history: { count: 1, events: [{ task_id: "t", status: "completed" }] },
      dlq_messages: { items: [{ dlq_id: "d", queue_name: "q", state: "dead_lettered" }] },
      joined_refs: ["other:x"],
      join_warnings: [{ detail: "lineage truncated" }],
    });
    expect(d.latest_status?.status).toBe("completed");
    expect(d.history).toHaveLength(1);
    expect(d.dlq_messages[0]?.dlq_id).toBe("d");
    expect(d.task_ref).toEqual({ service_id: "s", task_id: "t" });
    expect(d.joined_refs).toEqual([{ service_id: "other", task_id: "x" }]);
    expect(d.join_warnings).toEqual(["lineage truncated"]);
    expect(d.execution_graph).toBeNull();
  });
});
