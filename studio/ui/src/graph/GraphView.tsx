// An execution graph drawn with React Flow. Node positions come from
// layoutGraph (outside React state) and stay put across live updates.
import { Background, Controls, Handle, MiniMap, Position, ReactFlow, type Edge, type Node, type NodeProps } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { memo, useMemo, useRef, useState } from "react";
import type { ExecutionGraph, GraphNode } from "../types";
import { layoutGraph, NODE_HEIGHT, NODE_WIDTH, type Point } from "./layout";

/** Above this many edges their kind labels are left out (each costs a text measurement). */
const EDGE_LABEL_LIMIT = 150;
import { nodeStatuses, toneOf } from "./nodeState";

type FlowNodeData = { node: GraphNode; status: string };
type FlowNode = Node<FlowNodeData, "relayna">;

const ExecNode = memo(function ExecNode({ data }: NodeProps<FlowNode>) {
  const { node, status } = data;
  return (
    <div className={`gnode tone-${toneOf(status)}`} data-node-id={node.id} data-status={status} data-kind={node.kind} title={`${node.kind} · ${status}`}>
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <span className="gnode-label">{node.label || node.id}</span>
      <span className="gnode-meta">
        {node.kind} · {status}
      </span>
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </div>
  );
});

const NODE_TYPES = { relayna: ExecNode };

interface Props {
  graph: Pick<ExecutionGraph, "nodes" | "edges">;
  rootStatus: string | null;
  onSelect?: (node: GraphNode) => void;
  height?: number;
  minimap?: boolean;
}

export function GraphView({ graph, rootStatus, onSelect, height = 460, minimap = true }: Props) {
  const positions = useRef<Map<string, Point>>(new Map());
  const [generation, setGeneration] = useState(0);
  const laidOut = useMemo(() => {
    void generation;
    const next = layoutGraph(graph, positions.current);
    positions.current = next;
    return next;
  }, [graph, generation]);
  const statuses = useMemo(() => nodeStatuses(graph, rootStatus), [graph, rootStatus]);
  const nodes: FlowNode[] = useMemo(
    () =>
      graph.nodes.map((node) => ({
        id: node.id,
        type: "relayna" as const,
        position: laidOut.get(node.id) ?? { x: 0, y: 0 },
        // Known sizes: React Flow shows the node without waiting to measure it.
        width: NODE_WIDTH,
        height: NODE_HEIGHT,
        data: { node, status: statuses.get(node.id) ?? "unknown" },
        draggable: false,
        connectable: false,
        ariaLabel: `${node.kind} ${node.label}: ${statuses.get(node.id) ?? "unknown"}`,
      })),
    [graph, laidOut, statuses],
  );
  const edges: Edge[] = useMemo(() => {
    const labelled = graph.edges.length <= EDGE_LABEL_LIMIT;
    return graph.edges.map((e, i) => ({
      id: `${e.source}->${e.target}#${i}`,
      source: e.source,
      target: e.target,
      label: labelled ? e.kind : undefined,
      ariaLabel: `${e.kind} from ${e.source} to ${e.target}`,
      className: `gedge gedge-${e.kind}`,
    }));
  }, [graph]);
  return (
    <div className="graph" style={{ height }} data-testid="execution-graph" data-node-count={graph.nodes.length}>
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={NODE_TYPES}
        fitView
        minZoom={0.05}
        nodesConnectable={false}
        nodesDraggable={false}
        onlyRenderVisibleElements={graph.nodes.length > 300}
        onNodeClick={(_, n) => onSelect?.(n.data.node)}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
        {minimap ? <MiniMap pannable zoomable nodeClassName={(n) => `mm tone-${toneOf((n.data as FlowNodeData).status)}`} /> : null}
      </ReactFlow>
      <button
        type="button"
        className="graph-tidy"
        onClick={() => {
          positions.current = new Map();
          setGeneration((g) => g + 1);
        }}
      >
        Tidy layout
      </button>
    </div>
  );
}

export default GraphView;
