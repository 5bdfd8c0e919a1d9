// Exact per-task resources: the change between a task's first and last
// resource_sample nodes (CPU seconds, RSS bytes, ...), related tasks ignored.
import { formatBytes } from "../format";
import type { ExecutionGraph } from "../types";

export interface ResourceRow {
  name: string;
  first: string;
  last: string;
  delta: string;
}

function show(name: string, value: number): string {
  if (/bytes|rss|memory/i.test(name)) return formatBytes(value);
  if (/seconds|cpu/i.test(name)) return `${value.toFixed(3)} s`;
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

export function resourceDeltas(graph: Pick<ExecutionGraph, "nodes">, taskId: string): ResourceRow[] {
  const samples = graph.nodes
    .filter((n) => n.kind === "resource_sample" && (!n.task_id || n.task_id === taskId))
    .sort((a, b) => Date.parse(a.timestamp ?? "") - Date.parse(b.timestamp ?? ""));
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last) return [];
  const rows: ResourceRow[] = [];
  for (const [name, a] of Object.entries(first.annotations ?? {})) {
    const b = last.annotations?.[name];
    if (typeof a !== "number" || typeof b !== "number") continue;
    const d = b - a;
    rows.push({ name: name.replace(/_/g, " "), first: show(name, a), last: show(name, b), delta: `${d >= 0 ? "+" : ""}${show(name, d)}` });
  }
  return rows;
}
