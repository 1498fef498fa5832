import { describeFault } from '../streams/faultSpec.js';
import type { Fault } from '../streams/faults.js';
import type { CoordinationEvent } from './events.js';
import type { SimulationReport } from './simulate.js';
import { detectionOf, targets, verdictsOf, type Verdict } from './simulationText.js';

/** Agent lanes drawn at most: the agents with faults or verdicts first, then the others in order. */
export const MAX_LANES = 150;

const escape = (text: string): string => text.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`);
const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

type Phase = 'up' | 'suspected' | 'down';

/** Each agent's phases over the run, from its `agent.*` events: up, suspected, down (and back). */
function phasesOf(events: readonly CoordinationEvent[], ids: readonly string[], end: number): Map<string, Array<{ from: number; to: number; phase: Phase; why: string }>> {
  const lanes = new Map(ids.map(id => [id, [{ from: 0, to: end, phase: 'up' as Phase, why: 'up' }]]));
  for (const e of events) {
    // A restarted agent is up again once it is heard from (`agent.recovered`), not when restarted.
    if (e.type !== 'agent.suspected' && e.type !== 'agent.down' && e.type !== 'agent.recovered' && e.type !== 'agent.joined') continue;
    const lane = lanes.get(e.agentId);
    if (lane === undefined) continue;
    const phase: Phase = e.type === 'agent.suspected' ? 'suspected' : e.type === 'agent.down' ? 'down' : 'up';
    const last = lane[lane.length - 1]!;
    if (last.phase === phase) continue;
    last.to = e.at;
    lane.push({ from: e.at, to: end, phase, why: e.type === 'agent.suspected' ? e.detail : e.type === 'agent.down' ? e.reason : e.type });
  }
  return lanes;
}

/**
 * `rxswarm simulate --html`: the run as one self-contained page (inline SVG and CSS, no script,
 * nothing fetched): agents' lanes (up, suspected, down) with the faults injected on them, the
 * subtasks completed over time, faults injected against what was detected and when, healing
 * attempts and protocol switches (with their scores), then the report's numbers.
 *
 * @example writeFileSync('report.html', simulationHtml(report, faults, ids, 'rxswarm simulate --agents 20'))
 */
export function simulationHtml(report: SimulationReport, faults: readonly Fault[], agentIds: readonly string[], title: string): string {
  const end = Math.max(1, report.finishedAtMs);
  const width = 1100;
  const left = 110;
  const x = (t: number): number => left + (Math.min(end, Math.max(0, t)) / end) * (width - left - 10);
  const verdicts = verdictsOf(report.events);
  const harmed = new Set(faults.flatMap(f => targets(f, agentIds) ?? ('agent' in f ? [f.agent] : [])));
  const noticed = new Set(verdicts.map(v => v.agentId as string));
  const chosen = [...agentIds.filter(id => harmed.has(id) || noticed.has(id)), ...agentIds.filter(id => !harmed.has(id) && !noticed.has(id))].slice(0, MAX_LANES);
  const phases = phasesOf(report.events, chosen, end);

  // Subtasks completed over time: a step line over 300 bins.
  const bins = new Array<number>(300).fill(0);
  for (const e of report.events) if (e.type === 'subtask.completed') bins[Math.min(299, Math.floor((e.at / end) * 300))]!++;
  let done = 0;
  const curve = bins.map((n, i) => {
    done += n;
    return `${i === 0 ? 'M' : 'L'}${x(((i + 1) / 300) * end).toFixed(1)},${(70 - (done / Math.max(1, report.subtasks)) * 60).toFixed(1)}`;
  });

  const axis: string[] = [];
  const step = Math.max(1, 10 ** Math.floor(Math.log10(end / 5)));
  for (let t = 0; t <= end; t += step * (end / step > 12 ? 5 : 1)) axis.push(`<line x1="${x(t)}" x2="${x(t)}" y1="0" y2="100%" class="grid"/><text x="${x(t) + 2}" y="10" class="tick">${escape(seconds(t))}</text>`);

  // Each fault on the lane of every agent it harms (network-wide ones on their own lane): a ▼ at
  // its start, its span, and in dark red the time it went undetected on that agent.
  const faultMarks = faults.map(f => {
    const [from, to] =
      f.kind === 'drop' ? [f.fromMs ?? 0, f.toMs ?? end] : f.kind === 'partition' ? [f.atMs, f.healAtMs ?? end] : f.kind === 'coordinatorCrash' ? [f.atMs, f.restartAtMs] : [f.atMs, f.atMs];
    const on = (targets(f, agentIds) ?? ('agent' in f ? [f.agent] : [])).filter(id => chosen.includes(id));
    const ys = f.kind === 'drop' && f.agents === undefined ? [112] : on.length === 0 ? [112] : on.map(id => 150 + chosen.indexOf(id) * 16);
    const marks = ys.map((y, i) => {
      const agent = on[i];
      const found = agent === undefined ? undefined : verdicts.find(v => v.agentId === agent && v.at >= from)?.at;
      const unseen = agent === undefined || f.kind === 'restart' ? '' : `<rect x="${x(from)}" y="${y - 4}" width="${Math.max(1, x(found ?? end) - x(from))}" height="8" class="undetected"><title>${escape(`${agent}: ${f.kind} at ${seconds(from)}, ${found === undefined ? 'never detected' : `detected after ${Math.round(found - from)} ms`}`)}</title></rect>`;
      const span = to > from ? `<rect x="${x(from)}" y="${y - 7}" width="${Math.max(2, x(to) - x(from))}" height="2" class="fault-span"/>` : '';
      return `${unseen}${span}<path d="M${x(from) - 5},${y - 9}L${x(from) + 5},${y - 9}L${x(from)},${y - 1}Z"/>`;
    });
    return `<g class="fault" data-fault="${f.kind}">${marks.join('')}<title>${escape(describeFault(f))}</title></g>`;
  });
  const detectionMarks = verdicts.map(v => {
    const lane = chosen.indexOf(v.agentId as string);
    const y = lane === -1 ? 126 : 150 + lane * 16;
    return `<circle cx="${x(v.at)}" cy="${y}" r="3.5" class="detected"><title>${escape(`${seconds(v.at)} ${verdictText(v)}`)}</title></circle>`;
  });
  const healMarks = report.healing.map(h => `<rect x="${x(h.at) - 3}" y="84" width="6" height="8" class="${h.ok ? 'heal-ok' : 'heal-failed'}"><title>${escape(`${seconds(h.at)} ${h.strategy} for ${h.faultKind}${h.agentId === undefined ? '' : ` of ${h.agentId}`}: ${h.ok ? 'ok' : 'failed'} (${h.detail})`)}</title></rect>`);
  const switchMarks = report.switches.map(s => `<g class="switch"><line x1="${x(s.at)}" x2="${x(s.at)}" y1="78" y2="100%"/><text x="${x(s.at) + 3}" y="100">${escape(`${s.from}→${s.to}`)}</text><title>${escape(`${seconds(s.at)} ${s.from} → ${s.to}: ${s.reason}`)}</title></g>`);
  const lanes = chosen.map((id, i) => {
    const y = 150 + i * 16;
    const parts = (phases.get(id) ?? []).map(p => `<rect x="${x(p.from)}" y="${y - 4}" width="${Math.max(1, x(p.to) - x(p.from))}" height="8" class="${p.phase}"><title>${escape(`${id} ${p.phase} from ${seconds(p.from)}: ${p.why}`)}</title></rect>`);
    return `<text x="4" y="${y + 4}" class="lane">${escape(id)}</text>${parts.join('')}`;
  });
  const height = 160 + chosen.length * 16;

  const faultRows = faults.map(f => {
    const detection = detectionOf(f, agentIds, verdicts, report.detectionBoundMs);
    return `<tr data-fault="${f.kind}"><td>${escape(describeFault(f))}</td><td>${escape(detection ?? '—')}</td></tr>`;
  });
  const healingRows = report.healing.map(h => `<tr><td>${seconds(h.at)}</td><td>${escape(h.faultKind)}${h.agentId === undefined ? '' : ` of ${escape(h.agentId)}`}</td><td>${escape(h.strategy)}</td><td class="${h.ok ? 'ok' : 'bad'}">${h.ok ? 'ok' : 'failed'}</td><td>${escape(h.detail)}</td></tr>`);
  const switchRows = report.switches.map(s => `<tr><td>${seconds(s.at)}</td><td>${escape(s.from)} → ${escape(s.to)}</td><td>${escape(s.reason)}</td><td>${escape(Object.entries(s.scores).map(([p, v]) => `${p} ${v.toFixed(2)}`).join(', '))}</td></tr>`);
  const more = agentIds.length - chosen.length;

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:20px;color:#1d2430;background:#fff}
h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:22px 0 6px}
.summary{display:flex;gap:18px;flex-wrap:wrap;color:#444}.summary b{color:#000}
svg{background:#fafbfc;border:1px solid #dde2e8;border-radius:4px}
.grid{stroke:#e6e9ee}.tick{font-size:10px;fill:#667}.lane{font-size:10px;fill:#333}
.up{fill:#53b883}.suspected{fill:#e8a93b}.down{fill:#d9534f}
.fault path{fill:#b3202a}.fault-span{fill:#b3202a;opacity:.6}.undetected{fill:#7d1d24;opacity:.75}.detected{fill:#1f5fbf;stroke:#fff;stroke-width:1}
.heal-ok{fill:#2e8b57}.heal-failed{fill:#d9534f}.switch line{stroke:#7a4fd0;stroke-dasharray:3 3}.switch text{font-size:10px;fill:#7a4fd0}
.curve{fill:none;stroke:#1f5fbf;stroke-width:1.5}.label{font-size:10px;fill:#667}
table{border-collapse:collapse;margin-top:4px}td,th{border-bottom:1px solid #e6e9ee;padding:3px 8px;text-align:left;vertical-align:top}
.ok{color:#2e8b57}.bad{color:#d9534f}.legend span{margin-right:14px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
</style></head><body>
<h1>${escape(title)}</h1>
<div class="summary"><span>protocol <b>${escape(report.protocol)}</b></span><span>subtasks <b>${report.subtasks}</b></span><span>completed <b>${report.completed}</b></span><span>failed <b>${report.failed}</b></span><span>lost <b>${report.lost}</b></span><span>accepted twice <b>${report.duplicatesAccepted}</b></span><span>runs <b>${report.executions}</b></span><span>false suspicions <b>${report.falseSuspicions}</b></span><span>detection bound <b>${report.detectionBoundMs} ms</b></span><span>finished at <b>${seconds(report.finishedAtMs)}</b> (virtual)</span></div>
<p class="legend"><span><i style="background:#53b883"></i>up</span><span><i style="background:#e8a93b"></i>suspected</span><span><i style="background:#d9534f"></i>down</span><span><i style="background:#b3202a"></i>fault injected (▼)</span><span><i style="background:#7d1d24"></i>faulty, not yet detected</span><span><i style="background:#1f5fbf;border-radius:5px"></i>detected</span><span><i style="background:#2e8b57"></i>healing</span><span><i style="background:#7a4fd0"></i>protocol switch</span></p>
<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="timeline of the simulation">
${axis.join('')}
<text x="4" y="44" class="lane">completed</text><path class="curve" d="${curve.join('')}"/><text x="${width - 8}" y="14" class="label" text-anchor="end">${report.completed} of ${report.subtasks}</text>
<text x="4" y="92" class="lane">healing</text>
<text x="4" y="116" class="lane">network faults</text><text x="4" y="130" class="lane">verdicts</text>
${lanes.join('')}
${switchMarks.join('')}${healMarks.join('')}${faultMarks.join('')}${detectionMarks.join('')}
</svg>
${more > 0 ? `<p>${more} more agent(s) without faults or verdicts are not drawn.</p>` : ''}
<h2>Faults injected and what was detected</h2>
${faults.length === 0 ? '<p>none injected</p>' : `<table id="faults"><tr><th>fault</th><th>detection</th></tr>${faultRows.join('')}</table>`}
<h2>Healing</h2>
${healingRows.length === 0 ? '<p>no healing</p>' : `<table><tr><th>at</th><th>fault</th><th>strategy</th><th>outcome</th><th>detail</th></tr>${healingRows.join('')}</table>`}
<h2>Protocol switches</h2>
${switchRows.length === 0 ? '<p>no switch</p>' : `<table><tr><th>at</th><th>switch</th><th>reason</th><th>scores</th></tr>${switchRows.join('')}</table>`}
</body></html>
`;
}

function verdictText(v: Verdict): string {
  if (v.type === 'fault.detected') return `${v.kind}: ${v.detail}`;
  if (v.type === 'subtask.silent') return `attempt ${v.attempt} of ${v.subtaskId} silent for ${v.silentMs} ms`;
  return `suspected: ${v.detail}`;
}
