import { Observable, type Subscription } from 'rxjs';
import type { AgentContext } from '../streams/task.js';

/** An agent as a circular wait knows it: its id, what it can run, and its slots. */
export interface WaitingAgent {
  readonly id: string;
  readonly capabilities?: readonly string[];
  readonly concurrency?: number;
}

/**
 * The deadlock faults' waits: whose work waits for whose, and the runs a fault can catch. Per agent,
 * how many more of its runs wait (one per slot, taken by the runs it has when the fault comes, then
 * by the next it starts) and for a child with which capabilities (the next agent's).
 */
export class CircularWaits {
  private readonly due = new Map<string, { capabilities: readonly string[]; left: number }>();
  /** Each agent's runs now, each able to start waiting. */
  private readonly runs = new Map<string, Set<(capabilities: readonly string[]) => void>>();

  constructor(private readonly specs: readonly WaitingAgent[]) {}

  /** Each agent of the circle has its work wait for the next one's. */
  close(agents: readonly string[]): void {
    agents.forEach((id, i) => {
      const next = this.specs.find(s => s.id === agents[(i + 1) % agents.length]);
      const capabilities = next?.capabilities ?? [];
      let left = Math.max(1, Math.floor(this.specs.find(s => s.id === id)?.concurrency ?? 1));
      for (const wait of [...(this.runs.get(id) ?? [])]) {
        if (left === 0) break;
        left--;
        wait(capabilities);
      }
      if (left > 0) this.due.set(id, { capabilities, left });
    });
  }

  /** A run of the agent starts: the capabilities its child must have when it is to wait at once, else undefined (and `wait` is how a later fault makes it). */
  started(agentId: string, wait: (capabilities: readonly string[]) => void): readonly string[] | undefined {
    const due = this.due.get(agentId);
    if (due !== undefined) {
      if (--due.left === 0) this.due.delete(agentId);
      return due.capabilities;
    }
    let runs = this.runs.get(agentId);
    if (runs === undefined) this.runs.set(agentId, (runs = new Set()));
    runs.add(wait);
    return undefined;
  }

  ended(agentId: string, wait: (capabilities: readonly string[]) => void): void {
    this.runs.get(agentId)?.delete(wait);
  }
}

/**
 * `work`, run so that a circular wait can catch it: if the agent's work is to wait (a fault came
 * before, with a slot of it not yet caught), it first asks for a child with the next agent's
 * capabilities (`context.delegate$`) and runs `work` once the child has ended; if a fault comes
 * while `work` runs, `work` is dropped, the child asked for, and `work` run again after it.
 */
export function waitable<T>(waits: CircularWaits, agentId: string, context: AgentContext, work: Observable<T>): Observable<T> {
  return new Observable<T>(subscriber => {
    let running: Subscription | undefined;
    let child: Subscription | undefined;
    const run = (): void => {
      running = work.subscribe({ next: v => subscriber.next(v), error: (e: unknown) => subscriber.error(e), complete: () => {
        waits.ended(agentId, wait);
        subscriber.complete();
      } });
    };
    const wait = (capabilities: readonly string[]): void => {
      running?.unsubscribe();
      running = undefined;
      waits.ended(agentId, wait);
      child = context.delegate$({ id: 'wait', capabilities: [...capabilities] }).subscribe({ complete: run, error: (e: unknown) => subscriber.error(e) });
    };
    const now = waits.started(agentId, wait);
    if (now === undefined) run();
    else wait(now);
    return () => {
      running?.unsubscribe();
      child?.unsubscribe();
      waits.ended(agentId, wait);
    };
  });
}
