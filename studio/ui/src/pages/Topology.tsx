// A workflow's stages drawn as a graph: entry routes -> stages -> next stages.
import { useQuery } from "@tanstack/react-query";
import { lazy, Suspense, useMemo } from "react";
import { Link, useParams } from "react-router-dom";
import { TableHead } from "../components/filters";
import { useApi } from "../auth";
import { Async, KeyValues, Loading, Section } from "../components/ui";
import type { GraphEdge, GraphNode, WorkflowTopology } from "../types";

const GraphView = lazy(() => import("../graph/GraphView"));

/** The topology as graph nodes and edges (stages, entry routes, transitions). */
export function topologyGraph(t: WorkflowTopology): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  const seen = new Set<string>();
  const stage = (name: string) => {
    const id = `stage:${name}`;
    if (!seen.has(id)) {
      seen.add(id);
      const s = t.stages.find((x) => x.name === name);
      nodes.push({ id, kind: s?.terminal ? "terminal_stage" : "stage", label: name, annotations: { status: s?.terminal ? "completed" : "idle", queue: s?.queue ?? null } });
    }
    return id;
  };
  t.stages.forEach((s) => stage(s.name));
  t.entry_routes.forEach((r, i) => {
    const id = `route:${i}`;
    nodes.push({ id, kind: "entry_route", label: String(r.route ?? r.routing_key ?? `entry ${i + 1}`), annotations: { status: "queued" } });
    if (typeof r.stage === "string") edges.push({ source: id, target: stage(r.stage), kind: "enters" });
  });
  const pairs = new Set<string>();
  const edge = (a: string, b: string) => {
    const key = `${a}->${b}`;
    if (pairs.has(key)) return;
    pairs.add(key);
    edges.push({ source: stage(a), target: stage(b), kind: "next" });
  };
  t.edges.forEach((e) => edge(e.source, e.target));
  t.stages.forEach((s) => (s.next_stages ?? []).forEach((n) => edge(s.name, n)));
  return { nodes, edges };
}

export default function Topology() {
  const { serviceId = "" } = useParams();
  const api = useApi();
  const topology = useQuery({ queryKey: ["topology", serviceId], queryFn: () => api.workflowTopology(serviceId) });
  const graph = useMemo(() => (topology.data ? topologyGraph(topology.data) : null), [topology.data]);
  return (
    <>
      <div className="page-head">
        <div>
          <p className="crumbs">
            <Link to={`/services/${encodeURIComponent(serviceId)}`}>{serviceId}</Link> / topology
          </p>
          <h1>Workflow topology</h1>
        </div>
      </div>
      <Async query={topology} what="the workflow topology" isEmpty={(t) => t.stages.length === 0} empty="This service declares no workflow stages.">
        {(t) => (
          <>
            <Section title="Graph">
              <Suspense fallback={<Loading what="the graph view" />}>{graph ? <GraphView graph={graph} rootStatus={null} minimap={false} height={380} /> : null}</Suspense>
            </Section>
            <Section title="Stages">
              <KeyValues
                items={[
                  ["Workflow exchange", t.workflow_exchange ?? null],
                  ["Status queue", t.status_queue ?? null],
                  ["Stages", String(t.stages.length)],
                  ["Entry routes", String(t.entry_routes.length)],
                  ["Edges", String(t.edges.length)],
                ]}
              />
              <table>
                <TableHead columns={["Stage", "Queue", "Publish key", "Next"]} />
                <tbody>
                  {t.stages.map((s) => (
                    <tr key={s.name}>
                      <td>
                        {s.name}
                        {s.terminal ? <span className="tag">terminal</span> : null}
                      </td>
                      <td className="mono">{s.queue ?? "—"}</td>
                      <td className="mono">{s.publish_routing_key ?? "—"}</td>
                      <td>{(s.next_stages ?? []).join(", ") || "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Section>
          </>
        )}
      </Async>
    </>
  );
}
