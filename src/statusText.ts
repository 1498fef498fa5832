import type { StateBody } from '../streams/protocol.js';
import type { AgentRow, AttentionItem, StatusJson, TaskRow } from './swarmRows.js';

/** `rxswarm status --json` from the service's state: `{ agents: [{ id, state, phi, slots, running, usage }], protocol, tasks }`. */
export function statusJson(state: StateBody): StatusJson {
  const agents = (state.agents as readonly AgentRow[] | undefined) ?? [];
  return {
    agents: agents.map(({ id, state: s, phi, slots, running, usage }) => ({ id, state: s, phi, slots, running, usage })),
    protocol: (state.protocol as string | null | undefined) ?? null,
    tasks: (state.tasks as readonly TaskRow[] | undefined) ?? [],
  };
}

const pad = (text: string, width: number): string => (text.length >= width ? text : text + ' '.repeat(width - text.length));
const table = (rows: readonly (readonly string[])[]): string[] => {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? [];
  return rows.map(r => r.map((cell, i) => (i === r.length - 1 ? cell : pad(cell, widths[i] ?? 0))).join('  ').trimEnd());
};

/** `rxswarm tasks`: one line per task, running and queued first. */
export function taskLines(tasks: readonly TaskRow[]): string[] {
  if (tasks.length === 0) return ['no tasks'];
  const order: Record<TaskRow['state'], number> = { running: 0, queued: 1, done: 2, failed: 2, cancelled: 2 };
  const sorted = [...tasks].sort((a, b) => order[a.state] - order[b.state] || (a.queuePosition ?? 0) - (b.queuePosition ?? 0) || b.submittedAt - a.submittedAt);
  return table([
    ['TASK', 'STATE', 'PROGRESS', 'DONE', 'FAILED', 'SUBTASKS', 'QUEUE', 'PROTOCOL', 'NOTE'],
    ...sorted.map(t => [t.id, t.state, `${Math.round(t.progress * 100)}%`, String(t.completed), String(t.failed), String(t.subtasks), t.queuePosition === null ? '' : `#${t.queuePosition}`, t.protocol ?? '', t.error ?? '']),
  ]);
}

/** `rxswarm status`: what needs attention, the agents, the protocol and the tasks. */
export function statusLines(state: StateBody, now: number): string[] {
  const { agents, protocol, tasks } = statusJson(state);
  const rows = (state.agents as readonly AgentRow[] | undefined) ?? [];
  const attention = (state.attention as readonly AttentionItem[] | undefined) ?? [];
  const alive = agents.filter(a => a.state === 'alive').length;
  const lines = [`protocol ${protocol ?? '(none yet)'}; ${alive} of ${agents.length} agents alive; ${tasks.filter(t => t.state === 'running').length} task(s) running, ${tasks.filter(t => t.state === 'queued').length} queued`];
  if (attention.length > 0) lines.push('', 'needs attention:', ...attention.map(a => `  ${a.kind.padEnd(11)} ${a.text}`));
  lines.push('');
  if (rows.length === 0) lines.push('no agents connected');
  else {
    lines.push(
      ...table([
        ['AGENT', 'STATE', 'PHI', 'LAST BEAT', 'RUNNING', 'SLOTS', 'USAGE'],
        ...rows.map(a => [a.id, a.state, a.phi === null ? '-' : a.phi.toFixed(2), a.lastBeatAt === null ? '-' : `${((now - a.lastBeatAt) / 1000).toFixed(1)} s ago`, String(a.running), String(a.slots), `${Math.round(a.usage * 100)}%`]),
      ]),
    );
  }
  lines.push('', ...taskLines(tasks));
  return lines;
}
