import type { HeapNode } from './heap.js';

/** A simple cycle of the wait-for graph, tracked from the moment its last edge appeared. */
export interface TrackedCycle extends HeapNode {
  /** Cycle order (each member waits for the next, the last for the first), starting at the smallest id. */
  readonly members: readonly string[];
  /** When the cycle formed: the time its last edge was added. */
  readonly since: number;
  /** Creation order, a tie-break for equal times. */
  readonly seq: number;
  /** The operator's flag: its deadlock has been reported. */
  reported: boolean;
  /** @internal */
  readonly edges: readonly Edge[];
}

interface GraphNode {
  readonly id: string;
  /** Out-edges in an array (index kept in `Edge.index`) for allocation-free scans, and by target. */
  readonly out: Edge[];
  readonly outByTo: Map<string, Edge>;
  inDegree: number;
  // Scratch of the cycle search, valid only while `stamp` equals the search's epoch.
  stamp: number;
  blocked: boolean;
  readonly blockers: GraphNode[];
}

interface Edge {
  readonly from: GraphNode;
  readonly to: GraphNode;
  index: number;
  /** The tracked cycles through this edge (created on the first one). */
  cycles: Set<TrackedCycle> | undefined;
}

/** Rotates a cycle's members to start at the smallest id (UTF-16 code-unit order), keeping their order. */
export function canonicalCycle(members: readonly string[]): string[] {
  let start = 0;
  for (let i = 1; i < members.length; i++) if ((members[i] as string) < (members[start] as string)) start = i;
  return [...members.slice(start), ...members.slice(0, start)];
}

/**
 * A directed wait-for graph (an edge `from → to`: `from` waits for `to`) that keeps every simple
 * cycle it contains, each with the time it formed. Edges form a set: adding a present edge or
 * removing an absent one changes nothing.
 *
 * Invariant: the tracked cycles are exactly the simple cycles of the graph. A cycle appears when
 * its last edge is added, so `addEdge(u, v)` finds the new cycles — all of them run through
 * `u → v` — as the simple paths from `v` back to `u`, with Johnson's circuit search (blocking
 * vertices that cannot reach `u`) restricted to the part of the graph reachable from `v`:
 * O(R) when no cycle closes, O(R · (c + 1)) when `c` new cycles close, R = vertices + edges
 * reachable from `v`. `removeEdge` drops the cycles through that edge: O(their total length).
 * A dense graph can hold exponentially many simple cycles; `maxCycles` bounds what is kept.
 */
export class WaitForGraph {
  private readonly nodes = new Map<string, GraphNode>();
  private cycleCount = 0;
  private nextSeq = 0;
  private epoch = 0;
  // Search scratch, reused: the current path (its vertices, the edge into each, the next out-edge
  // to try, whether a cycle was found below it) and the unblock work list.
  private readonly pathNodes: GraphNode[] = [];
  private readonly pathEdges: Edge[] = [];
  private readonly pathNext: number[] = [];
  private readonly pathFound: boolean[] = [];
  private readonly unblockList: GraphNode[] = [];

  constructor(private readonly maxCycles = Infinity) {}

  /** Number of simple cycles currently in the graph. */
  get cycles(): number {
    return this.cycleCount;
  }

  /** Number of vertices with at least one edge. */
  get size(): number {
    return this.nodes.size;
  }

  hasEdge(from: string, to: string): boolean {
    return this.nodes.get(from)?.outByTo.has(to) ?? false;
  }

  /**
   * Adds `from → to` at time `now` and returns the cycles it closes (formed at `now`), `undefined`
   * when it closes none or was present. Throws a RangeError naming `maxCycles` when the graph would
   * hold more cycles than that (the edge stays, the graph keeps the cycles found before the limit).
   */
  addEdge(from: string, to: string, now: number): TrackedCycle[] | undefined {
    const u = this.node(from);
    if (u.outByTo.has(to)) return undefined;
    const v = this.node(to);
    const edge: Edge = { from: u, to: v, index: u.out.length, cycles: undefined };
    u.out.push(edge);
    u.outByTo.set(to, edge);
    v.inDegree++;
    if (u === v) return [this.track([from], [edge], now)];
    return this.closeCycles(edge, now);
  }

  /** Removes `from → to` and returns the cycles that ran through it, `undefined` when none (or absent). */
  removeEdge(from: string, to: string): TrackedCycle[] | undefined {
    const u = this.nodes.get(from);
    const edge = u?.outByTo.get(to);
    if (u === undefined || edge === undefined) return undefined;
    const v = edge.to;
    const last = u.out.pop() as Edge;
    if (last !== edge) {
      u.out[edge.index] = last;
      last.index = edge.index;
    }
    u.outByTo.delete(to);
    v.inDegree--;
    if (u.out.length === 0 && u.inDegree === 0) this.nodes.delete(u.id);
    if (v.out.length === 0 && v.inDegree === 0) this.nodes.delete(v.id);
    const broken = edge.cycles === undefined ? undefined : [...edge.cycles];
    if (broken !== undefined) {
      for (const cycle of broken) {
        for (const e of cycle.edges) if (e !== edge) e.cycles?.delete(cycle);
      }
      this.cycleCount -= broken.length;
      edge.cycles = undefined;
    }
    return broken;
  }

  clear(): void {
    this.nodes.clear();
    this.cycleCount = 0;
    this.pathNodes.length = this.pathEdges.length = this.pathNext.length = this.pathFound.length = 0;
    this.unblockList.length = 0;
  }

  private node(id: string): GraphNode {
    let n = this.nodes.get(id);
    if (n === undefined) {
      n = { id, out: [], outByTo: new Map(), inDegree: 0, stamp: 0, blocked: false, blockers: [] };
      this.nodes.set(id, n);
    }
    return n;
  }

  private touch(n: GraphNode): void {
    if (n.stamp !== this.epoch) {
      n.stamp = this.epoch;
      n.blocked = false;
      n.blockers.length = 0;
    }
  }

  private track(ids: string[], edges: Edge[], now: number): TrackedCycle {
    if (this.cycleCount >= this.maxCycles) {
      throw new RangeError(`maxCycles: the wait-for graph holds more than ${this.maxCycles} simple cycles`);
    }
    const cycle: TrackedCycle = {
      members: canonicalCycle(ids),
      since: now,
      seq: this.nextSeq++,
      reported: false,
      edges,
      heapIndex: -1,
    };
    for (const e of edges) (e.cycles ??= new Set()).add(cycle);
    this.cycleCount++;
    return cycle;
  }

  /** Johnson's CIRCUIT from `s = edge.from`, its only first step being `edge`; iterative (no deep recursion). */
  private closeCycles(edge: Edge, now: number): TrackedCycle[] | undefined {
    const s = edge.from;
    const { pathNodes, pathEdges, pathNext, pathFound } = this;
    let found: TrackedCycle[] | undefined;
    this.epoch++;
    try {
      this.enter(edge.to, edge);
      while (pathNodes.length > 0) {
        const d = pathNodes.length - 1;
        const v = pathNodes[d] as GraphNode;
        const i = pathNext[d] as number;
        if (i < v.out.length) {
          pathNext[d] = i + 1;
          const e = v.out[i] as Edge;
          const w = e.to;
          if (w === s) {
            const ids = [s.id];
            for (const p of pathNodes) ids.push(p.id);
            (found ??= []).push(this.track(ids, [...pathEdges, e], now));
            pathFound[d] = true;
          } else {
            this.touch(w);
            if (!w.blocked) this.enter(w, e);
          }
          continue;
        }
        // v is done: if a cycle ran through it, it may lie on others later; otherwise it stays
        // blocked until one of its successors is unblocked (Johnson's B lists).
        const hit = pathFound[d] as boolean;
        if (hit) this.unblock(v);
        else {
          for (const e of v.out) {
            if (e.to === s) continue;
            this.touch(e.to);
            e.to.blockers.push(v);
          }
        }
        pathNodes.pop();
        pathEdges.pop();
        pathNext.pop();
        pathFound.pop();
        if (hit && d > 0) pathFound[d - 1] = true;
      }
    } finally {
      pathNodes.length = pathEdges.length = pathNext.length = pathFound.length = 0;
      this.unblockList.length = 0;
    }
    return found;
  }

  private enter(n: GraphNode, via: Edge): void {
    this.touch(n);
    n.blocked = true;
    this.pathNodes.push(n);
    this.pathEdges.push(via);
    this.pathNext.push(0);
    this.pathFound.push(false);
  }

  private unblock(start: GraphNode): void {
    const list = this.unblockList;
    list.push(start);
    while (list.length > 0) {
      const x = list.pop() as GraphNode;
      if (x.stamp !== this.epoch || !x.blocked) continue;
      x.blocked = false;
      for (const y of x.blockers) if (y.blocked) list.push(y);
      x.blockers.length = 0;
    }
  }
}
