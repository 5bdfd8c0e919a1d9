// The state (and so the colour) of each execution-graph node.
import type { ExecutionGraph, GraphNode } from "../types";
import { stateTone } from "../timeline";

export type Tone = ReturnType<typeof stateTone>;

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/**
 * What each node shows: its own annotated status when it has one; a status
 * event its status; a DLQ record "dead_lettered"; a retry "retrying"; an
 * attempt that was retried or dead-lettered says so; any other attempt or the
 * root follows the task's latest status.
 */
export function nodeStatuses(graph: Pick<ExecutionGraph, "nodes" | "edges">, rootStatus: string | null): Map<string, string> {
  const outcome = new Map<string, string>();
  for (const edge of graph.edges) {
    if (edge.kind === "dead_lettered_to") outcome.set(edge.source, "failed");
    else if ((edge.kind === "retried_as" || edge.kind === "manual_retry_to") && outcome.get(edge.source) !== "failed") {
      outcome.set(edge.source, "retrying");
    } else if (edge.kind === "stage_transitioned_to" && !outcome.has(edge.source)) outcome.set(edge.source, "completed");
  }
  const out = new Map<string, string>();
  for (const node of graph.nodes) out.set(node.id, statusOf(node, outcome.get(node.id) ?? null, rootStatus));
  return out;
}

function statusOf(node: GraphNode, outcome: string | null, rootStatus: string | null): string {
  const a = node.annotations ?? {};
  const own = str(a.status) ?? str(a.outcome) ?? str(a.state);
  if (node.kind === "task") return rootStatus ?? own ?? "pending";
  if (own) return own;
  switch (node.kind) {
    case "status_event":
      return node.label;
    case "dlq_record":
      return "dead_lettered";
    case "retry":
      return "retrying";
    default:
      return outcome ?? rootStatus ?? "processing";
  }
}

export function toneOf(status: string): Tone {
  return stateTone(status);
}
