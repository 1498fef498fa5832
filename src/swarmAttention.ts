import type { AgentRow, AttentionItem } from './swarmRows.js';

/** What the attention strip is made of (see {@link attentionOf}). */
export interface AttentionInputs {
  readonly agents: readonly AgentRow[];
  readonly healing: readonly AttentionItem[];
  readonly quorum: readonly AttentionItem[];
  readonly waiting: readonly AttentionItem[];
  readonly hedged: readonly AttentionItem[];
  readonly overdue: readonly AttentionItem[];
  readonly now: number;
}

/** Items shown at most (the rest are summed up in one item per kind). */
export const ATTENTION_LIMIT = 50;

const ORDER: Record<AttentionItem['kind'], number> = { suspected: 0, healing: 1, quorum: 2, waiting: 3, hedged: 4, overdue: 5, quarantined: 6 };

/**
 * The attention strip, most urgent first: suspected agents (highest phi first), faults being
 * healed, a quorum at risk (fewer than a majority of the known agents alive, or a consensus that
 * timed out), subtasks waiting for an agent that can run them, hedged and overdue subtasks,
 * quarantined agents. Pure: the same inputs give the same strip.
 *
 * @example attentionOf({ agents, healing: [], quorum: [], waiting: [], hedged: [], overdue: [], now })[0]?.text
 * // 'agent-3 suspected: phi 9.2, last beat 4.1 s ago'
 */
export function attentionOf({ agents, healing, quorum, waiting, hedged, overdue, now }: AttentionInputs): AttentionItem[] {
  const items: AttentionItem[] = [];
  const suspected = agents.filter(a => a.state === 'suspected').sort((a, b) => (b.phi ?? 0) - (a.phi ?? 0));
  for (const a of suspected) {
    const age = a.lastBeatAt === null ? undefined : now - a.lastBeatAt;
    items.push({
      kind: 'suspected',
      text: `${a.id} suspected: phi ${a.phi === null ? '?' : a.phi.toFixed(1)}, last beat ${age === undefined ? 'never' : `${(age / 1000).toFixed(1)} s ago`}`,
      at: a.since,
      agentId: a.id,
      ...(a.phi === null ? {} : { phi: a.phi }),
      ...(age === undefined ? {} : { lastBeatAgeMs: age }),
    });
  }
  items.push(...healing);
  const known = agents.filter(a => a.state !== 'gone');
  const alive = known.filter(a => a.state === 'alive').length;
  if (known.length >= 2 && 2 * alive <= known.length) {
    items.push({ kind: 'quorum', text: `quorum at risk: ${alive} of ${known.length} agents alive (a majority needs ${Math.floor(known.length / 2) + 1})`, at: now });
  }
  items.push(...quorum, ...waiting, ...hedged, ...overdue);
  for (const a of agents) if (a.state === 'quarantined') items.push({ kind: 'quarantined', text: `${a.id} quarantined: ${a.detail ?? ''}`, at: a.since, agentId: a.id });
  items.sort((a, b) => ORDER[a.kind] - ORDER[b.kind]);
  if (items.length <= ATTENTION_LIMIT) return items;
  const shown = items.slice(0, ATTENTION_LIMIT - 1);
  shown.push({ kind: items[ATTENTION_LIMIT - 1]!.kind, text: `… and ${items.length - ATTENTION_LIMIT + 1} more`, at: now });
  return shown;
}
