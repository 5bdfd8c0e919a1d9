import { describe, expect, it } from "vitest";
import { layoutGraph, overlaps, type LayoutInput, type Point } from "./layout";

/** A task graph like the backend's: root -> attempts -> statuses, retries and a DLQ. */
export function taskGraph(attempts: number, statusesPerAttempt = 3): LayoutInput {
  const nodes = [{ id: "task" }];
  const edges: { source: string; target: string }[] = [];
  let prev = "task";
  for (let a = 1; a <= attempts; a += 1) {
    const att = `attempt:${a}`;
    nodes.push({ id: att });
    edges.push({ source: prev, target: att });
    for (let s = 0; s < statusesPerAttempt; s += 1) {
      nodes.push({ id: `${att}:s${s}` });
      edges.push({ source: att, target: `${att}:s${s}` });
    }
    if (a < attempts) {
      nodes.push({ id: `retry:${a}` });
      edges.push({ source: att, target: `retry:${a}` });
      prev = `retry:${a}`;
    } else {
      nodes.push({ id: "dlq" });
      edges.push({ source: att, target: "dlq" });
    }
  }
  return { nodes, edges };
}

function noOverlaps(points: Point[]): boolean {
  for (let i = 0; i < points.length; i += 1) {
    for (let j = i + 1; j < points.length; j += 1) if (overlaps(points[i] as Point, points[j] as Point)) return false;
  }
  return true;
}

describe("layoutGraph", () => {
  it("places every node, causes left of effects, without overlaps", () => {
    const g = taskGraph(3);
    const pos = layoutGraph(g);
    expect(pos.size).toBe(g.nodes.length);
    for (const e of g.edges) expect((pos.get(e.source) as Point).x).toBeLessThan((pos.get(e.target) as Point).x);
    expect(noOverlaps([...pos.values()])).toBe(true);
  });

  it("keeps every node already shown where it was when the graph grows (no layout jump)", () => {
    for (let attempts = 1; attempts <= 5; attempts += 1) {
      const before = layoutGraph(taskGraph(attempts));
      const grown = taskGraph(attempts + 1);
      const after = layoutGraph(grown, before);
      for (const [id, p] of before) {
        if (grown.nodes.some((n) => n.id === id)) expect(after.get(id)).toEqual(p);
      }
      expect(after.size).toBe(grown.nodes.length);
      expect(noOverlaps([...after.values()])).toBe(true);
    }
  });

  it("ignores edges to unknown nodes and self loops", () => {
    const pos = layoutGraph({ nodes: [{ id: "a" }, { id: "b" }], edges: [{ source: "a", target: "zz" }, { source: "a", target: "a" }, { source: "a", target: "b" }] });
    expect(pos.size).toBe(2);
  });

  it("survives a cycle (a malformed graph) and still places every node", () => {
    const pos = layoutGraph({ nodes: [{ id: "a" }, { id: "b" }, { id: "c" }], edges: [{ source: "a", target: "b" }, { source: "b", target: "c" }, { source: "c", target: "b" }] });
    expect(pos.size).toBe(3);
    expect(noOverlaps([...pos.values()])).toBe(true);
  });

  it("keeps the main line of a retry chain on one row", () => {
    const pos = layoutGraph(taskGraph(4));
    const rows = new Set(["task", "attempt:1", "retry:1", "attempt:2", "retry:3", "attempt:4"].map((id) => pos.get(id)?.y));
    expect(rows.size).toBe(1);
  });

  it("lays out 2,000 nodes", () => {
    const g = taskGraph(400, 3);
    expect(g.nodes.length).toBeGreaterThan(2000);
    expect(layoutGraph(g).size).toBe(g.nodes.length);
  });
});
