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

/**
 * The topology as assignments travelled: the coordinator in the middle, agents on a circle,
 * an arrow for every hop seen since the last switch (thicker: more assignments).
 */
export function TopologyGraph({ topology, agents }: { topology: TopologyView; agents: ReadonlyMap<string, { row: AgentRow }> }) {
  const size = 360;
  const c = size / 2;
  const ids = [...agents.keys()];
  const at = new Map<string, [number, number]>([['coordinator', [c, c]]]);
  const r = c - 18;
  ids.forEach((id, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, ids.length) - Math.PI / 2;
    at.set(id, [c + r * Math.cos(a), c + r * Math.sin(a)]);
  });
  const most = Math.max(1, ...topology.edges.map(e => e.count));
  const dot = ids.length > 200 ? 2 : ids.length > 50 ? 3.5 : 6;
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
          // A tooltip per node up to 200 agents; past that the nodes are dots too small to point at.
          <circle class={`node ${agents.get(id)?.row.state ?? ''}`} cx={x} cy={y} r={dot} key={id}>
            {ids.length <= 200 ? <title>{`${id}: ${agents.get(id)?.row.state ?? ''}`}</title> : null}
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
