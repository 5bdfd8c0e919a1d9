// Benchmark page (not shipped): lays out and renders synthetic task graphs
// with the real GraphView, and times the layout engines on the same graphs.
// `python -m benchmarks ui` loads it in headless Chromium and reads
// window.__bench (all times from performance.now()).
import dagre from "@dagrejs/dagre";
import ELK from "elkjs/lib/elk.bundled.js";
import { createRoot } from "react-dom/client";
import "../src/styles.css";
import GraphView from "../src/graph/GraphView";
import { layoutGraph, type LayoutInput } from "../src/graph/layout";
import type { ExecutionGraph, GraphEdge, GraphNode } from "../src/types";

/** A task graph of about `n` nodes: a retry chain whose attempts each publish statuses, plus a fan-out. */
export function syntheticGraph(n: number): ExecutionGraph {
  const nodes: GraphNode[] = [{ id: "task", kind: "task", label: "task" }];
  const edges: GraphEdge[] = [];
  let prev = "task";
  let a = 0;
  while (nodes.length < n) {
    a += 1;
    const att = `attempt:${a}`;
    nodes.push({ id: att, kind: "task_attempt", label: `attempt ${a}` });
    edges.push({ source: prev, target: att, kind: "received_by" });
    for (let s = 0; s < 3 && nodes.length < n; s += 1) {
      nodes.push({ id: `${att}:s${s}`, kind: "status_event", label: ["processing", "retrying", "queued"][s] ?? "x" });
      edges.push({ source: att, target: `${att}:s${s}`, kind: "published_status" });
    }
    if (nodes.length < n) {
      const r = `retry:${a}`;
      nodes.push({ id: r, kind: "retry", label: `retry ${a}` });
      edges.push({ source: att, target: r, kind: "retried_as" });
      prev = r;
    }
  }
  return { task_id: "task", nodes: nodes.slice(0, n), edges: edges.filter((e) => nodes.findIndex((x) => x.id === e.target) < n) };
}

function dagreLayout(g: LayoutInput): void {
  const G = new dagre.graphlib.Graph();
  G.setGraph({ rankdir: "LR", nodesep: 22, ranksep: 60 });
  G.setDefaultEdgeLabel(() => ({}));
  for (const n of g.nodes) G.setNode(n.id, { width: 190, height: 54 });
  for (const e of g.edges) G.setEdge(e.source, e.target);
  dagre.layout(G);
}

async function elkLayout(g: LayoutInput): Promise<void> {
  const elk = new ELK();
  await elk.layout({
    id: "root",
    layoutOptions: { "elk.algorithm": "layered", "elk.direction": "RIGHT" },
    children: g.nodes.map((n) => ({ id: n.id, width: 190, height: 54 })),
    edges: g.edges.map((e, i) => ({ id: `e${i}`, sources: [e.source], targets: [e.target] })),
  });
}

declare global {
  interface Window {
    __bench?: Record<string, number | string>;
  }
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const n = Number(params.get("n") ?? "500");
  const engines = (params.get("engines") ?? "").split(",").filter(Boolean);
  const graph = syntheticGraph(n);
  const result: Record<string, number | string> = { nodes: graph.nodes.length };
  // Layout engines alone (the comparison behind the choice in layout.ts).
  let t = performance.now();
  layoutGraph(graph);
  result.layout_relayna_ms = performance.now() - t;
  if (engines.includes("dagre")) {
    t = performance.now();
    dagreLayout(graph);
    result.layout_dagre_ms = performance.now() - t;
  }
  if (engines.includes("elk")) {
    t = performance.now();
    await elkLayout(graph);
    result.layout_elk_ms = performance.now() - t;
  }
  // Layout + render with the real component, until the nodes are painted.
  const host = document.getElementById("root");
  if (!host) throw new Error("no root");
  const start = performance.now();
  createRoot(host).render(<GraphView graph={graph} rootStatus="processing" height={900} />);
  await new Promise<void>((resolve) => {
    const check = () => {
      const shown = document.querySelectorAll(".react-flow__node").length;
      const visible = document.querySelector(".react-flow__node[style*='visibility: visible'], .react-flow__node:not([style*='visibility'])");
      if (shown > 0 && visible) requestAnimationFrame(() => resolve());
      else requestAnimationFrame(check);
    };
    check();
  });
  result.render_ms = performance.now() - start;
  result.rendered_nodes = document.querySelectorAll(".react-flow__node").length;
  window.__bench = result;
}

void main().catch((err: unknown) => {
  window.__bench = { error: String(err) };
});
