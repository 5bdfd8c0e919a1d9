import { describe, expect, it } from "vitest";
import type { ExecutionGraph } from "../types";
import { graphToMermaid } from "./mermaid";
import { nodeStatuses } from "./nodeState";
import { resourceDeltas } from "./resources";

const graph: Pick<ExecutionGraph, "nodes" | "edges"> = {
  nodes: [
    { id: "task:t", kind: "task", label: "t", task_id: "t" },
    { id: "a1", kind: "task_attempt", label: 't attempt "1"', timestamp: "2026-01-01T00:00:00Z" },
    { id: "r1", kind: "retry", label: "retry 1" },
    { id: "a2", kind: "task_attempt", label: "t attempt 2" },
    { id: "d", kind: "dlq_record", label: "handler_error" },
    { id: "s", kind: "status_event", label: "processing" },
  ],
  edges: [
    { source: "task:t", target: "a1", kind: "received_by" },
    { source: "a1", target: "r1", kind: "retried_as" },
    { source: "r1", target: "a2", kind: "received_by" },
    { source: "a2", target: "d", kind: "dead_lettered_to" },
    { source: "a1", target: "s", kind: "published_status" },
  ],
};

describe("nodeStatuses", () => {
  it("derives each node's state from its kind and edges", () => {
    const s = nodeStatuses(graph, "failed");
    expect(Object.fromEntries(s)).toEqual({ "task:t": "failed", a1: "retrying", r1: "retrying", a2: "failed", d: "dead_lettered", s: "processing" });
  });
  it("lets the root follow the live status", () => {
    expect(nodeStatuses(graph, "processing").get("task:t")).toBe("processing");
  });
});

describe("graphToMermaid", () => {
  it("emits a flowchart with escaped labels and every edge", () => {
    const text = graphToMermaid(graph);
    expect(text.split("\n")[0]).toBe("flowchart LR");
    expect(text).toContain('n1["t attempt #quot;1#quot;<br/>task_attempt<br/>2026-01-01T00:00:00Z"]');
    expect(text).toContain("n3 -->|dead_lettered_to| n4");
    expect(text.match(/-->/g)).toHaveLength(graph.edges.length);
  });
});

describe("resourceDeltas", () => {
  it("computes the change between the task's first and last samples, ignoring other tasks", () => {
    const rows = resourceDeltas(
      {
        nodes: [
          { id: "1", kind: "resource_sample", label: "", task_id: "t", timestamp: "2026-01-01T00:00:02Z", annotations: { cpu_seconds: 1.5, rss_bytes: 2048 } },
          { id: "0", kind: "resource_sample", label: "", task_id: "t", timestamp: "2026-01-01T00:00:00Z", annotations: { cpu_seconds: 1.0, rss_bytes: 1024 } },
          { id: "x", kind: "resource_sample", label: "", task_id: "other", timestamp: "2026-01-01T00:00:09Z", annotations: { cpu_seconds: 99 } },
        ],
      },
      "t",
    );
    expect(rows).toEqual([
      { name: "cpu seconds", first: "1.000 s", last: "1.500 s", delta: "+0.500 s" },
      { name: "rss bytes", first: "1.0 KiB", last: "2.0 KiB", delta: "+1.0 KiB" },
    ]);
  });
});
