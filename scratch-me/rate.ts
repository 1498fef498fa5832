import { simulate } from '../src/simulate.js';
const agents = Number(process.argv[2]);
const topology = (process.argv[4] ?? 'star') as 'star';
simulate({ seed: 1, topology, agents: 50, subtasks: 500 });
let next = 10000; let t0 = performance.now(); let c0 = process.cpuUsage();
const out: string[] = [];
simulate({ seed: 7, topology, agents, subtasks: Number(process.argv[3]) }, { onProgress: p => { if (p.ended >= next) { const c = process.cpuUsage(c0); out.push(`${next}: ${((c.user + c.system) / 1000).toFixed(0)}ms cpu, ${(performance.now() - t0).toFixed(0)}ms wall, heap ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)}MB, v ${p.atMs.toFixed(0)}`); next += 10000; t0 = performance.now(); c0 = process.cpuUsage(); } } });
console.log(out.join('\n'));
