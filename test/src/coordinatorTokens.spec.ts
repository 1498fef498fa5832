import { NEVER, type Subscription } from 'rxjs';
import { createCoordinator, type Coordinator } from '../../src/coordinator.js';
import type { CoordinationEvent } from '../../src/events.js';
import type { Journal, Recovered } from '../../streams/journal.js';
import { MemoryJournal } from '../../streams/journal.js';
import { InMemoryNetwork } from '../../streams/network.js';
import type { InProcessAgent } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

// Attempt tokens across coordinator crashes: every token a coordinator hands out must be above
// every token any earlier coordinator on the same journal handed out (DESIGN, "Durability").

/**
 * A journal with group commit, as the file journal has: appends wait in a buffer until `flush`
 * (the batch's fsync); a crash (`crash`) loses the buffer. `recover` gives what was flushed.
 */
class GroupCommitJournal implements Journal {
  private stable: unknown[] = [];
  private buffer: unknown[] = [];
  private state: unknown;
  readonly failure = undefined;
  recover(): Recovered {
    return structuredClone({ snapshot: this.state, records: this.stable, tornBytes: 0 });
  }
  append(record: unknown): void {
    this.buffer.push(structuredClone(record));
  }
  flush(): void {
    this.stable.push(...this.buffer);
    this.buffer = [];
  }
  crash(): void {
    this.buffer = [];
  }
  durable(): Promise<void> {
    this.flush();
    return Promise.resolve();
  }
  snapshot(state: unknown): void {
    this.flush();
    this.state = structuredClone(state);
    this.stable = [];
  }
  get sinceSnapshot(): number {
    return this.stable.length + this.buffer.length;
  }
  get pending(): boolean {
    return this.buffer.length > 0;
  }
  onFailure(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Lets pending promise callbacks (a journal's `durable()`) run. */
const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve));

/** An agent whose work never ends: its subtask stays assigned. */
const stuck: InProcessAgent = { id: 'agent-0', capabilities: [], handle: () => NEVER };
const TASK = { id: 'job', subtasks: [{ id: 's' }] };

function boot(journal: Journal, scheduler: VirtualScheduler, network: InMemoryNetwork): { coordinator: Coordinator; tokens: number[]; subscription: Subscription } {
  const coordinator = createCoordinator({ agents: [{ ...stuck }], topology: 'star', scheduler, network, journal, seed: 1 });
  const tokens: number[] = [];
  const subscription = coordinator.events$.subscribe((e: CoordinationEvent) => {
    if (e.type === 'subtask.assigned') tokens.push(e.attempt);
  });
  return { coordinator, tokens, subscription };
}

describe('attempt tokens across coordinator crashes', () => {
  it('are above every earlier token after a crash (a journal durable at every append)', async () => {
    const scheduler = new VirtualScheduler();
    const network = new InMemoryNetwork({ scheduler });
    const journal = new MemoryJournal();
    const first = boot(journal, scheduler, network);
    first.coordinator.submit(TASK);
    scheduler.advanceBy(100);
    await first.coordinator.close();
    const second = boot(journal, scheduler, network);
    scheduler.advanceBy(100);
    expect(first.tokens).toHaveLength(1);
    expect(second.tokens).toHaveLength(1);
    expect(second.tokens[0]).toBeGreaterThan(first.tokens[0] as number);
  });

  // Regression: a recovered coordinator handed out its first token at once, while the record
  // reserving it was still in the journal's buffer; dying before that batch was durable, the next
  // coordinator recovered the same reservation and handed out the same token again. Now nothing
  // is handed out before the reservation is durable.
  it('are above every earlier token when a coordinator dies before its batch was durable', async () => {
    const scheduler = new VirtualScheduler();
    const network = new InMemoryNetwork({ scheduler });
    const journal = new GroupCommitJournal();
    const first = boot(journal, scheduler, network);
    first.coordinator.submit(TASK);
    await settle();
    scheduler.advanceBy(100);
    expect(first.tokens).toHaveLength(1);
    await first.coordinator.durable();
    await first.coordinator.close();

    // The second one resumes and assigns (the assignment is sent), then dies before its fsync.
    const second = boot(journal, scheduler, network);
    await settle(); // it resumes once what it recorded at recovery is durable, on the scheduler's next turn
    scheduler.advanceBy(100);
    expect(second.tokens).toHaveLength(1);
    journal.crash();
    await second.coordinator.close();

    const third = boot(journal, scheduler, network);
    await settle();
    scheduler.advanceBy(100);
    expect(third.tokens).toHaveLength(1);
    // Sent by the second coordinator, so it must never be handed out again.
    expect(third.tokens[0]).toBeGreaterThan(second.tokens[0] as number);
  });
});
