import { simulate } from '../src/simulate.js';
const agents = Number(process.argv[2]);
simulate({ seed: 1, topology: 'star', agents: 50, subtasks: 500 });
simulate({ seed: 1, topology: 'star', agents: 2000, subtasks: 2000 });
const c0 = process.cpuUsage(); const t0 = performance.now();
const r = simulate({ seed: 7, topology: 'star', agents, subtasks: Number(process.argv[3] ?? 1) });
const c = process.cpuUsage(c0);
console.log(agents, 'agents', r.completed, 'subtasks', ((c.user + c.system) / 1000).toFixed(0), 'ms cpu', (performance.now() - t0).toFixed(0), 'ms wall', (r.finishedAtMs).toFixed(0), 'virtual', r.messages, 'messages');
