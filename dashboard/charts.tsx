import { useEffect, useRef } from 'preact/hooks';
import type { AgentRow, TimelineEntry, TopologyView } from '../src/swarmRows.js';

/** Phi over the last minute as a line, with the threshold as a dashed rule. */
export function Sparkline({ values, threshold = 8, width = 120, height = 22 }: { values: readonly (number | null)[]; threshold?: number; width?: number; height?: number }) {
  const max = Math.max(threshold * 1.25, ...values.map(v => (v === null ? 0 : Math.min(v, 50))));
  const step = width / 59;
  const y = (v: number): number => height - 1 - (Math.min(v, max) / max) * (height - 2);
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    const x = width - (values.length - 1 - i) * step;
    if (v === null) pen = false;
    else {
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
  });
  return (
    <svg class="spark" width={width} height={height} viewBox={`0 0 ${width} ${height}`} aria-label="phi over the last minute">
      <line x1="0" x2={width} y1={y(threshold)} y2={y(threshold)} class="threshold" />
      <path d={d} />
    </svg>
  );
}

const SIZE = 360;

/** Where each node is drawn: the coordinator in the middle, agents on a circle. */
function layout(ids: readonly string[]): Map<string, [number, number]> {
  const c = SIZE / 2;
  const at = new Map<string, [number, number]>([['coordinator', [c, c]]]);
  const r = c - 18;
  ids.forEach((id, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, ids.length) - Math.PI / 2;
    at.set(id, [c + r * Math.cos(a), c + r * Math.sin(a)]);
  });
  return at;
}

const NODE_COLOURS: Record<string, string> = { alive: '#3fb67a', suspected: '#e0a83a', down: '#e5534b', quarantined: '#e5534b', gone: '#555' };

/**
 * The graph of a large swarm on a canvas: one element instead of thousands of SVG nodes to lay
 * out and paint (past 200 agents a node is a dot too small to point at anyway).
 */
function TopologyCanvas({ topology, agents }: { topology: TopologyView; agents: ReadonlyMap<string, { row: AgentRow }> }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const g = canvas.current?.getContext('2d');
    if (g === null || g === undefined) return;
    const at = layout([...agents.keys()]);
    const most = Math.max(1, ...topology.edges.map(e => e.count));
    g.clearRect(0, 0, SIZE, SIZE);
    g.strokeStyle = 'rgba(74, 106, 144, 0.7)';
    for (const e of topology.edges.slice(0, 3000)) {
      const from = at.get(e.from);
      const to = at.get(e.to);
      if (from === undefined || to === undefined) continue;
      g.lineWidth = 0.5 + (2.5 * e.count) / most;
      g.beginPath();
      g.moveTo(from[0], from[1]);
      g.lineTo(to[0], to[1]);
      g.stroke();
    }
    for (const [id, { row }] of agents) {
      const [x, y] = at.get(id) as [number, number];
      g.fillStyle = NODE_COLOURS[row.state] ?? '#3fb67a';
      g.fillRect(x - 2, y - 2, 4, 4);
    }
    g.fillStyle = '#5aa2ff';
    g.beginPath();
    g.arc(SIZE / 2, SIZE / 2, 8, 0, 2 * Math.PI);
    g.fill();
  });
  return <canvas class="topology" width={SIZE} height={SIZE} data-testid="topology" data-agents={agents.size} data-edges={topology.edges.length} aria-label={`topology: ${agents.size} agents, ${topology.edges.length} links`} ref={canvas} />;
}

/**
 * The topology as assignments travelled: the coordinator in the middle, agents on a circle,
 * an arrow for every hop seen since the last switch (thicker: more assignments).
 */
export function TopologyGraph({ topology, agents }: { topology: TopologyView; agents: ReadonlyMap<string, { row: AgentRow }> }) {
  if (agents.size > 200) return <TopologyCanvas topology={topology} agents={agents} />;
  const size = SIZE;
  const c = size / 2;
  const ids = [...agents.keys()];
  const at = layout(ids);
  const most = Math.max(1, ...topology.edges.map(e => e.count));
  const dot = ids.length > 50 ? 3.5 : 6;
  return (
    <svg class="topology" width={size} height={size} viewBox={`0 0 ${size} ${size}`} data-testid="topology">
      {topology.edges.slice(0, 3000).map(e => {
        const from = at.get(e.from);
        const to = at.get(e.to);
        if (from === undefined || to === undefined) return null;
        return <line class="edge" x1={from[0]} y1={from[1]} x2={to[0]} y2={to[1]} stroke-width={0.5 + (2.5 * e.count) / most} key={`${e.from}>${e.to}`} />;
      })}
      {ids.map(id => {
        const [x, y] = at.get(id) as [number, number];
        return (
          <circle class={`node ${agents.get(id)?.row.state ?? ''}`} cx={x} cy={y} r={dot} key={id}>
            <title>{`${id}: ${agents.get(id)?.row.state ?? ''}`}</title>
          </circle>
        );
      })}
      <circle class="node hub" cx={c} cy={c} r={8}>
        <title>coordinator</title>
      </circle>
    </svg>
  );
}

const STEP_CLASS: Record<string, string> = { completed: 'ok', failed: 'bad', rejected: 'bad', requeued: 'warn', hedged: 'warn', waiting: 'warn' };

/** A subtask's life on one time axis: every step a mark, every attempt a bar from its assignment. */
export function Timeline({ entries }: { entries: readonly TimelineEntry[] }) {
  if (entries.length === 0) return <p class="muted">nothing yet</p>;
  const start = (entries[0] as TimelineEntry).at;
  const end = Math.max(start + 1, (entries[entries.length - 1] as TimelineEntry).at);
  const width = 640;
  const x = (t: number): number => 8 + ((t - start) / (end - start)) * (width - 16);
  const attempts = new Map<number, { from: number; to: number; agent: string }>();
  for (const e of entries) {
    if (e.attempt === undefined) continue;
    const a = attempts.get(e.attempt);
    if (a === undefined) attempts.set(e.attempt, { from: e.at, to: e.at, agent: e.agent ?? '' });
    else a.to = e.at;
  }
  const lanes = [...attempts.entries()];
  const height = 24 + lanes.length * 18;
  return (
    <div>
      <svg class="timeline" viewBox={`0 0 ${width} ${height}`} style={`width:100%;max-width:${width}px`}>
        {lanes.map(([attempt, a], i) => (
          <g key={attempt}>
            <rect x={x(a.from)} y={18 + i * 18} width={Math.max(2, x(a.to) - x(a.from))} height={10} class="lane" />
            <text x={x(a.from) + 4} y={26 + i * 18} class="lane-label">{`#${attempt} ${a.agent}`}</text>
          </g>
        ))}
        {entries.map((e, i) => (
          <circle cx={x(e.at)} cy={8} r={4} class={`mark ${STEP_CLASS[e.step] ?? ''}`} key={i}>
            <title>{`${e.step} ${e.detail ?? ''}`}</title>
          </circle>
        ))}
      </svg>
      <ol class="steps" data-testid="timeline">
        {entries.map((e, i) => (
          <li key={i} class={STEP_CLASS[e.step] ?? ''}>
            <span class="t">+{((e.at - start) / 1000).toFixed(3)} s</span> <b>{e.step}</b>
            {e.agent === undefined ? '' : ` on ${e.agent}`}
            {e.attempt === undefined ? '' : ` (attempt ${e.attempt})`}
            {e.detail === undefined ? '' : `: ${e.detail}`}
          </li>
        ))}
      </ol>
    </div>
  );
}
