import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Reports every benchmark child sends: its own, plus `ready` once it listens and `error`. */
export type ChildReport = { readonly type: string } & ({ readonly type: 'error'; readonly message: string } | { readonly type: string });

/**
 * A benchmark's helper process (load generators, agent processes): a `benchmarks/<script>` forked
 * with tsx, spoken to over IPC. Commands go out with `send`; reports come back in order through
 * `next(type)`, which throws if the child reported an error, exited, or sent another type.
 */
export class BenchChild<Command extends { readonly type: string }, Report extends ChildReport> {
  private readonly queue: Report[] = [];
  private waiter: ((report: Report | undefined) => void) | undefined;
  private failure: Error | undefined;

  private constructor(
    readonly child: ChildProcess,
    private readonly label: string,
  ) {
    child.on('message', (report: Report) => {
      if (report.type === 'error') this.failure = new Error(`${label}: ${(report as { message?: string }).message ?? 'failed'}`);
      const waiter = this.waiter;
      this.waiter = undefined;
      if (waiter !== undefined) waiter(report);
      else this.queue.push(report);
    });
    child.on('exit', code => {
      this.failure ??= new Error(`${label} exited with ${String(code)}`);
      this.waiter?.(undefined);
    });
  }

  /** Forks `benchmarks/<script>` and waits for its `ready`. */
  static async start<C extends { readonly type: string }, R extends ChildReport>(script: string, label: string): Promise<BenchChild<C, R>> {
    const child = fork(join(here, script), [], { cwd: join(here, '..'), execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const started = new BenchChild<C, R>(child, label);
    await started.next('ready');
    return started;
  }

  send(command: Command): void {
    this.child.send(command);
  }

  /** The next report, which must be of `type`. */
  async next<T extends Report['type']>(type: T): Promise<Extract<Report, { type: T }>> {
    if (this.failure !== undefined) throw this.failure;
    const report = this.queue.shift() ?? (await new Promise<Report | undefined>(resolve => (this.waiter = resolve)));
    if (report === undefined || report.type === 'error') throw this.failure ?? new Error(`${this.label} failed`);
    if (report.type !== type) throw new Error(`${this.label}: expected ${type}, got ${report.type}`);
    return report as Extract<Report, { type: T }>;
  }

  /** Asks the child to exit (`{ type: 'exit' }`), and kills it if it has not within `graceMs`. */
  async exit(graceMs = 3000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    if (this.child.connected) this.child.send({ type: 'exit' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
