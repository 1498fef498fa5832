/**
 * Run by journal.bench.ts in a fresh process (a heap of its own, as a restarted coordinator has):
 * opens the journal in argv[2], lets a coordinator resume it, and prints the milliseconds from
 * opening to its first assignment as JSON.
 */
import { filter, firstValueFrom, map, timer } from 'rxjs';
import { createCoordinator } from '../src/coordinator.js';
import { FileJournal } from '../streams/journal.js';
import type { Subtask } from '../streams/task.js';

const [dir, running] = process.argv.slice(2) as [string, string];
const started = performance.now();
const journal = FileJournal.open(dir);
const agent = { id: 'a', capabilities: [], handle: (s: Subtask) => timer(1).pipe(map(() => s.id)) };
const coordinator = createCoordinator({ agents: [agent], journal, topology: 'star' });
await firstValueFrom(coordinator.events$.pipe(filter(e => e.type === 'subtask.assigned')));
const ms = performance.now() - started;
coordinator.cancel(running);
await coordinator.close();
process.stdout.write(JSON.stringify({ ms }));
process.exit(0);
