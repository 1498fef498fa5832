import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The command line as real processes (`node --import tsx src/cli.ts …`), for the specs that run
// `serve`, `agent` and `run` as a user does. Waits are on printed lines, each bounded.

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cliPath = join(root, 'src', 'cli.ts');

export interface Proc {
  readonly child: ChildProcess;
  readonly lines: string[];
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the `nth` line (seen or to come) that matches; default the first. */
  line(pattern: RegExp, nth?: number): Promise<string>;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

/**
 * Starts CLI processes with `token` in `RXSWARM_TOKEN`, each line wait bounded by `waitMs`;
 * `killAll` (for afterEach) ends every one still running, stopped ones included.
 */
export function cliProcesses(token: string, waitMs: number): { start(...args: string[]): Proc; killAll(): void; dataDir(): string } {
  const procs: Proc[] = [];
  const dirs: string[] = [];
  const start = (...given: string[]): Proc => {
    // Each serve journals in a directory of its own (unless the spec names one): never the checkout's.
    const args = given[0] === 'serve' && !given.includes('--data-dir') ? [...given, '--data-dir', dataDir()] : given;
    const child = spawn(process.execPath, ['--import', 'tsx', cliPath, ...args], { cwd: root, env: { ...process.env, RXSWARM_TOKEN: token, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    const waiters: Array<{ pattern: RegExp; left: number; resolve: (line: string) => void }> = [];
    let stdout = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const parts = stdout.split('\n');
      stdout = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        for (const w of [...waiters]) {
          if (w.pattern.test(line) && --w.left === 0) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)));
    const proc: Proc = {
      child,
      lines,
      exited,
      stderr: () => stderr,
      line: (pattern, nth = 1) =>
        new Promise<string>((resolve, reject) => {
          const seen = lines.filter(l => pattern.test(l));
          if (seen.length >= nth) return resolve(seen[nth - 1] as string);
          const timer = setTimeout(() => reject(new Error(`no line ${nth} matching ${pattern} within ${waitMs} ms; stdout:\n${lines.join('\n')}\nstderr:\n${stderr}`)), waitMs);
          waiters.push({ pattern, left: nth - seen.length, resolve: line => (clearTimeout(timer), resolve(line)) });
          void exited.then(code => {
            clearTimeout(timer);
            reject(new Error(`exited (${code}) before a line matching ${pattern}; stdout:\n${lines.join('\n')}\nstderr:\n${stderr}`));
          });
        }),
    };
    procs.push(proc);
    return proc;
  };
  /** A fresh directory, removed by `killAll`. */
  const dataDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'rxswarm-data-'));
    dirs.push(dir);
    return dir;
  };
  const killAll = (): void => {
    for (const { child } of procs.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
    }
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  };
  return { start, killAll, dataDir };
}
