// Mermaid export of an execution graph (a flowchart LR, like the SDK's own).
import type { ExecutionGraph } from "../types";

function escapeLabel(text: string): string {
  return text.replace(/"/g, "#quot;").replace(/[\r\n]+/g, " ");
}

export function graphToMermaid(graph: Pick<ExecutionGraph, "nodes" | "edges">): string {
  const ids = new Map<string, string>();
  const lines = ["flowchart LR"];
  graph.nodes.forEach((node, i) => {
    const id = `n${i}`;
    ids.set(node.id, id);
    const parts = [node.label || node.id, node.kind];
    if (node.timestamp) parts.push(node.timestamp);
    lines.push(`    ${id}["${escapeLabel(parts.join("<br/>"))}"]`);
  });
  for (const edge of graph.edges) {
    const s = ids.get(edge.source);
    const t = ids.get(edge.target);
    if (!s || !t) continue;
    lines.push(`    ${s} -->|${escapeLabel(edge.kind).replace(/\|/g, "/")}| ${t}`);
  }
  return `${lines.join("\n")}\n`;
}
