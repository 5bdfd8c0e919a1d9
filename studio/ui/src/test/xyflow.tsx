// React Flow draws nothing in jsdom (it needs layout sizes). Tests swap it for
// this: every node is rendered through its real node component at its
// position, so what a node shows (label, state) is what the tests check.
import type { ComponentType, ReactNode } from "react";

interface FlowProps {
  nodes: { id: string; type?: string; position: { x: number; y: number }; data: unknown }[];
  nodeTypes: Record<string, ComponentType<{ id: string; data: unknown }>>;
  children?: ReactNode;
}

export function ReactFlow({ nodes, nodeTypes, children }: FlowProps) {
  return (
    <div className="react-flow">
      {nodes.map((n) => {
        const Node = nodeTypes[n.type ?? "default"];
        return (
          <div key={n.id} className="react-flow__node" style={{ transform: `translate(${n.position.x}px, ${n.position.y}px)` }}>
            {Node ? <Node id={n.id} data={n.data} /> : null}
          </div>
        );
      })}
      {children}
    </div>
  );
}

export const Background = () => null;
export const Controls = () => null;
export const MiniMap = () => null;
export const Handle = () => null;
export const Position = { Left: "left", Right: "right", Top: "top", Bottom: "bottom" };
