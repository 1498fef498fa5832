import { writeHeapSnapshot } from 'node:v8';
import { simulate } from '../src/simulate.js';
let taken = false;
simulate({ seed: 7, topology: 'star', agents: Number(process.argv[2]), subtasks: 100000 }, { onProgress: p => { if (!taken && p.ended > 50000) { taken = true; console.log('snap', writeHeapSnapshot(`/tmp/me/sim${process.argv[2]}.heapsnapshot`)); } } });
