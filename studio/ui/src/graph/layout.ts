// Layered layout of an execution graph, computed outside React state.
//
// Theory of operation. Execution graphs are causal DAGs that grow at their
// right edge while a task runs. Columns are ranks (longest path from a root,
// so every edge points right); rows are slots within a column. Nodes are
// placed rank by rank; each takes the free slot nearest below the mean slot of
// its parents, nodes that continue the chain (have children) first, so the
// main line stays straight and leaves (status events) hang below it.
//
// Live updates must not move what the reader is looking at: a node that
// already has a position keeps it ("pinned") and occupies its slot; only new
// nodes are placed, into free slots. "Tidy up" re-runs with nothing pinned.
//
// Why not dagre or elkjs: both were measured on task-shaped graphs here
// (`python -m benchmarks ui` prints the comparison): dagre needs ~0.9 s for a
// 500-node retry chain and elkjs ~3 s, against a 1 s budget for layout *and*
// render; neither keeps old positions when the graph grows. This is O(V + E)
// plus the slot search.

export const NODE_WIDTH = 190;
export const NODE_HEIGHT = 54;
export const COLUMN = NODE_WIDTH + 60;
export const ROW = NODE_HEIGHT + 22;

export interface Point {
  x: number;
  y: number;
}

export interface LayoutInput {
  nodes: { id: string }[];
  edges: { source: string; target: string }[];
}

/** Top-left positions for every node; `pinned` positions are kept as they are. */
export function layoutGraph(graph: LayoutInput, pinned: ReadonlyMap<string, Point> = new Map()): Map<string, Point> {
  const index = new Map<string, number>();
  graph.nodes.forEach((n, i) => index.set(n.id, i));
  const parents: number[][] = graph.nodes.map(() => []);
  const children: number[][] = graph.nodes.map(() => []);
  for (const e of graph.edges) {
    const s = index.get(e.source);
    const t = index.get(e.target);
    if (s === undefined || t === undefined || s === t) continue;
    children[s]?.push(t);
    parents[t]?.push(s);
  }
  const order = topologicalOrder(graph.nodes.length, parents, children);
  const rank = new Array<number>(graph.nodes.length).fill(0);
  const done = new Array<boolean>(graph.nodes.length).fill(false);
  const slot = new Array<number>(graph.nodes.length).fill(0);
  const out = new Map<string, Point>();
  const occupied = new Map<number, Set<number>>();
  const take = (r: number, s: number) => {
    let set = occupied.get(r);
    if (!set) occupied.set(r, (set = new Set()));
    set.add(s);
  };
  // Pinned nodes keep their place and claim their slot.
  graph.nodes.forEach((n, i) => {
    const p = pinned.get(n.id);
    if (!p) return;
    rank[i] = Math.round(p.x / COLUMN);
    slot[i] = Math.round(p.y / ROW);
    take(rank[i] as number, slot[i] as number);
    out.set(n.id, p);
  });
  // Ranks of the new nodes: one right of their rightmost parent already ranked.
  for (const i of order) {
    done[i] = true;
    if (pinned.has(graph.nodes[i]?.id ?? "")) continue;
    let r = 0;
    for (const p of parents[i] ?? []) if (done[p]) r = Math.max(r, (rank[p] as number) + 1);
    rank[i] = r;
  }
  const fresh = order.filter((i) => !pinned.has(graph.nodes[i]?.id ?? ""));
  const position = new Map(order.map((i, k) => [i, k]));
  fresh.sort((a, b) => (rank[a] as number) - (rank[b] as number) || (position.get(a) as number) - (position.get(b) as number));
  let start = 0;
  while (start < fresh.length) {
    const r = rank[fresh[start] as number] as number;
    let end = start;
    while (end < fresh.length && rank[fresh[end] as number] === r) end += 1;
    const group = fresh.slice(start, end).map((i) => {
      const ps = (parents[i] ?? []).filter((p) => (rank[p] as number) < r);
      const want = ps.length ? Math.round(ps.reduce((sum, p) => sum + (slot[p] as number), 0) / ps.length) : 0;
      return { i, want, leaf: (children[i] ?? []).length === 0 };
    });
    group.sort((a, b) => a.want - b.want || Number(a.leaf) - Number(b.leaf) || (position.get(a.i) as number) - (position.get(b.i) as number));
    const used = occupied.get(r) ?? new Set<number>();
    occupied.set(r, used);
    for (const g of group) {
      let s = g.want;
      while (used.has(s)) s += 1;
      used.add(s);
      slot[g.i] = s;
      out.set(graph.nodes[g.i]?.id ?? "", { x: r * COLUMN, y: s * ROW });
    }
    start = end;
  }
  return out;
}

/** Kahn's order; nodes on a cycle follow in input order (their back edges are ignored). */
function topologicalOrder(n: number, parents: number[][], children: number[][]): number[] {
  const indegree = parents.map((p) => p.length);
  const queue: number[] = [];
  for (let i = 0; i < n; i += 1) if (indegree[i] === 0) queue.push(i);
  const order: number[] = [];
  const seen = new Array<boolean>(n).fill(false);
  for (let head = 0; head < queue.length; head += 1) {
    const i = queue[head] as number;
    seen[i] = true;
    order.push(i);
    for (const c of children[i] ?? []) {
      indegree[c] = (indegree[c] as number) - 1;
      if (indegree[c] === 0) queue.push(c);
    }
  }
  if (order.length < n) {
    for (let i = 0; i < n; i += 1) if (!seen[i]) order.push(i);
  }
  return order;
}

export function overlaps(a: Point, b: Point): boolean {
  return Math.abs(a.x - b.x) < NODE_WIDTH && Math.abs(a.y - b.y) < NODE_HEIGHT;
}
